"""The `evsynth` command: the argument parser and the dispatch to one module per command (fit,
report, sensitivity, network). Parsing (and --help) imports none of pandas, PyMC, ArviZ or matplotlib."""

from __future__ import annotations

import argparse
import os
import sys

from .. import __version__
from .common import EXIT_BAD_INPUT, say


def build_parser() -> argparse.ArgumentParser:
    # No abbreviated options: argparse would otherwise read `--out` as `--outcome` on a command
    # without --out (multilevel), silently turning a folder into an outcome filter.
    parser = argparse.ArgumentParser(prog="evsynth", description="Bayesian evidence synthesis from study summaries",
                                     allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"evsynth {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    from . import bias, classical, fit, multilevel, network, report, sensitivity

    for command in (fit, report, sensitivity, network, multilevel, bias, classical):
        command.register(commands)
    for command_parser in commands.choices.values():
        command_parser.allow_abbrev = False
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from ..data.studies import StudyDataError  # after parsing: --help and usage errors load nothing

    out = getattr(args, "out", None)
    fresh = out is not None and not os.path.lexists(out)  # a refused run leaves no empty folder behind
    try:
        return args.handler(args)
    except (StudyDataError, ValueError, OSError) as exc:
        error(str(exc))
    except MemoryError:  # a last line: the sizes the engines know of are refused before they start
        error("out of memory: the input is too large for this machine at these settings "
              "(fewer draws, --draws/--chains, or a smaller table)")
    if fresh and os.path.isdir(out) and not os.listdir(out):
        os.rmdir(out)
    return EXIT_BAD_INPUT


def error(message: str) -> None:
    """`evsynth: error: message` on stderr: wrapped at 100 columns on a terminal, where a person
    reads it; one line when stderr is a file or a pipe, where a log or a script greps it."""
    text = f"evsynth: error: {message}"
    if sys.stderr.isatty():
        say(text, file=sys.stderr)
    else:
        print(text, file=sys.stderr)


# No command uses dask (sweeps run in local processes; a dask Client is for the Python API,
# `Sensitivity.run(executor=)`), yet with the `dask` extra installed xarray imports dask and
# dask.array on the first Variable it makes (~0.45 s) and dask.distributed on every netCDF write
# (~0.35 s). The command's own process hides them (Python's documented None entry in sys.modules),
# so xarray sees no dask; main() called from Python leaves them alone (issue 26). Likewise numba
# imports coverage when it is installed (mutmut, the dev extra, brings it), to trace jitted code
# for a coverage run (~0.05 s of a sampled fit); a run under coverage has imported it before, and
# keeps it.
UNUSED_BY_THE_COMMAND = ("dask", "distributed", "coverage")


def _freeze_survivors(phase: str, info: dict) -> None:
    """gc callback: after a full collection, move its survivors to the permanent generation."""
    import gc

    if phase == "stop" and info["generation"] == 2:
        gc.freeze()


def run() -> None:
    """The `evsynth` command: main(), then exit. The objects the run made are frozen first, so the
    interpreter's final garbage collection does not walk everything PyMC, numba and ArviZ loaded
    (1 s of a 6 s `evsynth fit`); atexit handlers still run. During the run, the survivors of each
    full collection are frozen too (mostly the modules imported so far), so the next full
    collection walks only what came after: a warm `evsynth fit` made five full collections over
    PyMC's, numba's and pandas' objects, ~0.4 s of CPU (issue 26). Frozen objects are still freed
    by reference counting; only a reference cycle alive at a freeze outlives its use, until the
    process exits. main() stays safe to call from Python (its collector untouched)."""
    import gc

    for name in UNUSED_BY_THE_COMMAND:
        sys.modules.setdefault(name, None)
    gc.callbacks.append(_freeze_survivors)
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
