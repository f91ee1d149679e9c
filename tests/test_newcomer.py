"""A newcomer's first hour (issue 27): what the terminal says on the README's commands and on the
usual mistakes. Each friction point of the issue has a test here; all run on the exact engine
(no MCMC), so the file takes seconds."""

import io
import re

import numpy as np
import pandas as pd
import pytest

from evsynth.cli.main import main
from evsynth.methods.diagnostics import _digits_beyond
from evsynth.methods.sweep import Progress

from conftest import ROOT

BCG = str(ROOT / "studies" / "bcg.csv")
MASSAGE = str(ROOT / "studies" / "massage.csv")


def _lines_within_100(text: str):
    wide = [line for line in text.splitlines() if len(line) > 100]
    assert not wide, wide


def test_ratio_results_back_transformed_in_the_terminal(tmp_path, capsys):
    # 3: "RR 0.50 [..]" on the ratio scale, beside the log-scale table
    code = main(["fit", BCG, "--measure", "RR", "--engine", "exact", "--mods", "ablat", "--extra-column", "alloc",
                 "--draws", "500", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    log_table = re.search(r"intercept \(mu\)\s+(\S+)\s+\S+\s+(\S+)\s+(\S+)\s+(\S+)", out) or \
        re.search(r"pooled \(mu\)\s+(\S+)\s+\S+\s+(\S+)\s+(\S+)\s+(\S+)", out)
    lo, mid, hi = (float(v) for v in log_table.groups()[1:])
    shown = re.search(r"\(mu\) RR (\d\.\d\d) \[(\d\.\d\d), (\d\.\d\d)\] \(median \[95% CrI\]\)", out)
    assert shown, out
    # the printed ratio is exp of the printed log-scale quantiles (to the printed digits)
    assert [float(v) for v in shown.groups()] == pytest.approx([np.exp(mid), np.exp(lo), np.exp(hi)], abs=0.006)
    assert "P(RR>1)" in out
    _lines_within_100(out)


def test_smd_analysis_of_a_log_scale_table_is_not_back_transformed(tmp_path, capsys):
    assert main(["fit", MASSAGE, "--engine", "exact", "--outcome", "milk volume", "--out", str(tmp_path),
                 "--draws", "200"]) == 0
    out = capsys.readouterr().out
    assert "back-transformed" not in out and "SMD scale" not in out


def test_undeclared_column_names_the_cli_flag(tmp_path, capsys):
    # 2: bcg.csv has `alloc`; without --extra-column the message names the flag, not extra_columns=
    code = main(["fit", BCG, "--measure", "RR", "--engine", "exact", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "'alloc' is not in the schema" in err and "--extra-column NAME" in err
    assert "extra_columns" not in err


def test_readme_meta_regression_command_runs(tmp_path, capsys):
    # 2: the README's command as written (but on the exact engine, for speed)
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"`(evsynth fit studies/bcg\.csv --measure RR --mods ablat[^`]*)`", readme).group(1)
    args = command.split()[1:] + ["--engine", "exact", "--out", str(tmp_path)]
    assert main(args) == 0, capsys.readouterr().err


def test_header_only_csv_says_so_without_a_pandas_repr(tmp_path, capsys):
    # 10: a header-only CSV
    path = tmp_path / "empty.csv"
    path.write_text((ROOT / "studies" / "massage.csv").read_text().splitlines()[0] + "\n")
    assert main(["fit", str(path), "--out", str(tmp_path / "out")]) == 4
    captured = capsys.readouterr()
    assert "Empty DataFrame" not in captured.out + captured.err and "Columns:" not in captured.out
    assert "has a header but no rows" in " ".join(captured.err.split())


def test_missing_citation_says_what_to_write(tmp_path, capsys, write_csv):
    # 10: a missing required field: not pydantic's bare "Field required"
    rows = [{"study_id": "x1", "source_level": "abstract", "design": "pre_post", "technique": "oxytocin",
             "outcome": "milk", "n": 10, "mean_pre": 1, "mean_post": 2, "p": 0.01}]
    assert main(["fit", str(write_csv(rows)), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "study 'x1', field 'citation': required but empty or missing: give who/where" in err
    assert "Field required" not in err


def test_schema_documents_unusable_reason():
    # 10: a message suggests unusable_reason; the schema table documents it
    schema = (ROOT / "studies" / "README.md").read_text()
    assert re.search(r"^\| `unusable_reason` \|", schema, flags=re.M)


def test_binary_rows_in_an_smd_analysis_advise_once_naming_the_flag(tmp_path, capsys):
    # 12: 13 binary rows, one piece of advice, naming --binary-to-smd
    code = main(["fit", BCG, "--extra-column", "ablat", "--extra-column", "alloc", "--engine", "exact",
                 "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 4
    assert out.count("binary outcome (2x2 counts)") == 1 and "--binary-to-smd" in out
    assert "13 rows" in out


def test_binary_to_smd_flag_converts(tmp_path, capsys):
    code = main(["fit", BCG, "--extra-column", "ablat", "--extra-column", "alloc", "--engine", "exact",
                 "--binary-to-smd", "--draws", "200", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and "13 rows: 13 with an effect size (SMD" in out


@pytest.mark.parametrize("value, shown", [(1.0104, "1.0104"), (1.0153, "1.015"), (1.01001, "1.01001"),
                                          (1.2, "1.200")])
def test_rhat_printed_with_the_digits_that_breach_the_threshold(value, shown):
    # 12: "R-hat 1.010 > 1.01" was rounding
    assert _digits_beyond(value, 1.01) == shown and float(shown) != 1.01


def test_exact_sweep_progress_does_not_mention_compiling():
    # 12: an exact-engine sweep compiles nothing
    assert "compiling" not in Progress(10, 0, "sensitivity", compiles=False).text()
    assert "first scenario (includes compiling)" in Progress(10, 0, "sensitivity").text()


def test_effect_table_keeps_comparisons_and_marks_censored_rows(tmp_path, capsys):
    # 9: no "~" cut in the comparisons; a censored yi shows its side (">" above zero, "<" below)
    from evsynth import compute_effects, load_studies

    assert main(["fit", MASSAGE, "--engine", "exact", "--draws", "200", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    tables = out.split("== rows in no model")[0]
    assert "~" not in tables
    computable = compute_effects(load_studies(MASSAGE)).query("used")
    for row in computable.itertuples():
        line = next(t for t in tables.splitlines() if t.split()[:1] == [row.study_id])
        assert f"{row.technique} vs {row.comparator}" in line
        side = (">" if row.yi > 0 else "<") if row.censored else " "
        assert f"{side}{row.yi:.3f} " in line, line
    assert computable["censored"].any() and (~computable["censored"]).any()  # both kinds checked
    _lines_within_100(out)


def test_network_one_study_rule_is_the_same_for_every_outcome(tmp_path, capsys, write_csv):
    # 5: "weight" (1 controlled study once its pre/post row is left out) and "prolactin" (1
    # head-to-head study) are both refused by the same count; "milk" (2 studies) is fitted, with
    # the warning that its tau rests on two studies
    def row(sid, outcome, design, technique, comparator, yi):
        return {"study_id": sid, "citation": "synthetic", "source_level": "synthetic", "design": "effect",
                "technique": technique, "comparator": comparator, "outcome": outcome, "yi": yi, "sei": 0.2,
                "measure": "SMD", "synthetic": "true"} if design == "effect" else {
                "study_id": sid, "citation": "synthetic", "source_level": "synthetic", "design": "pre_post",
                "technique": technique, "outcome": outcome, "n": 20, "mean_pre": 1.0, "mean_post": 1.5,
                "sd_pre": 1.0, "sd_post": 1.0, "synthetic": "true"}
    rows = [row("w1", "weight", "effect", "a", "control", 0.3), row("w2", "weight", "pre_post", "a", None, 0),
            row("p1", "prolactin", "effect", "a", "b", 0.4),
            row("m1", "milk", "effect", "a", "control", 0.5), row("m2", "milk", "effect", "b", "control", 0.2)]
    code = main(["network", str(write_csv(rows)), "--out", str(tmp_path), "--draws", "200"])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0
    assert "outcome 'prolactin' not analysed: 1 study enters the network; need 2" in out
    assert ("outcome 'weight' not analysed: 1 study enters the network (pre/post rows left out: w2; "
            "--prepost-as-control uses them); need 2") in out
    assert "== milk: network of comparisons" in out
    assert "warning: tau (between studies) rests on 2 studies: its posterior is mostly its prior" in out


def test_network_lines_within_100_columns(tmp_path, capsys):
    main(["network", MASSAGE, "--out", str(tmp_path), "--draws", "200", "--prepost-as-control"])
    _lines_within_100(capsys.readouterr().out)


def test_sensitivity_output_within_100_columns_and_exact_is_not_pass(tmp_path, capsys):
    # 12: the sensitivity listing was 140 columns, and an exact sweep said PASS
    code = main(["sensitivity", str(ROOT / "models" / "synthetic_demo_sensitivity.toml"), "--out", str(tmp_path),
                 "--quiet", "--max-scenarios", "1000"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    _lines_within_100(captured.out + captured.err)
    summary = re.search(r"(\d+) scenarios: (\d+) exact \(no MCMC, nothing to diagnose\), 0 PASS", captured.out)
    assert summary and summary.group(1) == summary.group(2)
