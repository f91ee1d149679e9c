"""`evsynth classical [studies.csv]`: the classical toolkit per outcome (evsynth.methods.classical):
every tau^2 estimator, Q-profile intervals, Mantel-Haenszel/Peto, influence with the Baujat plot,
the cumulative meta-analysis (with the exact Bayesian sequence) and trim-and-fill with its funnel.
Tables are printed and saved as CSV, figures as PNG, in --out."""

from __future__ import annotations

import sys

from .common import EXIT_NOTHING_ANALYSED, InputError, add_input_arguments, prepare_out, print_frame, say

METHODS = ("REML", "DL", "ML", "PM", "EB", "SJ", "HE", "HS")


def register(commands) -> None:
    p = commands.add_parser("classical", help="classical meta-analysis toolkit: tau^2 estimators and Q-profile "
                                              "CIs, Mantel-Haenszel/Peto, influence, cumulative, trim-and-fill")
    add_input_arguments(p)
    p.add_argument("--method", default="REML", choices=METHODS,
                   help="tau^2 estimator for the intervals, influence, cumulative and trim-and-fill fits "
                        "(every estimator is tabulated anyway; default: %(default)s)")
    p.add_argument("--order-by", default="year", metavar="COLUMN",
                   help="study-table column that orders the cumulative meta-analysis (default: %(default)s)")
    p.add_argument("--out", default="output", help="output folder (default: %(default)s)")
    p.set_defaults(handler=cmd_classical)


def _scaled(frame, measure: str, columns):
    """Ratio measures back-transformed (exp) in the printed columns; the CSVs keep the log scale."""
    import numpy as np

    from ..effects.table import RATIO_MEASURES

    if measure not in RATIO_MEASURES:
        return frame
    out = frame.copy()
    for c in columns:
        if c in out.columns:
            out[c] = np.exp(out[c].astype(float))
    return out.rename(columns={c: f"{c} ({measure})" for c in columns if c in out.columns})


def _binary_view(table):
    """MH/Peto rows with their estimate and 95% CI as text: RR and OR rows back-transformed, RD not."""
    import numpy as np

    view = table.drop(columns=[c for c in ("se", "estimate", "ci_low", "ci_high", "note") if c in table.columns])
    texts = []
    for name, row in table.iterrows():
        if "estimate" not in row or np.isnan(row["estimate"]):
            texts.append("")
            continue
        f = (lambda v: v) if name.endswith("RD") else np.exp
        texts.append(f"{f(row['estimate']):.4f} ({f(row['ci_low']):.4f} to {f(row['ci_high']):.4f})")
    view.insert(1, "estimate (95% CI)", texts)
    return view


def cmd_classical(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..methods.analysis import split_by_outcome
    from ..methods.classical import classical, trimfill_table
    from ..present.classical_plots import baujat_plot, cumulative_forest, filled_funnel
    from .common import load_effects

    out = prepare_out(args.out)
    studies, effects = load_effects(args)
    if args.order_by != "year" and args.order_by not in studies.columns:  # year: used when present
        raise InputError(f"--order-by {args.order_by!r}: no such column in the study table "
                         "(declare a column of your own with --extra-column NAME)")
    runnable, skipped = split_by_outcome(effects, args.pool_outcomes)
    for label, reason in skipped.items():
        say(f"{label}: not analysed: {reason}")
    done = 0
    for label, table in runnable.items():
        try:
            res = classical(table, studies, method=args.method, order_by=args.order_by, label=label)
        except ValueError as exc:
            say(f"{label}: classical toolkit not run: {exc}")
            continue
        done += 1
        m = res.measure
        stem = out / f"classical_{''.join(ch if ch.isalnum() else '_' for ch in label)}"
        effect_cols = ["estimate", "ci_low", "ci_high", "pi_low", "pi_high"]
        print_frame(f"{label}: every tau² estimator (k = {res.k}; 95% CI; FE has no prediction interval)",
                    _scaled(res.estimators.drop(columns=["se", "tau2_se"]), m, effect_cols), digits=4)
        print_frame(f"{label}: heterogeneity, {res.method} estimate with Q-profile 95% CI", res.heterogeneity, digits=4)
        if res.binary is not None:
            print_frame(f"{label}: Mantel-Haenszel and Peto (common-effect, from the 2x2 counts; ratios "
                        "back-transformed)", _binary_view(res.binary), digits=4)
            for name, note in res.binary["note"].items():  # tests and refusals: whole lines, not a cut column
                if note:
                    say(f"{name}: {note}")
        if res.bayes_intervals is not None:
            b = res.bayes_intervals
            print_frame(f"{label}: exact Bayesian posterior ({b.attrs['tau_prior']} on tau, {b.attrs['mu_prior']} on "
                        "mu): equal-tailed (eti) and shortest/HPD 95% intervals; I² and H² from tau's exact "
                        "quantiles", b, digits=4)
            b.to_csv(f"{stem}_bayes_intervals.csv")
        if res.predictive is not None:
            pp = res.predictive
            low = pp.index[pp["p_two_sided"] < 0.05].astype(str).tolist()
            say(f"{label}: leave-one-out posterior predictive p-values (exact engine; two-sided p < 0.05: "
                f"{', '.join(low) or 'none'}); in {stem.name}_predictive.csv")
            pp.to_csv(f"{stem}_predictive.csv")
        infl = res.influence
        flagged = infl.index[infl["influential"]].astype(str).tolist()
        print_frame(f"{label}: influence ({res.method}; influential: {', '.join(flagged) or 'none'})",
                    infl.drop(columns=[c for c in infl.columns if c.startswith("dfbs_")]), digits=3)
        if res.cumulative is not None:
            print_frame(f"{label}: cumulative meta-analysis by {res.order_by} ({res.method})",
                        _scaled(res.cumulative.drop(columns=["se"]), m, ["estimate", "ci_low", "ci_high"]), digits=4)
            res.cumulative.join(res.bayesian_cumulative.add_prefix("bayes_")).to_csv(f"{stem}_cumulative.csv")
            fig = cumulative_forest(res.cumulative, m, bayesian=res.bayesian_cumulative)
            fig.savefig(f"{stem}_cumulative.png", dpi=110, bbox_inches="tight")
            plt.close(fig)
        tf = trimfill_table(res)
        print_frame(f"{label}: trim-and-fill ({res.method}; a sensitivity analysis: the filled studies are "
                    "imputations assuming suppressed studies cause the asymmetry)",
                    _scaled(tf, m, ["estimate", "ci_low", "ci_high"]), digits=4)
        for note in res.notes:
            say(f"{label}: {note}")
        res.estimators.to_csv(f"{stem}_estimators.csv")
        res.heterogeneity.to_csv(f"{stem}_heterogeneity.csv")
        infl.join(res.baujat).to_csv(f"{stem}_influence.csv")
        tf.to_csv(f"{stem}_trimfill.csv")
        if res.binary is not None:
            res.binary.to_csv(f"{stem}_mantel_haenszel.csv")
        for name, fig in (("baujat", baujat_plot(res.baujat)), ("trimfill", filled_funnel(res.trimfill["L0"], m))):
            fig.savefig(f"{stem}_{name}.png", dpi=110, bbox_inches="tight")
            plt.close(fig)
        print(f"saved {stem.name}_*.csv and .png in\n  {out}")
    if not done:
        print("no outcome has 3 or more usable studies: nothing analysed", file=sys.stderr)
        return EXIT_NOTHING_ANALYSED
    return 0
