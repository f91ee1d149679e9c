"""multi_arm_trials (evsynth.methods.network) on a made-up table whose answer is known by inspection
(issue 28: the network module's mutants): which rows form a multi-arm trial (used rows of one outcome
sharing a sample_id and one comparator), which rows sharing a sample count once instead (per outcome
or across outcomes), the study table's control-arm columns joined, the order kept and the notes."""

import pandas as pd
import pytest

from evsynth.data.studies import load_studies
from evsynth.effects import compute_effects
from evsynth.methods.network import multi_arm_trials


def _row(sid, tech, sample, outcome="milk volume", comp="control", n=30, nc=30, sdc=10.0):
    return dict(study_id=sid, citation="synthetic", source_level="synthetic", design="two_group", technique=tech,
                comparator=comp, outcome=outcome, unit="mL", n_treat=n, n_ctrl=nc, mean_treat=55.0, mean_ctrl=50.0,
                sd_treat=10.0, sd_ctrl=sdc, synthetic="true", sample_id=sample)


ROWS = [_row("t9_a", "oxytocin", "T9", outcome="prolactin"), _row("t9_b", "neck", "T9", outcome="prolactin"),
        _row("t1_a", "oxytocin", "T1", nc=31, sdc=9.0), _row("t1_b", "neck", "T1", nc=31, sdc=9.0),
        _row("t1_c", "marmet", "T1", nc=31, sdc=9.0),  # made unused below: not an arm
        _row("s2_x", "oxytocin", "S2", n=20, nc=20), _row("s2_y", "marmet", "S2", comp="usual care", n=25, nc=25),
        _row("s3_m", "oxytocin", "S3", n=40), _row("s3_p", "oxytocin", "S3", outcome="prolactin", n=35),
        _row("s4", "neck", "", n=22, nc=23, sdc=11.5)]
IDS = [r["study_id"] for r in ROWS]


@pytest.fixture(scope="module")
def tables():
    studies = load_studies(pd.DataFrame(ROWS))
    effects = compute_effects(studies)
    effects.loc[effects["study_id"] == "t1_c", "used"] = False
    return studies, effects


def test_arms_of_one_sample_and_comparator_form_a_trial(tables):
    studies, effects = tables
    before = effects.copy()
    out = multi_arm_trials(effects, studies)
    assert out["study_id"].tolist() == IDS and out.index.tolist() == list(range(len(IDS)))  # table order
    assert out["trial"].tolist() == ["T9", "T9", "T1", "T1", "t1_c", "s2_x", "s2_y", "s3_m", "s3_p", "s4"]
    # S2's rows have two comparators: not a trial; the larger (s2_y, n 50) is kept. S3's rows are
    # on two outcomes: per outcome each is alone, so both stay.
    assert dict(zip(out["study_id"], out["used"])) == {
        "t9_a": True, "t9_b": True, "t1_a": True, "t1_b": True, "t1_c": False, "s2_x": False, "s2_y": True,
        "s3_m": True, "s3_p": True, "s4": True}
    assert out.set_index("study_id").loc["s2_x", "why_not"] == (
        "same participants (sample_id 'S2') as s2_y, which is kept: a sample counts once (largest n, ties by "
        "table order)")
    assert out.attrs["sample_note"] == "a sample counts once: left out s2_x (kept s2_y)"
    assert out.attrs["multi_arm_note"] == (
        "multi-arm trial(s), their contrasts sharing one control arm: T1 (milk volume), T9 (prolactin)")
    assert out.attrs["measure"] == effects.attrs["measure"]
    # the study table's control arm, row by row, as numbers
    assert out["n_ctrl"].tolist() == [30, 30, 31, 31, 31, 20, 25, 30, 30, 23]
    assert out["sd_ctrl"].tolist() == [10.0, 10.0, 9.0, 9.0, 9.0, 10.0, 10.0, 10.0, 10.0, 11.5]
    assert pd.api.types.is_numeric_dtype(out["n_ctrl"]) and pd.api.types.is_numeric_dtype(out["sd_ctrl"])
    # nothing else added: the effect table's columns, then trial and the study table's two
    assert out.columns.tolist() == effects.columns.tolist() + ["trial", "n_ctrl", "sd_ctrl"]
    # the caller's table is left as it was
    pd.testing.assert_frame_equal(effects, before)
    assert "trial" not in effects


def test_across_outcomes_a_sample_counts_once(tables):
    studies, effects = tables
    out = multi_arm_trials(effects, studies, by_outcome=False)
    assert out["trial"].tolist() == ["T9", "T9", "T1", "T1", "t1_c", "s2_x", "s2_y", "s3_m", "s3_p", "s4"]
    assert out.set_index("study_id")["used"].to_dict() == {
        "t9_a": True, "t9_b": True, "t1_a": True, "t1_b": True, "t1_c": False, "s2_x": False, "s2_y": True,
        "s3_m": True, "s3_p": False, "s4": True}
    assert out.attrs["sample_note"] == "a sample counts once: left out s2_x (kept s2_y), s3_p (kept s3_m)"


def test_no_trial_no_note_and_study_table_columns_only_when_there(tables):
    studies, effects = tables
    keep = ["s2_y", "s3_m", "s4"]
    plain = effects[effects["study_id"].isin(keep)].reset_index(drop=True)
    plain.attrs = dict(effects.attrs)
    out = multi_arm_trials(plain, studies)
    assert out["trial"].tolist() == keep and out["used"].all()
    assert "multi_arm_note" not in out.attrs and "sample_note" not in out.attrs
    # an unused arm does not make a trial of the one used row left in its sample
    one = effects[effects["study_id"].isin(["t1_a", "t1_c"])].reset_index(drop=True)
    one.attrs = dict(effects.attrs)
    single = multi_arm_trials(one, studies)
    assert single["trial"].tolist() == ["t1_a", "t1_c"] and "multi_arm_note" not in single.attrs
    # a study table without sd_ctrl: only n_ctrl is joined
    out = multi_arm_trials(plain.drop(columns=["sd_ctrl"], errors="ignore"), studies.drop(columns=["sd_ctrl"]))
    assert "sd_ctrl" not in out and out["n_ctrl"].tolist() == [25, 30, 23]


def test_an_empty_table_stays_empty(tables):
    studies, effects = tables
    empty = effects.iloc[:0].copy()
    empty.attrs = dict(effects.attrs)
    out = multi_arm_trials(empty, studies)
    assert out.empty and out.columns.tolist() == effects.columns.tolist() + ["trial", "n_ctrl", "sd_ctrl"]
    assert "multi_arm_note" not in out.attrs
