"""Command line: `evsynth fit [studies.csv]` runs the main job and saves results to a folder."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .cli_common import EXIT_BAD_INPUT, EXIT_DIAGNOSTICS, EXIT_NOTHING_ANALYSED  # noqa: F401  (the CLI's API)
from .cli_common import (add_input_arguments, add_sampling_arguments, exit_status, load_effects, prepare_out,
                         progress, report_replaced, sampling_options, snapshot)
from .vocabulary import MODELS

if TYPE_CHECKING:  # parsing arguments (and --help) loads none of these; each command imports what it runs
    import pandas as pd

# The terminal's effect table (the full one is output/effects.csv): computable = has an effect size,
# in_model = entered one of the models fitted below.
EFFECT_VIEW = ["study_id", "comparison", "outcome", "design", "yi", "sei", "se_route", "rob", "in_model"]
WIDTH = 100  # terminal tables fit this many columns (wrapped by pandas; long text abbreviated)


def _add_fit_arguments(p: argparse.ArgumentParser) -> None:
    add_input_arguments(p)
    p.add_argument("--model", default="auto", choices=["auto"] + sorted(set(MODELS) - {"network"}),
                   help="auto = random_effects for one technique, by_technique for several (the output says "
                        "which ran and why); the network model has its own command, evsynth network "
                        "(default: %(default)s)")
    add_sampling_arguments(p)


def _mods_option(text: str):
    from .moderators import ModeratorError, parse_mods

    try:
        return parse_mods(text)
    except ModeratorError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _abbreviate(text, width: int):
    text = str(text)
    return text if len(text) <= width else text[: width - 1] + "~"


def fit_width(frame: pd.DataFrame, width: int = WIDTH, digits: int = 3, index: bool = True) -> str:
    """The frame as text in at most `width` columns: the longest text columns are abbreviated
    (ending in "~") until it fits; if even 8 characters per text column are too wide, pandas wraps
    the columns into blocks. The CSVs in the output folder hold the full table."""
    import pandas as pd

    frame = frame.copy()
    text_columns = [c for c in frame.columns if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c])]
    float_format = f"{{:.{digits}f}}".format

    def render(f):
        return f.to_string(index=index, float_format=float_format, na_rep="")

    out = render(frame)
    while max(map(len, out.splitlines()), default=0) > width:
        lengths = {c: frame[c].astype(str).str.len().max() for c in text_columns}
        widest = max(lengths, key=lengths.get, default=None)
        if widest is None or lengths[widest] <= 8:
            with pd.option_context("display.width", width, "display.max_columns", None, "display.max_rows", None,
                                   "display.float_format", float_format):
                return repr(frame)
        frame[widest] = frame[widest].map(lambda v, n=int(lengths[widest]) - 1: _abbreviate(v, n))
        out = render(frame)
    return out


def _print_frame(title: str, frame: pd.DataFrame, digits: int = 3, index: bool = True) -> None:
    print("\n" + textwrap.fill(f"== {title} ==", WIDTH, subsequent_indent="   "))
    print(fit_width(frame, digits=digits, index=index))


def effect_view(effects: pd.DataFrame, entered: set) -> pd.DataFrame:
    """The terminal's effect table: the rows with an effect size (computable), and whether each
    entered one of the models fitted (in_model); the rows without one are listed with their reason."""
    import pandas as pd

    computable = effects[effects["used"]]
    if computable.empty:
        return pd.DataFrame(columns=EFFECT_VIEW)
    view = computable.assign(
        comparison=computable["technique"] + " vs " + computable["comparator"],
        se_route=computable["se_route"].where(~computable["censored"].astype(bool), "censored"),
        in_model=["yes" if (s, o) in entered else "no" for s, o in zip(computable["study_id"], computable["outcome"])])
    columns = [c for c in EFFECT_VIEW if not (c == "rob" and view["rob"].isna().all())]
    return view[columns]


def say(text, file=None) -> None:
    """Print a message with every line wrapped at WIDTH columns (continuations indented)."""
    for line in str(text).splitlines() or [""]:
        print(textwrap.fill(line, WIDTH, subsequent_indent="    ", break_on_hyphens=False) if line else "", file=file)


def print_not_in_model(excluded: pd.DataFrame) -> None:
    """One wrapped line per row that entered no model: study (outcome): reason."""
    print(f"\n== rows in no model, and why ({len(excluded)}; effects.csv has them all) ==")
    for row in excluded.itertuples():
        print(textwrap.fill(f"{row.study_id} ({row.outcome}): {row.why_not}", WIDTH, subsequent_indent="    "))


def _print_design(label: str, table: pd.DataFrame, priors: dict) -> None:
    """Controlled and pre/post rows side by side: the design as a moderator (exact engine)."""
    from .designs import design_moderator

    try:
        design = design_moderator(table, {k: v for k, v in priors.items() if k in ("mu", "tau", "beta")})
    except ValueError as exc:
        say(f"\n{label}: design (controlled vs pre/post) not contrasted: {exc}")
        return
    _print_frame(f"{label}: design as moderator (random-effects meta-regression on a pre/post indicator, "
                 "exact engine; 95% intervals)", design)
    say("A pre/post change also contains time trends and regression to the mean; only controlled rows "
        "estimate what the technique adds.")


def _print_regression(label: str, table: pd.DataFrame, mods, priors: dict, stem: Path) -> None:
    """--mods: the Bayesian meta-regression (exact engine) with the REML + Knapp-Hartung fit beside it,
    saved as <stem>_metareg.csv; with one continuous moderator also the bubble plot <stem>_regplot.png."""
    import pandas as pd

    from .moderators import ModeratorError
    from .regression import beta_draws, fit_meta_regression

    try:
        result = fit_meta_regression(table, mods, {k: v for k, v in priors.items() if k in ("mu", "tau", "beta")})
    except ModeratorError:
        raise  # bad input (a missing or empty moderator): exit status 2
    except ValueError as exc:
        print(f"\n{label}: meta-regression on {mods} not fitted: {exc}")
        return
    freq = result.frequentist
    _print_frame(f"{label}: Bayesian meta-regression, mods {result.mods} (exact engine; 95% CrI, P(beta > 0))",
                 result.coefficients, digits=4)
    _print_frame(f"{label}: residual heterogeneity (R² analogue: {result.R2:.1f}% of tau² explained, "
                 "posterior means)", result.heterogeneity.drop(columns="P(>0)"))
    _print_frame(f"{label}: REML meta-regression, Knapp-Hartung t on {freq.df:g} df (tau² {freq.tau2:.4f}, "
                 f"I² {freq.I2:.1f}%, R² {freq.R2:.1f}%, QM {freq.QM:.3f}, p {freq.QM_p:.4g})", freq.coefficients,
                 digits=4)
    pd.concat({"bayes": result.coefficients, "reml_kh": freq.coefficients}, axis=1).to_csv(f"{stem}_metareg.csv")
    saved = [f"{stem}_metareg.csv"]
    terms = list(result.coefficients.index)
    if len(terms) == 2 and terms[1] in table.columns and pd.api.types.is_numeric_dtype(table[terms[1]]):
        from .plots import regplot

        fig = regplot(result.table, terms[1], fit=freq, beta_draws=beta_draws(result))
        fig.savefig(f"{stem}_regplot.png", dpi=120)
        saved.append(f"{stem}_regplot.png")
    print(f"saved {', '.join(saved)}")


def cmd_fit(args) -> int:
    from .analysis import entered_rows, group_by_outcome, rows_not_in_model, run_analysis, slug, split_by_outcome
    from .conflict import prior_data_conflict
    from .results import save_result
    from .techniques import coverage_lines, technique_coverage

    if args.model == "meta_regression" and args.mods is None:
        raise ValueError("--model meta_regression needs moderators: --mods '~ column' or --mods column1,column2")
    out = prepare_out(args.out)
    _, effects = load_effects(args)
    before = snapshot(out)
    groups = group_by_outcome(effects, args.pool_outcomes)
    runnable, skipped = split_by_outcome(effects, args.pool_outcomes)
    entered = entered_rows(runnable.values())
    print(f"\n{len(effects)} rows: {int(effects['used'].sum())} with an effect size ({args.measure}, "
          f"r_prepost={args.r_prepost}, p_bound={effects.attrs['p_bound']}), {len(entered)} of them in a model")
    _print_frame("effect sizes (in_model: entered a model fitted below)", effect_view(effects, entered), index=False)
    excluded = rows_not_in_model(effects, skipped, entered)
    if not excluded.empty:
        print_not_in_model(excluded)
    flagged = effects[effects["warnings"] != ""]
    if not flagged.empty:
        print("\n== rows whose printed numbers contradict each other (kept as computed; check the source) ==")
        for _, row in flagged.iterrows():
            print(f"  {row['study_id']} ({row['outcome']}): {row['warnings']}")
    # `used` there means computable (has an effect size); `in_model`: entered a model fitted below
    effects.assign(in_model=[(s, o) in entered for s, o in zip(effects["study_id"], effects["outcome"])]).to_csv(
        out / "effects.csv", index=False)
    for label, table in groups.items():
        if table.attrs.get("direction_note"):
            print(f"\n{label}: {table.attrs['direction_note']}")
    for label, reason in skipped.items():
        techniques = technique_coverage(groups[label], not_analysed=reason)["technique"]
        print("\n" + textwrap.fill(f"outcome {label!r} not analysed: {reason} (techniques: {', '.join(techniques)})",
                                  WIDTH, subsequent_indent="    "))
    failed = []
    for label, table in runnable.items():
        doing = ("exact posterior (quadrature)" if args.engine == "exact" else
                 f"compiling and sampling ({args.chains} chains x {args.draws} draws)")
        with progress(f"{label}: {doing}", enabled=not args.quiet):
            result = run_analysis(label, table, model=args.model, priors=dict(args.prior), mods=args.mods,
                                  **sampling_options(args))
        print()
        for note in result.notes:
            print(textwrap.fill(f"{label}: {note}", WIDTH, subsequent_indent="    "))
        _print_frame(f"{label}: {result.idata.attrs.get('model', args.model)} model, posterior "
                     "(95% equal-tailed intervals)", result.summary)
        say(result.diagnostics)
        if result.agreement is not None:  # the PyMC fit against the exact posterior of the same model
            say(result.idata.attrs["exact_check"], file=sys.stdout if result.agreement.attrs["ok"] else sys.stderr)
        say(prior_data_conflict(result.idata, table))
        print(f"\n== {label}: every technique, with its estimate (median [95% CrI]) or why there is none ==")
        for line in coverage_lines(technique_coverage(table, result.summary)):
            print(textwrap.fill(line, WIDTH, subsequent_indent="    "))
        _print_design(label, table, dict(args.prior))
        stem = out / slug(label)
        save_result(result.idata, f"{stem}.nc")
        result.summary.to_csv(f"{stem}_summary.csv")
        from .plots import forest  # matplotlib only when a figure is drawn

        forest(result.idata, table).savefig(f"{stem}_forest.png", dpi=120)
        say(f"saved {stem}.nc, {stem}_summary.csv, {stem}_forest.png")
        if args.mods is not None:
            _print_regression(label, table, args.mods, dict(args.prior), stem)
        if not result.diagnostics.ok:
            failed.append(label)
    report_replaced(out, before)
    if not runnable:
        print("\nno outcome has enough usable studies to fit a model: nothing analysed", file=sys.stderr)
        return EXIT_NOTHING_ANALYSED
    return exit_status(failed, args.accept_failed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evsynth", description="Bayesian evidence synthesis from study summaries")
    parser.add_argument("--version", action="version", version=f"evsynth {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    fit_parser = commands.add_parser("fit", help="effect sizes + hierarchical model + diagnostics + forest plot")
    _add_fit_arguments(fit_parser)
    fit_parser.add_argument("--mods", type=_mods_option, default=None,
                            help="meta-regression on study-table columns: a formula ('~ ablat + C(alloc)') or "
                                 "comma-separated columns ('ablat,year'); fitted per outcome beside the model")
    fit_parser.set_defaults(handler=cmd_fit)
    report = commands.add_parser("report", help="run the analysis and write a self-contained HTML report")
    _add_fit_arguments(report)  # `evsynth report`: the options of fit, HTML output (evsynth.report)
    report.add_argument("--threshold", type=float, default=None,
                        help="also report P(effect > THRESHOLD), e.g. 0.2 (a small effect on the SMD scale)")
    report.set_defaults(handler=_cmd_report, out="report")
    from .sensitivity_cli import register as register_sensitivity  # `evsynth sensitivity <spec.toml>`

    register_sensitivity(commands)
    from .network_cli import register as register_network  # `evsynth network`: head-to-head rows too

    register_network(commands)
    return parser


def _cmd_report(args) -> int:
    from .report import cmd_report

    return cmd_report(args)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .studies import StudyDataError  # after parsing: --help and usage errors load nothing

    try:
        return args.handler(args)
    except (StudyDataError, ValueError, OSError) as exc:
        print(f"evsynth: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def run() -> None:
    """The `evsynth` command: main(), then exit. The objects the run made are frozen first, so the
    interpreter's final garbage collection does not walk everything PyMC, numba and ArviZ loaded
    (1 s of a 6 s `evsynth fit`); atexit handlers still run. main() stays safe to call from Python."""
    import gc

    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
