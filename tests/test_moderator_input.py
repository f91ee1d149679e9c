"""Unusable moderators from the command line (issue 25): every one exits 2 before anything is fitted,
naming the column (and the study); nothing is turned into something else on the way (a hex cell does
not make a numeric column categorical). The same table with usable moderators fits, exit 0."""

import csv

import pytest

from evsynth.cli import main as cli

from conftest import ROOT

BCG = ROOT / "studies" / "bcg.csv"


def bcg_with(tmp_path, study=None, column=None, value=None):
    rows = list(csv.DictReader(BCG.open(encoding="utf-8")))
    for row in rows:
        if row["study_id"] == study:
            row[column] = value
    path = tmp_path / "bcg.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def fit(path, mods, tmp_path, capsys):
    try:
        code = cli.main(["fit", str(path), "--measure", "RR", "--engine", "exact", "--out", str(tmp_path / "out"),
                         "--mods", mods, "--extra-column", "alloc", "--extra-column", "ablat"])
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "\x1b" not in captured.err
    return code, captured.err, captured.out


@pytest.mark.parametrize("value, needle", [
    ("0x10", "study 'bcg05': '0x10' is not a number"), ("1_0", "study 'bcg05': '1_0' is not a number"),
    ("Infinity", "study 'bcg05': 'Infinity' is not a number"), ("1e400", "'1e400' is not a finite number"),
    ("nan", "study 'bcg05', field 'ablat': 'nan' is not a value"), ("ten", "declared with C(ablat)"),
])
def test_a_bad_cell_in_a_numeric_moderator_is_refused_by_study_and_column(tmp_path, capsys, value, needle):
    code, err, out = fit(bcg_with(tmp_path, "bcg05", "ablat", value), "~ ablat", tmp_path, capsys)
    assert code == 2 and "'ablat'" in err and needle in err, err
    assert "posterior" not in out  # refused before anything was fitted


@pytest.mark.parametrize("mods, needle", [
    ("~ 1", "give no moderator column"), ("~ 0", "give no moderator column"),
    ("~ C(source_level)", "'source_level' is constant"), ("~ C(study_id)", "more studies than coefficients"),
    ("~ log(ablat - 100)", "'log(ablat - 100)' is not a finite number for studies 'bcg01'"), ("~ yi", "'yi' carry the outcome"),
    ("~ 0 + C(alloc)", "needs the intercept"), ("~ latitude", "'latitude'"),
    ("~ {ablat}", "braces"),
])
def test_unusable_moderators_exit_2_naming_the_column(tmp_path, capsys, mods, needle):
    code, err, out = fit(BCG, mods, tmp_path, capsys)
    assert code == 2 and needle in err, err
    assert "posterior" not in out


def test_usable_moderators_fit_with_exit_0(tmp_path, capsys):
    code, err, out = fit(bcg_with(tmp_path, "bcg05", "ablat", "13.0"), "~ ablat + C(alloc)", tmp_path, capsys)
    assert code == 0, err
    assert "Bayesian meta-regression, mods ~ ablat + C(alloc)" in out
