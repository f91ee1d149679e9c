"""Effect-size conventions against metafor 3.8.1's escalc (tests/data/reference/staples_metafor.R):
to="if0all" with drop00=TRUE on dat.yusuf1985, double-zero studies under RD, SMCR with only the
baseline SD and r, and a ready-made log OR given as yi + sei."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from evsynth.data.studies import load_studies
from evsynth.effects import compute_effects, used_effects
from evsynth.effects.binary import Continuity
from evsynth.methods.frequentist import reml

from conftest import reference_file

YUSUF = pd.read_csv(reference_file("yusuf1985.csv"), dtype={"table": str, "id": str})
ESCALC = pd.read_csv(reference_file("reference/yusuf1985_escalc.csv"), dtype={"table": str, "id": str})
REF = json.loads(reference_file("reference/staples_metafor.json").read_text())


def yusuf_studies(table: str) -> pd.DataFrame:
    """dat.yusuf1985's trials of one table (its rows without counts left out: metafor gives them NA)."""
    d = YUSUF[(YUSUF.table == table) & YUSUF.ai.notna()]
    return load_studies(pd.DataFrame({
        "study_id": [f"{i} (row {j})" for i, j in zip(d.id, d.index)], "citation": "Yusuf et al. 1985 (metadat dat.yusuf1985)", "source_level": "synthetic",
        "design": "two_group", "technique": "beta blocker", "outcome": "o", "events_treat": d.ai.astype(int),
        "n_treat": d.n1i.astype(int), "events_ctrl": d.ci.astype(int), "n_ctrl": d.n2i.astype(int),
        "synthetic": True}))


def reference(table: str, measure: str) -> pd.DataFrame:
    ref = ESCALC[(ESCALC.table == table) & (ESCALC.measure == measure)]
    keep = YUSUF[YUSUF.table == table].ai.notna().to_numpy()
    return ref[keep].reset_index(drop=True)


TABLES = sorted(YUSUF.table.unique())


@pytest.mark.parametrize("measure", ["RR", "OR", "RD"])
@pytest.mark.parametrize("table", TABLES)
def test_if0all_with_drop00_drops_double_zero_studies_first(table, measure):
    # R: escalc(m, ai, n1i, ci, n2i, data = <table>, to = "if0all", drop00 = TRUE): a table whose only
    # zero cells are in double-zero studies gets no correction at all.
    effects = compute_effects(yusuf_studies(table), measure=measure,
                              continuity=Continuity(to="if0all", drop00=True))
    ref = reference(table, measure)
    assert effects.used.to_numpy().tolist() == ref.yi_if0all.notna().tolist()
    used = effects.used.to_numpy()
    np.testing.assert_allclose(effects.yi[used], ref.yi_if0all[used], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(effects.vi[used], ref.vi_if0all[used], rtol=1e-12)


@pytest.mark.parametrize("table", TABLES)
def test_risk_difference_keeps_double_zero_studies_like_escalc(table):
    # R: escalc("RD", ...) with its defaults (add 1/2 to="only0", drop00 = FALSE): every trial is kept.
    effects = compute_effects(yusuf_studies(table), measure="RD")
    ref = reference(table, "RD")
    assert effects.used.all() and effects.attrs["drop00"] is False
    np.testing.assert_allclose(effects.yi, ref.yi_default, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(effects.vi, ref.vi_default, rtol=1e-12)


@pytest.mark.parametrize("measure", ["RR", "OR"])
def test_ratios_still_drop_double_zero_studies_by_default(measure):
    effects = compute_effects(yusuf_studies("9"), measure=measure)
    ref = reference("9", measure)
    double_zero = ((YUSUF.table == "9") & YUSUF.ai.notna() & (YUSUF.ai == 0) & (YUSUF.ci == 0))
    assert (~effects.used).sum() == double_zero.sum() == 6
    assert effects.attrs["drop00"] is True
    used = effects.used.to_numpy()
    np.testing.assert_allclose(effects.yi[used], ref.yi_default[used], rtol=1e-12, atol=1e-14)


def test_nielweise_rd_keeps_the_double_zero_study_in_the_pooled_estimate():
    # R: rma(measure = "RD", ai, n1i, ci, n2i, data = dat.nielweise2007, control = list(threshold = 1e-12))
    # (escalc's drop00 = FALSE: k = 18)
    from test_effects_binary import nielweise_counts
    used = used_effects(compute_effects(nielweise_counts(), measure="RD"))
    assert len(used) == 18
    ref = REF["nielweise_rd_default"]
    fit = reml(used.yi, used.vi)
    assert fit.mu == pytest.approx(ref["b"], rel=1e-6)
    assert fit.tau2 == pytest.approx(ref["tau2"], rel=1e-5, abs=1e-12)


def _pre_post(**fields) -> pd.DataFrame:
    rows = [dict(study_id=f"s{i + 1}", citation="synthetic", source_level="synthetic", design="pre_post",
                 technique="t", outcome="o", synthetic=True, **{k: v[i] for k, v in fields.items()})
            for i in range(len(next(iter(fields.values()))))]
    return load_studies(pd.DataFrame(rows))


def test_smcr_needs_only_the_baseline_sd_and_r():
    # R: escalc("SMCR", m1i = post, m2i = pre, sd1i = baseline SD, ni, ri)
    ref = REF["smcr"]
    studies = _pre_post(mean_post=ref["m_post"], mean_pre=ref["m_pre"], sd_pre=ref["sd_pre"], n=ref["n"],
                        r_prepost=ref["r"])
    effects = compute_effects(studies, measure="SMD")
    assert effects.used.all()
    np.testing.assert_allclose(effects.yi, ref["yi"], rtol=1e-12)
    np.testing.assert_allclose(effects.vi, ref["vi"], rtol=1e-12)
    assert (effects.se_route == "sd_pre_r").all()


@pytest.mark.parametrize("measure", ["MD", "SMCC", "ROM"])
def test_baseline_sd_alone_is_not_enough_for_other_measures(measure):
    ref = REF["smcr"]
    studies = _pre_post(mean_post=ref["m_post"], mean_pre=ref["m_pre"], sd_pre=ref["sd_pre"], n=ref["n"],
                        r_prepost=ref["r"])
    effects = compute_effects(studies, measure=measure)
    assert not effects.used.any()
    assert effects.why_not.str.contains("only the baseline SD").all()


@pytest.mark.parametrize("measure", ["OR", "RR", "RD"])
def test_a_ready_made_log_ratio_as_yi_and_sei_is_taken(measure):
    studies = load_studies(pd.DataFrame([dict(study_id="a", citation="synthetic", source_level="synthetic",
                                              design="effect", technique="t", outcome="o", measure=measure,
                                              yi=math.log(0.7), sei=0.2, synthetic=True)]))
    effects = compute_effects(studies, measure=measure)
    assert effects.used.all() and effects.se_route.tolist() == ["given"]
    assert effects.yi.iloc[0] == pytest.approx(math.log(0.7)) and effects.vi.iloc[0] == pytest.approx(0.04)
    other = compute_effects(studies, measure="RR" if measure != "RR" else "OR")
    assert other.why_not.iloc[0] == (f"ready-made effect is on the {measure} scale, the analysis uses "
                                     f"{'RR' if measure != 'RR' else 'OR'}")


def test_reml_threshold_claim_at_the_boundary():
    # R: rma(y, v) (threshold 1e-5) vs rma(y, v, control = list(threshold = 1e-12)) on data whose REML
    # tau^2 is 0: metafor's default stops at a small positive tau^2, the converged fit is at 0; evsynth
    # returns the converged 0 with either threshold (its docstring says so, no longer that 1e-5
    # reproduces metafor's default output there).
    ref = REF["reml_boundary"]
    assert 1e-6 < ref["tau2_default"] < 1e-4 and ref["I2_default"] > 0.01
    assert ref["tau2_tight"] < 1e-12
    for threshold in (1e-5, 1e-12):
        fit = reml(ref["yi"], ref["vi"], threshold=threshold)
        assert fit.tau2 == 0.0 and fit.I2 == 0.0
        assert fit.mu == pytest.approx(ref["b_tight"], rel=1e-9)
