"""What the subcommands share: their options, loading the effect table, and the exit status."""

from __future__ import annotations

import argparse
import difflib
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from ..methods.sweep import spinner as progress  # noqa: F401  (a spinner around compiling and sampling)
from ..data.vocabulary import DEFAULT_R_PREPOST, ENGINES, MEASURES, P_BOUND_MODES  # noqa: F401

if TYPE_CHECKING:  # the parser needs none of these; the commands import them when they run
    import pandas as pd

# Exit status of every command: 0 ok; 2 bad input (the message names the study or spec key and the
# field); 3 a fit failed its diagnostics (unless --accept-failed); 4 nothing was analysed (no outcome,
# network or scenario had enough usable studies, e.g. a header-only CSV).
EXIT_OK, EXIT_BAD_INPUT, EXIT_DIAGNOSTICS, EXIT_NOTHING_ANALYSED = 0, 2, 3, 4


class InputError(ValueError):
    """A command-line input that cannot be used (e.g. --out names a file); exit status 2."""


def prepare_out(path) -> Path:
    """The output folder, created if needed; refused when it is a file."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: is a file; expected a folder for the results")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot create the folder ({exc.strerror})") from None
    return out


def snapshot(out: Path) -> dict[str, int]:
    """Files already in the output folder, with their modification times."""
    return {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()}


def report_replaced(out: Path, before: dict[str, int]) -> None:
    """Say which earlier files this run overwrote and which it left (they are not from this run)."""
    now = snapshot(out)
    replaced = sorted(n for n in before if n in now and now[n] != before[n])
    stale = sorted(n for n in before if n in now and now[n] == before[n])
    if replaced:
        say(f"replaced in {out}: {', '.join(replaced)}")
    if stale:
        say(f"NOTE: {len(stale)} file(s) in {out} are from an earlier run, not this one: {', '.join(stale)}")


def count_option(minimum: int):
    """argparse type: an integer of at least `minimum` (draws >= 1, tune >= 0, ...)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}")
        return value
    return parse


def rho_option(text: str) -> float:
    """argparse type: a correlation strictly between -1 and 1 (--rho, --rho-grid)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not -1 < value < 1:
        raise argparse.ArgumentTypeError(f"{value:g}: a correlation must lie strictly between -1 and 1")
    return value


def prior_option(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--prior {text!r}: expected NAME=PRIOR, e.g. tau=halfnormal(0.5)")
    name, value = name.strip(), value.strip()
    from ..model.description import STANDARD_PRIORS  # only when a prior is given: the parser stays light
    from ..model.priors import PriorError, parse_prior

    if name not in STANDARD_PRIORS:
        close = difflib.get_close_matches(name, list(STANDARD_PRIORS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise argparse.ArgumentTypeError(f"--prior {text!r}: unknown parameter {name!r}{hint} "
                                         f"(known: {', '.join(STANDARD_PRIORS)})")
    try:
        parse_prior(value, name)
    except PriorError as exc:
        raise argparse.ArgumentTypeError(f"--prior {text!r}: {exc}") from None
    return name, value


def add_input_arguments(p: argparse.ArgumentParser, prior_help: str | None = None) -> None:
    """The study table, the effect measure and its assumptions, outcome selection, priors."""
    p.add_argument("studies", nargs="?", default=None,
                   help="study CSV (default: studies/massage.csv, or the copy bundled with evsynth when there is "
                        "no ./studies/massage.csv)")
    p.add_argument("--measure", default="SMD", choices=MEASURES, help="effect measure (default: %(default)s)")
    p.add_argument("--r-prepost", type=float, default=DEFAULT_R_PREPOST,
                   help="assumed pre/post correlation where a study gives none (default: %(default)s)")
    p.add_argument("--p-bound", default="auto", choices=P_BOUND_MODES,
                   help="p-values printed only as bounds: censor, treat bound as p (conservative), or exclude; "
                        "auto = censor for SMD/SMCC, conservative for MD/ROM (default: %(default)s)")
    p.add_argument("--extra-column", action="append", default=[], metavar="NAME",
                   help="a column of your own in the study table (a moderator, notes), kept as text; repeatable "
                        "(--mods declares the columns it reads)")
    p.add_argument("--binary-to-smd", action="store_true",
                   help="with --measure SMD, convert binary rows (2x2 counts, an OR) by the logit conversion, "
                        "SMD = ln(OR) sqrt(3)/pi (Chinn 2000); without it they enter no SMD model")
    p.add_argument("--outcome", action="append", help="analyse only this outcome (repeatable)")
    p.add_argument("--pool-outcomes", action="store_true",
                   help="one SMD analysis across all outcomes (rows whose outcome is better when lower, "
                        "direction = lower, are sign-flipped, and the output says which)")
    p.add_argument("--design", default="all", choices=("all", "controlled", "randomised"),
                   help="analyse only controlled rows (one-group pre/post rows left out) or only randomised "
                        "ones (randomised = yes in the study table); the output says how many rows were left "
                        "out (default: %(default)s)")
    p.add_argument("--pool-change-scores", action="store_true",
                   help="let an SMD analysis pool two-group rows whose means are change scores (means = change) "
                        "with final-value rows; by default they are kept apart (MD always takes them)")
    p.add_argument("--group-combinations", action="store_true",
                   help="analyse a combination whose components include exactly one of oxytocin, neck, marmet "
                        "as that technique (e.g. 'breast care + oxytocin' as oxytocin); default: every label is "
                        "its own technique")
    p.add_argument("--prior", action="append", type=prior_option, default=[],
                   help=prior_help or "override a prior, e.g. --prior tau=halfnormal(1) --prior mu='normal(0, 2)'")


def add_sampling_arguments(p: argparse.ArgumentParser, out: str = "output") -> None:
    p.add_argument("--draws", type=count_option(1), default=2000, help="posterior draws per chain (default: %(default)s)")
    p.add_argument("--tune", type=count_option(0), default=1000, help="tuning steps per chain (default: %(default)s)")
    p.add_argument("--chains", type=count_option(1), default=4, help="MCMC chains (default: %(default)s)")
    p.add_argument("--seed", type=count_option(0), default=2026, help="random seed: same inputs and seed, same draws "
                                                          "(default: %(default)s)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress indicator (it is shown only on a terminal anyway)")
    p.add_argument("--engine", default="auto", choices=ENGINES,
                   help="exact: the exact engine alone (quadrature over the variance components, no MCMC); pymc: "
                        "sample the PyMC model; auto: sample it and check it against the exact posterior in MCSE "
                        "units where the model is Gaussian (default: %(default)s)")
    p.add_argument("--sampler", default="auto", choices=("auto", "pymc", "nutpie"),
                   help="auto = nutpie when installed, else PyMC's NUTS (default: %(default)s)")
    p.add_argument("--out", default=out, help="output folder (default: %(default)s)")
    p.add_argument("--accept-failed", action="store_true",
                   help="exit 0 even when a fit fails its diagnostics (the failure is still reported)")


def sampling_options(args) -> dict:
    return dict(draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed, sampler=args.sampler,
                engine=args.engine)


def load_effects(args) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(studies, effects restricted to --outcome) from the parsed input options."""
    from ..methods.analysis import select_outcomes
    from ..effects.table import compute_effects
    from ..data.studies import EXTRA_COLUMNS_PYTHON, StudyDataError, load_studies
    from ..effects.techniques import group_combinations

    if args.studies is None:  # no path: ./studies/massage.csv, else the bundled copy (evsynth.data.bundle)
        from ..data.bundle import default_studies

        args.studies = str(default_studies())
    mods = getattr(args, "mods", None)
    extra = list(getattr(args, "extra_column", None) or [])
    columns = []
    if mods is not None:  # moderator columns are the user's own: declare them to the strict loader
        from ..model.moderators import moderator_columns
        from ..data.studies import StudyRow

        columns = moderator_columns(mods)
        extra += [c for c in columns if c not in StudyRow.model_fields and c not in extra]
    try:
        studies = load_studies(args.studies, extra_columns=extra)
    except StudyDataError as exc:  # on the command line a column is declared by a flag, not an argument
        text = str(exc).replace(EXTRA_COLUMNS_PYTHON, "with --extra-column NAME (repeatable)")
        if columns:
            text += (f"\n  (--mods reads the column(s) {', '.join(map(repr, columns))}; declare any other column "
                     "of your own with --extra-column NAME)")
        raise StudyDataError(text) from None
    effects = compute_effects(studies, measure=args.measure, r_prepost=args.r_prepost, p_bound=args.p_bound,
                              binary_to_smd=getattr(args, "binary_to_smd", False),
                              pool_change_scores=getattr(args, "pool_change_scores", False))
    if mods is not None:
        from ..model.moderators import with_study_columns

        missing = [c for c in moderator_columns(mods) if c not in studies.columns]
        if missing:
            raise ValueError(f"--mods: column(s) {', '.join(map(repr, missing))} not in the study table {args.studies}")
        effects = with_study_columns(effects, studies)
    if getattr(args, "group_combinations", False):
        effects = group_combinations(effects)
    effects = _designs_and_samples(effects, args)
    return studies, select_outcomes(effects, args.outcome)


def _designs_and_samples(effects: pd.DataFrame, args) -> pd.DataFrame:
    """--design (controlled or randomised rows only) and one row per sample of participants, each
    said in one line when it leaves rows out."""
    from ..methods.analysis import one_row_per_sample
    from ..methods.designs import restrict_design

    effects = restrict_design(effects, getattr(args, "design", "all") or "all")
    if effects.attrs.get("design", "all") != "all":
        say(effects.attrs["design_note"])
    if getattr(args, "keep_samples", False):  # a nested model (multilevel, fit --random) models them instead
        from ..methods.analysis import with_samples

        return with_samples(effects)
    effects = one_row_per_sample(effects, by_outcome=not getattr(args, "pool_outcomes", False))
    if effects.attrs.get("sample_note"):
        say(effects.attrs["sample_note"] + " (--random '~ 1 | sample/study_id' keeps them and fits a nested model)")
    return effects


def exit_status(failed: list[str], accept_failed: bool, where: str = "") -> int:
    """Loud on stderr when any fit failed its diagnostics; non-zero unless the user accepts it."""
    if not failed:
        return EXIT_OK
    say(f"\nDIAGNOSTICS FAILED for: {', '.join(failed)}{where}"
          + (" (accepted by --accept-failed)" if accept_failed else ""), file=sys.stderr)
    return 0 if accept_failed else EXIT_DIAGNOSTICS


WIDTH = 100  # terminal tables fit this many columns (wrapped by pandas; long text abbreviated)


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
    while (excess := max(map(len, out.splitlines()), default=0) - width) > 0:
        lengths = {c: frame[c].astype(str).str.len().max() for c in text_columns}
        widest = max(lengths, key=lengths.get, default=None)
        if widest is None or lengths[widest] <= 8:
            with pd.option_context("display.width", width, "display.max_columns", None, "display.max_rows", None,
                                   "display.float_format", float_format):
                return repr(frame)
        # cutting one character at a time would cut this column alone until the line fits or it is
        # no longer the widest: as many characters at once (one render per step, not per character)
        second = max([n for c, n in lengths.items() if c != widest], default=0)
        cut = int(max(1, min(excess, lengths[widest] - second, lengths[widest] - 8)))
        frame[widest] = frame[widest].map(lambda v, n=int(lengths[widest]) - cut: _abbreviate(v, n))
        out = render(frame)
    return out


def print_frame(title: str, frame: pd.DataFrame, digits: int = 3, index: bool = True) -> None:
    print("\n" + fill(f"== {title} ==", subsequent_indent="   "))
    print(fit_width(frame, digits=digits, index=index))


def fill(text: str, width: int = WIDTH, **options) -> str:
    """textwrap.fill that never breaks at a hyphen: an option such as --pool-change-scores stays whole."""
    return textwrap.fill(text, width, break_on_hyphens=False, **options)


def say(text, file=None) -> None:
    """Print a message with every line wrapped at WIDTH columns (continuations indented)."""
    for line in str(text).splitlines() or [""]:
        print(fill(line, subsequent_indent="    ") if line else "", file=file)
