"""Loading refuses every class of bad input with an error naming the study and the field."""

import pandas as pd
import pytest

from evsynth.data.studies import StudyDataError, load_studies

from conftest import ROOT

GOOD_PRE_POST = {"study_id": "s1", "citation": "A 2020", "source_level": "abstract", "design": "pre_post",
                 "technique": "oxytocin", "outcome": "milk volume", "n": "36", "mean_pre": "24.78",
                 "mean_post": "40.36", "p": "0.012"}
GOOD_TWO_GROUP = {"study_id": "s2", "citation": "B 2021", "source_level": "abstract", "design": "two_group",
                  "technique": "neck", "outcome": "milk volume", "n_treat": "20", "n_ctrl": "21",
                  "mean_treat": "12.0", "mean_ctrl": "10.0", "sd_treat": "3.0", "sd_ctrl": "3.5"}


def refused(write_csv, rows, study, field):
    with pytest.raises(StudyDataError) as info:
        load_studies(write_csv(rows))
    message = str(info.value)
    assert f"study '{study}'" in message and f"field '{field}'" in message, message
    return message


def test_good_rows_load_with_types(write_csv):
    table = load_studies(write_csv([GOOD_PRE_POST, GOOD_TWO_GROUP]))
    assert list(table["study_id"]) == ["s1", "s2"]
    assert table.loc[0, "n"] == 36 and table.loc[0, "p"] == pytest.approx(0.012)
    assert not table["synthetic"].any()


@pytest.mark.parametrize("field", ["n", "mean_pre", "mean_post"])
def test_missing_required_field(write_csv, field):
    row = {k: v for k, v in GOOD_PRE_POST.items() if k != field}
    assert "required for design 'pre_post'" in refused(write_csv, [row], "s1", field)


def test_missing_se_source_is_refused(write_csv):
    row = {k: v for k, v in GOOD_TWO_GROUP.items() if k not in ("sd_treat", "sd_ctrl")}
    assert "needs one of sd_treat+sd_ctrl, t" in refused(write_csv, [row], "s2", "sd_treat+sd_ctrl")


def test_missing_fields_allowed_only_with_a_stated_reason(write_csv):
    row = {k: v for k, v in GOOD_TWO_GROUP.items() if k not in ("n_treat", "n_ctrl")}
    row["unusable_reason"] = "group sizes not printed"
    assert len(load_studies(write_csv([row]))) == 1


def test_missing_identity_field(write_csv):
    row = dict(GOOD_PRE_POST, technique="")
    refused(write_csv, [row], "s1", "technique")


@pytest.mark.parametrize("field,value", [("sd_treat", "0"), ("sd_ctrl", "-1.5")])
def test_sd_not_positive(write_csv, field, value):
    refused(write_csv, [dict(GOOD_TWO_GROUP, **{field: value})], "s2", field)


@pytest.mark.parametrize("field,value", [("n", "1"), ("n", "0")])
def test_n_below_two(write_csv, field, value):
    refused(write_csv, [dict(GOOD_PRE_POST, **{field: value})], "s1", field)


def test_group_size_below_two(write_csv):
    refused(write_csv, [dict(GOOD_TWO_GROUP, n_ctrl="1")], "s2", "n_ctrl")


@pytest.mark.parametrize("value", ["0", "1.2", "-0.01"])
def test_p_outside_unit_interval(write_csv, value):
    refused(write_csv, [dict(GOOD_PRE_POST, p=value)], "s1", "p")


def test_p_of_one_is_allowed(write_csv):
    assert load_studies(write_csv([dict(GOOD_PRE_POST, p="1")])).loc[0, "p"] == 1.0


@pytest.mark.parametrize("value", ["<0.05", "< 0.001", "=0.000"])
def test_p_inequality_needs_explicit_rule(write_csv, value):
    message = refused(write_csv, [dict(GOOD_PRE_POST, p=value)], "s1", "p")
    assert "p_upper" in message


def test_duplicate_study_id(write_csv):
    refused(write_csv, [GOOD_PRE_POST, dict(GOOD_TWO_GROUP, study_id="s1")], "s1", "study_id")


@pytest.mark.parametrize("value", ["NaN", "nan", "inf"])
def test_nan_text_refused(write_csv, value):
    refused(write_csv, [dict(GOOD_PRE_POST, mean_pre=value)], "s1", "mean_pre")


def test_non_numeric_text_refused(write_csv):
    refused(write_csv, [dict(GOOD_PRE_POST, mean_post="about forty")], "s1", "mean_post")


def test_nan_in_dataframe_input_is_missing_not_a_number():
    frame = pd.DataFrame([dict(GOOD_PRE_POST, sd_pre=float("nan"))])
    assert pd.isna(load_studies(frame).loc[0, "sd_pre"])


def test_unknown_design(write_csv):
    refused(write_csv, [dict(GOOD_PRE_POST, design="crossover")], "s1", "design")


def test_all_problems_reported_at_once(write_csv):
    rows = [dict(GOOD_PRE_POST, n="1"), dict(GOOD_TWO_GROUP, sd_ctrl="0")]
    with pytest.raises(StudyDataError) as info:
        load_studies(write_csv(rows))
    assert "study 's1', field 'n'" in str(info.value) and "study 's2', field 'sd_ctrl'" in str(info.value)


def test_bundled_tables_load():
    for name in ("massage.csv", "synthetic_demo.csv"):
        table = load_studies(ROOT / "studies" / name)
        assert table["study_id"].is_unique
    synthetic = load_studies(ROOT / "studies" / "synthetic_demo.csv")
    assert synthetic["synthetic"].all() and (synthetic["source_level"] == "synthetic").all()
    real = load_studies(ROOT / "studies" / "massage.csv")
    assert not real["synthetic"].any() and real["citation"].str.len().gt(0).all()


@pytest.mark.parametrize("field", ["sd_pre", "sd_post", "sd_change"])
@pytest.mark.parametrize("value", ["0", "-2.5"])
def test_pre_post_sd_not_positive(write_csv, field, value):
    refused(write_csv, [dict(GOOD_PRE_POST, **{field: value})], "s1", field)


@pytest.mark.parametrize("value", ["0", "-0.1"])
def test_sei_not_positive(write_csv, value):
    row = {"study_id": "e1", "citation": "C 2022", "source_level": "abstract", "design": "effect",
           "technique": "neck", "outcome": "milk volume", "yi": "0.3", "sei": value, "measure": "SMD"}
    refused(write_csv, [row], "e1", "sei")
