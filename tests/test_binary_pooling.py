"""Mantel-Haenszel and Peto pooling against metafor 3.8.1's rma.mh / rma.peto on dat.bcg and the sparse
dat.nielweise2007 (zero cells, a double-zero study); tests/data/reference/staples_metafor.R."""

import json

import pandas as pd
import pytest

from evsynth.data.studies import load_studies
from evsynth.methods.binary_pooling import cochran_mantel_haenszel, mantel_haenszel, peto

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
