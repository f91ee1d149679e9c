"""The exact engine's sampling, agreement, summary-table and LOO-comparison paths
(evsynth.engines.exact) against references written here independently: closed-form normal-normal
conditionals, moments of the quadrature summaries, ArviZ's MCSE on constructed draws, sums of the
pointwise LOO terms."""

import numpy as np
import pandas as pd
import pytest
from arviz_stats import mcse
from scipy import stats

from evsynth import description
from evsynth.engines import exact as engine
from evsynth.exact import exact_posterior

from test_engine_exact import censored_table, effect_table


def _table(k=8, seed=11, technique=None):
    rng = np.random.default_rng(seed)
    sei = rng.uniform(0.1, 0.3, k)
    return effect_table(0.3 + rng.normal(0, 0.2, k) + rng.normal(0, sei), sei, technique=technique)


class _FixedNormals:
    """Stands in for a numpy Generator: standard_normal returns the array it was given."""

    def __init__(self, z):
        self.z = np.asarray(z, float)

    def standard_normal(self, shape):
        assert self.z.shape == tuple(shape)
        return self.z


# --------------------------------------------------------------------------- study effects given the rest


def test_study_effects_are_the_normal_normal_conditionals():
    """theta_i | g, tau, y_i with independent study effects: N((tau^2 y_i + s_i^2 c_i) / (tau^2 + s_i^2),
    tau^2 s_i^2 / (tau^2 + s_i^2)) around the linear predictor c = A g (here mu). With the normals
    fixed at 0 the draw is that mean; at 1, mean + sd."""
    table = _table(5)
    model = description.random_effects(table)
    taus = np.array([[0.15], [0.4], [0.0]])
    g = np.array([[0.2], [-0.1], [0.35]])
    cond = engine.conditionals(model, taus, orthant=False)
    y = np.broadcast_to(model.yi, (3, model.n)).copy()
    s2, t2 = model.sei**2, taus**2
    mean = (t2 * model.yi + s2 * g) / (t2 + s2)
    sd = np.sqrt(t2 * s2 / (t2 + s2))
    at_0 = engine._study_effects(model, cond, taus, g, y, _FixedNormals(np.zeros((3, model.n))))
    at_1 = engine._study_effects(model, cond, taus, g, y, _FixedNormals(np.ones((3, model.n))))
    assert at_0 == pytest.approx(mean, abs=1e-12)
    assert at_1 - at_0 == pytest.approx(sd, abs=1e-12)
    assert at_0[2] == pytest.approx(np.full(model.n, 0.35), abs=1e-12)  # tau = 0: every theta is mu


def test_study_effects_of_a_common_effect_model_are_the_pooled_effect():
    model = description.common_effect(_table(4))
    cond = engine.conditionals(model, np.zeros((2, 0)), orthant=False)
    g = np.array([[0.3], [-0.2]])
    theta = engine._study_effects(model, cond, np.zeros((2, 0)), g, np.broadcast_to(model.yi, (2, 4)), None)
    assert theta == pytest.approx(np.repeat(g, 4, axis=1), abs=1e-15)


def test_correlated_study_effects_are_the_gaussian_conditional_in_precision_form():
    """Multi-arm rows (correlated study effects, tau^2 R): e | e + eps = r is N(V S^-1 r, V) with
    V = (T^-1 + S^-1)^-1, T = tau^2 R, S = diag(s^2): the precision form, not the code's gain form.
    Nodes repeated n times with the normals fixed at the unit vectors give the columns of the
    Cholesky factor of V, so its outer product must be V."""
    table = _table(5, technique=["a", "a", "b", "b", "c"])
    model = description.random_effects(table)
    R = description.multi_arm_correlation(["x", "x", "y", "z", "z"])
    model = model.__class__(**{**model.__dict__, "study_correlation": R})
    n = model.n
    taus = np.full((n, 1), 0.3)
    g = np.full((n, 1), 0.25)
    cond = engine.conditionals(model, taus, orthant=False)
    y = np.broadcast_to(model.yi, (n, n)).copy()
    T, S = 0.09 * R, np.diag(model.sei**2)
    V = np.linalg.inv(np.linalg.inv(T) + np.linalg.inv(S))
    mean = 0.25 + V @ np.linalg.solve(S, model.yi - 0.25)
    centre = engine._study_effects(model, cond, taus, g, y, _FixedNormals(np.zeros((n, n))))
    assert centre == pytest.approx(np.broadcast_to(mean, (n, n)), abs=1e-12)
    columns = engine._study_effects(model, cond, taus, g, y, _FixedNormals(np.eye(n))) - centre
    assert columns.T @ columns == pytest.approx(V, abs=1e-12)


# --------------------------------------------------------------------------- fit_exact: draws and groups


@pytest.fixture(scope="module")
def random_fit():
    table = _table(8)
    model = description.random_effects(table, {"mu": "normal(0, 1)", "tau": "halfnormal(0.5)"})
    return table, model, engine.fit_exact(model, draws=3000, chains=3, seed=4)


def test_fit_exact_draws_have_the_one_tau_posterior_moments(random_fit):
    """mu, tau, prediction and every theta_i: the draws' mean within 4 MCSE (sd / sqrt(N), independent
    draws) and sd within 5% of evsynth.exact's one-tau quadrature (bayesmeta-validated); mu's and
    tau's 2.5/50/97.5% quantiles within 4 MCSE of a quantile (sqrt(p(1-p)/N) / density)."""
    table, model, tree = random_fit
    ref = exact_posterior(table.yi, table.sei, tau_prior="halfnormal(0.5)", mu_prior="normal(0, 1)")
    post = tree.posterior
    assert post["mu"].dims == ("chain", "draw") and post["mu"].shape == (3, 3000)
    assert post["theta"].dims == ("chain", "draw", "study") and post["theta"].shape == (3, 3000, 8)
    assert list(post["study"].values) == list(table.study_id)
    n = 9000
    for name, r in (("mu", ref.mu), ("tau", ref.tau)):
        draws = post[name].to_numpy().ravel()
        assert abs(draws.mean() - r["mean"]) < 4 * r["sd"] / np.sqrt(n), name
        assert draws.std() == pytest.approx(r["sd"], rel=0.05), name
        for p, key in ((0.025, "2.5%"), (0.5, "50%"), (0.975, "97.5%")):
            q = np.quantile(draws, p)
            density = np.mean(np.abs(draws - r[key]) < 0.02 * r["sd"]) / (0.04 * r["sd"])
            assert abs(q - r[key]) < 4 * np.sqrt(p * (1 - p) / n) / density + 0.01 * r["sd"], (name, p)
    theta = post["theta"].to_numpy().reshape(n, 8)
    for i in range(8):
        assert abs(theta[:, i].mean() - ref.theta["mean"].iloc[i]) < 4 * ref.theta["sd"].iloc[i] / np.sqrt(n), i
        assert theta[:, i].std() == pytest.approx(ref.theta["sd"].iloc[i], rel=0.05), i


def test_fit_exact_groups_and_attrs(random_fit):
    """log_likelihood is N(y_i; theta_i, s_i) at each draw (scipy), the data groups hold the table,
    the exact_summary group holds exact_summary's numbers, attrs name the engine and the settings."""
    table, model, tree = random_fit
    theta = tree.posterior["theta"].to_numpy()
    expected = stats.norm.logpdf(table.yi.to_numpy(), theta, table.sei.to_numpy())
    assert tree.log_likelihood["y"].to_numpy() == pytest.approx(expected, abs=1e-12)
    assert tree.log_likelihood["y"].dims == ("chain", "draw", "study")
    assert tree.observed_data["y"].to_numpy() == pytest.approx(table.yi.to_numpy())
    assert tree.constant_data["sei"].to_numpy() == pytest.approx(table.sei.to_numpy())
    assert tree.constant_data["yi"].to_numpy() == pytest.approx(table.yi.to_numpy())
    assert tree.posterior.attrs["sample_dims"] == ["chain", "draw"]
    summary = engine.exact_summary(model)
    ex = tree["exact_summary"].to_dataset()
    assert list(ex["quantity"].values) == ["mu", "tau", "prediction[new study]"]
    for col, key in (("mean", "mean"), ("sd", "sd"), ("q2.5", "q2.5"), ("q50", "q50"), ("q97.5", "q97.5"),
                     ("p_gt_0", "P(>0)")):
        assert ex[col].to_numpy() == pytest.approx(summary[key].to_numpy(float), nan_ok=True), col
    a = tree.attrs
    assert (a["engine"], a["sampler"], a["seed"], a["draws"], a["chains"]) == ("exact", "exact", "4", "3000", "3")
    assert a["exact_summaries"] == "mixture over the grid"
    assert a["model"] == "random_effects"
    assert float(a["log_evidence"]) == pytest.approx(engine.log_evidence(model), abs=1e-8)
    assert a["grid_nodes"] == "161" and float(a["seconds"]) > 0


def test_fit_exact_labels_technique_effects_and_describes_censored_rows():
    """by_technique: technique_effect has a technique dimension labelled by name; its draws' means
    agree with the exact summaries. A censored row: its log-likelihood is the normal tail beyond
    the bound (scipy), and attrs say how the summaries mix over it."""
    table = _table(9, technique=["a", "b", "c"] * 3)
    model = description.by_technique(table)
    tree = engine.fit_exact(model, draws=1500, chains=2, seed=1)
    effect = tree.posterior["technique_effect"]
    assert effect.dims == ("chain", "draw", "technique") and list(effect["technique"].values) == ["a", "b", "c"]
    summary = engine.exact_summary(model)
    for t in "abc":
        exact = summary.loc[("technique_effect", t)]
        assert abs(float(effect.sel(technique=t).mean()) - exact["mean"]) < 4 * exact["sd"] / np.sqrt(3000), t
    assert tree.posterior["tau_technique"].shape == (2, 1500)
    for n_censored, text in ((1, "; censored row: 64-point midpoint rule"), (2, "; 2 censored rows: 64 exact draws per node")):
        cens = censored_table(n_censored)
        m = description.random_effects(cens)
        t = engine.fit_exact(m, draws=200, chains=2, seed=3)
        assert t.attrs["exact_summaries"] == "mixture over the grid" + text
        theta = t.posterior["theta"].to_numpy()
        ll = t.log_likelihood["y"].to_numpy()
        expected = stats.norm.logpdf(cens.yi.to_numpy(), theta, cens.sei.to_numpy())
        direction = m.censoring_direction()
        for i in range(n_censored):  # bounds 0.9 (above), 0.7 (above): log P(y > bound | theta)
            expected[..., i] = stats.norm.logsf(cens.yi[i], theta[..., i], cens.sei[i]) if direction[i] > 0 else \
                stats.norm.logcdf(cens.yi[i], theta[..., i], cens.sei[i])
        assert ll == pytest.approx(expected, abs=1e-10)
