"""Frequentist meta-regression (REML mixed-effects, Knapp-Hartung) against R's metafor 3.8-1, and on
simulated data with known truth.

Reference: tests/data/metafor_reference.R -> tests/data/metafor_reference.out, with
dat <- escalc(measure="RR", ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg). Printed figures are
matched to half a unit in the last printed digit.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evsynth.effects import compute_effects
from evsynth.methods.frequentist import meta_regression, mixed_effects, reml, tau2_reml, typical_variance
from evsynth.model.moderators import ModeratorError

from conftest import assert_all_printed, assert_printed

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def bcg():
    """dat.bcg log risk ratios (escalc "RR") with the trial columns as moderators."""
    b = pd.read_csv(DATA / "bcg.csv")
    yi = np.log(b.tpos / (b.tpos + b.tneg)) - np.log(b.cpos / (b.cpos + b.cneg))
    vi = 1 / b.tpos - 1 / (b.tpos + b.tneg) + 1 / b.cpos - 1 / (b.cpos + b.cneg)
    return b.assign(study_id=b.trial.astype(str), yi=yi, vi=vi)


def coef(fit, term, printed: dict):
    row = fit.coefficients.loc[term]
    for column, text in printed.items():
        assert_printed(row[column], text)


# Each fit twice: metafor's default output (its Fisher scoring stops when tau^2 changes by < 1e-5;
# threshold=1e-5 here runs the same algorithm from the same start) and converged tightly
# (control=list(threshold=1e-12) in R, our default). Both printed in tests/data/metafor_reference.out.
ABLAT = {  # rma(yi, vi, mods = ~ ablat, data=dat)
    1e-5: ({"estimate": "0.2515", "se": "0.2491", "statistic": "1.0095", "pval": "0.3127", "ci_low": "-0.2368",
            "ci_high": "0.7397"},
           {"estimate": "-0.0291", "se": "0.0072", "statistic": "-4.0444", "ci_low": "-0.0432", "ci_high": "-0.0150"},
           {"tau2": "0.0764", "tau2_se": "0.0591", "tau": "0.2763", "I2": "68.39", "H2": "3.16", "R2": "75.62",
            "QE": "30.7331", "QE_p": "0.0012", "QM": "16.3571"}),
    1e-12: ({"estimate": "0.2515", "se": "0.2491", "statistic": "1.0095", "pval": "0.3127", "ci_low": "-0.2367",
             "ci_high": "0.7397"},
            {"estimate": "-0.0291", "se": "0.0072", "statistic": "-4.0445", "ci_low": "-0.0432", "ci_high": "-0.0150"},
            {"tau2": "0.0763", "tau2_se": "0.0590", "I2": "68.39", "H2": "3.16", "R2": "75.63", "QE": "30.7331",
             "QE_p": "0.0012", "QM": "16.3582"}),
}
ABLAT_KNHA = {  # rma(yi, vi, mods = ~ ablat, data=dat, test="knha")
    1e-5: ({"estimate": "0.2515", "se": "0.2839", "statistic": "0.8857", "pval": "0.3948", "ci_low": "-0.3735",
            "ci_high": "0.8764"},
           {"estimate": "-0.0291", "se": "0.0082", "statistic": "-3.5483", "pval": "0.0046", "ci_low": "-0.0472",
            "ci_high": "-0.0111"},
           {"QM": "12.5905", "QM_p": "0.0046", "tau2": "0.0764", "R2": "75.62"}),
    1e-12: ({"estimate": "0.2515", "se": "0.2839", "statistic": "0.8857", "pval": "0.3947", "ci_low": "-0.3734",
             "ci_high": "0.8764"},
            {"estimate": "-0.0291", "se": "0.0082", "statistic": "-3.5484", "pval": "0.0046", "ci_low": "-0.0472",
             "ci_high": "-0.0111"},
            {"QM": "12.5910", "QM_p": "0.0046", "tau2": "0.0763", "R2": "75.63"}),
}


@pytest.mark.parametrize("threshold", [1e-5, 1e-12])
def test_ablat_matches_metafor(bcg, threshold):
    fit = meta_regression(bcg, "~ ablat", threshold=threshold)
    assert list(fit.coefficients.index) == ["intrcpt", "ablat"]
    intercept, slope, model = ABLAT[threshold]
    coef(fit, "intrcpt", intercept)
    coef(fit, "ablat", slope)
    assert_all_printed(fit, model)
    assert (fit.QE_df, fit.QM_df, fit.k) == (11, 1, 13) and np.isinf(fit.df)


@pytest.mark.parametrize("threshold", [1e-5, 1e-12])
def test_ablat_knapp_hartung_matches_metafor(bcg, threshold):
    fit = meta_regression(bcg, ["ablat"], knapp_hartung=True, threshold=threshold)
    intercept, slope, model = ABLAT_KNHA[threshold]
    coef(fit, "intrcpt", intercept)
    coef(fit, "ablat", slope)
    assert_all_printed(fit, model)
    assert fit.df == 11


def test_default_stop_reproduces_metafor_to_twelve_digits(bcg):
    # R: print(rma(yi, vi, mods = ~ ablat, data=dat)$tau2, digits=12) -> 0.0763546947057 (default control);
    #    with control=list(threshold=1e-12) -> 0.0763479639559
    X = np.column_stack([np.ones(len(bcg)), bcg.ablat])
    assert tau2_reml(bcg.yi, bcg.vi, X, threshold=1e-5) == pytest.approx(0.0763546947057, abs=1e-12)
    assert tau2_reml(bcg.yi, bcg.vi, X) == pytest.approx(0.0763479639559, abs=1e-12)


def test_two_moderators_match_metafor(bcg):
    # rma(yi, vi, mods = ~ ablat + year, data=dat, control=list(threshold=1e-12))
    fit = meta_regression(bcg, "~ ablat + year")
    coef(fit, "intrcpt", {"estimate": "-3.5454", "se": "29.0956", "ci_low": "-60.5717", "ci_high": "53.4810"})
    coef(fit, "ablat", {"estimate": "-0.0280", "se": "0.0102", "statistic": "-2.7371", "pval": "0.0062"})
    coef(fit, "year", {"estimate": "0.0019", "se": "0.0147", "statistic": "0.1299", "pval": "0.8966"})
    assert_all_printed(fit, {"tau2": "0.1108", "tau2_se": "0.0845", "I2": "71.98", "H2": "3.57", "R2": "64.63",
                             "QE": "28.3251", "QM": "12.2045", "QM_p": "0.0022"})


def test_categorical_moderator_matches_metafor(bcg):
    # rma(yi, vi, mods = ~ factor(alloc), data=dat) (same digits with either threshold; also
    # tests/data/reference_figures.md)
    fit = meta_regression(bcg, "~ C(alloc)")
    coef(fit, "intrcpt", {"estimate": "-0.5180", "se": "0.4412", "statistic": "-1.1740"})
    coef(fit, "C(alloc)[T.random]", {"estimate": "-0.4478", "se": "0.5158", "pval": "0.3853"})
    coef(fit, "C(alloc)[T.systematic]", {"estimate": "0.0890", "se": "0.5600", "ci_high": "1.1867"})
    assert_all_printed(fit, {"tau2": "0.3615", "I2": "88.77", "H2": "8.91", "R2": "0.00", "QE": "132.3676",
                             "QM": "1.7675", "QM_p": "0.4132"})
    assert fit.QM_df == 2


def test_intercept_only_is_the_random_effects_model(bcg):
    X = np.ones((len(bcg), 1))
    for kh in (False, True):
        fit, pooled = mixed_effects(bcg.yi, bcg.vi, X, ["intrcpt"], knapp_hartung=kh), reml(bcg.yi, bcg.vi, kh)
        assert fit.coefficients.loc["intrcpt", "estimate"] == pytest.approx(pooled.mu, abs=1e-12)
        assert fit.coefficients.loc["intrcpt", "se"] == pytest.approx(pooled.se, abs=1e-12)
        assert (fit.tau2, fit.I2, fit.H2, fit.QE) == pytest.approx((pooled.tau2, pooled.I2, pooled.H2, pooled.Q))
        assert np.isnan(fit.R2) and fit.QM_df == 0 and np.isnan(fit.QM) and np.isnan(fit.QM_p)  # nothing to test


def test_typical_variance_reduces_to_higgins_thompson(bcg):
    w = 1 / bcg.vi.to_numpy()
    k = len(w)
    assert typical_variance(bcg.vi) == pytest.approx((k - 1) * w.sum() / (w.sum() ** 2 - (w**2).sum()), rel=1e-12)


def test_reml_tau2_is_a_stationary_point_of_the_restricted_likelihood(bcg):
    # Independent of metafor: the restricted log-likelihood of a meta-regression peaks at tau2_reml.
    y, v = bcg.yi.to_numpy(), bcg.vi.to_numpy()
    X = np.column_stack([np.ones_like(y), bcg.ablat])

    def loglik(t2):
        W = np.diag(1 / (v + t2))
        b = np.linalg.solve(X.T @ W @ X, X.T @ W @ y)
        r = y - X @ b
        return -0.5 * (np.sum(np.log(v + t2)) + np.linalg.slogdet(X.T @ W @ X)[1] + r @ W @ r)

    t2 = tau2_reml(y, v, X)
    assert loglik(t2) > max(loglik(t2 - 1e-4), loglik(t2 + 1e-4))


def test_prediction_at_moderator_values(bcg):
    # predict(rma(yi, vi, mods = ~ ablat, data=dat), newmods = 0) gives the intercept and its CI
    fit = meta_regression(bcg, "~ ablat")
    pred = fit.predict([[1.0, 0.0], [1.0, 40.0]])
    assert pred.pred.iloc[0] == pytest.approx(fit.coefficients.loc["intrcpt", "estimate"])
    assert pred.ci_low.iloc[0] == pytest.approx(fit.coefficients.loc["intrcpt", "ci_low"])
    assert (pred.pi_low < pred.ci_low).all() and (pred.pi_high > pred.ci_high).all()


def test_missing_moderator_names_the_column(bcg):
    with pytest.raises(ModeratorError, match="'latitude'"):
        meta_regression(bcg, "~ latitude")


def test_recovers_known_slope_and_tau_in_simulation():
    # Known truth: yi = 0.2 + 0.5 x + u + e, u ~ N(0, 0.1^2). Over 300 replicates the REML slope is
    # unbiased, its z-based 95% CI covers the truth at about the nominal rate, and tau^2 is recovered.
    rng = np.random.default_rng(12)
    k, beta, tau2 = 40, np.array([0.2, 0.5]), 0.01
    slopes, covered, tau2s = [], [], []
    for _ in range(300):
        x = rng.uniform(-1, 1, k)
        vi = rng.uniform(0.01, 0.05, k)
        X = np.column_stack([np.ones(k), x])
        yi = X @ beta + rng.normal(0, np.sqrt(tau2), k) + rng.normal(0, np.sqrt(vi))
        fit = mixed_effects(yi, vi, X, ["intrcpt", "x"])
        row = fit.coefficients.loc["x"]
        slopes.append(row.estimate)
        covered.append(row.ci_low <= beta[1] <= row.ci_high)
        tau2s.append(fit.tau2)
    assert np.mean(slopes) == pytest.approx(0.5, abs=0.01)
    assert 0.91 <= np.mean(covered) <= 0.98
    assert np.mean(tau2s) == pytest.approx(tau2, abs=0.003)


def test_binary_counts_feed_the_meta_regression(bcg):
    from test_effects_binary import bcg_counts

    effects = compute_effects(bcg_counts(), measure="RR").assign(ablat=bcg.ablat.to_numpy())
    fit = meta_regression(effects, "~ ablat")
    coef(fit, "ablat", {"estimate": "-0.0291", "se": "0.0072"})


# metafor 3.8.1, options(digits=12): m <- rma(yi, vi, mods = ~ ablat, data=dat); predict(m, newmods=c(10, 50))
#   pred -0.0395523149059 -1.20361875203; se 0.186612890272 0.171648839696;
#   ci -0.40530685889 -1.54004429582 / 0.326202229079 -0.867193208234; pi -0.693073394844 -1.8411887968 /
#   0.613968765032 -0.566048707251. With test="knha": se 0.212702629736 0.195646504061; ci -0.507707646468
#   -1.63423380409 / 0.428603016656 -0.773003699964; pi -0.807052924666 -1.94881476287 / 0.727948294854
#   -0.458422741184; QM 12.5905455261 (F), QMp 0.00456554558896, QMdf 1 11
PREDICT = {False: {"pred": (-0.0395523149059, -1.20361875203), "se": (0.186612890272, 0.171648839696),
                   "ci_low": (-0.40530685889, -1.54004429582), "ci_high": (0.326202229079, -0.867193208234),
                   "pi_low": (-0.693073394844, -1.8411887968), "pi_high": (0.613968765032, -0.566048707251)},
           True: {"pred": (-0.0395523149059, -1.20361875203), "se": (0.212702629736, 0.195646504061),
                  "ci_low": (-0.507707646468, -1.63423380409), "ci_high": (0.428603016656, -0.773003699964),
                  "pi_low": (-0.807052924666, -1.94881476287), "pi_high": (0.727948294854, -0.458422741184)}}


@pytest.mark.parametrize("knha", [False, True])
def test_predict_matches_metafor(bcg, knha):
    fit = meta_regression(bcg, "~ ablat", knapp_hartung=knha, threshold=1e-5)  # metafor's default stop
    assert fit.knapp_hartung is knha
    pred = fit.predict([[1, 10], [1, 50]])  # integers: taken as floats
    assert list(pred.columns) == list(PREDICT[knha])
    for column, expected in PREDICT[knha].items():
        assert pred[column].to_numpy() == pytest.approx(expected, rel=1e-6), column
    if knha:
        assert (fit.QM, fit.QM_p, fit.QM_df, fit.df) == pytest.approx((12.5905455261, 0.00456554558896, 1, 11), rel=1e-6)


# metafor 3.8.1: rma(yi, vi, mods = ~ 0 + factor(alloc), data=dat, control=list(threshold=1e-12)):
#   QM 15.9841274204 on 3 df, QMp 0.001142512901, b -0.517955777155 -0.965774178546 -0.428917560924, no R2;
#   with test="knha": QM 5.82521356782 (F on 3 and 10 df), QMp 0.0144209630318
def test_model_without_intercept_tests_every_coefficient_like_metafor(bcg):
    X = np.column_stack([(bcg.alloc == a).to_numpy(float) for a in ("alternate", "random", "systematic")])
    fit = mixed_effects(bcg.yi, bcg.vi, X)
    assert list(fit.coefficients.index) == ["X0", "X1", "X2"] and fit.coefficients.index.name == "term"
    assert fit.coefficients["estimate"].to_numpy() == pytest.approx(
        [-0.517955777155, -0.965774178546, -0.428917560924], rel=1e-8)
    assert (fit.QM, fit.QM_df, fit.QM_p) == pytest.approx((15.9841274204, 3, 0.001142512901), rel=1e-8)
    assert np.isnan(fit.R2) and fit.knapp_hartung is False
    knha = mixed_effects(bcg.yi, bcg.vi, X, knapp_hartung=True)
    assert (knha.QM, knha.QM_df, knha.QM_p, knha.df) == pytest.approx((5.82521356782, 3, 0.0144209630318, 10), rel=1e-8)


# metafor 3.8.1: rma(y, v, mods = ~ x, control=list(threshold=1e-12)) on y = c(0.10, 0.12, 0.08, 0.11, 0.09,
# 0.13), v = c(0.04, 0.05, 0.03, 0.06, 0.05, 0.04), x = 1:6: tau2 0, R2 0 (no heterogeneity to explain)
def test_pseudo_r2_is_zero_without_heterogeneity_like_metafor():
    y, v = [0.10, 0.12, 0.08, 0.11, 0.09, 0.13], [0.04, 0.05, 0.03, 0.06, 0.05, 0.04]
    fit = mixed_effects(y, v, np.column_stack([np.ones(6), np.arange(1, 7)]), ["intrcpt", "x"])
    assert fit.tau2 == 0.0 and fit.R2 == 0.0


def test_design_matrix_is_checked(bcg):
    with pytest.raises(ValueError, match=r"moderator matrix X must have one row per study \(13\), not shape \(12, 2\)"):
        mixed_effects(bcg.yi, bcg.vi, np.ones((12, 2)))
    with pytest.raises(ValueError, match=r"moderator matrix X must have one row per study \(13\), not shape \(13,\)"):
        mixed_effects(bcg.yi, bcg.vi, np.ones(13))
    with pytest.raises(ValueError, match="13 coefficients need more than 13 studies"):
        mixed_effects(bcg.yi, bcg.vi, np.eye(13))
    X = np.column_stack([np.ones(13), bcg.ablat])
    assert typical_variance(bcg.vi, X) != typical_variance(bcg.vi)  # the regression's own s^2


def test_meta_regression_uses_only_the_used_rows(bcg):
    table = bcg.assign(used=True, head_to_head=False)
    table.loc[0, "used"] = False
    fit = meta_regression(table, "~ ablat")
    direct = mixed_effects(bcg.yi[1:], bcg.vi[1:], np.column_stack([np.ones(12), bcg.ablat[1:]]), ["intrcpt", "ablat"])
    assert fit.k == 12 and fit.tau2 == pytest.approx(direct.tau2, rel=1e-12)


# metafor 3.8.1, options(digits=13): rma(yi, vi, mods = ~ ablat, data=dat)$R2 -> 75.62447836149 (default stop:
# both the model's and the intercept-only tau^2 at threshold 1e-5); with threshold=1e-12 -> 75.62662181139
def test_pseudo_r2_uses_the_threshold_for_both_fits(bcg):
    assert meta_regression(bcg, "~ ablat", threshold=1e-5).R2 == pytest.approx(75.62447836149, abs=1e-8)
    assert meta_regression(bcg, "~ ablat").R2 == pytest.approx(75.62662181139, abs=1e-8)
