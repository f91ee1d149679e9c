"""evsynth.methods.frequentist against metafor's published BCG numbers (tests/data/reference_figures.md).

Tolerances are half a unit in the last printed digit of the reference, so a rounding-level
disagreement with metafor fails the test.
"""

import numpy as np
import pandas as pd
import pytest

from evsynth.methods.frequentist import (
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
    # metafor prints no prediction interval for a common-effect model (predict() gives pi = ci there)
    assert np.isnan(r.pi_low) and np.isnan(r.pi_high)


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


# metafor 3.8.1, dat <- escalc("RR", ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg), options(digits=12):
#   dl <- rma(yi, vi, data=dat, method="DL"); c(dl$tau2, dl$se.tau2, dl$QEp)
#     -> 0.308760262862 0.229869992511 1.99676459085e-26
#   dlk <- rma(yi, vi, data=dat, method="DL", test="knha"); c(b, se, zval, pval, ci.lb, ci.ub), predict(dlk) pi
#     -> -0.714117222073 0.180696628336 -3.95202294947 0.00192076676705 -1.10782135417 -0.320413089978
#        pi -1.98720696343 0.558972519284
#   fek <- rma(yi, vi, data=dat, method="FE", test="knha") (metafor warns: KH is not meant for FE models)
#     -> -0.430285163654 0.14424654798 -2.98298413155 0.0114222350401 -0.744571393027 -0.115998934281, tau2 0
#   leave1out(rma(yi, vi, data=dat, test="knha")) row 1: estimate, se, ci.lb, pval
#     -> -0.707083788031 0.194002739537 -1.13408093877 0.00385620583725
#   leave1out(rma(yi, vi, data=dat, method="DL")) row 1: estimate, se, tau2 -> -0.705125198417 0.184250067452 0.312171499041
def test_dersimonian_laird_tau2_se_and_knapp_hartung_match_metafor(bcg):
    yi, vi, _ = bcg
    r = dersimonian_laird(yi, vi)
    assert r.method == "DL" and r.knapp_hartung is False and r.k == 13
    assert r.tau2 == pytest.approx(0.308760262862, rel=1e-9)
    assert r.tau2_se == pytest.approx(0.229869992511, rel=1e-9)
    assert r.Q_p == pytest.approx(1.99676459085e-26, rel=1e-6)
    k = dersimonian_laird(yi, vi, knapp_hartung=True)
    assert k.knapp_hartung is True and k.tau2_se == r.tau2_se
    got = (k.mu, k.se, k.z, k.pval, k.ci_low, k.ci_high, k.pi_low, k.pi_high)
    assert got == pytest.approx((-0.714117222073, 0.180696628336, -3.95202294947, 0.00192076676705, -1.10782135417,
                                 -0.320413089978, -1.98720696343, 0.558972519284), rel=1e-8)


def test_common_effect_with_knapp_hartung_matches_metafor(bcg):
    yi, vi, _ = bcg
    r = common_effect(yi, vi, knapp_hartung=True)
    assert r.method == "FE" and r.knapp_hartung is True and r.tau2 == 0.0 and r.tau2_se == 0.0
    assert (r.mu, r.se, r.z, r.pval, r.ci_low, r.ci_high) == pytest.approx(
        (-0.430285163654, 0.14424654798, -2.98298413155, 0.0114222350401, -0.744571393027, -0.115998934281), rel=1e-8)
    assert reml(yi, vi).method == "REML"


def test_leave_one_out_keeps_method_and_knapp_hartung_and_numbers_studies_from_1(bcg):
    yi, vi, _ = bcg
    loo = leave_one_out(yi, vi, knapp_hartung=True)
    assert list(loo.index) == list(range(1, 14)) and loo.index.name == "omitted"
    assert loo.knapp_hartung.all() and (loo.method == "REML").all()
    assert (loo.loc[1, "mu"], loo.loc[1, "se"], loo.loc[1, "ci_low"], loo.loc[1, "pval"]) == pytest.approx(
        (-0.707083788031, 0.194002739537, -1.13408093877, 0.00385620583725), rel=1e-7)
    dl = leave_one_out(yi, vi, method="DL")
    assert (dl.loc[1, "mu"], dl.loc[1, "se"], dl.loc[1, "tau2"]) == pytest.approx(
        (-0.705125198417, 0.184250067452, 0.312171499041), rel=1e-9)


# metafor 3.8.1: rma(y, v, control=list(threshold=1e-12)) with y = c(0.10, 0.12, 0.08, 0.11, 0.09, 0.13),
# v = c(0.04, 0.05, 0.03, 0.06, 0.05, 0.04): tau2 0, se.tau2 0.0268606882577; the same with method="FE": I2 0.
# rma(c(0.1, 0.5), c(0.01, 0.02), control=list(threshold=1e-12)): b 0.2875, se 0.199608992783, tau2 0.065
HOMOGENEOUS = (np.array([0.10, 0.12, 0.08, 0.11, 0.09, 0.13]), np.array([0.04, 0.05, 0.03, 0.06, 0.05, 0.04]))


def test_reml_at_the_boundary_and_with_two_studies_match_metafor():
    r = reml(*HOMOGENEOUS)
    assert r.tau2 == 0.0 and r.tau2_se == pytest.approx(0.0268606882577, rel=1e-9)
    assert r.I2 == 0.0 and common_effect(*HOMOGENEOUS).I2 == 0.0  # Q < df: truncated at 0
    two = reml([0.1, 0.5], [0.01, 0.02])
    assert (two.mu, two.se, two.tau2) == pytest.approx((0.2875, 0.199608992783, 0.065), rel=1e-9)


# metafor 3.8.1: rma(c(.5, .5, .5), c(.25, .5, .125), method="FE"): QE 0, I2 0, H2 0;
# rma(<HOMOGENEOUS>, method="FE"): QE 0.04605357, I2 0, H2 0.009210714
def test_common_effect_i2_is_zero_when_q_is_zero():
    r = common_effect([0.5, 0.5, 0.5], [0.25, 0.5, 0.125])  # exact in binary: Q is exactly 0
    assert r.Q == 0.0 and r.I2 == 0.0 and r.H2 == 0.0
    r = common_effect(*HOMOGENEOUS)
    assert (r.Q, r.I2, r.H2) == pytest.approx((0.04605357, 0.0, 0.009210714), rel=1e-6, abs=1e-12)


def test_bad_input_is_refused_with_a_reason():
    with pytest.raises(ValueError, match=r"yi and vi differ in length \(3 vs 2\)"):
        reml([0.1, 0.2, 0.3], [0.1, 0.1])
    with pytest.raises(ValueError, match="need at least 2 studies"):
        reml([0.1], [0.1])
    for yi, vi in (([0.1, np.nan], [0.1, 0.1]), ([0.1, 0.2], [0.1, np.inf])):
        with pytest.raises(ValueError, match="yi and vi must be finite"):
            reml(yi, vi)
    with pytest.raises(ValueError, match=r"sampling variances vi must be > 0"):
        dersimonian_laird([0.1, 0.2], [0.1, 0.0])


# metafor 3.8.1, options(digits=13): rma(yi, vi, data=dat)$tau2 -> 0.3132433259809 (default stop, threshold
# 1e-5); with control=list(threshold=1e-12) -> 0.3132432581365
def test_reml_threshold_reaches_the_fisher_scoring(bcg):
    yi, vi, _ = bcg
    assert reml(yi, vi, threshold=1e-5).tau2 == pytest.approx(0.3132433259809, abs=1e-12)
    assert reml(yi, vi).tau2 == pytest.approx(0.3132432581365, abs=1e-12)


# k = 9 studies where Fisher scoring oscillates around the root without settling (metafor 3.8.1:
# rma(y, v, control=list(threshold=1e-12)) stops with "Fisher scoring algorithm did not converge").
OSCILLATING = (np.array([-0.396053, 0.186997, 0.370626, -0.246255, -0.101476, -0.272819, 0.283492, 0.045289, 0.427544]),
               np.array([0.145367, 0.248961, 0.207399, 0.252714, 0.229703, 0.210469, 0.274762, 0.248614, 0.061928]))


def restricted_loglik(t2, y, v):
    w = 1 / (v + t2)
    mu = w @ y / w.sum()
    return -0.5 * (np.sum(np.log(v + t2)) + np.log(w.sum()) + np.sum(w * (y - mu) ** 2))


def test_reml_where_fisher_scoring_oscillates_maximises_the_restricted_likelihood():
    from scipy import optimize
    y, v = OSCILLATING
    best = optimize.minimize_scalar(lambda t: -restricted_loglik(t, y, v), bounds=(0, 1), method="bounded",
                                    options={"xatol": 1e-12}).x  # 0.0053843154
    assert 0.0053 < best < 0.0054
    assert tau2_reml(y, v) == pytest.approx(best, abs=1e-8)
    assert reml(y, v).tau2 == pytest.approx(best, abs=1e-8)
    assert tau2_reml(y + 0, v, max_iter=2) == pytest.approx(best, abs=1e-8)  # bracketing straight away
    y0, v0 = HOMOGENEOUS
    assert tau2_reml(y0, v0, max_iter=0) == 0.0  # the score is negative at 0: the boundary


def test_bracketing_works_on_any_scale():
    # The same data in units 100 times larger: tau^2 10^4 times larger, the REML score 10^4 times smaller
    from scipy import optimize
    y, v = OSCILLATING[0] * 100, OSCILLATING[1] * 1e4
    best = optimize.minimize_scalar(lambda t: -restricted_loglik(t, y, v), bounds=(0, 1e4), method="bounded",
                                    options={"xatol": 1e-8}).x  # 53.843 (a flat maximum: x to ~1e-7 relative)
    assert tau2_reml(y, v, max_iter=2) == pytest.approx(best, rel=1e-6)
    assert tau2_reml(y, v) == pytest.approx(best, rel=1e-6)
    assert tau2_reml(y, v) == pytest.approx(1e4 * tau2_reml(*OSCILLATING), rel=1e-9)


def test_leave_one_out_labels_its_rows():
    yi, vi = bcg_log_risk_ratios(pd.read_csv(reference_file("bcg.csv")))
    labels = [f"trial {i}" for i in range(1, 14)]
    loo = leave_one_out(yi, vi, labels=labels)
    assert list(loo.index) == labels
    assert loo.loc["trial 8", "mu"] == pytest.approx(leave_one_out(yi, vi).loc[8, "mu"], rel=1e-12)


def test_bracket_grows_until_it_holds_the_root():
    # Two studies with equal variances: REML tau^2 = (y1 - y2)^2 / 2 - v in closed form (balanced design,
    # REML = the method of moments), here 49.99: twice the variance of yi, so the bracket must grow.
    assert tau2_reml([0.0, 10.0], [0.01, 0.01], max_iter=0) == pytest.approx(49.99, rel=1e-12)
    assert tau2_reml([0.0, 10.0], [0.01, 0.01]) == pytest.approx(49.99, rel=1e-12)
