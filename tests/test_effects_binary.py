"""Binary outcomes (RR, OR, RD) from 2x2 counts and from reported ratios, against R's metafor 3.8-1.

Reference figures: tests/data/metafor_reference.R (Rscript, metafor 3.8-1 / metadat) wrote
tests/data/metafor_escalc.csv (escalc yi, vi per study) and tests/data/metafor_reference.out (the
printed rma fits quoted below). Printed figures are matched to half a unit in the last digit.
"""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evsynth.effects import Continuity, EffectSizeError, compute_effects, logit_to_smd, used_effects
from evsynth.methods.frequentist import reml
from evsynth.data.studies import StudyDataError, load_studies

from conftest import assert_all_printed

DATA = Path(__file__).parent / "data"
ESCALC = pd.read_csv(DATA / "metafor_escalc.csv")


def bcg_counts() -> pd.DataFrame:
    """metadat's dat.bcg as a study table of 2x2 counts (tpos/tneg vaccinated, cpos/cneg control)."""
    b = pd.read_csv(DATA / "bcg.csv")
    return load_studies(pd.DataFrame(dict(
        study_id=b.trial.astype(str), citation=b.author, year=b.year, source_level="secondary",
        design="two_group", technique="BCG", outcome="tuberculosis", events_treat=b.tpos,
        n_treat=b.tpos + b.tneg, events_ctrl=b.cpos, n_ctrl=b.cpos + b.cneg)))


def nielweise_counts() -> pd.DataFrame:
    """metadat's dat.nielweise2007 (catheter infections; zero cells, one double-zero study, Yucel)."""
    n = pd.read_csv(DATA / "nielweise2007.csv")
    return load_studies(pd.DataFrame(dict(
        study_id=n.study.astype(str), citation=n.author, year=n.year, source_level="secondary",
        design="two_group", technique="anti-infective catheter", outcome="CRBSI", events_treat=n.ai,
        n_treat=n.n1i, events_ctrl=n.ci, n_ctrl=n.n2i)))


DATASETS = {"bcg": bcg_counts, "nielweise2007": nielweise_counts}


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("measure", ["RR", "OR", "RD"])
def test_escalc_values_match_metafor(dataset, measure):
    # R: escalc(measure=m, ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg) and
    #    escalc(measure=m, ai=ai, n1i=n1i, ci=ci, n2i=n2i, data=dat.nielweise2007) (add=1/2, to="only0",
    #    drop00=FALSE: escalc's defaults, so the double-zero study is kept with 1/2 added)
    effects = compute_effects(DATASETS[dataset](), measure=measure, continuity=Continuity(drop00=False))
    ref = ESCALC[(ESCALC.dataset == dataset) & (ESCALC.measure == measure)]
    assert effects.used.all() and len(effects) == len(ref)
    np.testing.assert_allclose(effects.yi, ref.yi, rtol=0, atol=1e-6)
    np.testing.assert_allclose(effects.vi, ref.vi, rtol=0, atol=1e-6)
    np.testing.assert_allclose(effects.sei, np.sqrt(ref.vi), rtol=1e-5)
    assert set(effects.se_route) == {"counts"}
    assert (effects.n_total == DATASETS[dataset]().pipe(lambda t: t.n_treat + t.n_ctrl)).all()


# R: rma(measure=m, ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg)  (REML), print(digits=4)
BCG_REML = {
    "RR": {"mu": "-0.7145", "se": "0.1798", "ci_low": "-1.0669", "ci_high": "-0.3622", "tau2": "0.3132",
           "I2": "92.22", "H2": "12.86", "Q": "152.2330"},
    "OR": {"mu": "-0.7452", "se": "0.1860", "ci_low": "-1.1098", "ci_high": "-0.3806", "tau2": "0.3378",
           "tau2_se": "0.1784", "I2": "92.07", "H2": "12.61", "Q": "163.1649", "z": "-4.0057"},
    # RD converged tightly: control=list(threshold=1e-12). metafor's default stop (tau^2 change < 1e-5)
    # prints ci.ub -0.0039, H^2 1673.29, z -2.3247 from a tau^2 that is still moving in the 7th decimal.
    "RD": {"mu": "-0.0252", "se": "0.0108", "ci_low": "-0.0464", "ci_high": "-0.0040", "tau2": "0.0014",
           "tau2_se": "0.0006", "tau": "0.0377", "I2": "99.94", "H2": "1673.13", "Q": "276.4737", "z": "-2.3248"},
}
# R: rma(measure=m, ai=ai, n1i=n1i, ci=ci, n2i=n2i, data=dat.nielweise2007, drop00=TRUE,
#        control=list(threshold=1e-12))  (k = 17). Converged tightly because tau^2 is near 0 where the
# restricted likelihood is flat: metafor's default stop (tau^2 change < 1e-5) prints tau^2 0.0085 and
# I^2 0.89% for RR, and for RD a visibly unconverged fit (estimate -0.0190, tau^2 0.0002, I^2 47.88%).
NIELWEISE_REML_DROP00 = {
    "RR": {"mu": "-0.9295", "se": "0.2322", "ci_low": "-1.3846", "ci_high": "-0.4744", "tau2": "0.0086",
           "I2": "0.90", "H2": "1.01", "Q": "15.1903", "z": "-4.0027"},
    "OR": {"mu": "-0.9804", "se": "0.2435", "ci_low": "-1.4576", "ci_high": "-0.5032", "tau2": "0.0356",
           "tau2_se": "0.2992", "I2": "3.46", "H2": "1.04", "Q": "15.8119"},
    "RD": {"mu": "-0.0188", "se": "0.0054", "ci_low": "-0.0293", "ci_high": "-0.0083", "tau2": "0.0002",
           "I2": "46.19", "H2": "1.86", "Q": "38.1605", "z": "-3.5019"},
}


@pytest.mark.parametrize("measure", BCG_REML)
def test_bcg_counts_pooled_by_reml_match_metafor(measure):
    used = used_effects(compute_effects(bcg_counts(), measure=measure))
    assert_all_printed(reml(used.yi, used.vi), BCG_REML[measure])


@pytest.mark.parametrize("measure", NIELWEISE_REML_DROP00)
def test_sparse_data_defaults_match_metafor_add_to_drop00(measure):
    # the default for RR and OR; RD keeps double-zero studies unless asked (test_effects_conventions.py)
    effects = compute_effects(nielweise_counts(), measure=measure, continuity=Continuity(drop00=True))
    dropped = effects[~effects.used]
    assert dropped.study_id.tolist() == ["15"]  # Yucel 2004: 0/118 vs 0/105
    assert "no events" in dropped.why_not.iloc[0]
    used = used_effects(effects)
    assert len(used) == 17
    assert_all_printed(reml(used.yi, used.vi), NIELWEISE_REML_DROP00[measure])


def test_continuity_add_1_to_all_matches_metafor():
    # R: rma(measure="OR", ai=ai, n1i=n1i, ci=ci, n2i=n2i, data=dat.nielweise2007, add=1, to="all",
    #        control=list(threshold=1e-12))
    used = used_effects(compute_effects(nielweise_counts(), measure="OR",
                                        continuity=Continuity(add=1, to="all", drop00=False)))
    assert len(used) == 18
    assert_all_printed(reml(used.yi, used.vi), {"mu": "-0.7878", "se": "0.1931", "tau2": "0.0027",
                                                 "Q": "15.9124", "I2": "0.39"})


def test_only0_adds_only_to_studies_with_a_zero_cell():
    effects = compute_effects(nielweise_counts(), measure="OR")
    # Study 3 (Maki: 2/208 vs 9/195) has no zero cell: plain log odds ratio.
    maki = effects.set_index("study_id").loc["3"]
    assert maki.yi == pytest.approx(math.log(2 * 186 / (206 * 9)), abs=1e-12)
    # Study 1 (Bach: 0/116 vs 3/117) gets 1/2 in every cell.
    bach = effects.set_index("study_id").loc["1"]
    assert bach.yi == pytest.approx(math.log(0.5 * 114.5 / (116.5 * 3.5)), abs=1e-12)


def test_if0all_adds_to_every_study_when_one_has_a_zero():
    plain = compute_effects(nielweise_counts(), measure="OR", continuity=Continuity(to="if0all"))
    everywhere = compute_effects(nielweise_counts(), measure="OR", continuity=Continuity(to="all"))
    pd.testing.assert_series_equal(plain.yi, everywhere.yi)
    no_zero = compute_effects(bcg_counts(), measure="OR", continuity=Continuity(to="if0all"))
    reference = ESCALC[(ESCALC.dataset == "bcg") & (ESCALC.measure == "OR")]
    np.testing.assert_allclose(no_zero.yi, reference.yi, atol=1e-9)  # BCG has no zero cell: nothing added


def test_zero_cell_without_correction_is_refused():
    with pytest.raises(EffectSizeError, match="study '1'.*zero cell"):
        compute_effects(nielweise_counts(), measure="RR", continuity=Continuity(to="none"))


def test_bad_continuity_is_refused():
    with pytest.raises(EffectSizeError, match="only0"):
        Continuity(to="sometimes")
    with pytest.raises(EffectSizeError, match="add"):
        Continuity(add=-1)


def test_binary_rows_refused_for_a_continuous_measure_unless_asked():
    effects = compute_effects(bcg_counts(), measure="SMD")
    assert not effects.used.any()
    assert effects.why_not.str.contains("binary outcome").all()
    assert effects.why_not.str.contains("binary_to_smd").all()
    assert not compute_effects(bcg_counts(), measure="MD").used.any()


def test_logit_conversion_to_smd_records_its_route():
    log_or = compute_effects(bcg_counts(), measure="OR")
    smd = compute_effects(bcg_counts(), measure="SMD", binary_to_smd=True)
    assert smd.used.all() and set(smd.se_route) == {"counts_logit"}
    # Chinn (2000): d = ln(OR) sqrt(3) / pi, var(d) = var(ln OR) 3 / pi^2
    np.testing.assert_allclose(smd.yi, log_or.yi * math.sqrt(3) / math.pi, rtol=1e-12)
    np.testing.assert_allclose(smd.vi, log_or.vi * 3 / math.pi**2, rtol=1e-12)
    assert logit_to_smd(math.log(2), 1.0) == pytest.approx((0.3821521, 0.3039636), abs=1e-7)


def test_continuous_rows_are_not_used_in_a_binary_analysis(write_csv):
    table = load_studies(write_csv([dict(study_id="m", citation="c", source_level="abstract", design="two_group",
                                         technique="x", outcome="o", n_treat=10, n_ctrl=10, mean_treat=2,
                                         mean_ctrl=1, sd_treat=1, sd_ctrl=1)]))
    row = compute_effects(table, measure="RR").iloc[0]
    assert not row.used and "2x2 counts" in row.why_not


def ratio_row(**changes):
    row = dict(study_id="r1", citation="c", source_level="abstract", design="effect", technique="x",
               outcome="o", measure="RR", ratio=0.5, ci_low=0.25, ci_high=1.0)
    row.update(changes)
    return row


def test_reported_ratio_with_ci_gives_log_scale_and_se_from_the_ci(write_csv):
    row = compute_effects(load_studies(write_csv([ratio_row()])), measure="RR").iloc[0]
    assert row.used and row.se_route == "ci"
    assert row.yi == pytest.approx(math.log(0.5), abs=1e-12)
    assert row.sei == pytest.approx(math.log(4) / (2 * 1.959963984540054), abs=1e-12)
    assert row.vi == pytest.approx(row.sei**2, rel=1e-12)
    other = compute_effects(load_studies(write_csv([ratio_row()])), measure="OR").iloc[0]
    assert not other.used and other.why_not == "ready-made effect is on the RR scale, the analysis uses OR"


def test_reported_odds_ratio_converted_for_smd_only_when_asked(write_csv):
    table = load_studies(write_csv([ratio_row(measure="OR")]))
    assert not compute_effects(table, measure="SMD").used.iloc[0]
    row = compute_effects(table, measure="SMD", binary_to_smd=True).iloc[0]
    assert row.used and row.se_route == "ci_logit"
    assert row.yi == pytest.approx(math.log(0.5) * math.sqrt(3) / math.pi)
    # Chinn (2000): the variance scales by 3 / pi^2 with the estimate's square
    se_log = math.log(4) / (2 * 1.959963984540054)
    assert row.sei == pytest.approx(se_log * math.sqrt(3) / math.pi, rel=1e-12)
    assert row.vi == pytest.approx(se_log**2 * 3 / math.pi**2, rel=1e-12)


@pytest.mark.parametrize("changes, field, why", [
    (dict(ratio=1.5), "ratio", "inside its CI"),
    (dict(measure="SMD"), "measure", "RR or OR"),
    (dict(yi=0.1, sei=0.2), "yi", "not both"),
    (dict(ci_high=None), "ci_high", "required"),
])
def test_bad_ratio_rows_are_refused(write_csv, changes, field, why):
    with pytest.raises(StudyDataError, match=rf"study 'r1', field '{field}'.*{why}"):
        load_studies(write_csv([ratio_row(**changes)]))


def count_row(**changes):
    row = dict(study_id="b1", citation="c", source_level="abstract", design="two_group", technique="x",
               outcome="milk flowing", n_treat=16, n_ctrl=16, events_treat=15, events_ctrl=2)
    row.update(changes)
    return row


@pytest.mark.parametrize("changes, field, why", [
    (dict(events_treat=17), "events_treat", "exceed n_treat"),
    (dict(events_ctrl=None), "events_ctrl", "required"),
    (dict(mean_treat=1.0), "mean_treat", "counts .* or means"),
    (dict(events_treat=-1), "events_treat", "greater than or equal to 0"),
    (dict(design="pre_post", n=16, mean_pre=1, mean_post=2, sd_change=1), "events_treat", "paired"),
])
def test_bad_count_rows_are_refused(write_csv, changes, field, why):
    with pytest.raises(StudyDataError, match=rf"study 'b1', field '{field}'.*{why}"):
        load_studies(write_csv([count_row(**changes)]))


def test_pre_post_counts_with_an_unusable_reason_are_kept_as_not_used(write_csv):
    table = load_studies(write_csv([count_row(design="pre_post", n_treat=None, n_ctrl=None, events_ctrl=None,
                                              unusable_reason="paired counts not reported")]))
    row = compute_effects(table, measure="RR").iloc[0]
    assert not row.used and "paired counts" in row.why_not


def test_massage_style_counts_give_the_expected_log_risk_ratio(write_csv):
    # 15/16 vs 2/16 mothers with milk flowing: no zero cell, RR = (15/16) / (2/16) = 7.5.
    row = compute_effects(load_studies(write_csv([count_row()])), measure="RR").iloc[0]
    assert row.yi == pytest.approx(math.log(7.5))
    assert row.vi == pytest.approx(1 / 15 - 1 / 16 + 1 / 2 - 1 / 16)
    assert row.n_total == 32


def test_metafor_default_stop_reproduces_its_printed_sparse_rd_fit():
    # R: rma(measure="RD", ai=ai, n1i=n1i, ci=ci, n2i=n2i, data=dat.nielweise2007, drop00=TRUE) with
    # metafor's default control (stop when tau^2 changes by < 1e-5): estimate -0.0190, se 0.0055,
    # I^2 47.88%, z -3.4842 -- the same algorithm stopped early, not a different estimator.
    used = used_effects(compute_effects(nielweise_counts(), measure="RD", continuity=Continuity(drop00=True)))
    assert_all_printed(reml(used.yi, used.vi, threshold=1e-5),
                       {"mu": "-0.0190", "se": "0.0055", "I2": "47.88", "H2": "1.92", "z": "-3.4842",
                        "ci_low": "-0.0297", "ci_high": "-0.0083"})


def counts(rows) -> pd.DataFrame:
    """A study table of 2x2 counts: (events_treat, n_treat, events_ctrl, n_ctrl) per study, ids 1, 2, ..."""
    return load_studies(pd.DataFrame([dict(study_id=str(i + 1), citation="synthetic", source_level="synthetic",
                                           design="two_group", technique="t", outcome="o", events_treat=a,
                                           n_treat=n1, events_ctrl=c, n_ctrl=n2, synthetic=True)
                                      for i, (a, n1, c, n2) in enumerate(rows)]))


# metafor 3.8.1: escalc("RR", ai=c(10, 4), n1i=c(10, 10), ci=c(10, 10), n2i=c(10, 10)) (drop00=TRUE, add 1/2
# to only0): yi NA (events in every patient of both arms), then -0.847297860387, vi 0.135642135642
def test_all_events_in_both_arms_is_dropped_a_single_full_arm_is_corrected():
    effects = compute_effects(counts([(10, 10, 10, 10), (4, 10, 10, 10)]), measure="RR")
    assert effects.used.tolist() == [False, True]
    assert effects.loc[0, "why_not"] == ("no events (or all events) in both arms: the 2x2 table carries no "
                                         "information on a relative effect (metafor drop00)")
    assert (effects.loc[1, "yi"], effects.loc[1, "vi"]) == pytest.approx((-0.847297860387, 0.135642135642), rel=1e-10)


@pytest.mark.parametrize("cells", [(0, 10, 5, 10), (10, 10, 5, 10), (5, 10, 0, 10), (5, 10, 10, 10)])
def test_any_zero_cell_without_correction_is_refused_for_ratios(cells):
    with pytest.raises(EffectSizeError, match=r"study '1', field 'events_treat': a zero cell without continuity "
                                              r"correction gives an infinite OR; use add > 0 or to='only0'"):
        compute_effects(counts([cells]), measure="OR", continuity=Continuity(to="none"))


# metafor 3.8.1: escalc("RD", ai=c(0, 5, 3, 4), n1i=10, ci=c(2, 0, 4, 10), n2i=10, add=0, to="none"):
# yi -0.2 0.5 -0.1 -0.6, vi 0.016 0.025 0.045 0.024 (a zero cell leaves the RD finite)
def test_risk_difference_takes_zero_cells_uncorrected_like_metafor():
    effects = compute_effects(counts([(0, 10, 2, 10), (5, 10, 0, 10), (3, 10, 4, 10), (4, 10, 10, 10)]), measure="RD",
                              continuity=Continuity(to="none"))
    assert effects.yi.to_numpy() == pytest.approx([-0.2, 0.5, -0.1, -0.6], abs=1e-12)
    assert effects.vi.to_numpy() == pytest.approx([0.016, 0.025, 0.045, 0.024], abs=1e-12)
    with pytest.raises(EffectSizeError, match=r"study '1', field 'events_treat': the risk difference has zero "
                                              r"variance \(no events or all events in both arms\)"):
        compute_effects(counts([(0, 10, 0, 10)]), measure="RD", continuity=Continuity(to="none", drop00=False))


def test_binary_rows_for_a_continuous_measure_say_what_to_use():
    smd = compute_effects(counts([(3, 10, 4, 10)]), measure="SMD").loc[0, "why_not"]
    assert smd == ("binary outcome (2x2 counts): analyse with RR, OR, RD (or SMD by the logit conversion: "
                   "--binary-to-smd; in Python binary_to_smd=True), not SMD")
    assert compute_effects(counts([(3, 10, 4, 10)]), measure="MD").loc[0, "why_not"] == (
        "binary outcome (2x2 counts): analyse with RR, OR, RD, not MD")
