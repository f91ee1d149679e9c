"""Nothing altered or ignored on the way in (issue 25): numbers in the strict decimal grammar (Python
reads '5_0.86' as 50.86 and '1_0' as 10), a field the row's design does not read refused by study and
field, source_level 'synthetic' only with the synthetic flag, a label with a no-break space at its
edge refused (not stripped and merged). Each refusal is exit 2 naming study and field; the same row
without the fault loads unchanged."""

import pytest

from evsynth.data.studies import StudyDataError, load_studies

from test_hostile import EFFECT, PRE_POST, TWO_GROUP, csv_text, fit_refuses, run


def loads(tmp_path, rows):
    path = tmp_path / "ok.csv"
    path.write_text(csv_text(rows))
    return load_studies(path)


@pytest.mark.parametrize("row, field, value", [
    (TWO_GROUP, "mean_treat", "5_0.86"), (TWO_GROUP, "n_treat", "1_0"), (TWO_GROUP, "sd_ctrl", "0x10"),
    (PRE_POST, "n", "3_0"), (PRE_POST, "mean_pre", "2e1_0"), (TWO_GROUP, "year", "2_020"),
    (TWO_GROUP, "n_ctrl", "21.5"), (PRE_POST, "r_prepost", "0_5"), (EFFECT, "yi", "0x1p-2"),
    (TWO_GROUP, "mean_ctrl", "١٠"),  # Arabic-Indic digits: float() reads them as 10
])
def test_numbers_outside_the_decimal_grammar_are_refused(tmp_path, capsys, row, field, value):
    fit_refuses(tmp_path, capsys, csv_text([dict(row, **{field: value})]), f"study {row['study_id']!r}",
                f"field {field!r}", repr(value))


@pytest.mark.parametrize("row, field, value", [
    (TWO_GROUP, "mean_treat", "50.86"), (TWO_GROUP, "n_treat", "10"), (PRE_POST, "mean_pre", "2e1"),
    (TWO_GROUP, "sd_ctrl", ".5"), (EFFECT, "yi", "-1.5E-2"), (TWO_GROUP, "n_ctrl", "21.0"),
])
def test_decimal_numbers_load_unchanged(tmp_path, row, field, value):
    table = loads(tmp_path, [dict(row, **{field: value})])
    assert table[field].iloc[0] == float(value)


def test_a_prior_outside_the_decimal_grammar_is_refused(tmp_path, capsys):
    path = tmp_path / "s.csv"
    path.write_text(csv_text([TWO_GROUP, dict(TWO_GROUP, study_id="g2")]))
    code, err = run(["fit", path, "--out", tmp_path / "o", "--prior", "tau=halfnormal(1_0)"], capsys)
    assert code == 2 and "'1_0'" in err and "Traceback" not in err, err


@pytest.mark.parametrize("row, field, value", [
    (TWO_GROUP, "n", "30"), (TWO_GROUP, "mean_pre", "10"), (TWO_GROUP, "sd_change", "2"),
    (PRE_POST, "n_treat", "30"), (PRE_POST, "mean_treat", "10"), (PRE_POST, "yi", "0.3"),
    (EFFECT, "mean_treat", "12"), (EFFECT, "sd_ctrl", "3"), (EFFECT, "n", "40"), (EFFECT, "t", "2.1"),
])
def test_a_field_the_design_does_not_read_is_refused(tmp_path, capsys, row, field, value):
    fit_refuses(tmp_path, capsys, csv_text([dict(row, **{field: value})]), f"study {row['study_id']!r}",
                f"field {field!r}", f"design {row['design']!r} does not use {field}")


def test_an_unusable_row_keeps_what_its_source_printed(tmp_path):
    row = dict(EFFECT, mean_treat="12", unusable_reason="only a figure; yi read off by a reviewer")
    assert loads(tmp_path, [row])["mean_treat"].iloc[0] == 12


def test_source_level_synthetic_needs_the_flag(tmp_path, capsys):
    fit_refuses(tmp_path, capsys, csv_text([dict(TWO_GROUP, source_level="synthetic")]), "study 'g1'",
                "field 'synthetic'", "needs synthetic = true")
    assert loads(tmp_path, [dict(TWO_GROUP, source_level="synthetic", synthetic="true")])["synthetic"].iloc[0]


@pytest.mark.parametrize("field", ["technique", "outcome", "study_id", "comparator"])
def test_a_no_break_space_at_a_label_edge_is_refused_not_stripped(tmp_path, capsys, field):
    first = dict(TWO_GROUP, comparator="usual care")
    spaced = dict(first, study_id="g2")
    spaced[field] = first[field] + "\u00a0"
    err = fit_refuses(tmp_path, capsys, csv_text([first, spaced]),
                      f"field {field!r}", "U+00A0 (NO-BREAK SPACE)")
    assert "\u00a0" in err or "\\xa0" in err


@pytest.mark.parametrize("rows, measure, field", [
    ([dict(EFFECT, yi="1e300"), dict(EFFECT, study_id="e2")], "SMD", "yi"),
    ([dict(TWO_GROUP, mean_treat="1e300"), dict(TWO_GROUP, study_id="g2")], "MD", "mean_treat/mean_ctrl"),
    ([dict(TWO_GROUP, mean_treat="2e12"), dict(TWO_GROUP, study_id="g2")], "MD", "mean_treat/mean_ctrl"),
])
def test_effects_beyond_the_arithmetic_are_refused_not_a_traceback(tmp_path, capsys, rows, measure, field):
    # yi = 1e300 raised FloatingPointError in the exact engine (exit 1)
    path = tmp_path / "s.csv"
    path.write_text(csv_text(rows))
    code, err = run(["fit", path, "--measure", measure, "--engine", "exact", "--out", tmp_path / "o"], capsys)
    assert code == 2 and f"study {rows[0]['study_id']!r}, field {field!r}" in err and "beyond +-1e+12" in err, err


def test_effects_at_the_limit_load(tmp_path):
    from evsynth.effects import compute_effects

    rows = [dict(TWO_GROUP, mean_treat="1e11", mean_ctrl="0", sd_treat="1e10", sd_ctrl="1e10")]
    assert compute_effects(loads(tmp_path, rows), measure="MD")["yi"].iloc[0] == 1e11
