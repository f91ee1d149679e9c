"""`evsynth sensitivity models/<spec>.toml`: run a spec file's sweep, resumably, and save the
tidy table (CSV), the raw records (JSON lines) and a plot of the pooled effect per scenario."""

from __future__ import annotations

import sys

from typing import TYPE_CHECKING

from .common import count_option, prepare_out, say
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
    parser.add_argument("--design", choices=("all", "controlled", "randomised"), default=None,
                        help="only controlled rows (one-group pre/post left out) or only randomised ones (randomised "
                             "= yes); default: the spec's [effects] design, else all")
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

    from ..methods.spec import load_spec, spec_error

    spec = load_spec(args.spec)
    options = dict(spec.sensitivity)
    options |= {k: getattr(args, k) for k in ("draws", "tune", "chains", "engine", "max_scenarios", "design")
                if getattr(args, k) is not None}
    try:
        grid = Sensitivity(**options)
    except NothingToAnalyse as exc:
        say(f"{exc}", file=sys.stderr)
        return EXIT_NOTHING_ANALYSED
    except ValueError as exc:  # named by spec file, section and key
        raise spec_error(spec, exc) from None
    for text in grid.rule_warnings:
        say(f"warning: {text}", file=sys.stderr)
    if grid.design != "all":  # say what the design restriction leaves out of this outcome
        from ..effects.table import compute_effects
        from ..methods.designs import restrict_design

        effects = compute_effects(grid.studies, measure=grid.measure, p_bound=grid.p_bound)
        one = effects[effects["outcome"] == grid.outcome]
        say(f"{grid.outcome}: {restrict_design(one, grid.design).attrs['design_note']}")
    out = prepare_out(args.out)
    records, csv, png = out / f"{spec.name}.jsonl", out / f"{spec.name}.csv", out / f"{spec.name}_pooled.png"
    n_jobs = args.n_jobs or spec.n_jobs
    scenarios = grid.scenarios()
    jobs = "one after another" if grid.engine == "exact" else f"{n_jobs} job(s)"
    say(f"{spec.title}: {len(scenarios)} scenarios on {grid.outcome!r} ({grid.model}, {grid.measure}), "
          f"{grid.engine} engine, {jobs}; results appended to {records}")
    try:
        table = grid.run(n_jobs=n_jobs, out=records, progress=not args.quiet, reuse=not args.rebuild,
                         workers=args.workers)
    except KeyboardInterrupt:
        if args.quiet:  # otherwise the sweep has said so already
            say(f"interrupted: finished scenarios are in {records}; run the same command again to resume",
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
        say(f"no plot: {exc}")
    say("saved " + ", ".join(saved))
    return _exit_status(table, args.accept_failed)


def _print_pooled(table: pd.DataFrame) -> None:
    import pandas as pd

    pooled = table[table["parameter"] == "pooled (mu)"]
    say("\n== pooled (mu) per scenario: studies, posterior median [95% interval], P(> 0), diagnostics "
        "(exact: no sampler, nothing to diagnose) ==")
    # the scenario's full name on its own line: names run to ~100 characters and differ at their ends
    for row, verdict in zip(pooled.itertuples(index=False), _verdicts(pooled)):
        say(row.scenario)
        say(f"    k {row.n_studies}: {row.q50:.3f} [{row[pooled.columns.get_loc('q2.5')]:.3f}, "
            f"{row[pooled.columns.get_loc('q97.5')]:.3f}], P(>0) {row.p_gt_0:.3f}, {verdict}")


def _verdicts(rows: pd.DataFrame):
    """A row's diagnostics verdict as shown: an exact-engine scenario was not sampled, so it has no
    diagnostics to pass ("exact"), whatever its record's verdict field says."""
    if "engine" not in rows:
        return rows["verdict"]
    return rows["verdict"].where(~((rows["engine"] == "exact") & (rows["verdict"] == "PASS")), "exact")


def _exit_status(table: pd.DataFrame, accept_failed: bool) -> int:
    from ..methods.sensitivity import ERROR, NOT_FITTED

    per_scenario = table.drop_duplicates("scenario")
    counts = _verdicts(per_scenario).value_counts()
    exact = f"{counts.get('exact', 0)} exact (no MCMC, nothing to diagnose), " if counts.get("exact") else ""
    say(f"\n{len(per_scenario)} scenarios: {exact}{counts.get('PASS', 0)} PASS, {counts.get('FAIL', 0)} FAIL "
        f"(diagnostics), {counts.get(ERROR, 0)} error, {counts.get(NOT_FITTED, 0)} not fitted")
    not_fitted = per_scenario[per_scenario["verdict"] == NOT_FITTED]
    diagnostics = per_scenario[per_scenario["verdict"].isin(["FAIL", ERROR])]
    marked = per_scenario[per_scenario["warnings"] != ""]
    if not marked.empty:
        say(f"\n{len(marked)} scenario(s) marked:", file=sys.stderr)
        for _, row in marked.iterrows():
            say(f"  {row['scenario']}: {row['warnings']}", file=sys.stderr)
    if len(not_fitted) == len(per_scenario):
        say(f"\nno scenario could be fitted ({per_scenario['problems'].iloc[0]}): nothing analysed", file=sys.stderr)
        return EXIT_NOTHING_ANALYSED
    if not not_fitted.empty:
        say(f"\n{len(not_fitted)} scenario(s) not fitted (nothing sampled, so no diagnostic failed):",
              file=sys.stderr)
    for _, row in not_fitted.iterrows():
        say(f"  {row['scenario']}: {row['problems']}", file=sys.stderr)
    if not diagnostics.empty:
        say(f"\nDIAGNOSTICS FAILED (or fit error) in {len(diagnostics)} of {len(per_scenario)} scenarios:",
              file=sys.stderr)
        for _, row in diagnostics.iterrows():
            say(f"  {row['scenario']}: {row['problems']}", file=sys.stderr)
        if accept_failed:
            say("(accepted by --accept-failed)", file=sys.stderr)
        else:
            return EXIT_DIAGNOSTICS
    return 0
