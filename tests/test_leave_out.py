"""Leave-one-out influence and the secondary-source sensitivity (evsynth.methods.leave_out), against an
independent quadrature of the random-effects posterior; and the first lines `fit` prints per outcome."""

import functools

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize, stats

from evsynth.methods.leave_out import MIN_STUDIES, leave_one_out


def table(yi, sei, levels=None):
    k = len(yi)
    out = pd.DataFrame({
        "study_id": [f"s{i}" for i in range(k)], "technique": "t", "comparator": "control", "outcome": "o",
        "unit": "", "design": "two_group", "measure": "SMD", "yi": yi, "sei": sei, "vi": np.square(sei),
        "n_total": 40, "censored": False, "head_to_head": False, "used": True, "why_not": "", "synthetic": True,
        "source_level": levels or ["full_text"] * k})
    out.attrs["measure"] = "SMD"
    return out


def median_mu(yi, sei):
    """Posterior median of mu, random effects, mu ~ N(0, 1), tau ~ HalfNormal(0.5), by scipy quad."""
    yi, vi = np.asarray(yi), np.square(sei)

    # cached: brentq's cdf evaluations integrate over the same tau nodes again and again (the two tests: 12 s of CPU -> 1 s)
    @functools.lru_cache(maxsize=None)
    def cond(tau):  # p(y | tau) with mu integrated out, and mu | tau, y
        w = 1 / (vi + tau**2)
        prec = w.sum() + 1.0
        m = (w * yi).sum() / prec
        log_ml = (stats.multivariate_normal(np.zeros(len(yi)), np.diag(vi + tau**2) + 1.0).logpdf(yi))
        return np.exp(log_ml) * stats.halfnorm(scale=0.5).pdf(tau), m, 1 / np.sqrt(prec)

    norm = integrate.quad(lambda t: cond(t)[0], 0, 5, epsabs=0, epsrel=1e-7)[0]

    def cdf(x):
        def integrand(t):
            density, mean, sd = cond(t)
            return density * stats.norm.cdf(x, mean, sd)

        return integrate.quad(integrand, 0, 5, epsabs=0, epsrel=1e-7)[0] / norm

    return optimize.brentq(lambda x: cdf(x) - 0.5, -3, 3, xtol=1e-8)


def test_each_row_is_the_fit_without_that_study():
    yi, sei = [0.9, 0.2, 0.35, 0.5], [0.2, 0.15, 0.25, 0.3]
    result = leave_one_out(table(yi, sei))
    t = result.table.set_index("study_id")
    assert t.loc["none", "mu"] == pytest.approx(median_mu(yi, sei), abs=2e-3)
    for i in (0, 2):
        rest = [j for j in range(4) if j != i]
        assert t.loc[f"s{i}", "mu"] == pytest.approx(median_mu(np.take(yi, rest), np.take(sei, rest)), abs=2e-3)
    assert result.most == str(t["shift"].drop("none").abs().idxmax()) == "s0"  # the outlying study
    assert t.loc["s0", "I2"] < t.loc["none", "I2"]


def test_minimum_studies_boundary():
    assert MIN_STUDIES == 3
    assert leave_one_out(table([0.3, 0.5], [0.2, 0.2])) is None
    assert len(leave_one_out(table([0.3, 0.5, 0.1], [0.2, 0.2, 0.2])).table) == 4


def test_secondary_sources_left_out_together():
    yi, sei = [0.9, 0.2, 0.35, 0.5], [0.2, 0.15, 0.25, 0.3]
    result = leave_one_out(table(yi, sei, ["secondary", "full_text", "secondary", "abstract"]))
    assert result.secondary_ids == ["s0", "s2"]
    assert result.secondary["mu"] == pytest.approx(median_mu([0.2, 0.5], [0.15, 0.3]), abs=2e-3)
    assert any("without secondary-source rows (s0, s2)" in line for line in result.lines("SMD"))
    # three of four secondary: one study would remain, so no refit (and it says so)
    few = leave_one_out(table(yi, sei, ["secondary"] * 3 + ["abstract"]))
    assert few.secondary is None and "not refitted" in few.lines()[-1]
    assert leave_one_out(table(yi, sei)).secondary is None
