"""Mantel-Haenszel and Peto pooling against metafor 3.8.1's rma.mh / rma.peto on dat.bcg and the sparse
dat.nielweise2007 (zero cells, a double-zero study); tests/data/reference/staples_metafor.R."""

import json

import numpy as np
import pandas as pd
import pytest

from evsynth.data.studies import load_studies
from evsynth.methods.binary_pooling import breslow_day_tarone, cochran_mantel_haenszel, mantel_haenszel, peto

from conftest import reference_file

REF = json.loads(reference_file("reference/staples_metafor.json").read_text())


def bcg() -> pd.DataFrame:
    d = pd.read_csv(reference_file("bcg.csv"))
    return pd.DataFrame({"study_id": d.trial.astype(str), "events_treat": d.tpos, "n_treat": d.tpos + d.tneg,
                         "events_ctrl": d.cpos, "n_ctrl": d.cpos + d.cneg})


def nielweise() -> pd.DataFrame:
    from test_effects_binary import nielweise_counts
    return nielweise_counts()


def fit(data, method):
    return peto(data) if method == "PETO" else mantel_haenszel(data, method)


@pytest.mark.parametrize("method", ["RR", "OR", "RD", "PETO"])
def test_bcg_matches_rma_mh_and_rma_peto(method):
    ref = REF["bcg_mh"][method]
    r = fit(bcg(), method)
    got = (r.mu, r.se, r.z, r.ci_low, r.ci_high, r.Q, r.I2, r.H2)
    want = (ref["b"], ref["se"], ref["zval"], ref["ci_lb"], ref["ci_ub"], ref["QE"], ref["I2"], ref["H2"])
    assert got == pytest.approx(want, rel=1e-10)
    assert r.pval == pytest.approx(ref["pval"], rel=1e-7)
    assert r.Q_p == pytest.approx(ref["QEp"], rel=1e-7)
    assert r.k == ref["k"] and r.tau2 == 0.0
    assert pd.isna(r.pi_low)  # a common-effect method: no prediction interval


def test_bcg_cochran_mantel_haenszel_test():
    ref = REF["bcg_mh"]["OR"]
    tests = cochran_mantel_haenszel(bcg())  # metafor's default correct = TRUE
    assert tests["cochran"] == pytest.approx((ref["CO"], ref["COp"]), rel=1e-9)
    assert tests["mantel_haenszel"] == pytest.approx((ref["MH"], ref["MHp"]), rel=1e-9)
    uncorrected = cochran_mantel_haenszel(bcg(), correct=False)
    assert uncorrected["cochran"][0] > tests["cochran"][0]


@pytest.mark.parametrize("method", ["RR", "OR", "RD", "PETO"])
def test_sparse_tables_with_zero_cells_match_metafor(method):
    ref = REF["nielweise_mh"][method]
    r = fit(nielweise(), method)
    assert (r.mu, r.se, r.Q, r.I2) == pytest.approx((ref["b"], ref["se"], ref["QE"], ref["I2"]), rel=1e-10)
    assert r.k == ref["k"] == 18 and r.Q_df == ref["k_yi"] - 1  # the double-zero study is left out of Q only
    if method == "OR":
        tests = cochran_mantel_haenszel(nielweise())
        assert tests["mantel_haenszel"][0] == pytest.approx(ref["MH"], rel=1e-10)
        assert tests["cochran"][0] == pytest.approx(ref["CO"], rel=1e-10)


def test_bad_counts_are_refused_by_study_and_field():
    data = bcg()
    data.loc[2, "events_treat"] = 1000
    with pytest.raises(ValueError, match="study '3', field 'events_treat': more events than participants"):
        mantel_haenszel(data, "RR")
    with pytest.raises(ValueError, match="measure 'SMD' unknown"):
        mantel_haenszel(bcg(), "SMD")
    with pytest.raises(ValueError, match="columns n_ctrl missing"):
        peto(bcg().drop(columns="n_ctrl"))


def test_study_table_from_the_loader_is_taken():
    studies = load_studies(reference_file("bcg.csv").parents[2] / "studies" / "bcg.csv",
                           extra_columns=["ablat", "alloc"])
    assert mantel_haenszel(studies, "RR").mu == pytest.approx(REF["bcg_mh"]["RR"]["b"], rel=1e-10)


TARONE = json.loads(reference_file("reference/breslow_day_tarone.json").read_text())  # breslow_day_tarone.R


@pytest.mark.parametrize("name, data", [("bcg", bcg), ("nielweise", nielweise)])
def test_breslow_day_and_tarone_match_rma_mh(name, data):
    ref = TARONE[name]
    tests = breslow_day_tarone(data())
    assert tests["breslow_day"] == pytest.approx((ref["BD"], ref["BDp"], ref["k_pos"] - 1), rel=1e-9)
    assert tests["tarone"] == pytest.approx((ref["TA"], ref["TAp"], ref["k_pos"] - 1), rel=1e-9)
    assert REF["bcg_mh"]["OR"]["TA"] == pytest.approx(TARONE["bcg"]["TA"], rel=1e-12)  # the older reference agrees


def test_tarone_with_one_table_has_no_p_and_is_reported_only_with_two():
    ref = TARONE["bcg_one"]
    stat, p, df = breslow_day_tarone(bcg().iloc[:1])["tarone"]
    assert (stat, df) == (pytest.approx(ref["TA"], abs=1e-12), 0) and np.isnan(p) and ref["TAp"] is None
    from evsynth.methods.classical import binary_table

    assert "Tarone" not in binary_table(bcg().iloc[:1]).loc["MH OR", "note"]
    note = binary_table(bcg()).loc["MH OR", "note"]
    assert f"Tarone's test of one OR: chi2 {TARONE['bcg']['TA']:.2f} on 12 df" in note


def test_tarone_is_zero_for_tables_that_share_one_odds_ratio_exactly():
    # two tables with OR exactly 2 each (a d / b c = 2): MH OR is 2, expected = observed, BD = TA = 0
    tables = pd.DataFrame({"study_id": ["x", "y"], "events_treat": [20, 10], "n_treat": [40, 40],
                           "events_ctrl": [10, 4], "n_ctrl": [30, 28]})  # x: 20*20/(20*10) = 2; y: 10*24/(30*4) = 2
    for stat, p, df in breslow_day_tarone(tables).values():
        assert stat == pytest.approx(0, abs=1e-20) and p == pytest.approx(1) and df == 1
