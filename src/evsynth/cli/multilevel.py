"""`evsynth multilevel [studies.csv]`: rows that share participants (the same `sample_id`) kept and
modelled, not reduced to one row per sample as `evsynth fit` does. Per outcome: the nested model
`--random` (default: rows within samples), its REML fit with CR2 cluster-robust SEs, and the exact
Bayesian posterior; `--rho` the assumed correlation of sampling errors within a sample, and
`--rho-grid` refits over several (the pooled effect's sensitivity to that unknown correlation)."""

from __future__ import annotations

import argparse

from .common import EXIT_NOTHING_ANALYSED, EXIT_OK, add_input_arguments, print_frame, rho_option, say

SAMPLE = "sample"  # the column evsynth adds (methods.analysis.with_samples): sample_id, or the row's study_id


def _rho_grid(text: str) -> tuple[float, ...]:
    return tuple(rho_option(t.strip()) for t in text.split(","))


def register(commands) -> None:
    p = commands.add_parser("multilevel", help="several rows per sample: nested model, CR2 SEs, assumed correlation")
    add_input_arguments(p)
    p.add_argument("--random", default=f"~ 1 | {SAMPLE}/study_id",
                   help="nested levels, outermost first (default: %(default)s; 'sample' is sample_id, or the "
                        "row's study_id when it has none)")
    p.add_argument("--rho", type=rho_option, default=None,
                   help="correlation of the sampling errors of two rows of one sample (default: none assumed)")
    p.add_argument("--rho-grid", type=_rho_grid, default=None, metavar="R1,R2,...",
                   help="also refit for each of these correlations, e.g. 0,0.3,0.6,0.9")
    p.set_defaults(handler=cmd_multilevel, keep_samples=True)


def cmd_multilevel(args) -> int:
    from ..effects.table import used_effects
    from ..engines.exact import summary_table
    from ..methods.dependence import correlation_sensitivity
    from ..methods.multilevel import multilevel
    from ..methods.robust import robust
    from ..model import description
    from .common import load_effects

    _, effects = load_effects(args)
    effects = effects.assign(**{SAMPLE: effects["sample_id"].where(effects["sample_id"].notna(), effects["study_id"])})
    fitted, nothing = 0, []
    for outcome, rows in effects.groupby("outcome", sort=True):
        table = used_effects(rows)
        table.attrs = dict(effects.attrs)
        shared = table.groupby(SAMPLE).size()
        if len(table) < 3 or (shared > 1).sum() == 0:
            nothing.append(f"{outcome} ({len(table)})")
            continue
        fitted += 1
        say(f"\n== {outcome}: {len(table)} rows, {len(shared)} samples ({(shared > 1).sum()} with several rows); "
            f"random {args.random}; rho {args.rho if args.rho is not None else 'none (independent errors)'} ==")
        model = description.multilevel(table, dict(args.prior), random=args.random, rho=args.rho, cluster=SAMPLE)
        print_frame(f"{outcome}: Bayesian multilevel model, exact engine (95% CrI)", summary_table(model))
        say("  priors: " + ", ".join(f"{k.removeprefix('prior_')} ~ {v}" for k, v in model.settings.items()
                                     if k.startswith("prior_")))
        exact_rows = table[~table["censored"].to_numpy(bool)].reset_index(drop=True)
        if len(exact_rows) < len(table):
            say(f"  REML and CR2 below leave out the censored row(s) {', '.join(table.loc[table['censored'], 'study_id'])}"
                " (p printed only as a bound); the Bayesian model above keeps them")
        if len(exact_rows) < 4 or exact_rows[SAMPLE].nunique() < 2:
            say("  too few exact rows for REML with CR2")
            continue
        V = None
        if args.rho is not None:
            from ..effects.covariance import impute_covariance

            V = impute_covariance(exact_rows["vi"], exact_rows[SAMPLE], args.rho)
        fit = multilevel(exact_rows, args.random, V=V)
        for line in fit.lines() + robust(fit, cluster=exact_rows[SAMPLE].to_numpy()).lines():
            say(line)
        if args.rho_grid:
            grid = correlation_sensitivity(exact_rows, args.random, rhos=args.rho_grid, cluster=SAMPLE,
                                           priors=dict(args.prior))
            print_frame(f"{outcome}: pooled effect by assumed rho (REML, CR2 95% CI; Bayes: exact rows only)",
                        grid[["estimate", "se", "se_CR2", "df_CR2", "ci_low_CR2", "ci_high_CR2", "mu_mean", "mu_q2.5",
                              "mu_q97.5"]])
    if nothing:
        say(f"\nno sample with several usable rows (usable rows in brackets; evsynth fit analyses these): "
            f"{', '.join(nothing)}")
    if not fitted:
        say("no outcome has a sample with several usable rows: nothing for a multilevel model")
        return EXIT_NOTHING_ANALYSED
    say("\nThe intervals carry the between- and within-sample heterogeneity, not bias in the studies; risk of "
        "bias and certainty are assessed by evsynth fit / report.")
    return EXIT_OK
