"""`evsynth bias [studies.csv]`: publication bias and small-study effects per outcome -- Egger's test,
PET-PEESE, the contour-enhanced funnel plot (saved PNG) and the RoBMA-PSMA model-averaged
(bias-adjusted) estimate with its 16 models, each with its stated minimum number of studies."""

from __future__ import annotations

import sys

from .common import (EXIT_NOTHING_ANALYSED, add_input_arguments, load_effects, prepare_out, print_frame,
                     report_replaced, say, snapshot)

MIN_REGRESSION = 3  # Egger and PET-PEESE fit two coefficients: at least one residual df
MIN_POWER = 10  # below this the regression tests have too little power to detect asymmetry (Sterne et al. 2011)


def register(commands) -> None:
    p = commands.add_parser("bias", help="publication bias: Egger, PET-PEESE, contour funnel, RoBMA-PSMA")
    add_input_arguments(p)
    p.add_argument("--out", default="output", help="output folder for the funnel plots (default: %(default)s)")
    p.set_defaults(handler=cmd_bias)


def _regressions(label: str, exact) -> None:
    from ..methods.bias import egger_test, pet_peese

    k = len(exact)
    if k < MIN_REGRESSION:
        say(f"{label}: Egger and PET-PEESE not computed: {k} uncensored studies, they need at least "
            f"{MIN_REGRESSION} (two coefficients and one residual degree of freedom)")
        return
    if k < MIN_POWER:
        say(f"{label}: {k} studies: Egger and PET-PEESE are shown but have little power below {MIN_POWER} studies "
            "(a non-significant test is not evidence of no bias)")
    say(f"{label}: {egger_test(exact)}")
    pp = pet_peese(exact)
    print_frame(f"{label}: PET (yi ~ b0 + b1 se) and PEESE (yi ~ b0 + b1 se²), weighted least squares; b0 is "
                "the effect of a study with SE 0", pp.table[["intercept", "se", "ci_low", "ci_high", "p", "slope"]])
    say(f"{label}: {pp}")


def cmd_bias(args) -> int:
    from ..effects.table import used_effects
    from ..methods.analysis import slug, split_by_outcome
    from ..methods.robma import MIN_STUDIES, bias_adjusted

    out = prepare_out(args.out)
    _, effects = load_effects(args)
    before = snapshot(out)
    runnable, skipped = split_by_outcome(effects, args.pool_outcomes)
    if skipped:
        say("\nnot analysed: " + "; ".join(f"{label} ({reason})" for label, reason in skipped.items()))
    say(f"\nminimum studies: Egger and PET-PEESE {MIN_REGRESSION} (little power below {MIN_POWER}); "
        f"RoBMA-PSMA ensemble {MIN_STUDIES}; the funnel plot is drawn for any number but cannot show asymmetry "
        f"with few studies")
    for label, table in runnable.items():
        used = used_effects(table)
        censored = used["censored"].astype(bool)
        exact = used[~censored]
        exact.attrs = dict(table.attrs)
        say(f"\n== {label}: {len(used)} studies ==")
        if censored.any():
            say(f"{label}: {', '.join(used.loc[censored, 'study_id'])}: censored (p printed as a bound), no point "
                "estimate: left out of Egger, PET-PEESE and the funnel plot; the ensemble uses their censored "
                "likelihood")
        _regressions(label, exact)
        if len(exact):
            from ..present.plots import funnel

            path = out / f"{slug(label)}_funnel.png"
            import matplotlib.pyplot as plt

            fig = funnel(exact)
            fig.savefig(path, dpi=120)
            plt.close(fig)
            say(f"{label}: saved the contour-enhanced funnel plot {path}")
        adjusted = bias_adjusted(table, dict(args.prior))
        say(f"{label}: {adjusted.line()}")
        if adjusted.ran:
            print_frame(f"{label}: RoBMA-PSMA models (prior and posterior probability, log marginal likelihood, "
                        "posterior means; quadrature)", adjusted.table())
            inc = adjusted.ensemble.inclusion[["prior_prob", "post_prob", "BF_incl"]]
            print_frame(f"{label}: inclusion (posterior probability of each component; BF = posterior / prior "
                        "odds)", inc)
            say("priors: " + "; ".join(f"{k}: {v}" for k, v in adjusted.priors.items()))
    report_replaced(out, before)
    if not runnable:
        print("\nno outcome has enough usable studies: nothing analysed", file=sys.stderr)
        return EXIT_NOTHING_ANALYSED
    return 0
