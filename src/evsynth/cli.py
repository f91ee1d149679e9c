"""Command line: `evsynth fit [studies.csv]` runs the main job and saves results to a folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from .analysis import run_analysis, slug, split_by_outcome
from .effects import MEASURES, P_BOUND_MODES, DEFAULT_R_PREPOST, compute_effects, not_used
from .builders import BUILDERS
from .studies import StudyDataError, load_studies

EXIT_BAD_INPUT, EXIT_DIAGNOSTICS = 2, 3
EFFECT_VIEW = ["study_id", "technique", "comparator", "outcome", "design", "measure", "yi", "sei", "se_route", "censored",
               "used"]


def _prior_option(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--prior {text!r}: expected NAME=PRIOR, e.g. tau=halfnormal(0.5)")
    return name.strip(), value.strip()


def _add_fit_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("studies", nargs="?", default="studies/massage.csv", help="study CSV (default: %(default)s)")
    p.add_argument("--measure", default="SMD", choices=MEASURES, help="effect measure (default: %(default)s)")
    p.add_argument("--model", default="by_technique", choices=sorted(set(BUILDERS) - {"network"}),
                   help="default: %(default)s (the network model has its own command: evsynth network)")
    p.add_argument("--r-prepost", type=float, default=DEFAULT_R_PREPOST,
                   help="assumed pre/post correlation where a study gives none (default: %(default)s)")
    p.add_argument("--p-bound", default="auto", choices=P_BOUND_MODES,
                   help="p-values printed only as bounds: censor, treat bound as p (conservative), or exclude; "
                        "auto = censor for SMD/SMCC, conservative for MD/ROM (default: %(default)s)")
    p.add_argument("--outcome", action="append", help="analyse only this outcome (repeatable)")
    p.add_argument("--pool-outcomes", action="store_true", help="one SMD analysis across all outcomes")
    p.add_argument("--prior", action="append", type=_prior_option, default=[],
                   help="override a prior, e.g. --prior tau=halfnormal(1) --prior mu='normal(0, 2)'")
    p.add_argument("--draws", type=int, default=2000)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--sampler", default="auto", choices=("auto", "pymc", "nutpie"),
                   help="auto = nutpie when installed, else PyMC's NUTS (default: %(default)s)")
    p.add_argument("--out", default="output", help="output folder (default: %(default)s)")
    p.add_argument("--accept-failed", action="store_true",
                   help="exit 0 even when a fit fails its diagnostics (the failure is still reported)")


def _print_frame(title: str, frame: pd.DataFrame) -> None:
    print(f"\n== {title} ==")
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.max_colwidth", 60,
                           "display.float_format", "{:.3f}".format):
        print(frame.to_string())


def cmd_fit(args) -> int:
    studies = load_studies(args.studies)
    effects = compute_effects(studies, measure=args.measure, r_prepost=args.r_prepost, p_bound=args.p_bound)
    if args.outcome:
        unknown = sorted(set(args.outcome) - set(effects["outcome"]))
        if unknown:
            raise ValueError(f"--outcome {unknown}: not in the study table (outcomes: {sorted(set(effects['outcome']))})")
        effects = _keep_attrs(effects, effects["outcome"].isin(args.outcome))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _print_frame(f"effect sizes ({args.measure}, r_prepost={args.r_prepost}, p_bound={effects.attrs['p_bound']})",
                 effects[EFFECT_VIEW])
    excluded = not_used(effects)
    if not excluded.empty:
        _print_frame("rows not used (and why)", excluded)
    effects.to_csv(out / "effects.csv", index=False)

    runnable, skipped = split_by_outcome(effects, args.pool_outcomes)
    for label, reason in skipped.items():
        print(f"\noutcome {label!r} not analysed: {reason}")
    failed = []
    for label, table in runnable.items():
        result = run_analysis(label, table, model=args.model, priors=dict(args.prior), draws=args.draws,
                              tune=args.tune, chains=args.chains, seed=args.seed, sampler=args.sampler)
        _print_frame(f"{label}: {args.model} model, posterior (95% equal-tailed intervals)", result.summary)
        print(result.diagnostics)
        stem = out / slug(label)
        result.idata.to_netcdf(f"{stem}.nc")
        result.summary.to_csv(f"{stem}_summary.csv")
        from .plots import forest  # matplotlib only when a figure is drawn

        forest(result.idata, table).savefig(f"{stem}_forest.png", dpi=120)
        print(f"saved {stem}.nc, {stem}_summary.csv, {stem}_forest.png")
        if not result.diagnostics.ok:
            failed.append(label)
    if not runnable:
        print("\nno outcome has enough usable studies to fit a model")
    if failed:
        print(f"\nDIAGNOSTICS FAILED for: {', '.join(failed)}"
              + (" (accepted by --accept-failed)" if args.accept_failed else ""), file=sys.stderr)
        return 0 if args.accept_failed else EXIT_DIAGNOSTICS
    return 0


def _keep_attrs(effects: pd.DataFrame, mask) -> pd.DataFrame:
    kept = effects[mask].reset_index(drop=True)
    kept.attrs = dict(effects.attrs)
    return kept


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evsynth", description="Bayesian evidence synthesis from study summaries")
    commands = parser.add_subparsers(dest="command", required=True)
    fit_parser = commands.add_parser("fit", help="effect sizes + hierarchical model + diagnostics + forest plot")
    _add_fit_arguments(fit_parser)
    fit_parser.set_defaults(handler=cmd_fit)
    from .report import register as register_report  # `evsynth report`: same options, HTML output

    register_report(commands, _add_fit_arguments)
    from .sensitivity_cli import register as register_sensitivity  # `evsynth sensitivity <spec.toml>`

    register_sensitivity(commands)
    from .network_cli import register as register_network  # `evsynth network`: head-to-head rows too

    register_network(commands, _prior_option)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (StudyDataError, ValueError, FileNotFoundError) as exc:
        print(f"evsynth: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
