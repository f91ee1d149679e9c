"""`evsynth sensitivity models/<spec>.toml`: run a spec file's sweep, resumably, and save the
tidy table (CSV), the raw records (JSON lines) and a plot of the pooled effect per scenario."""

from __future__ import annotations

import sys

from typing import TYPE_CHECKING

from .common import count_option, prepare_out
from ..data.vocabulary import MAX_SCENARIOS

if TYPE_CHECKING:
    import pandas as pd

EXIT_DIAGNOSTICS, EXIT_NOTHING_ANALYSED = 3, 4  # as `evsynth fit`
EXIT_INTERRUPTED = 130  # the shell's code for Ctrl-C


def register(commands) -> None:
    parser = commands.add_parser(
        "sensitivity", help="sweep priors, pre/post correlation, exclusions and leave-one-out (spec file)",
        description="Runs the grid declared in a TOML spec file (see models/*.toml). Finished scenarios "
                    "are appended to OUT/<spec>.jsonl, so an interrupted run resumes where it stopped. Exit "
                    "status 3 when a fitted scenario fails its diagnostics (unless --accept-failed); "
                    "scenarios that cannot be fitted (too few studies left) are listed but do not change it.")
    parser.add_argument("spec", help="spec file, e.g. models/synthetic_demo_sensitivity.toml")
    parser.add_argument("--n-jobs", type=count_option(1), default=None,
                        help="scenarios run at once (default: the spec's [run] n_jobs, else 1)")
    parser.add_argument("--workers", choices=("threads", "processes"), default=None,
                        help="threads sharing the compiled models (the default) or worker processes "
                             "(each compiles for itself; with --rebuild the default)")
    parser.add_argument("--out", default="output", help="output folder (default: %(default)s)")
    parser.add_argument("--draws", type=count_option(1), help="override the spec's [fit] draws")
    parser.add_argument("--tune", type=count_option(0), help="override the spec's [fit] tune")
    parser.add_argument("--chains", type=count_option(1), help="override the spec's [fit] chains")
    parser.add_argument("--engine", choices=("auto", "exact", "pymc"), default=None,
                        help="exact engine (quadrature, no MCMC), PyMC, or auto: exact wherever the model allows "
                             "(default: the spec's [model] engine, else auto)")
    parser.add_argument("--max-scenarios", type=count_option(1), default=None,
                        help="refuse a grid larger than this (default: the spec's [run] max_scenarios, else "
                             f"{MAX_SCENARIOS:,})")
    parser.add_argument("--rebuild", action="store_true",
                        help="build and compile a model per scenario instead of reusing one per structure (slow)")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    parser.add_argument("--accept-failed", action="store_true",
                        help="exit 0 even when scenarios fail their diagnostics (they are still reported)")
    parser.set_defaults(handler=cmd_sensitivity)


def cmd_sensitivity(args) -> int:
    from ..methods.sensitivity import NothingToAnalyse, Sensitivity  # its machinery loads when a sweep runs, not with the CLI

    from ..methods.spec import load_spec

    spec = load_spec(args.spec)
    options = dict(spec.sensitivity)
    options |= {k: getattr(args, k) for k in ("draws", "tune", "chains", "engine", "max_scenarios")
                if getattr(args, k) is not None}
    try:
        grid = Sensitivity(**options)
    except NothingToAnalyse as exc:
        print(f"{exc}", file=sys.stderr)
        return EXIT_NOTHING_ANALYSED
    for text in grid.rule_warnings:
        print(f"warning: {text}", file=sys.stderr)
    out = prepare_out(args.out)
    records, csv, png = out / f"{spec.name}.jsonl", out / f"{spec.name}.csv", out / f"{spec.name}_pooled.png"
    n_jobs = args.n_jobs or spec.n_jobs
    scenarios = grid.scenarios()
    jobs = "one after another" if grid.engine == "exact" else f"{n_jobs} job(s)"
    print(f"{spec.title}: {len(scenarios)} scenarios on {grid.outcome!r} ({grid.model}, {grid.measure}), "
          f"{grid.engine} engine, {jobs}; results appended to {records}")
    try:
        table = grid.run(n_jobs=n_jobs, out=records, progress=not args.quiet, reuse=not args.rebuild,
                         workers=args.workers)
    except KeyboardInterrupt:
        if args.quiet:  # otherwise the sweep has said so already
            print(f"interrupted: finished scenarios are in {records}; run the same command again to resume",
                  file=sys.stderr)
        return EXIT_INTERRUPTED
    table.to_csv(csv, index=False)
    _print_pooled(table)
    saved = [str(records), str(csv)]
    try:
        from ..present.plots import sensitivity_plot

        sensitivity_plot(grid.table).savefig(png, dpi=110, bbox_inches="tight")
        saved.append(str(png))
    except ValueError as exc:  # e.g. nothing could be estimated
        print(f"no plot: {exc}")
    print("saved " + ", ".join(saved))
    return _exit_status(table, args.accept_failed)


def _print_pooled(table: pd.DataFrame) -> None:
    import pandas as pd

    pooled = table[table["parameter"] == "pooled (mu)"]
    view = pooled[["scenario", "n_studies", "q50", "q2.5", "q97.5", "p_gt_0", "verdict"]]
    print("\n== pooled (mu): posterior median, 95% interval, P(> 0), diagnostics ==")
    with pd.option_context("display.width", 200, "display.max_colwidth", 70, "display.max_rows", 500,
                           "display.float_format", "{:.3f}".format):
        print(view.to_string(index=False))


def _exit_status(table: pd.DataFrame, accept_failed: bool) -> int:
    from ..methods.sensitivity import ERROR, NOT_FITTED

    per_scenario = table.drop_duplicates("scenario")
    counts = per_scenario["verdict"].value_counts()
    print(f"\n{len(per_scenario)} scenarios: {counts.get('PASS', 0)} PASS, {counts.get('FAIL', 0)} FAIL "
          f"(diagnostics), {counts.get(ERROR, 0)} error, {counts.get(NOT_FITTED, 0)} not fitted")
    not_fitted = per_scenario[per_scenario["verdict"] == NOT_FITTED]
    diagnostics = per_scenario[per_scenario["verdict"].isin(["FAIL", ERROR])]
    marked = per_scenario[per_scenario["warnings"] != ""]
    if not marked.empty:
        print(f"\n{len(marked)} scenario(s) marked:", file=sys.stderr)
        for _, row in marked.iterrows():
            print(f"  {row['scenario']}: {row['warnings']}", file=sys.stderr)
    if len(not_fitted) == len(per_scenario):
        print(f"\nno scenario could be fitted ({per_scenario['problems'].iloc[0]}): nothing analysed", file=sys.stderr)
        return EXIT_NOTHING_ANALYSED
    if not not_fitted.empty:
        print(f"\n{len(not_fitted)} scenario(s) not fitted (nothing sampled, so no diagnostic failed):",
              file=sys.stderr)
    for _, row in not_fitted.iterrows():
        print(f"  {row['scenario']}: {row['problems']}", file=sys.stderr)
    if not diagnostics.empty:
        print(f"\nDIAGNOSTICS FAILED (or fit error) in {len(diagnostics)} of {len(per_scenario)} scenarios:",
              file=sys.stderr)
        for _, row in diagnostics.iterrows():
            print(f"  {row['scenario']}: {row['problems']}", file=sys.stderr)
        if accept_failed:
            print("(accepted by --accept-failed)", file=sys.stderr)
        else:
            return EXIT_DIAGNOSTICS
    return 0
