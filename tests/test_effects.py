"""Effect sizes against closed-form values, metafor's documented examples and the Cochrane Handbook."""

import math

import numpy as np
import pandas as pd
import pytest

from evsynth.data.studies import StudyDataError
from scipy import stats

from evsynth.effects import EffectSizeError, compute_effects, hedges_j, not_used, used_effects
from evsynth.data.studies import load_studies

from conftest import ROOT

BASE = {"citation": "test", "source_level": "abstract", "technique": "oxytocin", "outcome": "milk volume"}


def effects_of(rows, **kwargs):
    return compute_effects(load_studies(pd.DataFrame([dict(BASE, **r) for r in rows])), **kwargs)


def two_group(**fields):
    return dict({"study_id": "s", "design": "two_group"}, **fields)


def pre_post(**fields):
    return dict({"study_id": "s", "design": "pre_post"}, **fields)


def test_hedges_j_exact_and_approximation():
    # J(df) = Gamma(df/2) / (sqrt(df/2) Gamma((df-1)/2)); close to 1 - 3/(4 df - 1)
    assert hedges_j(10) == pytest.approx(math.gamma(5) / (math.sqrt(5) * math.gamma(4.5)))
    for df in (5, 20, 100):
        assert hedges_j(df) == pytest.approx(1 - 3 / (4 * df - 1), abs=2e-3)


def test_smd_from_signed_p_value_metafor_example():
    # metafor escalc docs: p = 0.018 in the negative direction, n1 = n2 = 20 -> yi = -0.7664
    row = effects_of([two_group(n_treat=20, n_ctrl=20, mean_treat=1.0, mean_ctrl=2.0, p=0.018)]).iloc[0]
    assert row["yi"] == pytest.approx(-0.7664, abs=5e-5)
    assert row["se_route"] == "p_value"


def test_mean_change_metafor_example():
    # metafor MC: m 26 -> 22, sd sqrt(30), sqrt(20), n 60, r 0.7 -> |yi| 4, vi 0.2618 (ours is post - pre)
    row = effects_of([pre_post(n=60, mean_pre=26, mean_post=22, sd_pre=math.sqrt(30), sd_post=math.sqrt(20))],
                     measure="MD", r_prepost=0.7).iloc[0]
    assert row["yi"] == pytest.approx(-4.0)
    assert row["vi"] == pytest.approx(0.2618, abs=5e-5)
    assert row["se_route"] == "sd"


def test_cochrane_se_from_p_value():
    # Cochrane Handbook 6.5.2.3: MD 3.8, p = 0.008, df = 45 -> t = 2.78, SE = 1.37
    row = effects_of([two_group(n_treat=23, n_ctrl=24, mean_treat=13.8, mean_ctrl=10.0, p=0.008)],
                     measure="MD").iloc[0]
    assert row["df"] == 45
    assert 3.8 / row["sei"] == pytest.approx(2.78, abs=5e-3)
    assert row["sei"] == pytest.approx(1.37, abs=5e-3)


def test_cochrane_paired_example_se():
    # Cochrane crossover example: n 10, means 7.0 vs 6.5, SDs 2.38 vs 2.21, r 0.68 -> SE(MD) 0.583
    row = effects_of([pre_post(n=10, mean_pre=6.5, mean_post=7.0, sd_pre=2.21, sd_post=2.38, r_prepost=0.68)],
                     measure="MD").iloc[0]
    assert row["yi"] == pytest.approx(0.5)
    assert row["sei"] == pytest.approx(0.583, abs=5e-4)


def test_seed_study_back_calculated_by_hand():
    # 36 mothers, 24.78 -> 40.36, p = 0.012: |t| = t_{35}^{-1}(1 - 0.006), SE(MD) = 15.58 / |t|
    t = stats.t.isf(0.006, 35)
    rows = [pre_post(n=36, mean_pre=24.78, mean_post=40.36, p=0.012)]
    md = effects_of(rows, measure="MD").iloc[0]
    assert md["yi"] == pytest.approx(15.58)
    assert md["sei"] == pytest.approx(15.58 / t)
    assert md["se_route"] == "p_value"
    for r in (0.3, 0.5, 0.7, 0.9):
        smd = effects_of(rows, measure="SMD", r_prepost=r).iloc[0]
        g = hedges_j(35) * (t / 6) * math.sqrt(2 * (1 - r))  # d_z = t / sqrt(n), raw-score d = d_z sqrt(2(1-r))
        assert smd["yi"] == pytest.approx(g)
        assert smd["vi"] == pytest.approx(2 * (1 - r) / 36 + g**2 / 72)
    smcc = effects_of(rows, measure="SMCC").iloc[0]
    assert smcc["yi"] == pytest.approx(hedges_j(35) * t / 6)


def test_smd_with_sds_closed_form():
    n1, n2, m1, m2, s1, s2 = 20, 21, 12.0, 10.0, 3.0, 3.5
    sp = math.sqrt(((n1 - 1) * s1**2 + (n2 - 1) * s2**2) / (n1 + n2 - 2))
    g = hedges_j(n1 + n2 - 2) * (m1 - m2) / sp
    row = effects_of([two_group(n_treat=n1, n_ctrl=n2, mean_treat=m1, mean_ctrl=m2, sd_treat=s1, sd_ctrl=s2)]).iloc[0]
    assert row["yi"] == pytest.approx(g)
    assert row["vi"] == pytest.approx(1 / n1 + 1 / n2 + g**2 / (2 * (n1 + n2)))


def test_smd_from_t_equals_smd_from_matching_sds():
    with_sd = two_group(n_treat=15, n_ctrl=15, mean_treat=11.0, mean_ctrl=10.0, sd_treat=2.0, sd_ctrl=2.0)
    t = 1.0 / (2.0 * math.sqrt(2 / 15))
    with_t = two_group(n_treat=15, n_ctrl=15, mean_treat=11.0, mean_ctrl=10.0, t=t)
    a, b = effects_of([with_sd]).iloc[0], effects_of([with_t]).iloc[0]
    assert a["yi"] == pytest.approx(b["yi"]) and a["vi"] == pytest.approx(b["vi"])
    assert (a["se_route"], b["se_route"]) == ("sd", "t_stat")


def test_se_from_confidence_interval_uses_t_quantile():
    row = effects_of([two_group(n_treat=10, n_ctrl=12, mean_treat=5.0, mean_ctrl=3.0, ci_low=0.5, ci_high=3.5)],
                     measure="MD").iloc[0]
    assert row["sei"] == pytest.approx(3.0 / (2 * stats.t.ppf(0.975, 20)))
    assert row["se_route"] == "ci"


def test_log_ratio_of_means_closed_form():
    row = effects_of([two_group(n_treat=20, n_ctrl=25, mean_treat=30.0, mean_ctrl=20.0, sd_treat=6.0, sd_ctrl=5.0)],
                     measure="ROM").iloc[0]
    assert row["yi"] == pytest.approx(math.log(1.5))
    assert row["vi"] == pytest.approx(36 / (20 * 900) + 25 / (25 * 400))


def test_log_ratio_pre_post_metafor_romc_formula():
    r = 0.6
    row = effects_of([pre_post(n=30, mean_pre=20.0, mean_post=25.0, sd_pre=4.0, sd_post=5.0)],
                     measure="ROM", r_prepost=r).iloc[0]
    expected = (25 / 625 + 16 / 400 - 2 * r * 4 * 5 / (20 * 25)) / 30
    assert row["vi"] == pytest.approx(expected)


def test_log_ratio_needs_positive_means():
    with pytest.raises(EffectSizeError, match=r"study 's'.*mean_ctrl"):
        effects_of([two_group(n_treat=5, n_ctrl=5, mean_treat=1.0, mean_ctrl=-1.0, p=0.2)], measure="ROM")


def test_p_bound_modes():
    rows = [two_group(n_treat=22, n_ctrl=22, mean_treat=203.82, mean_ctrl=54.90, p_upper=0.0005)]
    conservative = effects_of(rows, p_bound="conservative").iloc[0]
    t_bound = stats.t.isf(0.00025, 42)
    assert conservative["yi"] == pytest.approx(hedges_j(42) * t_bound * math.sqrt(2 / 22))
    assert conservative["se_route"] == "p_bound" and conservative["used"]
    censored = effects_of(rows, p_bound="censor").iloc[0]
    assert censored["censored"] and censored["yi"] == pytest.approx(conservative["yi"])
    excluded = effects_of(rows, p_bound="exclude").iloc[0]
    assert not excluded["used"] and "bound" in excluded["why_not"]


def test_equal_means_with_p_cannot_give_an_se():
    with pytest.raises(EffectSizeError, match=r"study 's', field 'p'"):
        effects_of([two_group(n_treat=10, n_ctrl=10, mean_treat=3.0, mean_ctrl=3.0, p=0.9)])


def test_ready_made_effects_on_other_scale_are_reported_not_dropped():
    rows = [{"study_id": "a", "design": "effect", "yi": 0.3, "sei": 0.1, "measure": "SMD"},
            {"study_id": "b", "design": "effect", "yi": 3.0, "sei": 1.0, "measure": "MD"}]
    table = effects_of(rows)
    assert list(table["study_id"]) == ["a", "b"]
    assert list(table["used"]) == [True, False]
    assert "MD scale" in table.loc[1, "why_not"]


def test_bad_options_refused():
    rows = [pre_post(n=36, mean_pre=24.78, mean_post=40.36, p=0.012)]
    for kwargs in ({"measure": "HR"}, {"r_prepost": 1.0}, {"p_bound": "guess"}):
        with pytest.raises(EffectSizeError):
            effects_of(rows, **kwargs)


def test_bundled_massage_rows_all_reported():
    studies = load_studies(ROOT / "studies" / "massage.csv")
    effects = compute_effects(studies)
    assert len(effects) == len(studies)  # nothing dropped
    unused = not_used(effects)
    assert set(unused["study_id"]) | set(used_effects(effects)["study_id"]) == set(studies["study_id"])
    assert (unused["why_not"].str.len() > 0).all()
    seed = effects.set_index("study_id").loc["pratama2023"]
    assert seed["used"] and seed["se_route"] == "p_value"


# metafor 3.8.1 (R 4.2.2) figures for pre/post rows, each printed with sprintf("%.10f"):
#   escalc("SMCR", m1i=15, m2i=20, sd1i=4, ni=25, ri=0.5)            -> yi -1.2104565418, vi 0.0693041008
#   escalc("SMCC", m1i=15, m2i=20, sd1i=5, sd2i=4, ni=25, ri=0.5)    -> yi -1.0565730911, vi 0.0623269339
#   s <- 4/sqrt(2*(1-0.6)); escalc("ROMC", m1i=25, m2i=20, sd1i=s, sd2i=s, ni=30, ri=0.6)
#                                                                    -> yi 0.2231435513, vi 0.0011333333
def test_pre_post_smd_keeps_the_sign_of_a_negative_change_metafor_smcr():
    row = effects_of([pre_post(n=25, mean_pre=20.0, mean_post=15.0, sd_pre=4.0, sd_post=5.0)],
                     measure="SMD", r_prepost=0.5).iloc[0]
    assert row["yi"] == pytest.approx(-1.2104565418, abs=1e-9)
    assert row["vi"] == pytest.approx(0.0693041008, abs=1e-9)


def test_pre_post_smd_from_a_p_value_keeps_a_negative_sign():
    # no SDs: d_z = -t / sqrt(n) on the change scale, times sqrt(2 (1 - r)) to the raw-score scale
    row = effects_of([pre_post(n=36, mean_pre=40.36, mean_post=24.78, p=0.012)], measure="SMD").iloc[0]
    assert row["yi"] == pytest.approx(-hedges_j(35) * stats.t.isf(0.006, 35) / 6 * math.sqrt(2 * 0.5))


def test_smcc_matches_metafor_including_its_sampling_variance():
    row = effects_of([pre_post(n=25, mean_pre=20.0, mean_post=15.0, sd_pre=4.0, sd_post=5.0)],
                     measure="SMCC", r_prepost=0.5).iloc[0]
    assert row["yi"] == pytest.approx(-1.0565730911, abs=1e-9)
    assert row["vi"] == pytest.approx(0.0623269339, abs=1e-9)


def test_log_ratio_pre_post_from_change_sd_metafor_romc():
    # only the change SD: both SDs are taken as SD_change / sqrt(2 (1 - r)) before metafor's ROMC formula
    row = effects_of([pre_post(n=30, mean_pre=20.0, mean_post=25.0, sd_change=4.0)],
                     measure="ROM", r_prepost=0.6).iloc[0]
    assert row["yi"] == pytest.approx(0.2231435513, abs=1e-9)
    assert row["vi"] == pytest.approx(0.0011333333, abs=1e-9)


# metafor 3.8.1, sprintf("%.10f"):
#   escalc("MD",  m1i=12, m2i=10, sd1i=3, sd2i=4, n1i=20, n2i=25)          -> yi 2.0000000000, vi 1.0900000000
#   escalc("ROM", m1i=12, m2i=10, sd1i=3, sd2i=4, n1i=20, n2i=25)          -> yi 0.1823215568, vi 0.0095250000
#   escalc("ROMC", m1i=20, m2i=25, sd1i=5, sd2i=4, ni=30, ri=0.5)          -> yi -0.2231435513, vi 0.0016033333
@pytest.mark.parametrize("measure, yi, vi", [("MD", 2.0, 1.09), ("ROM", 0.1823215568, 0.009525)])
def test_two_group_md_and_rom_from_sds_metafor(measure, yi, vi):
    row = effects_of([two_group(n_treat=20, n_ctrl=25, mean_treat=12, mean_ctrl=10, sd_treat=3, sd_ctrl=4)],
                     measure=measure).iloc[0]
    assert row.se_route == "sd" and row.n_total == 45
    assert row.yi == pytest.approx(yi, abs=1e-9) and row.vi == pytest.approx(vi, abs=1e-9)
    assert row.sei == pytest.approx(math.sqrt(vi), abs=1e-9)


def test_pre_post_rom_with_both_sds_metafor_and_with_one_sd_the_equal_sd_rule():
    row = effects_of([pre_post(n=30, mean_pre=25, mean_post=20, sd_pre=4, sd_post=5, r_prepost=0.5)],
                     measure="ROM").iloc[0]
    assert row.yi == pytest.approx(-0.2231435513, abs=1e-9) and row.vi == pytest.approx(0.0016033333, abs=1e-9)
    assert row.n_total == 30
    # only the baseline SD and the change SD: both SDs taken as sd_change / sqrt(2 (1 - r)) = 4.5
    one = effects_of([pre_post(n=30, mean_pre=25, mean_post=20, sd_pre=4, sd_change=4.5, r_prepost=0.5)],
                     measure="ROM").iloc[0]
    assert one.vi == pytest.approx(4.5**2 * (1 / 20**2 + 1 / 25**2 - 2 * 0.5 / (20 * 25)) / 30, rel=1e-12)
    assert one.se_route == "sd_change"


def test_two_group_rom_from_t_uses_the_pooled_sd_for_both_arms():
    # SE(MD) = |md| / t = 0.8; pooled SD = 0.8 / sqrt(1/20 + 1/25) = 8/3
    row = effects_of([two_group(n_treat=20, n_ctrl=25, mean_treat=12, mean_ctrl=10, t=2.5)], measure="ROM").iloc[0]
    s = 0.8 / math.sqrt(1 / 20 + 1 / 25)
    assert s == pytest.approx(8 / 3)
    assert row.vi == pytest.approx(s**2 * (1 / (20 * 12**2) + 1 / (25 * 10**2)), rel=1e-12)
    assert row.se_route == "t_stat"


# ---- consistency flags: each rule at its stated tolerance (T_AGREEMENT 20%, R_AGREEMENT 10%) --------


def flag_row(**fields):
    """A row as compute_effects passes it (every field present, missing ones None)."""
    keys = ("design", "mean_treat", "mean_ctrl", "n_treat", "n_ctrl", "mean_pre", "mean_post", "n", "t", "p",
            "p_upper", "ci_low", "ci_high", "sd_pre", "sd_post", "sd_change", "r_prepost")
    return {k: None for k in keys} | fields


def test_p_against_t_flagged_beyond_twenty_percent():
    from evsynth.effects import consistency_warnings

    base = flag_row(design="two_group", mean_treat=12.0, mean_ctrl=10.0, n_treat=20, n_ctrl=20, p=0.3)
    t_of_p = stats.t.isf(0.15, 38)  # 1.0476: two-sided p = 0.3 on 20 + 20 - 2 df
    assert consistency_warnings(base | {"t": 1.24 * t_of_p}) == []
    assert consistency_warnings(base | {"t": -t_of_p / 1.24}) == []  # the sign of t is not compared
    t = round(1.26 * t_of_p, 4)
    assert consistency_warnings(base | {"t": t}) == [f"p = 0.3 implies |t| = {t_of_p:.2f} on 38 df, but t = {t:g} is printed"]
    assert consistency_warnings(base | {"t": t / 1.26 ** 2}) != []  # t too small by the same factor
    assert consistency_warnings(base | {"t": 5.0, "p": 1.0}) == []  # p = 1 (printed as 'ns') implies nothing
    # p = 0.001: |t| 4.587 on 10 df, 3.566 on 38 df (29% apart)
    t_on_10, t_on_38 = stats.t.isf(0.0005, 10), stats.t.isf(0.0005, 38)
    small_p = base | {"p": 0.001}
    assert consistency_warnings(small_p | {"t": t_on_38}) == [] != consistency_warnings(small_p | {"t": t_on_10})
    assert consistency_warnings(small_p | {"t": t_on_10}, df=10) == []  # the df the effect used, when given
    pre = flag_row(design="pre_post", mean_pre=10.0, mean_post=12.0, n=11, p=0.001)
    assert consistency_warnings(pre | {"t": t_on_10}) == []  # pre/post: n - 1 df
    assert consistency_warnings(pre | {"t": t_on_38}) != []


def test_t_against_a_printed_p_bound():
    from evsynth.effects import consistency_warnings

    base = flag_row(design="two_group", mean_treat=12.0, mean_ctrl=10.0, n_treat=20, n_ctrl=20)
    p_of_t = 2 * stats.t.sf(1.0, 38)  # 0.3236
    assert consistency_warnings(base | {"t": -1.0, "p_upper": 0.05}) == [
        f"t = -1 gives p = {p_of_t:.3g} on 38 df, above the printed bound p < 0.05"]
    assert consistency_warnings(base | {"t": 1.0, "p_upper": p_of_t / 1.19}) == []  # within 20%
    assert consistency_warnings(base | {"t": 1.0, "p_upper": p_of_t / 1.21}) != []
    t = stats.t.isf(0.0011 / 2, 38)  # p 0.0011 against a bound of 0.0005: off by less than 0.001, not flagged
    assert consistency_warnings(base | {"t": t, "p_upper": 0.0005}) == []
    t = stats.t.isf(0.0016 / 2, 38)
    assert consistency_warnings(base | {"t": t, "p_upper": 0.0005}) != []


def test_ci_that_misses_the_mean_difference():
    from evsynth.effects import consistency_warnings

    base = flag_row(design="two_group", mean_treat=12.0, mean_ctrl=10.0, n_treat=20, n_ctrl=20)
    assert consistency_warnings(base | {"ci_low": 3.0, "ci_high": 5.0}) == [
        "the 95% CI (3, 5) does not contain the mean difference 2"]
    assert consistency_warnings(base | {"ci_low": -1.0, "ci_high": 1.5}) != []
    assert consistency_warnings(base | {"ci_low": 2.0, "ci_high": 5.0}) == []  # bounds included
    assert consistency_warnings(base | {"ci_low": -1.0, "ci_high": 2.0}) == []
    assert consistency_warnings(base | {"ci_low": 3.0}) == []  # one bound says nothing


def test_sd_change_against_sd_pre_sd_post_and_r():
    from evsynth.effects import consistency_warnings

    base = flag_row(design="pre_post", mean_pre=10.0, mean_post=12.0, n=30, sd_pre=3.0, sd_post=5.0)
    # sd_change^2 = 9 + 25 - 30 r with |r| <= 1: sd_change in [2, 8]
    assert consistency_warnings(base | {"sd_change": 1.0}) == [
        "sd_change = 1 is impossible with sd_pre = 3 and sd_post = 5 (it must lie between 2 and 8)"]
    assert consistency_warnings(base | {"sd_change": 8.5}) != []
    assert consistency_warnings(base | {"sd_change": 2.0}) == consistency_warnings(base | {"sd_change": 8.0}) == []
    # r = 0.5 gives sd_change sqrt(19) = 4.359; 10% of it is 0.436
    assert consistency_warnings(base | {"sd_change": 4.0, "r_prepost": 0.5}) == []
    assert consistency_warnings(base | {"sd_change": 4.8, "r_prepost": 0.5}) == []
    implied = (9 + 25 - 3.9**2) / 30
    assert consistency_warnings(base | {"sd_change": 3.9, "r_prepost": 0.5}) == [
        f"sd_change = 3.9 disagrees with sd_pre, sd_post and r_prepost = 0.5 (which give 4.36; implied r = {implied:.2f})"]
    assert consistency_warnings(base | {"sd_change": 4.85, "r_prepost": 0.5}) != []
    assert consistency_warnings(base | {"sd_change": 3.9}) == []  # no r on the row: nothing to compare


def test_rows_without_the_numbers_to_compare_carry_no_flag():
    from evsynth.effects import consistency_warnings

    contradictory = {"t": 10.0, "p": 0.5, "ci_low": 30.0, "ci_high": 50.0}
    assert consistency_warnings(flag_row(design="effect", **contradictory)) == []
    assert consistency_warnings(flag_row(design="two_group", mean_treat=1.0, **contradictory)) == []
    assert consistency_warnings(flag_row(design="pre_post", mean_pre=1.0, **contradictory)) == []
    no_n = flag_row(design="two_group", mean_treat=12.0, mean_ctrl=10.0, **contradictory)
    assert consistency_warnings(no_n) == []  # df unknown (no n)
    assert len(consistency_warnings(no_n, df=38)) == 2
    assert consistency_warnings(flag_row(design="two_group", mean_treat=math.inf, mean_ctrl=1.0, n_treat=5,
                                         n_ctrl=5, **contradictory)) == []


# ---- messages name the field a bad number came from; tables no model should pool are refused ------


def se_row(design, **fields):
    keys = ("sd_change", "sd_pre", "sd_post", "sd_treat", "sd_ctrl", "t", "ci_low", "p", "p_upper")
    return {k: None for k in keys} | {"design": design} | fields


@pytest.mark.parametrize("row,field", [
    (se_row("effect"), "sei"), (se_row("effect", ratio=1.5), "ci_low/ci_high"),
    (se_row("two_group", events_treat=3, sd_treat=1.0, sd_ctrl=1.0), "events_treat/events_ctrl"),
    (se_row("pre_post", sd_change=1.0, sd_pre=1.0, sd_post=1.0, t=2.0), "sd_change"),
    (se_row("pre_post", sd_pre=1.0, sd_post=1.0, t=2.0), "sd_pre/sd_post"),
    (se_row("pre_post", sd_pre=1.0, t=2.0), "t"),
    (se_row("two_group", sd_treat=1.0, sd_ctrl=1.0, t=2.0), "sd_treat/sd_ctrl"),
    (se_row("two_group", sd_change=1.0, sd_treat=1.0, ci_low=0.1, p=0.1), "ci_low"),
    (se_row("two_group", p=0.1, p_upper=0.05), "p"), (se_row("two_group", p_upper=0.05), "p_upper"),
    (se_row("two_group"), "n"),
])
def test_the_standard_error_field_named_in_messages(row, field):
    from evsynth.effects.table import _se_fields

    assert _se_fields(row) == field


def test_an_effect_that_overflows_names_the_mean_fields():
    rows = [two_group(n_treat=10, n_ctrl=10, mean_treat=1e308, mean_ctrl=-1e308, sd_treat=1.0, sd_ctrl=1.0)]
    with pytest.raises(EffectSizeError, match=r"study 's', field 'mean_treat/mean_ctrl': the effect size is not a "
                                              r"finite number \(yi = inf\)"):
        effects_of(rows, measure="MD")
    rows = [pre_post(n=10, mean_pre=-1e308, mean_post=1e308, sd_pre=1.0, sd_post=1.0)]
    with pytest.raises(EffectSizeError, match=r"field 'mean_pre/mean_post': the effect size is not a finite"):
        effects_of(rows, measure="MD")


def test_tables_no_model_should_pool_are_refused():
    from evsynth.effects import check_poolable

    table = pd.DataFrame({"study_id": ["a", "b"], "unit": ["ml", "g"]})
    assert check_poolable(table, "SMD") is table  # standardized: units may differ
    assert check_poolable(table.assign(unit=["ml", None]), "MD") is not None  # one known unit
    with pytest.raises(ValueError, match=r"MD pools raw differences, but the units differ \(g, ml\); use SMD or ROM"):
        check_poolable(table, "MD")
    with pytest.raises(ValueError, match="duplicate study_id in the effect table"):
        check_poolable(table.assign(study_id=["a", "a"]), "SMD")
    with pytest.raises(ValueError, match=r"no usable effect sizes: see evsynth.effects.not_used\(effects\) for why"):
        check_poolable(table.iloc[:0], "SMD")


def test_uncontrolled_rows_are_pre_post_or_versus_baseline():
    from evsynth.effects import uncontrolled

    table = pd.DataFrame({"design": ["pre_post", "effect", "effect", "two_group"],
                          "comparator": ["control", "Baseline", "control", "baseline"]})
    assert uncontrolled(table).tolist() == [True, True, False, True]


def test_one_sd_of_two_falls_back_to_the_statistics():
    # Cochrane Handbook 6.5.2.3 numbers: MD 3.8 with t = 2.78 on 45 df -> SE 3.8 / 2.78, whatever one SD says
    row = effects_of([two_group(n_treat=23, n_ctrl=24, mean_treat=13.8, mean_ctrl=10.0, sd_treat=50.0, t=2.78)],
                     measure="MD").iloc[0]
    assert row["se_route"] == "t_stat" and row["sei"] == pytest.approx(3.8 / 2.78, rel=1e-12)
    row = effects_of([pre_post(n=20, mean_pre=10.0, mean_post=13.8, sd_post=50.0, t=2.78)], measure="MD").iloc[0]
    assert row["se_route"] == "t_stat" and row["sei"] == pytest.approx(3.8 / 2.78, rel=1e-12)


@pytest.mark.parametrize("row,field", [
    (two_group(n_treat=10, n_ctrl=10, mean_treat=2.0, mean_ctrl=0.0, sd_treat=1.0, sd_ctrl=1.0), "mean_ctrl"),
    (two_group(n_treat=10, n_ctrl=10, mean_treat=0.0, mean_ctrl=2.0, sd_treat=1.0, sd_ctrl=1.0), "mean_treat"),
    (pre_post(n=10, mean_pre=0.0, mean_post=2.0, sd_pre=1.0, sd_post=1.0), "mean_pre"),
    (pre_post(n=10, mean_pre=2.0, mean_post=0.0, sd_pre=1.0, sd_post=1.0), "mean_post"),
])
def test_ratio_of_means_refuses_a_zero_mean_by_name(row, field):
    with pytest.raises(EffectSizeError, match=f"study 's', field '{field}': ratio of means needs positive means"):
        effects_of([row], measure="ROM")


@pytest.mark.parametrize("fields,field,why", [
    ({"t": 2.0}, "t", "the means are equal, so no standard error can be back-calculated from t"),
    ({"p": 0.04}, "p", "the means are equal, so no standard error can be back-calculated from a p-value"),
    ({"p_upper": 0.05}, "p_upper", "the means are equal, so no standard error can be back-calculated from a p-value"),
])
def test_equal_means_carry_no_standard_error_from_a_statistic(fields, field, why):
    with pytest.raises(EffectSizeError, match=f"study 's', field '{field}': {why}"):
        effects_of([two_group(n_treat=10, n_ctrl=10, mean_treat=5.0, mean_ctrl=5.0, **fields)], measure="MD")


def test_p_of_1_gives_no_standard_error_and_a_tiny_difference_still_does():
    with pytest.raises(EffectSizeError, match=r"study 's', field 'p': p = 1 gives t = 0, which carries no standard "
                                              r"error; report the SDs, t or the CI instead"):
        effects_of([two_group(n_treat=10, n_ctrl=10, mean_treat=6.0, mean_ctrl=5.0, p=1.0)], measure="MD")
    row = effects_of([two_group(n_treat=10, n_ctrl=10, mean_treat=6.0, mean_ctrl=5.0, p=0.5)], measure="MD").iloc[0]
    assert row["sei"] == pytest.approx(1.0 / stats.t.isf(0.25, 18), rel=1e-12)
    row = effects_of([two_group(n_treat=10, n_ctrl=10, mean_treat=6.0, mean_ctrl=5.0, t=2.0)], measure="MD").iloc[0]
    assert row["sei"] == pytest.approx(0.5, rel=1e-12)  # |MD| / |t|, MD = 1 exactly
    row = effects_of([two_group(n_treat=10, n_ctrl=10, mean_treat=6.0, mean_ctrl=5.0, p=0.04)], measure="MD").iloc[0]
    assert row["sei"] == pytest.approx(1.0 / stats.t.isf(0.02, 18), rel=1e-12)


# ---- what each effect-table row carries from its study row --------------------------------------------


def test_effect_rows_carry_the_study_fields_and_fill_the_rest():
    rows = [two_group(study_id="a", technique="breast care; oxytocin", n_treat=10, n_ctrl=12, mean_treat=5.0,
                      mean_ctrl=4.0, sd_treat=1.0, sd_ctrl=1.5, unit="ml", rob="high",
                      components="breast care; oxytocin", direction="lower", synthetic="true"),
            pre_post(study_id="b", n=10, mean_pre=4.0, mean_post=5.0, sd_change=1.0),
            dict(study_id="c", design="effect", measure="SMD", yi=0.4, sei=0.2, comparator="breast massage"),
            two_group(study_id="d", n_treat=10, n_ctrl=12, mean_treat=5.0, mean_ctrl=4.0,
                      unusable_reason="means only, no SD or statistic")]
    table = effects_of(rows)
    assert list(table.columns) == ["study_id", "technique", "comparator", "outcome", "unit", "design", "measure",
                                   "yi", "sei", "vi", "se_route", "n_total", "df", "sd_scale", "censored",
                                   "head_to_head", "used", "why_not", "synthetic", "rob", "components", "direction",
                                   "randomised", "sample_id", "test", "means", "r_implied", "warnings",
                                   "source_level"]
    a, b, c, d = (table.iloc[i] for i in range(4))
    assert (a.study_id, a.technique, a.comparator, a.outcome, a.unit, a.design, a.measure) == (
        "a", "breast care; oxytocin", "control", "milk volume", "ml", "two_group", "SMD")
    assert (a.rob, a.components, a.direction, a.synthetic, a.censored, a.head_to_head, a.warnings) == (
        "high", "breast care; oxytocin", "lower", True, False, False, "")
    assert (b.comparator, b.direction, b.synthetic, b.head_to_head) == ("baseline", "higher", False, False)
    assert pd.isna(b.rob) and pd.isna(b.components)
    assert (c.yi, c.sei, c.vi, c.se_route, c.used, c.head_to_head) == (0.4, 0.2, pytest.approx(0.04), "given", True, True)
    assert np.isnan(c.n_total) and np.isnan(c.df) and np.isnan(c.sd_scale) and c.why_not == ""
    assert (d.used, d.why_not, d.se_route) == (False, "not usable as reported: means only, no SD or statistic", "")
    assert np.isnan(d.yi) and np.isnan(d.sei) and np.isnan(d.vi)


def test_continuous_rows_in_a_binary_analysis_and_effects_on_another_scale_say_why():
    table = effects_of([two_group(study_id="a", n_treat=10, n_ctrl=10, mean_treat=5.0, mean_ctrl=4.0, sd_treat=1.0,
                                  sd_ctrl=1.0),
                        dict(study_id="b", design="effect", measure="MD", yi=0.4, sei=0.2)], measure="RR")
    assert table.why_not.tolist() == [
        "continuous outcome (means): RR needs 2x2 counts (events_treat, events_ctrl) or a reported ratio with its CI",
        "ready-made effect is on the MD scale, the analysis uses RR"]  # a yi + sei says its own scale
    table = effects_of([dict(study_id="b", design="effect", measure="MD", yi=0.4, sei=0.2)])
    assert table.why_not.tolist() == ["ready-made effect is on the MD scale, the analysis uses SMD"]


def test_rows_carry_their_consistency_flags_unless_unusable():
    contradictory = dict(n_treat=10, n_ctrl=10, mean_treat=5.0, mean_ctrl=4.0, sd_treat=1.0, sd_ctrl=1.0,
                         ci_low=3.0, ci_high=5.0)
    table = effects_of([two_group(study_id="a", **contradictory),
                        two_group(study_id="b", unusable_reason="figures unreadable", **contradictory)], measure="MD")
    assert table.warnings.tolist() == ["the 95% CI (3, 5) does not contain the mean difference 1", ""]


def test_numbers_that_overflow_are_refused_naming_the_field():
    # MD 1 with t = 1e-300 (SE 1e300, whose square overflows): refused as a t no source prints (issue 25)
    with pytest.raises((EffectSizeError, StudyDataError), match=r"study 's', field 't': .*below 1e-06"):
        effects_of([two_group(n_treat=10, n_ctrl=10, mean_treat=5.0, mean_ctrl=4.0, t=1e-300)], measure="MD")
    # a mean difference of 1e300 on t = 2: SE 5e299, whose square overflows
    with pytest.raises(EffectSizeError, match=r"study 's', field 't': the printed numbers give no finite effect size "
                                              r"or standard error \(.*\); check them"):
        effects_of([two_group(n_treat=10, n_ctrl=10, mean_treat=1e300, mean_ctrl=0.0, t=2.0)], measure="MD")


def test_no_continuity_correction_is_allowed():
    from evsynth.effects import Continuity

    assert Continuity(add=0.0).add == 0.0


def test_pre_post_flags_use_post_minus_pre_on_n_minus_1_df():
    from evsynth.effects import consistency_warnings

    pre = flag_row(design="pre_post", mean_pre=10.0, mean_post=12.0, n=3, p=0.001)
    t2 = stats.t.isf(0.0005, 2)  # 31.6 on 2 df; 636.6 on 1 df
    assert consistency_warnings(pre | {"t": t2}) == []
    assert consistency_warnings(pre | {"t": t2, "n": 11}, df=2) == []  # the df given wins
    assert consistency_warnings(pre | {"ci_low": 1.0, "ci_high": 3.0}) == []  # MD = 12 - 10 = 2
    assert consistency_warnings(pre | {"ci_low": 21.0, "ci_high": 23.0}) != []
    two = flag_row(design="pre_post", mean_pre=10.0, mean_post=12.0, n=2, ci_low=3.0, ci_high=5.0)
    assert consistency_warnings(two) == ["the 95% CI (3, 5) does not contain the mean difference 2"]  # 1 df is enough
    small = flag_row(design="pre_post", mean_pre=1.0, mean_post=1.2, n=30, sd_pre=0.3, sd_post=0.5, r_prepost=0.5)
    assert consistency_warnings(small | {"sd_change": 0.44}) == []  # r = 0.5 gives sqrt(0.19) = 0.436
    assert consistency_warnings(small | {"sd_change": 0.55}) != []
