"""evsynth.methods.tau2 against metafor 3.8.1 on dat.bcg (log RR): rma(method = DL, REML, ML, PM, EB,
SJ, HE, HS) and confint() (tests/data/reference/staples_metafor.R, converged with threshold and tol
1e-12; metafor's default stopping is compared at the looser tolerance it warrants)."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from evsynth.methods.frequentist import cochran_q
from evsynth.methods.tau2 import TAU2_METHODS, estimate_tau2, generalized_q, heterogeneity_ci, q_profile_tau2, rma

from conftest import bcg_log_risk_ratios, reference_file

REF = json.loads(reference_file("reference/staples_metafor.json").read_text())
YI, VI = bcg_log_risk_ratios(pd.read_csv(reference_file("bcg.csv")))


@pytest.mark.parametrize("method", TAU2_METHODS)
def test_estimators_match_metafor_converged(method):
    ref = REF["bcg_estimators"][method]["tight"]
    fit = rma(YI, VI, method=method)
    assert fit.method == method
    assert fit.tau2 == pytest.approx(ref["tau2"], rel=1e-8)
    assert fit.tau2_se == pytest.approx(ref["se_tau2"], rel=1e-7)
    assert fit.mu == pytest.approx(ref["b"], rel=1e-8)
    assert fit.se == pytest.approx(ref["se"], rel=1e-8)
    assert fit.I2 == pytest.approx(ref["I2"], rel=1e-8)
    assert fit.H2 == pytest.approx(ref["H2"], rel=1e-8)


@pytest.mark.parametrize("method", TAU2_METHODS)
def test_estimators_match_metafor_default_printout(method):
    ref = REF["bcg_estimators"][method]
    fit = rma(YI, VI, method=method)
    assert fit.tau2 == pytest.approx(ref["tau2"], rel=1e-4)  # metafor's default stops: PM tol 1.2e-4
    assert (fit.pi_low, fit.pi_high) == pytest.approx(ref["pi"], rel=1e-4)


def test_pm_and_eb_solve_the_same_equation():
    pm, eb = estimate_tau2(YI, VI, "PM")[0], estimate_tau2(YI, VI, "EB")[0]
    assert pm == eb
    assert generalized_q(YI, VI, pm) == pytest.approx(len(YI) - 1, rel=1e-10)


def test_fe_through_rma_is_the_common_effect_without_prediction_interval():
    ref = REF["bcg_estimators"]["FE"]
    fit = rma(YI, VI, method="FE")
    assert fit.mu == pytest.approx(ref["b"], rel=1e-10) and fit.tau2 == 0
    assert np.isnan(fit.pi_low)


@pytest.mark.parametrize("method", ["DL", "REML", "PM", "HS"])
def test_q_profile_confidence_intervals_match_metafor(method):
    ref = REF["bcg_estimators"][method]["tight"]
    table = heterogeneity_ci(YI, VI, method=method)
    assert table.loc["tau^2"].to_numpy() == pytest.approx(ref["ci_tau2"], rel=1e-8)
    assert table.loc["I^2 (%)"].to_numpy() == pytest.approx(ref["ci_I2"], rel=1e-8)
    assert table.loc["H^2"].to_numpy() == pytest.approx(ref["ci_H2"], rel=1e-8)
    assert table.loc["tau"].to_numpy() == pytest.approx(np.sqrt(ref["ci_tau2"]), rel=1e-8)
    default = REF["bcg_estimators"][method]
    assert table.loc["tau^2", ["ci_low", "ci_high"]].to_numpy() == pytest.approx(default["ci_tau2"][1:], rel=1e-3)


@pytest.mark.parametrize("case", [0, 1])
def test_q_profile_bounds_reach_zero_when_q_is_small(case):
    ref = REF["bcg_subset_qprofile"][case]
    rows = np.array(ref["rows"]) - 1
    yi, vi = YI[rows], VI[rows]
    low, high = q_profile_tau2(yi, vi)
    assert (low, high) == pytest.approx(ref["ci_tau2"][1:], rel=1e-8, abs=1e-12)
    q, df, _ = cochran_q(yi, vi)
    assert low == 0.0 and (high == 0.0) == (q < stats.chi2.ppf(0.025, df))
    table = heterogeneity_ci(yi, vi, method="PM")
    assert table.loc["I^2 (%)"].to_numpy() == pytest.approx(ref["ci_I2"], rel=1e-8, abs=1e-10)


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="tau\\^2 method 'XX' unknown"):
        estimate_tau2(YI, VI, "XX")
