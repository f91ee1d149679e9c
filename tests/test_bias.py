"""Egger's test, PET-PEESE and funnel data: metafor's published BCG numbers, an independent
parameterisation of the classic test, and simulated meta-analyses with a known selection rule."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from evsynth.effects.table import study_arrays
from evsynth.methods.bias import egger_test, funnel_data, pet_peese

from conftest import assert_all_printed, assert_printed, bcg_log_risk_ratios, reference_file


def effect_table(yi, sei, ids=None) -> pd.DataFrame:
    yi, sei = np.asarray(yi, float), np.asarray(sei, float)
    ids = ids if ids is not None else [f"s{i}" for i in range(len(yi))]
    return pd.DataFrame({"study_id": ids, "yi": yi, "sei": sei})


def simulate(seed, k=30, mu=0.0, tau=0.0, keep_nonsig=1.0):
    """Synthetic: k published studies of n ~ U{10..60} (SE = 1/sqrt(n)); a study significant at
    two-sided 0.05 in the positive direction is always published, any other with prob keep_nonsig."""
    rng = np.random.default_rng(seed)
    n = rng.integers(10, 61, 4000)
    se = 1 / np.sqrt(n)
    y = rng.normal(rng.normal(mu, tau, n.size), se)
    published = (y / se > stats.norm.isf(0.025)) | (rng.random(n.size) < keep_nonsig)
    idx = np.flatnonzero(published)[:k]
    assert idx.size == k
    return effect_table(y[idx], se[idx])


@pytest.fixture(scope="module")
def bcg():
    return pd.read_csv(reference_file("bcg.csv"))


def test_egger_mixed_effects_knha_matches_metafor_readme(bcg):
    # metafor README (github.com/wviechtb/metafor): log risk ratios, rma(yi, vi, test="knha"),
    # regtest(res): t = -0.7812, df = 11, p = 0.4512; limit estimate -0.5104 (CI -1.2123, 0.1915)
    yi, vi = bcg_log_risk_ratios(bcg)
    r = egger_test(effect_table(yi, np.sqrt(vi)), model="rma", test="knha")
    assert r.test == "t" and r.df == 11
    assert_all_printed(r, {"statistic": "-0.7812", "pval": "0.4512", "limit_estimate": "-0.5104",
                           "limit_ci_low": "-1.2123", "limit_ci_high": "0.1915"})


def test_egger_mixed_effects_z_matches_published_log_odds_ratio_output(bcg):
    # metafor output printed in a public tutorial (rma(ai=tpos, ..., data=dat.bcg, measure="OR");
    # regtest(result)): z = -0.7743, p = 0.4388, with the RE fit -0.7452, tau^2 0.3378 as data check
    yi = np.log(bcg.tpos * bcg.cneg / (bcg.tneg * bcg.cpos))
    vi = 1 / bcg.tpos + 1 / bcg.tneg + 1 / bcg.cpos + 1 / bcg.cneg
    from evsynth.methods.frequentist import reml
    fit = reml(yi.to_numpy(), vi.to_numpy())
    assert_printed(fit.mu, "-0.7452")
    assert_printed(fit.tau2, "0.3378")
    r = egger_test(effect_table(yi, np.sqrt(vi)), model="rma", test="z")
    assert r.test == "z" and np.isinf(r.df)
    assert_printed(r.statistic, "-0.7743")
    assert_printed(r.pval, "0.4388")


def test_classic_egger_equals_egger_original_regression(bcg):
    # Egger et al. (1997): OLS of the standard normal deviate y/se on precision 1/se; its intercept
    # is the sei coefficient of the weighted regression. Independent algebra (lstsq, OLS formulas).
    yi = (np.log(bcg.tpos / (bcg.tpos + bcg.tneg)) - np.log(bcg.cpos / (bcg.cpos + bcg.cneg))).to_numpy()
    se = np.sqrt((1 / bcg.tpos - 1 / (bcg.tpos + bcg.tneg) + 1 / bcg.cpos - 1 / (bcg.cpos + bcg.cneg)).to_numpy())
    X = np.column_stack([np.ones_like(se), 1 / se])
    coef, rss, *_ = np.linalg.lstsq(X, yi / se, rcond=None)
    df = len(yi) - 2
    se_coef = np.sqrt(rss[0] / df * np.diag(np.linalg.inv(X.T @ X)))
    r = egger_test(effect_table(yi, se), model="lm")
    assert r.slope == pytest.approx(coef[0], rel=1e-10)
    assert r.statistic == pytest.approx(coef[0] / se_coef[0], rel=1e-10)
    assert r.limit_estimate == pytest.approx(coef[1], rel=1e-10)
    assert r.pval == pytest.approx(2 * stats.t.sf(abs(coef[0] / se_coef[0]), df), rel=1e-10)


def test_egger_rejects_at_nominal_rate_without_bias_and_flags_selection():
    # 300 synthetic meta-analyses per setting, 30 studies each; alpha = 0.10
    null_rate = np.mean([egger_test(simulate(s, mu=mu)).pval < 0.10 for s in range(150) for mu in (0.0, 0.3)])
    biased_rate = np.mean([egger_test(simulate(s, mu=0.2, keep_nonsig=0.05)).pval < 0.10 for s in range(300)])
    # binomial sd at 0.10 with 300 draws is 0.017
    assert 0.06 < null_rate < 0.14, null_rate
    assert biased_rate > 0.4, biased_rate


@pytest.mark.parametrize("mu", [0.0, 0.2])
def test_pet_peese_moves_toward_the_truth_under_selection(mu):
    naive, corrected = [], []
    for seed in range(200):
        eff = simulate(1000 + seed, mu=mu, keep_nonsig=0.05)
        w = 1 / eff.sei**2
        naive.append(np.sum(w * eff.yi) / np.sum(w))
        corrected.append(pet_peese(eff, direction="positive").estimate)
    naive_bias, corrected_bias = np.mean(naive) - mu, np.mean(corrected) - mu
    assert naive_bias > 0.1  # the selection rule does bias the pooled estimate
    assert abs(corrected_bias) < 0.5 * naive_bias, (naive_bias, corrected_bias)


def test_pet_peese_decision_rule_and_regressions():
    eff = simulate(5, mu=0.4, keep_nonsig=1.0)
    r = pet_peese(eff, alpha=0.05, direction="positive")
    pet = r.table.loc["PET"]
    # PET is plain WLS of yi on sei: check against numpy lstsq on sqrt(w)-scaled rows
    sw = 1 / eff.sei.to_numpy()
    X = np.column_stack([np.ones(len(eff)), eff.sei.to_numpy()])
    coef, rss, *_ = np.linalg.lstsq(X * sw[:, None], eff.yi.to_numpy() * sw, rcond=None)
    # multiplicative dispersion: the residual variance of the scaled OLS, t on k - 2 df
    df = len(eff) - 2
    se = np.sqrt(rss[0] / df * np.linalg.inv((X * sw[:, None]).T @ (X * sw[:, None]))[0, 0])
    assert pet["intercept"] == pytest.approx(coef[0], rel=1e-10)
    assert pet["df"] == df and pet["se"] == pytest.approx(se, rel=1e-10)
    assert pet["p_one_sided"] == pytest.approx(stats.t.sf(coef[0] / se, df), rel=1e-10)
    peese = r.table.loc["PEESE"]
    Xv = np.column_stack([np.ones(len(eff)), eff.vi.to_numpy() if "vi" in eff else eff.sei.to_numpy() ** 2])
    coef_v = np.linalg.lstsq(Xv * sw[:, None], eff.yi.to_numpy() * sw, rcond=None)[0]
    assert peese["intercept"] == pytest.approx(coef_v[0], rel=1e-10)
    assert r.chosen == ("PEESE" if pet["p_one_sided"] < 0.05 else "PET")
    assert r.estimate == r.table.loc[r.chosen, "intercept"]
    flipped = pet_peese(effect_table(-eff.yi, eff.sei), direction="negative")
    assert flipped.chosen == r.chosen and flipped.estimate == pytest.approx(-r.estimate)
    assert pet_peese(effect_table(-eff.yi, eff.sei)).direction == "negative"  # default: sign of pooled


def test_funnel_data_contours_and_regions():
    eff = simulate(3, k=25, mu=0.3)
    f = funnel_data(eff, contours=(0.9, 0.95, 0.99))
    assert set(f.contours["level"]) == {0.9, 0.95, 0.99}
    c95 = f.contours[f.contours["level"] == 0.95]
    assert np.allclose(c95["upper"], stats.norm.ppf(0.975) * c95["sei"])
    assert np.allclose(c95["lower"], -c95["upper"])
    assert c95["sei"].max() >= eff.sei.max()
    # a study is outside the 95% contour exactly when its two-sided p < 0.05
    outside = np.abs(f.points["yi"]) > stats.norm.ppf(0.975) * f.points["sei"]
    in_band = f.points["region"].isin(["p < 0.01", "0.01 <= p < 0.05"])
    assert (outside == in_band).all() and outside.any()
    w = 1 / eff.sei**2
    assert f.centre == pytest.approx(np.sum(w * eff.yi) / np.sum(w))
    assert np.allclose(f.pseudo_ci["upper"] - f.centre, stats.norm.ppf(0.975) * f.pseudo_ci["sei"])


def test_bad_input_names_the_study_and_field():
    eff = effect_table([0.1, 0.2, 0.3], [0.1, -0.2, 0.1], ids=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"study 'b', field 'sei'"):
        egger_test(eff)
    with pytest.raises(ValueError, match="at least 3"):
        egger_test(effect_table([0.1, 0.2], [0.1, 0.1]))
    censored = effect_table([0.1, 0.2, 0.3], [0.1, 0.2, 0.1], ids=["a", "b", "c"]).assign(censored=[False, True, False])
    with pytest.raises(ValueError, match="studies b: censored"):
        study_arrays(censored)
