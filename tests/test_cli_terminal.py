"""The terminal: --version, help and defaults for every option, tables in 100 columns, a progress
indicator that is silent off a terminal and under --quiet, and the model chosen from the data."""

import argparse
import io
import re
import sys

import pandas as pd
import pytest

from evsynth import __version__, compute_effects, load_studies
from evsynth.methods.analysis import choose_model, entered_rows, split_by_outcome, variance_warnings
from evsynth.cli.common import WIDTH, fit_width
from evsynth.cli.fit import effect_view
from evsynth.cli.main import build_parser, main
from evsynth.cli.common import progress

from conftest import ROOT


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"evsynth {__version__}"


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


@pytest.mark.parametrize("command", ["fit", "report", "network", "sensitivity"])
def test_every_option_has_help_and_its_default(command):
    sub = dict(_subparsers(build_parser()))[command]
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{command} {action.option_strings or action.dest}: no help text"
        has_default = action.default not in (None, False, [], argparse.SUPPRESS)
        if has_default and action.option_strings:
            assert "default" in action.help, f"{command} {action.option_strings}: default not stated"


def test_quiet_option_on_fit_and_report():
    for command in ("fit", "report"):
        sub = dict(_subparsers(build_parser()))[command]
        assert "--quiet" in sub._option_string_actions


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_spins_on_a_terminal_only():
    tty, pipe = _Tty(), io.StringIO()
    with progress("milk volume: compiling and sampling", stream=tty):
        import time

        time.sleep(0.6)
    text = tty.getvalue()
    assert "milk volume: compiling and sampling" in text and "0:00:0" in text  # rich: message and elapsed time
    assert "\x1b[2K" in text  # the line is erased afterwards (rich's transient display)
    assert all(len(line) <= 100 for line in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).replace("\r", "\n").splitlines())
    with progress("x", stream=pipe):
        pass
    assert pipe.getvalue() == ""
    with progress("x", enabled=False, stream=tty.__class__()) as _:
        pass


def test_tables_fit_100_columns():
    effects = compute_effects(load_studies(ROOT / "studies" / "massage.csv"))
    runnable, _ = split_by_outcome(effects)
    view = effect_view(effects, entered_rows(runnable.values()))
    text = fit_width(view, index=False)
    assert max(len(line) for line in text.splitlines()) <= WIDTH
    assert len(text.splitlines()) == 1 + int(effects["used"].sum())  # one block: not wrapped
    assert "~" in text  # long labels abbreviated
    wide = pd.DataFrame({"a": ["x" * 80], "b": ["y" * 80]})
    assert max(len(line) for line in fit_width(wide).splitlines()) <= WIDTH


def _table(techniques):
    rows = [{"study_id": f"s{k}", "citation": "synthetic", "source_level": "synthetic", "design": "effect",
             "technique": t, "outcome": "o", "yi": 0.1 * k, "sei": 0.2, "measure": "SMD", "synthetic": True}
            for k, t in enumerate(techniques)]
    return compute_effects(load_studies(pd.DataFrame(rows)))


def test_default_model_from_the_data():
    model, why = choose_model(_table(["BCG"] * 13))
    assert model == "random_effects" and why.startswith("one technique (BCG)")
    assert choose_model(_table(["a", "a", "b", "b"]))[0] == "by_technique"
    assert choose_model(_table(["a", "a", "b"]))[0] == "by_technique"  # one technique with two studies
    model, why = choose_model(_table(["a", "b", "c"]))  # one study per technique: one tau
    assert model == "random_effects" and "one study each" in why
    # one study per technique: both taus rest on few groups, and the warnings say so
    warnings = variance_warnings("by_technique", _table(["a", "b", "c", "c"]))
    assert any(w.startswith("tau (between studies of a technique) rests on 1 technique with more") for w in warnings)
    assert not any(w.startswith("tau_technique") for w in warnings)  # three techniques
    assert variance_warnings("by_technique", _table(["a", "a", "a", "b", "b", "b", "c", "c", "c"])) == []
    assert variance_warnings("random_effects", _table(["a", "a"]))[0].startswith("tau (between studies) rests on 2")


def test_sweep_progress_moves_before_the_first_scenario_finishes():
    import time

    from evsynth.methods.sweep import run_tasks

    tty = _Tty()
    import evsynth.methods.sweep as sweep

    real = sweep.sys.stderr
    sweep.sys.stderr = tty
    try:
        run_tasks(lambda task: (time.sleep(1.3), {"key": task})[1], {"a": "a"}, progress=True, label="sensitivity")
    finally:
        sweep.sys.stderr = real
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", tty.getvalue())  # without rich's control sequences
    frames = [f for f in plain.split("\r") if f.strip()]
    assert frames[0].startswith("sensitivity: 0/1 scenarios done") and "first scenario (includes compiling)" in frames[0]
    assert len(frames) >= 3  # the ticker refreshed the line while the scenario ran


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_error_lines_fit_100_columns_on_a_terminal_and_stay_one_line_in_a_pipe(monkeypatch, tmp_path):
    args = ["fit", "--engine", "exact", "--draws", "20000000", "--out", str(tmp_path / "new")]  # refused up front
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert main(args) == 2
    shown = sys.stderr.getvalue()
    assert shown.startswith("evsynth: error: ") and "more than the limit of 50,000,000" in " ".join(shown.split())
    assert len(shown.splitlines()) > 1 and max(len(line) for line in shown.splitlines()) <= 100, shown
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert main(args) == 2
    piped = sys.stderr.getvalue()
    assert len(piped.splitlines()) == 1 and " ".join(piped.split()) == " ".join(shown.split())
    assert not (tmp_path / "new").exists()  # the refused run left no empty results folder behind
    (tmp_path / "old").mkdir()
    assert main(args[:-1] + [str(tmp_path / "old")]) == 2 and (tmp_path / "old").is_dir()  # not the user's own
