"""evsynth.frequentist against metafor's published BCG numbers (shared/reference/README.md).

Tolerances are half a unit in the last printed digit of the reference, so a rounding-level
disagreement with metafor fails the test.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evsynth.frequentist import (
    common_effect,
    dersimonian_laird,
    leave_one_out,
    reml,
    tau2_reml,
)

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


def _half_unit(printed: str) -> float:
    """Half a unit in the last printed digit of a reference value, e.g. "-0.7145" -> 5e-5."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return 0.5 * 10.0**-decimals


def assert_printed(value: float, printed: str):
    assert abs(value - float(printed)) <= _half_unit(printed) + 1e-12, (value, printed)


@pytest.fixture(scope="module")
def bcg():
    path = REFERENCE / "bcg.csv"
    if not path.exists():
        pytest.skip(f"reference data not found at {path} (expected ../shared/reference next to the repo)")
    d = pd.read_csv(path)
    # log risk ratio and its variance, formulas as in the reference README (metafor escalc "RR")
    yi = np.log(d.tpos / (d.tpos + d.tneg)) - np.log(d.cpos / (d.cpos + d.cneg))
    vi = 1 / d.tpos - 1 / (d.tpos + d.tneg) + 1 / d.cpos - 1 / (d.cpos + d.cneg)
    return yi.to_numpy(), vi.to_numpy(), d.trial.to_numpy()


def test_reml_matches_metafor(bcg):
    yi, vi, _ = bcg
    r = reml(yi, vi)
    assert_printed(r.mu, "-0.7145")
    assert_printed(r.se, "0.1798")
    assert_printed(r.ci_low, "-1.0669")
    assert_printed(r.ci_high, "-0.3622")
    assert_printed(r.z, "-3.9744")
    assert_printed(r.tau2, "0.3132")
    assert_printed(r.tau2_se, "0.1664")
    assert_printed(r.tau, "0.5597")
    assert_printed(r.I2, "92.22")
    assert_printed(r.H2, "12.86")
    assert_printed(r.Q, "152.2330")
    assert r.Q_df == 12
    assert_printed(r.pi_low, "-1.87")
    assert_printed(r.pi_high, "0.44")


def test_knapp_hartung_matches_metafor(bcg):
    yi, vi, _ = bcg
    r = reml(yi, vi, knapp_hartung=True)
    assert_printed(r.mu, "-0.7145")
    assert_printed(r.se, "0.1808")
    assert_printed(r.z, "-3.9522")
    assert_printed(r.ci_low, "-1.1084")
    assert_printed(r.ci_high, "-0.3206")


def test_dersimonian_laird_matches_metafor(bcg):
    yi, vi, _ = bcg
    r = dersimonian_laird(yi, vi)
    assert_printed(r.mu, "-0.7141")
    assert_printed(r.ci_low, "-1.0644")
    assert_printed(r.ci_high, "-0.3638")
    assert_printed(r.tau2, "0.3088")
    assert_printed(r.I2, "92.1173")


def test_leave_one_out_trial_8(bcg):
    yi, vi, trial = bcg
    loo = leave_one_out(yi, vi, labels=trial)
    assert len(loo) == 13
    assert_printed(loo.loc[8, "mu"], "-0.7948")
    assert_printed(loo.loc[8, "se"], "0.1799")
    assert_printed(loo.loc[8, "tau2"], "0.2732")


def test_reml_is_a_stationary_point_of_the_restricted_likelihood(bcg):
    # Independent of metafor: the REML tau^2 must maximise the restricted log-likelihood.
    yi, vi, _ = bcg

    def restricted_loglik(t2):
        w = 1 / (vi + t2)
        mu = np.sum(w * yi) / np.sum(w)
        return -0.5 * (np.sum(np.log(vi + t2)) + np.log(np.sum(w)) + np.sum(w * (yi - mu) ** 2))

    t2 = tau2_reml(yi, vi)
    assert restricted_loglik(t2) > restricted_loglik(t2 - 1e-3)
    assert restricted_loglik(t2) > restricted_loglik(t2 + 1e-3)


def test_common_effect_is_inverse_variance_mean(bcg):
    yi, vi, _ = bcg
    r = common_effect(yi, vi)
    w = 1 / vi
    assert r.mu == pytest.approx(np.sum(w * yi) / np.sum(w), rel=1e-12)
    assert r.se == pytest.approx(np.sum(w) ** -0.5, rel=1e-12)
    assert r.tau2 == 0.0
    assert (r.pi_low, r.pi_high) == (r.ci_low, r.ci_high)


def test_homogeneous_data_give_zero_tau2():
    yi = np.array([0.1, 0.1, 0.1, 0.1])
    vi = np.array([0.1, 0.2, 0.3, 0.4])
    assert reml(yi, vi).tau2 == 0.0
    assert dersimonian_laird(yi, vi).tau2 == 0.0
    assert reml(yi, vi).I2 == 0.0


def test_input_validation():
    with pytest.raises(ValueError):
        reml([0.1, 0.2], [0.1])
    with pytest.raises(ValueError):
        reml([0.1, 0.2], [0.1, 0.0])
    with pytest.raises(ValueError):
        reml([0.1], [0.1])
