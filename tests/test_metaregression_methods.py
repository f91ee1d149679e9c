"""Fixed-effects and DL meta-regression (and REML) on dat.bcg ~ ablat, with predictions at chosen
moderator values, against metafor 3.8.1 (tests/data/reference/staples_metafor.R)."""

import json

import numpy as np
import pandas as pd
import pytest

from evsynth.methods.frequentist import mixed_effects

from conftest import bcg_log_risk_ratios, reference_file

REF = json.loads(reference_file("reference/staples_metafor.json").read_text())["bcg_metareg"]
BCG = pd.read_csv(reference_file("bcg.csv"))
YI, VI = bcg_log_risk_ratios(BCG)
X = np.column_stack([np.ones(len(BCG)), BCG.ablat])


@pytest.mark.parametrize("method", ["FE", "DL", "REML"])
def test_meta_regression_matches_metafor(method):
    ref = REF[method]
    fit = mixed_effects(YI, VI, X, ["intrcpt", "ablat"], method=method)
    rel = 1e-10 if method != "REML" else 1e-8  # REML: metafor converged (threshold 1e-12)
    c = fit.coefficients
    np.testing.assert_allclose(c["estimate"], ref["b"], rtol=rel)
    np.testing.assert_allclose(c["se"], ref["se"], rtol=rel)
    np.testing.assert_allclose(c["ci_low"], ref["ci_lb"], rtol=rel)
    assert fit.method == method
    assert fit.tau2 == pytest.approx(ref["tau2"], rel=rel, abs=1e-14)
    assert (fit.QE, fit.QM) == pytest.approx((ref["QE"], ref["QM"]), rel=rel)
    assert (fit.I2, fit.H2) == pytest.approx((ref["I2"], ref["H2"]), rel=rel)
    if method == "FE":
        assert np.isnan(fit.R2) and np.isnan(fit.tau2_se)
    else:
        assert fit.R2 == pytest.approx(ref["R2"], rel=max(rel, 1e-9))
        assert fit.tau2_se == pytest.approx(ref["se_tau2"], rel=rel)


@pytest.mark.parametrize("method", ["FE", "DL", "REML"])
def test_predictions_at_chosen_moderator_values(method):
    # R: predict(rma(yi, vi, mods = ~ ablat, method = m), newmods = c(10, 30, 50))
    ref = REF[method]
    fit = mixed_effects(YI, VI, X, ["intrcpt", "ablat"], method=method)
    pred = fit.predict([[1, 10], [1, 30], [1, 50]])
    rel = 1e-10 if method != "REML" else 1e-8
    np.testing.assert_allclose(pred["pred"], ref["pred"], rtol=rel)
    np.testing.assert_allclose(pred["se"], ref["pred_se"], rtol=rel)
    np.testing.assert_allclose(pred["ci_low"], ref["pred_ci_lb"], rtol=rel)
    if method == "FE":
        assert pred["pi_low"].isna().all()  # metafor gives no prediction interval for a FE model
    else:
        np.testing.assert_allclose(pred["pi_low"], ref["pred_pi_lb"], rtol=rel)
        np.testing.assert_allclose(pred["pi_high"], ref["pred_pi_ub"], rtol=rel)
