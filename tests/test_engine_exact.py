"""The exact engine (evsynth.engines.exact) against closed forms and independent quadratures:
tests/normal_normal_reference.py (one tau, a dense grid in tau written without evsynth), evsynth.engines.marginal (censored rows, evidence), the
multivariate normal density of y written out in full, and its own refined grid."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import evsynth as es
from evsynth.model import description
from evsynth.engines import exact as engine
from normal_normal_reference import reference as normal_normal_reference
from evsynth.engines.marginal import ModelSpec, log_evidence

from conftest import ROOT


def effect_table(yi, sei, censored=None, technique=None, **columns) -> pd.DataFrame:
    """A synthetic effect table (SMD) as compute_effects would give it, used rows only."""
    n = len(yi)
    table = pd.DataFrame({
        "study_id": [f"s{i}" for i in range(n)], "technique": technique or ["t"] * n, "comparator": "control",
        "outcome": "synthetic", "unit": "", "design": "two_group", "measure": "SMD", "yi": yi, "sei": sei,
        "vi": np.square(sei), "used": True, "head_to_head": False, "why_not": "",
        "censored": censored if censored is not None else [False] * n, "synthetic": True, **columns})
    table.attrs["measure"] = "SMD"
    return table


@pytest.fixture(scope="module")
def demo():
    return es.compute_effects(es.load_studies(ROOT / "studies" / "synthetic_demo.csv"))


def test_random_effects_equals_the_one_tau_quadrature(demo):
    used = es.used_effects(demo)
    reference = normal_normal_reference(used, stats.halfnorm(scale=0.5), 0.0, 1.0)
    ours = engine.exact_summary(description.random_effects(demo))
    for row, ref in (("mu", reference.mu), ("tau", reference.tau), ("prediction", reference.predictive)):
        got = ours.xs(row, level="variable").iloc[0]
        for ours_key, ref_key in (("mean", "mean"), ("sd", "sd"), ("q2.5", "2.5%"), ("q50", "50%"), ("q97.5", "97.5%")):
            assert got[ours_key] == pytest.approx(ref[ref_key], abs=2e-6 * ref["sd"] + 1e-9), (row, ours_key)


def censored_table(n_censored: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    sei = rng.uniform(0.15, 0.35, 8)
    yi = 0.4 + rng.normal(0, 0.2, 8) + rng.normal(0, sei)
    censored = np.zeros(8, bool)
    censored[:n_censored] = True
    yi[:n_censored] = [0.9, 0.7, -0.5][:n_censored]  # bounds: above 0.9, above 0.7, below -0.5
    return effect_table(yi, sei, censored.tolist())


@pytest.mark.parametrize("n_censored", [1, 2])
def test_censored_rows_match_the_independent_quadrature(n_censored):
    """evsynth.engines.marginal integrates (mu, tau) directly with each censored row's probability beyond its
    bound: the evidence and posterior moments must agree with the orthant-probability route."""
    table = censored_table(n_censored)
    model = description.random_effects(table)
    grid = engine.posterior_grid(model)
    ours = engine.exact_summary(model, grid)
    ref = log_evidence(table, ModelSpec(True, True, False))
    assert grid.log_evidence == pytest.approx(ref.log_ml, abs=2e-5)
    mu = ours.loc[("mu", "mu")]
    tau = ours.loc[("tau", "tau")]
    tol = 1e-4 if n_censored == 1 else 5e-3  # several censored rows: summaries mix 64 exact draws per node
    assert mu["mean"] == pytest.approx(ref.means["mu"], abs=tol * ref.sds["mu"])
    assert mu["sd"] == pytest.approx(ref.sds["mu"], abs=tol * ref.sds["mu"])
    assert tau["mean"] == pytest.approx(ref.means["tau"], abs=2e-3 * ref.sds["tau"])  # marginal's tau mean is O(h^2)
    q = ref.mu_quantile([0.025, 0.5, 0.975])
    assert [mu["q2.5"], mu["q50"], mu["q97.5"]] == pytest.approx(q, abs=max(tol, 2e-4) * ref.sds["mu"])


def test_censoring_moves_the_posterior_the_right_way():
    table = censored_table(1)
    as_exact = table.assign(censored=False)  # the bound read as the estimate
    censored = engine.exact_summary(description.random_effects(table)).loc[("mu", "mu"), "mean"]
    at_bound = engine.exact_summary(description.random_effects(as_exact)).loc[("mu", "mu"), "mean"]
    assert censored > at_bound  # the statistic lies above its bound, so the pooled mean rises


@pytest.mark.parametrize("correlated", [False, True])
def test_gaussian_algebra_equals_the_full_multivariate_normal(correlated):
    """Given the SDs, log p(y) must be the N(X m0, Sigma_e + A V0 A') density written out in full."""
    rng = np.random.default_rng(3)
    n = 7
    table = effect_table(rng.normal(0.3, 0.3, n), rng.uniform(0.1, 0.3, n),
                         technique=["a", "a", "b", "b", "c", "c", "c"])
    model = description.by_technique(table, {"mu": "normal(0.2, 0.7)", "tau": "halfnormal(0.5)",
                                             "tau_technique": "halfnormal(0.5)"})
    if correlated:
        model = model.__class__(**{**model.__dict__,
                                   "study_correlation": description.multi_arm_correlation(["x", "x", "y", "z", "z", "w", "v"])})
    taus = np.array([[0.3, 0.2], [0.05, 0.6]])
    got = engine.conditionals(model, taus).loglik
    for k, (tau, tau_t) in enumerate(taus):
        Z = model.parts[0].design
        R = np.eye(n) if model.study_correlation is None else model.study_correlation
        cov = np.diag(model.sei**2) + tau**2 * R + tau_t**2 * Z @ Z.T + 0.7**2 * np.ones((n, n))
        assert got[k] == pytest.approx(stats.multivariate_normal(0.2 * np.ones(n), cov).logpdf(model.yi), abs=1e-10)


def test_finer_grid_moves_no_summary(demo):
    for prior in ("halfnormal(0.5)", "halfcauchy(0.5)"):
        model = description.by_technique(demo, {"mu": "normal(0, 1)", "tau": prior, "tau_technique": prior})
        default = engine.exact_summary(model)
        fine = engine.exact_summary(model, engine.posterior_grid(model, 121))
        scale = fine["sd"].to_numpy()[:, None]
        assert np.nanmax(np.abs((default - fine).to_numpy(float)) / scale) < 2e-4


def test_by_technique_matches_an_independent_two_tau_quadrature():
    """Two variance components (tau, tau_technique): mu's posterior mean and sd and each tau's mean
    against a tensor Gauss-Legendre quadrature over (tau, tau_technique) on [0, 4]² (half-normal(0.5)
    priors: the mass beyond 4 is below 1e-15) of the density of y written out in full, with mu
    integrated out in closed form: written here, not taken from the engine."""
    table = effect_table([0.3, 0.5, 0.1, 0.6, 0.9, 0.2, 0.4], [0.12, 0.2, 0.15, 0.1, 0.25, 0.18, 0.14],
                         technique=["a", "a", "b", "b", "c", "c", "c"])
    model = description.by_technique(table, {"mu": "normal(0.2, 0.7)", "tau": "halfnormal(0.5)",
                                             "tau_technique": "halfnormal(0.5)"})
    got = engine.exact_summary(model)
    y, se = table["yi"].to_numpy(), table["sei"].to_numpy()
    Z = (table["technique"].to_numpy()[:, None] == np.array(["a", "b", "c"])[None, :]).astype(float)
    nodes, weights = np.polynomial.legendre.leggauss(160)
    t = 2 * (nodes + 1)  # [0, 4]
    w = 2 * weights
    T, U = np.meshgrid(t, t, indexing="ij")
    cov = (np.diag(se**2) + T.ravel()[:, None, None] ** 2 * np.eye(7)
           + U.ravel()[:, None, None] ** 2 * (Z @ Z.T))
    prec = np.linalg.inv(cov)
    one = np.ones(7)
    # mu ~ N(0.2, 0.7²): given the taus, mu | y is normal with precision 1' P 1 + 1 / 0.49
    a = prec @ one
    post_prec = a @ one + 1 / 0.49
    post_mean = (a @ y + 0.2 / 0.49) / post_prec
    # log p(y | taus) with mu integrated out: y ~ N(0.2, cov + 0.49 11')
    full = cov + 0.49
    sign, logdet = np.linalg.slogdet(full)
    r = y - 0.2
    loglik = -0.5 * (np.einsum("i,gij,j->g", r, np.linalg.inv(full), r) + logdet)
    log_post = loglik + stats.halfnorm(0, 0.5).logpdf(T.ravel()) + stats.halfnorm(0, 0.5).logpdf(U.ravel())
    weight = np.exp(log_post - log_post.max()) * np.outer(w, w).ravel()
    weight /= weight.sum()
    mu_mean = weight @ post_mean
    mu_sd = np.sqrt(weight @ (1 / post_prec + post_mean**2) - mu_mean**2)
    assert got.loc[("mu", "mu"), "mean"] == pytest.approx(mu_mean, abs=1e-6)
    assert got.loc[("mu", "mu"), "sd"] == pytest.approx(mu_sd, abs=1e-6)
    assert got.loc[("tau", "tau"), "mean"] == pytest.approx(weight @ T.ravel(), abs=1e-5)
    assert got.loc[("tau_technique", "tau_technique"), "mean"] == pytest.approx(weight @ U.ravel(), abs=1e-5)


def test_common_effect_is_conjugate():
    table = effect_table([0.2, 0.5, 0.1], [0.1, 0.2, 0.15])
    s = engine.exact_summary(description.common_effect(table, {"mu": "normal(0, 1)"}))
    precision = 1 + (1 / table.sei**2).sum()
    mean = (table.yi / table.sei**2).sum() / precision
    assert s.loc[("mu", "mu"), "mean"] == pytest.approx(mean, abs=1e-12)
    assert s.loc[("mu", "mu"), "sd"] == pytest.approx(precision**-0.5, abs=1e-12)


def test_draws_are_a_posterior_like_mcmc_returns(demo):
    """Independent draws: the same groups as an MCMC fit, summarize/diagnostic tools work, and the
    draws' means sit within 4 Monte Carlo SEs (sd / sqrt(N)) of the exact summaries."""
    model = description.by_technique(demo)
    tree = engine.fit_exact(model, draws=2000, chains=4, seed=5)
    assert tree.attrs["engine"] == "exact" and tree.attrs["model"] == "by_technique"
    for group in ("posterior", "log_likelihood", "observed_data", "constant_data", "exact_summary"):
        assert group in tree.children
    exact = tree["exact_summary"].to_dataset().to_dataframe().set_index(["variable", "label"])
    post = tree.posterior
    n = post.sizes["chain"] * post.sizes["draw"]
    checks = {("mu", "mu"): post["mu"], ("tau", "tau"): post["tau"],
              ("tau_technique", "tau_technique"): post["tau_technique"]}
    checks |= {("technique_effect", t): post["technique_effect"].sel(technique=t) for t in post["technique"].values}
    for key, draws in checks.items():
        z = (float(draws.mean()) - exact.loc[key, "mean"]) / (exact.loc[key, "sd"] / np.sqrt(n))
        assert abs(z) < 4, (key, z)
    table = es.summarize(tree)
    assert "technique: neck" in table.index and "prediction (new study)" in table.index
    assert tree.log_likelihood["y"].shape == (4, 2000, model.n)


def test_censored_draws_respect_the_bounds():
    table = censored_table(2)
    model = description.random_effects(table)
    rng = np.random.default_rng(0)
    cond = engine.conditionals(model, np.array([[0.2], [0.4]]), orthant=False)
    c = model.censored
    draws = np.stack([engine.truncated_draws(cond.c_mean, cond.c_cov, model.yi[c], model.censoring_direction()[c], rng)
                      for _ in range(200)])
    assert np.all(model.censoring_direction()[c] * (draws - model.yi[c]) > 0)


# ---- evidence: Bayes factors and exact leave-one-out --------------------------------------------

def test_bayes_factors_equal_the_independent_marginal_likelihood_quadrature(demo):
    """mu != 0 and tau > 0 in the random-effects model: the exact engine's two evidences per
    Bayes factor against evsynth.engines.marginal (its own quadrature in (mu, tau)), as compare.bayes_factors."""
    from evsynth.methods.compare import bayes_factors

    reference = bayes_factors(demo)
    model = description.random_effects(demo)
    for null, hypothesis in (("mu", "mu != 0"), ("tau", "tau > 0")):
        ours = engine.bayes_factor(model, null)
        assert ours["hypothesis"] == hypothesis
        assert ours["log_BF10"] == pytest.approx(reference.loc[hypothesis, "log_BF10"], abs=1e-4), null
    with pytest.raises(ValueError, match="'tau_technique' is not a part"):
        model.without("tau_technique")


def test_moderator_bayes_factor_equals_the_savage_dickey_ratio():
    """BF10 for a slope, from two evidences, against the prior / posterior density of the slope
    at 0 (the posterior density exactly: a mixture of normals over the grid of tau)."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, 12)
    sei = rng.uniform(0.1, 0.3, 12)
    yi = 0.3 + 0.6 * x + rng.normal(0, 0.1, 12) + rng.normal(0, sei)
    model = description.meta_regression(effect_table(yi, sei, x=x), ["x"])
    ours = engine.bayes_factor(model, "beta")
    grid = engine.posterior_grid(model)
    slot = model.block_slices()["beta"].start
    mean, sd = grid.cond.mean[:, slot], np.sqrt(grid.cond.cov[:, slot, slot])
    posterior_at_0 = grid.weights @ stats.norm.pdf(0.0, mean, sd)
    prior_at_0 = stats.norm.pdf(0.0, 0.0, 1.0)  # beta ~ normal(0, 1), the default
    assert ours["BF10"] == pytest.approx(prior_at_0 / posterior_at_0, rel=1e-5)
    assert ours["BF10"] > 3  # the simulated slope is there


def test_common_effect_loo_is_the_conditional_normal_density():
    rng = np.random.default_rng(5)
    sei = rng.uniform(0.1, 0.4, 6)
    yi = 0.4 + rng.normal(0, sei)
    table = effect_table(yi, sei)
    terms = engine.loo(description.common_effect(table))
    cov = np.diag(sei**2) + 1.0  # mu ~ normal(0, 1) integrated out
    for i in range(6):
        rest = np.arange(6) != i
        gain = cov[i, rest] @ np.linalg.inv(cov[np.ix_(rest, rest)])
        mean = gain @ yi[rest]
        var = cov[i, i] - gain @ cov[rest, i]
        assert terms["elpd_loo"][i] == pytest.approx(stats.norm.logpdf(yi[i], mean, np.sqrt(var)), abs=1e-9)
    assert terms.attrs["elpd_loo"] == pytest.approx(terms["elpd_loo"].sum())


@pytest.mark.parametrize("n_censored", [0, 1])
def test_random_effects_loo_equals_the_independent_quadrature(n_censored):
    table = censored_table(n_censored) if n_censored else censored_table(1).assign(censored=False)
    terms = engine.loo(description.random_effects(table))
    full = log_evidence(table, ModelSpec(True, True, False)).log_ml
    for i in (0, 3):
        rest = table.drop(index=i).reset_index(drop=True)
        rest.attrs = dict(table.attrs)
        expected = full - log_evidence(rest, ModelSpec(True, True, False)).log_ml
        assert terms["elpd_loo"][i] == pytest.approx(expected, abs=5e-5), i


def test_loo_compare_ranks_the_model_that_predicts_better():
    """Two techniques with clearly different effects: by_technique predicts a left-out study
    better than random_effects, and the comparison says so with a paired SE."""
    rng = np.random.default_rng(8)
    technique = ["a"] * 6 + ["b"] * 6
    sei = rng.uniform(0.08, 0.15, 12)
    yi = np.where(np.array(technique) == "a", 0.1, 0.9) + rng.normal(0, sei)
    table = effect_table(yi, sei, technique=technique)
    ranked = engine.loo_compare({"random_effects": description.random_effects(table),
                                 "by_technique": description.by_technique(table)})
    assert list(ranked.index) == ["by_technique", "random_effects"]
    assert ranked.loc["random_effects", "elpd_diff"] < -2 * ranked.loc["random_effects", "dse"]


def test_fit_takes_an_engine(demo):
    """es.fit(effects, engine="exact") is the exact engine's DataTree; a built PyMC model cannot be
    fitted exactly; an unknown engine is refused by name."""
    milk = demo[demo["outcome"] == "milk volume"]
    tree = es.fit(milk, kind="random_effects", engine="exact", draws=200, chains=2)
    assert tree.attrs["engine"] == "exact" and tree.posterior["mu"].shape == (2, 200)
    same = engine.exact_summary(description.random_effects(milk))
    assert float(tree["exact_summary"]["mean"].sel(quantity="mu")) == pytest.approx(same.loc[("mu", "mu"), "mean"])
    with pytest.raises(ValueError, match="not a built PyMC model"):
        es.fit(es.random_effects(milk), engine="exact")
    with pytest.raises(ValueError, match="engine 'mcmc' unknown"):
        es.fit(milk, engine="mcmc")
