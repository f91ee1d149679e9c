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


# ----------------------------------------------------------------------------- all rows at once (issue 26)


def _refits(model, n_nodes=None):
    """Each study left out by the exact engine on its own grid (of n_nodes when given): (k, 3) mu
    quantiles, (k,) tau medians."""
    from evsynth.engines.exact import posterior_grid, report_label, summary_rows

    mu, tau = [], []
    for i in range(model.n):
        sub = model.subset(np.arange(model.n) != i)
        rows = {report_label(*k): v for k, v in summary_rows(sub, posterior_grid(sub, n_nodes)).items()}
        mu.append([rows["pooled (mu)"][q] for q in ("q2.5", "q50", "q97.5")])
        tau.append(rows["tau (between studies)"]["q50"])
    return np.array(mu), np.array(tau)


def _outlier_table():
    rng = np.random.default_rng(1)
    sei = rng.uniform(0.1, 0.5, 12)
    yi = rng.normal(0.3, sei)
    yi[0], sei[0] = 3.0, 0.1  # far out and precise: without it tau shrinks out of the full fit's box
    return table(yi, sei)


@pytest.mark.parametrize("priors", [None, {"tau": "uniform(0, 2)"}, {"tau": "exponential(2)"},
                                    {"mu": "normal(0, 10)", "tau": "halfcauchy(0.5)"}, "flat"])
def test_downdated_rows_equal_the_refits(priors):
    """engines.leave_one_out (every study left out on one grid) against the k refits on their own
    grids: within 5e-8 of the default refits (whose 161-node tau CDF is good to ~1e-8); tau within
    1e-11 of refits on 2,000-node grids (3.9e-12 found; 1.9e-11 with the module's former copy of the
    quantile search, which stopped short), mu (on the full fit's nodes) within 5e-9 (2.5e-9 found); a
    row whose posterior reaches the end of the shared box is marked for a refit (the outlier's:
    leaving it out narrows tau)."""
    from evsynth.engines.leave_one_out import leave_one_out_summaries
    from evsynth.model.description import random_effects

    from dataclasses import replace

    from evsynth.engines.exact import FLAT

    rng = np.random.default_rng(7)
    sei = rng.uniform(0.1, 0.5, 30)
    for t in (table([0.9, 0.2, 0.35, 0.5], [0.2, 0.15, 0.25, 0.3]), table(rng.normal(0.3, np.hypot(0.2, sei)), sei),
              _outlier_table()):
        if priors == "flat":  # bayesmeta's improper flat priors on mu and tau (es.exact_posterior's defaults)
            model = random_effects(t)
            model = replace(model, fixed=(replace(model.fixed[0], prior=FLAT),), study_prior=FLAT)
        else:
            model = random_effects(t, priors)
        found = leave_one_out_summaries(model)
        ok = found["ok"]
        for n_nodes, mu_tol, tau_tol in ((None, 2e-8, 5e-8), (2000, 5e-9, 1e-11)):
            mu, tau = _refits(model, n_nodes)
            assert np.abs(found["mu"][ok] - mu[ok]).max(initial=0) < mu_tol
            assert np.abs(found["tau"][ok] - tau[ok]).max(initial=0) < tau_tol
        assert np.isnan(found["mu"][~ok]).all() and np.isnan(found["tau"][~ok]).all()
        if len(t) == 30:
            assert ok.all()


def test_rows_not_downdated_are_refitted(monkeypatch):
    """The outlier's row (its posterior leaves the shared box) comes from its refit; the whole table
    equals the one made by k refits (the path taken when the model is not plain random effects)."""
    import evsynth.methods.leave_out as leave_out
    from evsynth.engines.leave_one_out import leave_one_out_summaries
    from evsynth.model.description import random_effects

    t = _outlier_table()
    ok = leave_one_out_summaries(random_effects(t))["ok"]
    assert not ok[0] and ok[1:].all()  # both sides of the rule in one table
    fast = leave_one_out(t).table
    monkeypatch.setattr(leave_out, "_downdated_rows", lambda *args: None)
    slow = leave_one_out(t).table
    assert list(fast["study_id"]) == list(slow["study_id"])
    for column in ("mu", "mu_low", "mu_high", "shift"):
        np.testing.assert_allclose(fast[column], slow[column], rtol=0, atol=1e-9)
    np.testing.assert_allclose(fast["I2"], slow["I2"], rtol=0, atol=1e-6)  # percent
    assert fast.loc[1, "mu"] == slow.loc[1, "mu"]  # the outlier's own row: the same refit


def test_only_plain_random_effects_is_downdated(effects_censored=None):
    from evsynth.engines.leave_one_out import leave_one_out_summaries, qualifies
    from evsynth.model.description import by_technique, random_effects

    t = _outlier_table()
    assert qualifies(random_effects(t))
    t2 = t.assign(technique=["a", "b"] * 6)
    assert not qualifies(by_technique(t2)) and leave_one_out_summaries(by_technique(t2)) is None
    censored = random_effects(t.assign(censored=[True] + [False] * 11))
    assert not qualifies(censored)
