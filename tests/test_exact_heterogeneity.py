"""Exact posterior quantiles of I² and H² (mapped from tau's exact quantiles) and shortest (HPD)
intervals, checked against scipy quadrature of the tau posterior and closed forms."""

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize, stats

from evsynth.engines.normal_normal import exact_posterior
from evsynth.methods.heterogeneity import exact_hpd, exact_i2_h2, i2_h2, shortest_interval

from conftest import bcg_log_risk_ratios, reference_file

YI, VI = bcg_log_risk_ratios(pd.read_csv(reference_file("bcg.csv")))
SEI = np.sqrt(VI)


def tau_quantile_by_quad(yi, sei, p):
    """tau's posterior quantile under mu ~ N(0, 1), tau ~ half-normal(0.5), by scipy quad of
    prior x marginal likelihood (mu integrated out analytically) and a root search."""
    def density(t):
        cov = np.diag(sei**2 + t**2) + 1.0
        return stats.multivariate_normal(np.zeros(yi.size), cov).pdf(yi) * 2 * stats.norm.pdf(t, 0, 0.5)

    total = integrate.quad(density, 0, np.inf, epsabs=1e-14, limit=200)[0]
    cdf = lambda t: integrate.quad(density, 0, t, epsabs=1e-14, limit=200)[0] / total  # noqa: E731
    return optimize.brentq(lambda t: cdf(t) - p, 0.0, 5.0, xtol=1e-10)


@pytest.mark.parametrize("p", [0.025, 0.975])
def test_exact_i2_quantiles_match_quadrature(p):
    table = exact_i2_h2(YI, SEI, probs=(p,))
    tau = tau_quantile_by_quad(YI, SEI, p)
    i2, h2 = i2_h2(tau, VI)
    column = f"q{100 * p:g}"
    assert table.loc["tau", column] == pytest.approx(tau, rel=1e-5)
    assert table.loc["I² %", column] == pytest.approx(float(i2), abs=1e-4)
    assert table.loc["H²", column] == pytest.approx(float(h2), rel=1e-4)


def test_exact_i2_quantiles_are_ordered_and_in_range():
    table = exact_i2_h2(YI, SEI)
    assert (np.diff(table.loc["I² %"].to_numpy()) > 0).all() and table.loc["I² %"].between(0, 100).all()
    assert (table.loc["H²"] >= 1).all()


def test_shortest_interval_closed_forms():
    assert shortest_interval(stats.norm.ppf) == pytest.approx((-1.959964, 1.959964), abs=1e-5)
    # exponential: the mode is at 0, so the shortest 95% interval is [0, -ln 0.05]
    assert shortest_interval(stats.expon.ppf) == pytest.approx((0.0, -np.log(0.05)), abs=1e-6)
    # skewed: a lognormal's shortest interval, found by brute force over the lower tail probability
    dist = stats.lognorm(0.8)
    grid = np.linspace(1e-6, 0.05 - 1e-6, 20001)
    best = grid[np.argmin(dist.ppf(grid + 0.95) - dist.ppf(grid))]
    assert shortest_interval(dist.ppf) == pytest.approx((dist.ppf(best), dist.ppf(best + 0.95)), rel=1e-4)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        shortest_interval(stats.norm.ppf, 1.0)


def test_exact_hpd_holds_its_mass_and_is_no_wider_than_equal_tails():
    table = exact_hpd(YI, SEI)
    post = exact_posterior(YI, SEI, tau_prior="halfnormal(0.5)", mu_prior="normal(0, 1)")
    lo, hi = table.loc["mu", ["hpd_low", "hpd_high"]]
    assert float(post.mu_cdf(hi) - post.mu_cdf(lo)) == pytest.approx(0.95, abs=1e-6)
    lo, hi = table.loc["tau", ["hpd_low", "hpd_high"]]
    assert float(post.tau_cdf(hi) - post.tau_cdf(lo)) == pytest.approx(0.95, abs=1e-6)
    width = table["hpd_high"] - table["hpd_low"]
    assert (width <= table["eti_high"] - table["eti_low"] + 1e-9).all()
    # near-homogeneous subset: tau's posterior mode is at 0, so its HPD interval starts there
    rows = [1, 2, 3, 6, 9]
    sub = exact_hpd(YI[rows], SEI[rows])
    assert sub.loc["tau", "hpd_low"] < 1e-8 < sub.loc["tau", "eti_low"]
