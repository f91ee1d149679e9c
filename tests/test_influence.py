"""Influence diagnostics, Baujat coordinates and cumulative meta-analysis against metafor 3.8.1's
influence(), baujat() and cumul() (tests/data/reference/staples_metafor.R)."""

import json

import numpy as np
import pandas as pd
import pytest

from evsynth.methods.cumulative import bayesian_cumulative, cumulative
from evsynth.methods.influence import baujat, influence

from conftest import bcg_log_risk_ratios, reference_file

REF = json.loads(reference_file("reference/staples_metafor.json").read_text())
BCG = pd.read_csv(reference_file("bcg.csv"))
YI, VI = bcg_log_risk_ratios(BCG)
HS = pd.read_csv(reference_file("hackshaw1998.csv"))
COLUMNS = {"rstudent": "rstudent", "dffits": "dffits", "cook_d": "cook_d", "cov_r": "cov_r", "tau2_del": "tau2_del",
           "QE_del": "QE_del", "hat": "hat", "weight": "weight", "dfbs_0": "dfbs"}


@pytest.mark.parametrize("data", ["bcg", "hackshaw"])
def test_influence_matches_metafor(data):
    ref = REF[f"{data}_influence"]
    yi, vi = (YI, VI) if data == "bcg" else (HS.yi.to_numpy(), HS.vi.to_numpy())
    table = influence(yi, vi)
    for ours, theirs in COLUMNS.items():
        np.testing.assert_allclose(table[ours], ref[theirs], rtol=1e-8, err_msg=ours)
    assert table["influential"].tolist() == ref["is_infl"]


def test_influence_flags_a_large_precise_outlier_like_metafor():
    ref = REF["outlier_influence"]
    table = influence(ref["yi"], ref["vi"])
    for column in ("rstudent", "dffits", "cook_d", "cov_r", "hat"):
        np.testing.assert_allclose(table[column], ref[column], rtol=1e-8, err_msg=column)
    assert table["influential"].tolist() == ref["is_infl"] == [False] * 12 + [True]


def test_influence_rules_on_each_side_of_their_cut_offs():
    # Move the last study from in line (not flagged) to the outlier (flagged, as metafor says) and find
    # where the flag flips: just below it every rule is under its cut-off, just above one is over it.
    ref = REF["outlier_influence"]
    yi, vi = np.array(ref["yi"]), np.array(ref["vi"])
    k, p = 13, 1

    def worst(y):  # the largest criterion / cut-off ratio of the last study, and its flag
        row = influence(np.r_[yi[:12], y], vi).iloc[-1]
        from scipy import stats
        ratio = max(abs(row.dffits) / (3 * np.sqrt(p / (k - p))), stats.chi2.cdf(row.cook_d, p) / 0.5,
                    row.hat / (3 * p / k), abs(row.dfbs_0))
        return ratio, bool(row.influential)

    low, high = -0.5, 2.0
    assert not worst(low)[1] and worst(high)[1]
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (low, mid) if worst(mid)[1] else (mid, high)
    below, above = worst(low), worst(high)
    assert not below[1] and above[1]
    assert below[0] <= 1 < above[0] and above[0] == pytest.approx(1, abs=1e-6)


@pytest.mark.parametrize("data,method", [("bcg", "REML"), ("hackshaw", "FE")])
def test_baujat_matches_metafor(data, method):
    ref = REF["bcg_baujat" if data == "bcg" else "hackshaw_baujat_fe"]
    yi, vi = (YI, VI) if data == "bcg" else (HS.yi.to_numpy(), HS.vi.to_numpy())
    table = baujat(yi, vi, method=method)
    np.testing.assert_allclose(table["x"], ref["x"], rtol=1e-6)
    np.testing.assert_allclose(table["y"], ref["y"], rtol=1e-6)


@pytest.mark.parametrize("method", ["REML", "FE", "DL"])
def test_cumulative_by_year_matches_metafor(method):
    ref = REF["bcg_cumul"][method]
    table = cumulative(YI, VI, order=BCG.year, method=method, labels=BCG.trial.astype(str))
    assert table.index.tolist() == ref["order"]
    for ours, theirs in {"estimate": "estimate", "se": "se", "ci_low": "ci_lb", "ci_high": "ci_ub",
                         "tau2": "tau2", "I2": "I2", "Q": "QE", "pval": "pval"}.items():
        if method == "FE" and ours == "tau2":  # metafor's cumul() of a common-effect model has no tau^2
            assert (table[ours] == 0).all()
            continue
        np.testing.assert_allclose(table[ours], ref[theirs], rtol=1e-8, atol=1e-12, err_msg=ours)


def test_bad_method_is_refused():
    with pytest.raises(ValueError, match="method 'XX' unknown"):
        influence(YI, VI, method="XX")


def _quad_mu_mean(yi, sei):
    """E[mu | y] under mu ~ N(0, 1), tau ~ half-normal(0.5), by scipy quad over tau of the conjugate
    conditional (an independent check of the exact engine's sequence)."""
    from scipy import integrate, stats

    def conditional(tau):
        w = 1 / (sei**2 + tau**2)
        prec = 1 + w.sum()
        mean = (w * yi).sum() / prec
        # marginal likelihood of y given tau with mu integrated out: N(0, diag(s^2 + tau^2) + 11')
        cov = np.diag(sei**2 + tau**2) + 1.0
        like = stats.multivariate_normal(np.zeros(yi.size), cov).pdf(yi)
        return mean, like * 2 * stats.norm.pdf(tau, 0, 0.5)

    num = integrate.quad(lambda t: conditional(t)[0] * conditional(t)[1], 0, np.inf, epsabs=1e-13)[0]
    den = integrate.quad(lambda t: conditional(t)[1], 0, np.inf, epsabs=1e-13)[0]
    return num / den


def test_bayesian_cumulative_matches_quadrature_at_each_step():
    table = bayesian_cumulative(YI, np.sqrt(VI), order=BCG.year, labels=BCG.trial.astype(str))
    assert table.index.tolist() == REF["bcg_cumul"]["REML"]["order"]
    order = np.argsort(BCG.year.to_numpy(), kind="stable")
    for j in (1, 3, 13):
        rows = order[:j]
        assert table["mean"].iloc[j - 1] == pytest.approx(_quad_mu_mean(YI[rows], np.sqrt(VI[rows])), abs=1e-6)
    assert (table["q2.5"] < table["median"]).all() and (table["median"] < table["q97.5"]).all()
    assert table.attrs["tau_prior"] == "halfnormal(0.5)"
