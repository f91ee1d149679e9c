"""evsynth.frequentist against metafor's published BCG numbers (tests/data/reference_figures.md).

Tolerances are half a unit in the last printed digit of the reference, so a rounding-level
disagreement with metafor fails the test.
"""

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

from conftest import assert_all_printed, bcg_log_risk_ratios, reference_file

# metafor's printed output on dat.bcg (log risk ratios), tests/data/reference_figures.md
METAFOR_BCG = {
    "REML": (dict(), {"mu": "-0.7145", "se": "0.1798", "ci_low": "-1.0669", "ci_high": "-0.3622",
                      "z": "-3.9744", "tau2": "0.3132", "tau2_se": "0.1664", "tau": "0.5597", "I2": "92.22",
                      "H2": "12.86", "Q": "152.2330", "pi_low": "-1.87", "pi_high": "0.44"}),
    "Knapp-Hartung": (dict(knapp_hartung=True), {"mu": "-0.7145", "se": "0.1808", "z": "-3.9522",
                                                "ci_low": "-1.1084", "ci_high": "-0.3206"}),
}


@pytest.fixture(scope="module")
def bcg():
    d = pd.read_csv(reference_file("bcg.csv"))
    return (*bcg_log_risk_ratios(d), d.trial.to_numpy())


@pytest.mark.parametrize("name", METAFOR_BCG)
def test_reml_matches_metafor(bcg, name):
    yi, vi, _ = bcg
    options, printed = METAFOR_BCG[name]
    r = reml(yi, vi, **options)
    assert_all_printed(r, printed)
    assert r.Q_df == 12


def test_dersimonian_laird_matches_metafor(bcg):
    yi, vi, _ = bcg
    assert_all_printed(dersimonian_laird(yi, vi),
                       {"mu": "-0.7141", "ci_low": "-1.0644", "ci_high": "-0.3638", "tau2": "0.3088", "I2": "92.1173"})


def test_leave_one_out_trial_8(bcg):
    yi, vi, trial = bcg
    loo = leave_one_out(yi, vi, labels=trial)
    assert len(loo) == 13
    assert_all_printed(loo.loc[8], {"mu": "-0.7948", "se": "0.1799", "tau2": "0.2732"})


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


def test_knapp_hartung_p_value_on_k_minus_1_df_matches_metafor(bcg):
    # metafor 3.8.1: rma(yi, vi, data=escalc("RR", ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg),
    # test="knha"); c(zval, pval, dfs) -> -3.952239889678, 0.001920015085, 12
    yi, vi, _ = bcg
    r = reml(yi, vi, knapp_hartung=True)
    assert r.z == pytest.approx(-3.952239889678, abs=1e-6)
    assert r.pval == pytest.approx(0.001920015085, rel=1e-5)


def test_common_effect_heterogeneity_matches_metafor(bcg):
    # metafor 3.8.1: rma(yi, vi, data=<as above>, method="FE"); c(I2, H2, QE)
    # -> 92.11734685, 12.68608401, 152.23300808 (printed: I^2 92.12%, H^2 12.69)
    yi, vi, _ = bcg
    r = common_effect(yi, vi)
    assert r.I2 == pytest.approx(92.11734685, abs=1e-6)
    assert r.H2 == pytest.approx(12.68608401, abs=1e-6)
    assert r.Q == pytest.approx(152.23300808, abs=1e-6)
