"""The exact engine's sampling, agreement, summary-table and LOO-comparison paths
(evsynth.engines.exact) against references written here independently: closed-form normal-normal
conditionals, moments of the quadrature summaries, ArviZ's MCSE on constructed draws, sums of the
pointwise LOO terms."""

import numpy as np
import pandas as pd
import pytest
from arviz_stats import mcse
from scipy import stats

from evsynth.model import description
from evsynth.engines import exact as engine

from normal_normal_reference import reference as normal_normal_reference
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


def _moment_z(draws: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each column's draw mean and SD against the exact mean and SD in units of their Monte Carlo
    error from N independent draws: sd / sqrt(N), and sd sqrt((kurtosis - 1) / 4N) for the SD
    (the kurtosis estimated from the draws)."""
    n = draws.shape[0]
    centred = draws - draws.mean(axis=0)
    kurtosis = np.mean(centred**4, axis=0) / np.mean(centred**2, axis=0) ** 2
    z_mean = (draws.mean(axis=0) - mean) / (sd / np.sqrt(n))
    z_sd = (draws.std(axis=0) - sd) / (sd * np.sqrt((kurtosis - 1) / (4 * n)))
    return z_mean, z_sd


def test_pointwise_loglik_in_blocks_with_censored_rows_is_scipy_s():
    """4,000 draws x 100 studies (blocks of 160 draws), 3 censored rows: an exact row's term is
    scipy's normal log density, a censored row's the log probability beyond its bound (logsf above,
    logcdf below), at every draw; the (chains, draws, study) shape gives the same terms."""
    rng = np.random.default_rng(5)
    sei = rng.uniform(0.1, 0.4, 100)
    yi = 0.3 + rng.normal(0, 0.3, 100)
    censored = np.zeros(100, bool)
    censored[[0, 40, 99]] = True
    yi[[0, 40, 99]] = [0.9, -0.6, 0.8]
    model = description.random_effects(effect_table(yi, sei, censored.tolist()))
    theta = rng.normal(0.3, 0.4, (4000, 100))
    expected = stats.norm.logpdf(yi, theta, sei)
    direction = model.censoring_direction()
    for i in np.flatnonzero(censored):
        tail = stats.norm.logsf if direction[i] > 0 else stats.norm.logcdf
        expected[:, i] = tail(yi[i], theta[:, i], sei[i])
    np.testing.assert_allclose(engine.pointwise_loglik(model, theta), expected, rtol=1e-12, atol=1e-12)
    assert np.array_equal(engine.pointwise_loglik(model, theta.reshape(4, 1000, 100)),
                          engine.pointwise_loglik(model, theta).reshape(4, 1000, 100))


def test_study_effect_draws_made_in_blocks_have_the_exact_moments():
    """200 studies x 6,000 draws (the study effects made in blocks of 80 draws, the log-likelihood
    in blocks too): every study's draw mean and SD against the independent reference's E and SD of
    theta_i | y (tests/normal_normal_reference.py, scipy quadrature), in Monte Carlo errors of the
    draw count: all |z| < 4.5 (400 z's: a false alarm ~0.3%) and their mean square within
    chi-square(400)'s central 99.99%. The other side: draws 4% too narrow, or shifted by 0.1 SD,
    fail it. The log-likelihood is scipy's normal log density at every draw."""
    rng = np.random.default_rng(26)
    sei = rng.uniform(0.1, 0.4, 200)
    table = effect_table(0.3 + rng.normal(0, 0.2, 200) + rng.normal(0, sei), sei)
    model = description.random_effects(table, {"mu": "normal(0, 1)", "tau": "halfnormal(0.5)"})
    tree = engine.fit_exact(model, draws=3000, chains=2, seed=11)
    theta = tree.posterior["theta"].to_numpy().reshape(6000, 200)
    ref = normal_normal_reference(table, stats.halfnorm(scale=0.5), 0.0, 1.0).theta
    mean, sd = ref["mean"].to_numpy(), ref["sd"].to_numpy()
    low, high = stats.chi2.ppf([5e-5, 1 - 5e-5], 400) / 400

    def passes(draws):
        z = np.concatenate(_moment_z(draws, mean, sd))
        return np.abs(z).max() < 4.5 and low < np.mean(z**2) < high

    assert passes(theta)
    assert not passes(mean + (theta - theta.mean(axis=0)) * 0.96 + (theta.mean(axis=0) - mean))
    assert not passes(theta + 0.1 * sd)
    loglik = tree.log_likelihood["y"].to_numpy().reshape(6000, 200)
    np.testing.assert_allclose(loglik, stats.norm.logpdf(table.yi.to_numpy(), theta, sei), rtol=0, atol=1e-12)


@pytest.fixture(scope="module")
def random_fit():
    table = _table(8)
    model = description.random_effects(table, {"mu": "normal(0, 1)", "tau": "halfnormal(0.5)"})
    return table, model, engine.fit_exact(model, draws=3000, chains=3, seed=4)


def test_fit_exact_draws_have_the_one_tau_posterior_moments(random_fit):
    """mu, tau, prediction and every theta_i: the draws' mean within 4 MCSE (sd / sqrt(N), independent
    draws) and sd within 5% of the one-tau reference (tests/normal_normal_reference.py); mu's and
    tau's 2.5/50/97.5% quantiles within 4 MCSE of a quantile (sqrt(p(1-p)/N) / density)."""
    table, model, tree = random_fit
    ref = normal_normal_reference(table, stats.halfnorm(scale=0.5), 0.0, 1.0)
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
    for group, names in (("observed_data", ["y"]), ("constant_data", ["yi", "sei"]), ("log_likelihood", ["y"])):
        data = tree[group].to_dataset()
        assert set(data.dims) <= {"chain", "draw", "study"} and list(data["study"].values) == list(table.study_id)
        assert all(data[name].dims[-1] == "study" for name in names), group
    summary = engine.exact_summary(model)
    ex = tree["exact_summary"].to_dataset()
    assert list(ex["quantity"].values) == ["mu", "tau", "prediction[new study]"]
    for col, key in (("mean", "mean"), ("sd", "sd"), ("q2.5", "q2.5"), ("q50", "q50"), ("q97.5", "q97.5"),
                     ("p_gt_0", "P(>0)")):
        assert ex[col].to_numpy() == pytest.approx(summary[key].to_numpy(float), nan_ok=True), col
        assert ex[col].dtype == np.float64 and ex[col].dims == ("quantity",), col
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
    # the technique index (the one 1-d entry of the model's data) goes to constant_data, as in MCMC fits
    assert tree.constant_data["technique_idx"].to_numpy().tolist() == [0, 1, 2] * 3
    assert tree.constant_data["technique_idx"].dims == ("study",)
    assert {k: tree.attrs[k] for k in ("data_hash", "prior_tau_technique", "measure")} == {
        "data_hash": model.settings["data_hash"], "prior_tau_technique": "halfnormal(0.5)", "measure": "SMD"}
    import evsynth

    assert tree.attrs["evsynth_version"] == evsynth.__version__
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


# --------------------------------------------------------------------------- the reported table


def test_summary_table_labels_rows_as_summarize_does():
    """Random effects: 'pooled (mu)', 'tau (between studies)', 'prediction (new study)', mu's
    figures those of the one-tau reference (tests/normal_normal_reference.py); by technique: 'technique: a' and 'tau
    (between techniques)'; a meta-regression: 'intercept (mu)', 'slope: x' and no prediction row."""
    table = _table(8)
    model = description.random_effects(table, {"mu": "normal(0, 1)", "tau": "halfnormal(0.5)"})
    got = engine.summary_table(model)
    assert list(got.index) == ["pooled (mu)", "tau (between studies)", "prediction (new study)"]
    assert got.index.name == "parameter"
    assert list(got.columns) == ["mean", "sd", "q2.5", "q50", "q97.5", "P(>0)"]
    assert (got.dtypes == float).all() and got.attrs["threshold"] == 0.0
    ref = normal_normal_reference(table, stats.halfnorm(scale=0.5), 0.0, 1.0)
    for key, col in (("mean", "mean"), ("sd", "sd"), ("2.5%", "q2.5"), ("97.5%", "q97.5")):
        assert got.loc["pooled (mu)", col] == pytest.approx(ref.mu[key], abs=1e-5), key
        assert got.loc["prediction (new study)", col] == pytest.approx(ref.predictive[key], abs=1e-5), key
    assert np.isnan(got.loc["tau (between studies)", "P(>0)"])
    tech = engine.summary_table(description.by_technique(_table(9, technique=["a", "b", "c"] * 3)))
    assert {"technique: a", "technique: c", "tau (between techniques)", "pooled (mu)"} <= set(tech.index)
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, 10)
    reg_table = _table(10).assign(x=x)
    reg = engine.summary_table(description.meta_regression(reg_table, ["x"]))
    assert list(reg.index) == ["intercept (mu)", "slope: x", "tau (between studies)"]
    same = engine.exact_summary(description.meta_regression(reg_table, ["x"]))
    assert reg.loc["slope: x", "mean"] == pytest.approx(same.loc[("beta", "x"), "mean"])
    assert reg.loc["intercept (mu)", "q97.5"] == pytest.approx(same.loc[("mu", "mu"), "q97.5"])


def test_report_labels():
    assert engine.report_label("mu", "mu") == "pooled (mu)"
    assert engine.report_label("tau_technique", "tau_technique") == "tau (between techniques)"
    assert engine.report_label("technique_effect", "neck") == "technique: neck"
    assert engine.report_label("d", "B") == "d: B"
    assert engine.report_label("tau_x", "tau_x") == "tau (between x)"  # a multilevel part (a801fe5)


def test_exact_verdict_has_nothing_to_fail():
    v = engine.ExactVerdict()
    assert v.ok and v.verdict == "PASS" and v.divergences == 0
    assert v.bfmi == [] and v.thresholds == {} and v.problems == []
    assert list(v.table.columns) == ["r_hat", "ess_bulk", "ess_tail"] and v.table.empty
    assert str(v) == ("diagnostics: none needed (exact engine: quadrature over the variance components, "
                      "closed-form Gaussian conditionals; independent draws, no MCMC)")


# --------------------------------------------------------------------------- MCMC against the exact posterior


def _with_posterior(tree, **changes):
    """A copy of a fit's DataTree with posterior variables replaced (or dropped when None)."""
    post = tree.posterior.to_dataset()
    for name, value in changes.items():
        post = post.drop_vars(name) if value is None else post.assign({name: value})
    out = tree.copy()
    out["posterior"] = post
    return out


def test_agreement_z_values_by_hand():
    """Every row's z = (draws' statistic - exact) / arviz_stats.mcse, computed here for mu,
    tau_technique and each technique effect; 4 statistics per quantity; attrs max_abs_z and worst
    from the largest |z|; ok only strictly below the threshold."""
    table = _table(9, technique=["a", "b", "c"] * 3)
    model = description.by_technique(table)
    tree = engine.fit_exact(model, draws=500, chains=4, seed=8)
    exact = engine.exact_summary(model)
    got = engine.agreement(tree, model)
    post = tree.posterior.to_dataset()
    assert list(got.columns) == ["quantity", "statistic", "mcmc", "exact", "mcse", "z"]
    keys = [("mu", "mu", post["mu"])] + [("technique_effect", t, post["technique_effect"].sel(technique=t))
                                          for t in "abc"]
    keys += [("tau", "tau", post["tau"]), ("tau_technique", "tau_technique", post["tau_technique"])]
    assert len(got) == 4 * 6  # prediction is in no posterior: skipped
    for variable, label, draws in keys:
        rows = got[got["quantity"] == engine.report_label(variable, label)].set_index("statistic")
        assert list(rows.index) == ["mean", "q2.5", "q50", "q97.5"]
        for stat, p in (("mean", None), ("q2.5", 0.025), ("q50", 0.5), ("q97.5", 0.975)):
            values = draws.to_numpy().ravel()
            est = values.mean() if p is None else np.quantile(values, p)
            err = float(mcse(draws, method="mean") if p is None else mcse(draws, method="quantile", prob=p))
            ref = exact.loc[(variable, label), stat]
            assert rows.loc[stat, "mcmc"] == pytest.approx(est, abs=1e-12)
            assert rows.loc[stat, "exact"] == pytest.approx(ref, abs=1e-12)
            assert rows.loc[stat, "mcse"] == pytest.approx(err, rel=1e-12)
            assert rows.loc[stat, "z"] == pytest.approx((est - ref) / err, rel=1e-10, abs=1e-12)
    worst = got.loc[got["z"].abs().idxmax()]
    assert got.attrs["max_abs_z"] == pytest.approx(abs(worst["z"]))
    assert got.attrs["worst"] == f"{worst['quantity']} {worst['statistic']}"
    assert got.attrs["threshold"] == 5.0 and got.attrs["ok"]  # independent exact draws agree
    line = engine.agreement_line(got)
    assert line.startswith(f"agrees with the exact posterior: max |z| {got.attrs['max_abs_z']:.1f}")
    assert "of 6 quantities" in line
    at = engine.agreement(tree, model, threshold=got.attrs["max_abs_z"])
    assert not at.attrs["ok"]  # |z| < threshold is required
    above = engine.agreement(tree, model, threshold=got.attrs["max_abs_z"] * (1 + 1e-9))
    assert above.attrs["ok"]


def test_agreement_flags_shifted_draws_and_skips_missing_variables():
    table = _table(8)
    model = description.random_effects(table)
    tree = engine.fit_exact(model, draws=500, chains=4, seed=9)
    mu = tree.posterior["mu"]
    shifted = _with_posterior(tree, mu=mu + float(mu.std()), tau=None)
    got = engine.agreement(shifted, model, grid=engine.posterior_grid(model))
    assert set(got["quantity"]) == {"pooled (mu)"}
    assert got.attrs["worst"].startswith("pooled (mu)") and not got.attrs["ok"]
    assert got.attrs["max_abs_z"] > 20
    line = engine.agreement_line(got)
    assert line.startswith(f"!! DISAGREES WITH THE EXACT POSTERIOR: |z| {got.attrs['max_abs_z']:.1f} >= 5 MCSE at pooled (mu)")
    assert line.endswith("the sampler has not explored the posterior; do not use these draws (try more tuning, "
                         "or --engine exact)")
    # a quantity missing from the draws is skipped, and those after it are still compared
    rest = engine.agreement(_with_posterior(tree, mu=None), model)
    assert set(rest["quantity"]) == {"tau (between studies)"} and rest.attrs["ok"]


# --------------------------------------------------------------------------- exact LOO comparison


def test_loo_compare_columns_by_hand():
    """Three models: elpd the sum of each model's pointwise terms (engine.loo, checked against scipy
    quad in test_compare), ranked by it; elpd_diff the summed paired differences to the best; dse
    sqrt(n var_0(diff)) as az.compare; se sqrt(n var_1(terms)); p_worse the normal P(diff < 0);
    stacking weights on the simplex, maximizing the log score (checked against a fine grid search on
    the simplex)."""
    rng = np.random.default_rng(8)
    technique = ["a"] * 5 + ["b"] * 5
    sei = rng.uniform(0.1, 0.2, 10)
    yi = np.where(np.array(technique) == "a", 0.1, 0.6) + rng.normal(0, 0.1, 10) + rng.normal(0, sei)
    table = effect_table(yi, sei, technique=technique)
    models = {"common": description.common_effect(table), "random": description.random_effects(table),
              "technique": description.by_technique(table)}
    terms = pd.DataFrame({name: engine.loo(m)["elpd_loo"].to_numpy() for name, m in models.items()})
    got = engine.loo_compare(models)
    order = terms.sum().sort_values(ascending=False).index
    assert list(got.index) == list(order) and got.index.name == "model"
    assert list(got["rank"]) == [0, 1, 2]
    n = 10
    best = terms[order[0]]
    for name in order:
        diff = terms[name] - best
        row = got.loc[name]
        assert row["elpd"] == pytest.approx(terms[name].sum(), abs=1e-10)
        assert row["se"] == pytest.approx(np.sqrt(n) * np.std(terms[name], ddof=1), abs=1e-10)
        assert row["elpd_diff"] == pytest.approx(diff.sum(), abs=1e-10)
        assert row["dse"] == pytest.approx(np.sqrt(n) * np.std(diff, ddof=0), abs=1e-10)
        if name != order[0]:
            assert row["p_worse"] == pytest.approx(stats.norm.cdf(-diff.sum() / np.std(diff) / np.sqrt(n)), rel=1e-6)
    assert np.isnan(got.loc[order[0], "p_worse"])
    assert (got["method"] == "exact LOO").all() and got.attrs["n"] == n
    assert got.attrs["method"].startswith("exact leave-one-out")
    dens = np.exp(terms[list(order)].to_numpy())
    w = np.linspace(0, 1, 201)
    W = np.array([(a, b, 1 - a - b) for a in w for b in w if a + b <= 1 + 1e-12])
    score = np.log(np.clip(dens @ W.T, 1e-300, None)).sum(axis=0)
    best_w = W[score.argmax()]
    assert got["weight"].sum() == pytest.approx(1.0, abs=1e-12) and (got["weight"] >= 0).all()
    assert got["weight"].to_numpy() == pytest.approx(best_w, abs=0.01)
    assert np.log(dens @ got["weight"].to_numpy()).sum() >= score.max() - 1e-6


def test_loo_attrs_and_loo_compare_refusals():
    table = _table(6)
    model = description.random_effects(table)
    terms = engine.loo(model)
    values = terms["elpd_loo"].to_numpy()
    assert list(terms["study_id"]) == list(table.study_id)
    assert terms.attrs["elpd_loo"] == pytest.approx(values.sum(), abs=1e-12)
    assert terms.attrs["se"] == pytest.approx(np.sqrt(6) * np.std(values, ddof=1), abs=1e-12)
    assert terms.attrs["n"] == 6 and terms.attrs["method"].startswith("exact leave-one-out")
    with pytest.raises(ValueError, match="^need at least two models to compare$"):
        engine.loo_compare({"one": model})
    with pytest.raises(ValueError, match="model 'table' is a DataFrame, not a GaussianModel"):
        engine.loo_compare({"one": model, "table": table})
    with pytest.raises(ValueError, match="^model 'fewer' was fitted to different studies than the others; LOO "
                                         "compares models of the same data$"):
        engine.loo_compare({"all": model, "fewer": model.subset(np.arange(6) != 1)})


def test_bayes_factor_record():
    """The record bayes_factor returns: its evidences are log_evidence of the model and of the
    model without the tested part; BF10 their exp'd difference; hypothesis worded per kind."""
    table = _table(8)
    model = description.random_effects(table)
    for null, hypothesis in (("mu", "mu != 0"), ("tau", "tau > 0")):
        got = engine.bayes_factor(model, null)
        full, restricted = engine.log_evidence(model), engine.log_evidence(model.without(null))
        assert got["hypothesis"] == hypothesis and got["method"] == "exact engine"
        assert got["log_evidence"] == pytest.approx(full) and got["log_evidence_null"] == pytest.approx(restricted)
        assert got["log_BF10"] == pytest.approx(full - restricted)
        assert got["BF10"] == pytest.approx(np.exp(full - restricted), rel=1e-12)


# --------------------------------------------------------------------------- censored statistics: latent pieces and draws


@pytest.mark.parametrize("alpha", [-2.0, 0.0, 1.3, 4.0])
def test_tail_cells_keep_the_truncated_normal_mean_and_variance(alpha):
    """The 64 equally likely cells of z | z > alpha: each cell's mean and variance against scipy's
    truncnorm on that cell (edges from scipy's isf), and the mixture's mean and variance against
    truncnorm on (alpha, inf)."""
    L = 64
    mean, var = engine._tail_cells(np.array([alpha]), L)
    tail = stats.norm.sf(alpha)
    edges = np.r_[alpha, stats.norm.isf(tail * (1 - np.arange(1, L) / L)), np.inf]
    for j in (0, 1, L // 2, L - 2, L - 1):
        cell = stats.truncnorm(edges[j], edges[j + 1])
        assert mean[0, j] == pytest.approx(cell.mean(), abs=1e-8), j
        assert var[0, j] == pytest.approx(cell.var(), abs=1e-7), j
    whole = stats.truncnorm(alpha, np.inf)
    assert mean.mean() == pytest.approx(whole.mean(), abs=1e-10)
    assert (var + mean**2).mean() - mean.mean() ** 2 == pytest.approx(whole.var(), abs=1e-8)


def test_truncated_draws_fall_back_to_weighted_ghk_draws():
    """One censored statistic far beyond its bound (rejection would need ~1e5 tries): with rounds=1
    nearly every node takes a GHK draw by importance weight; the draws' mean and sd against
    scipy's truncnorm (SIR with 256 draws: bias O(1/256), within 2%)."""
    G = 6000
    mean, cov = np.zeros((G, 1)), np.full((G, 1, 1), 0.25)
    rng = np.random.default_rng(3)
    for direction, bound in ((1.0, 2.0), (-1.0, -1.5)):
        draws = engine.truncated_draws(mean, cov, np.array([bound]), np.array([direction]), rng, rounds=1)[:, 0]
        assert np.all(direction * (draws - bound) > 0)
        ref = stats.truncnorm(4.0, np.inf, scale=0.5) if direction > 0 else stats.truncnorm(-np.inf, -3.0, scale=0.5)
        assert draws.mean() == pytest.approx(ref.mean(), abs=0.02 * ref.std() + 4 * ref.std() / np.sqrt(G))
        assert draws.std() == pytest.approx(ref.std(), rel=0.05)


def test_ghk_draws_reweighted_are_the_truncated_bivariate_normal():
    """Two correlated censored statistics, one above and one below its bound: the importance-weighted
    mean of GHK draws against the mean of plain bivariate normal draws that land in the orthant
    (rejection with numpy: no GHK), and the mean weight against the orthant probability by Owen's T."""
    mean = np.array([[0.3, -0.2]])
    cov = np.array([[[0.5, 0.2], [0.2, 0.4]]])
    bounds, direction = np.array([0.6, 0.1]), np.array([1.0, -1.0])
    draws, weights = engine.ghk_draws(mean, cov, bounds, direction, 200000, np.random.default_rng(5))
    assert np.all(direction * (draws[0] - bounds) > 0)
    w = weights[0] / weights[0].sum()
    plain = np.random.default_rng(6).multivariate_normal(mean[0], cov[0], 2_000_000)
    inside = plain[np.all(direction * (plain - bounds) > 0, axis=1)]
    assert w @ draws[0] == pytest.approx(inside.mean(axis=0), abs=0.01)
    cov_w = ((draws[0] - w @ draws[0]).T * w) @ (draws[0] - w @ draws[0])
    assert cov_w == pytest.approx(np.cov(inside.T), abs=0.01)


def test_sd_priors_must_live_on_tau_at_least_0():
    """The engine's own check (the constructors refuse such priors first: a description built by
    hand can still carry one)."""
    from dataclasses import replace

    model = description.random_effects(_table(5))
    with pytest.raises(ValueError, match=r"prior of tau is normal\(0, 1\): an SD needs a prior on tau > 0"):
        engine.posterior_grid(replace(model, study_prior="normal(0, 1)"))
    with pytest.raises(ValueError, match=r"prior of tau is uniform\(-1, 2\): an SD needs a prior on tau >= 0"):
        engine.posterior_grid(replace(model, study_prior="uniform(-1, 2)"))


# --------------------------------------------------------------------------- orthant probabilities beyond two rows


def test_log_orthant_of_three_rows_against_closed_forms():
    """Three censored rows take scipy's multivariate normal CDF (Genz, error ~1e-5) at every node.
    Independent rows: the product of normal tails. Unit variances, correlations +-1/2 and the
    statistics at their bounds: Sheppard's trivariate orthant 1/8 + sum asin(rho_ij) / (4 pi),
    1/4 for (above, above, above) and 1/12 when the third row is censored from below (the
    direction flips its correlations)."""
    rng = np.random.default_rng(4)
    G = 5
    mean = rng.normal(0, 1, (G, 3))
    sd = rng.uniform(0.5, 2, (G, 3))
    cov = np.einsum("gi,ij->gij", sd**2, np.eye(3))
    bounds, direction = np.array([0.2, -0.1, 0.4]), np.array([1.0, -1.0, 1.0])
    expected = stats.norm.logcdf(direction * (mean - bounds) / sd).sum(axis=1)
    assert engine.log_orthant(mean, cov, bounds, direction) == pytest.approx(expected, abs=1e-5)
    corr = np.full((3, 3), 0.5) + 0.5 * np.eye(3)
    mean0 = np.zeros((2, 3))
    both = np.stack([corr, 4 * corr])
    assert np.exp(engine.log_orthant(mean0, both, np.zeros(3), np.ones(3))) == pytest.approx([0.25, 0.25], abs=1e-5)
    assert np.exp(engine.log_orthant(mean0, both, np.zeros(3), np.array([1.0, 1.0, -1.0]))) == pytest.approx(
        [1 / 12, 1 / 12], abs=1e-5)


def test_log_orthant_of_two_perfectly_correlated_rows():
    """Correlation 1 (and -1 once the second row is censored from below): Owen's T is undefined, so
    the general path: P(v1 > 0, v2 > 0) with v2 = v1 scaled and shifted is the normal tail of the
    tighter of the two."""
    cov = np.array([[[1.0, 2.0], [2.0, 4.0]]])
    mean = np.array([[0.3, 0.9]])
    for bounds, direction in ((np.array([0.0, 0.1]), np.array([1.0, 1.0])), (np.array([-0.5, 1.5]), np.array([1.0, -1.0]))):
        z = direction * (mean[0] - bounds) / np.sqrt([1.0, 4.0])
        expected = stats.norm.logcdf(z.min()) if direction[1] > 0 else np.log(stats.norm.cdf(z[0]) - stats.norm.cdf(-z[1]))
        assert engine.log_orthant(mean, cov, bounds, direction)[0] == pytest.approx(expected, abs=1e-5)


def test_study_covariances_by_hand():
    """diag(se^2) + tau^2 R at each node (R the identity without multi-arm rows); a model without a
    study-level SD has diag(se^2) at every node."""
    table = _table(4, technique=["a", "a", "b", "b"])
    model = description.random_effects(table)
    taus = np.array([[0.0], [0.3], [1.2]])
    S = np.diag(model.sei**2)
    got = engine.study_cov(model, taus)
    assert got.shape == (3, 4, 4)
    for k, t in enumerate(taus[:, 0]):
        assert got[k] == pytest.approx(S + t**2 * np.eye(4), abs=1e-15)
    R = description.multi_arm_correlation(["x", "x", "y", "y"])
    correlated = model.__class__(**{**model.__dict__, "study_correlation": R})
    assert engine.study_cov(correlated, taus)[2] == pytest.approx(S + 1.44 * R, abs=1e-15)
    common = model.without("tau")
    got = engine.study_cov(common, np.zeros((3, 0)))
    assert got.shape == (3, 4, 4) and got == pytest.approx(np.broadcast_to(S, (3, 4, 4)), abs=1e-15)
    got[0, 0, 0] = -1.0  # a copy: writable, the model untouched
    assert model.sei[0] > 0


def test_bivariate_normal_cdf_at_signed_zeros_and_in_far_tails():
    """-0.0 arises as direction * (mean - bound) with the statistic at its bound: the same
    probability as at +0.0 (scipy quad of phi(x) Phi((b - rho x) / r) over x <= a); a zero
    argument with the other nonzero (the slope's infinite limit). Far-tail arguments, where Owen's
    formula rounds to -1e-16, still give probabilities (>= 0)."""
    from scipy import integrate, special

    def quad_cdf(a, b, rho):
        r = np.sqrt(1 - rho**2)
        return integrate.quad(lambda x: stats.norm.pdf(x) * special.ndtr((b - rho * x) / r), -np.inf, a,
                              epsabs=1e-14, epsrel=1e-12)[0]

    for a, b, rho in ((-0.0, 0.7, 0.4), (0.0, 0.7, 0.4), (-0.0, -0.7, 0.4), (0.7, -0.0, -0.3), (0.7, 0.0, 0.6),
                      (-0.7, -0.0, 0.2), (0.0, 1.0, 0.5), (1.0, 0.0, -0.5), (-0.0, 1.0, -0.8), (-1.3, 0.0, 0.9)):
        assert engine.bivariate_normal_cdf(a, b, rho) == pytest.approx(quad_cdf(a, b, rho), abs=1e-12), (a, b, rho)
    rng = np.random.default_rng(0)
    a, b, rho = rng.normal(0, 10, 20000), rng.normal(0, 10, 20000), rng.uniform(-0.999, 0.999, 20000)
    p = engine.bivariate_normal_cdf(a, b, rho)
    assert p.min() >= 0.0 and p.max() <= 1.0


def test_loo_compare_of_a_model_with_itself_and_with_far_outliers():
    """The same description twice: elpd_diff 0, dse 0 and p_worse 1/2 (not NaN), weights 1/2 each.
    A study 50 SEs from the others: under two common-effect models (mu priors normal(0, 1) and
    normal(0.3, 0.1)) its log predictive densities are both below -1100, so exp(elpd_i) underflows
    unless each study's densities are rescaled by their own maximum; the weights must still be the
    log score's maximizer (a grid search on w here, in logs; measured optimum 0.17 / 0.83)."""
    table = _table(6)
    model = description.random_effects(table)
    same = engine.loo_compare({"a": model, "b": model})
    assert same["elpd_diff"].to_numpy() == pytest.approx([0.0, 0.0], abs=1e-12)
    assert same["dse"].to_numpy() == pytest.approx([0.0, 0.0], abs=1e-12)
    assert same.loc[same.index[1], "p_worse"] == pytest.approx(0.5)
    assert same["weight"].to_numpy() == pytest.approx([0.5, 0.5], abs=1e-6)
    outlier = table.copy()
    outlier.loc[0, ["yi", "sei"]] = [15.0, 0.3]
    models = {"wide": description.common_effect(outlier, {"mu": "normal(0, 1)"}),
              "narrow": description.common_effect(outlier, {"mu": "normal(0.3, 0.1)"})}
    terms = pd.DataFrame({name: engine.loo(m)["elpd_loo"].to_numpy() for name, m in models.items()})
    assert terms.iloc[0].max() < -800  # exp() of either is 0 in floating point
    got = engine.loo_compare(models)
    w = np.linspace(0, 1, 10001)[:, None]
    # log(w e^a + (1 - w) e^b) per study, computed in logs (no underflow)
    score = np.logaddexp(np.log(np.clip(w, 1e-300, None)) + terms["wide"].to_numpy(),
                         np.log(np.clip(1 - w, 1e-300, None)) + terms["narrow"].to_numpy()).sum(axis=1)
    best = float(w[score.argmax(), 0])
    assert np.isfinite(got["weight"]).all() and got["weight"].sum() == pytest.approx(1.0, abs=1e-12)
    assert 0.05 < best < 0.95 and got.loc["wide", "weight"] == pytest.approx(best, abs=2e-4)


def test_tau_draws_follow_the_exact_cdf_down_to_zero():
    """Nearly homogeneous studies: the grid starts at tau = 0 with 1.5% of the mass in its first
    cell. The draws (jittered within their cells, reflected at 0) never sit exactly at 0 and pass a
    Kolmogorov-Smirnov test against the one-tau reference's tau CDF (tests/normal_normal_reference.py; measured D 0.0045,
    p 0.81 with 20000 draws)."""
    table = _table(8, seed=2)
    table["yi"] = 0.3 + np.random.default_rng(1).normal(0, table.sei * 0.5)
    model = description.random_effects(table, {"mu": "normal(0, 1)", "tau": "halfnormal(0.5)"})
    assert engine.posterior_grid(model).nodes[0][0] == 0.0
    tree = engine.fit_exact(model, draws=5000, chains=4, seed=1)
    tau = tree.posterior["tau"].to_numpy().ravel()
    ref = normal_normal_reference(table, stats.halfnorm(scale=0.5), 0.0, 1.0)
    assert (tau > 0).all()
    assert stats.kstest(tau, lambda x: ref.tau_cdf(np.asarray(x))).pvalue > 0.01


def test_fit_exact_is_reproducible_and_uses_the_grid_it_is_given():
    """Two censored rows (the summaries mix over 64 GHK draws per node): the same seed gives the
    same summaries and draws. A coarse grid passed in is the one used by fit_exact, summary_table
    and agreement (their figures are those of exact_summary on that grid, not the default grid's).
    The posterior has exactly the dimensions chain, draw and study."""
    model = description.random_effects(censored_table(2))
    one, two = (engine.fit_exact(model, draws=100, chains=2, seed=6) for _ in range(2))
    for col in ("mean", "sd", "q2.5", "q97.5"):
        assert one["exact_summary"][col].to_numpy() == pytest.approx(two["exact_summary"][col].to_numpy(), abs=0)
    assert (one.posterior["mu"].to_numpy() == two.posterior["mu"].to_numpy()).all()
    assert set(one.posterior.to_dataset().dims) == {"chain", "draw", "study"}
    plain = description.random_effects(_table(8))
    coarse = engine.posterior_grid(plain, 9)
    on_coarse, default = engine.exact_summary(plain, coarse), engine.exact_summary(plain)
    assert abs(on_coarse.loc[("mu", "mu"), "sd"] - default.loc[("mu", "mu"), "sd"]) > 1e-8  # the grids differ
    tree = engine.fit_exact(plain, draws=200, chains=2, seed=1, grid=coarse)
    assert tree["exact_summary"]["sd"].to_numpy() == pytest.approx(on_coarse["sd"].to_numpy(float), abs=1e-15)
    assert tree.attrs["grid_nodes"] == "9"
    table = engine.summary_table(plain, coarse)
    assert table.loc["pooled (mu)", "sd"] == pytest.approx(on_coarse.loc[("mu", "mu"), "sd"], abs=1e-15)
    agree = engine.agreement(tree, plain, grid=coarse).set_index(["quantity", "statistic"])
    assert agree.loc[("pooled (mu)", "mean"), "exact"] == pytest.approx(on_coarse.loc[("mu", "mu"), "mean"], abs=1e-15)
    assert agree.loc[("tau (between studies)", "q97.5"), "exact"] == pytest.approx(
        on_coarse.loc[("tau", "tau"), "q97.5"], abs=1e-15)


@pytest.mark.parametrize("n_censored", [1, 2])
def test_draws_with_censored_rows_have_the_exact_moments(n_censored):
    """With censored rows the draws take y_c from its truncated conditional and shift g by the gain:
    mu's and tau's draws' means within 4 MCSE (sd / sqrt(N)) of the exact summaries (which
    test_engine_exact checks against evsynth.engines.marginal's quadrature), sds within 5%."""
    model = description.random_effects(censored_table(n_censored))
    tree = engine.fit_exact(model, draws=4000, chains=2, seed=12)
    exact = engine.exact_summary(model)
    for name in ("mu", "tau"):
        draws = tree.posterior[name].to_numpy().ravel()
        row = exact.loc[(name, name)]
        assert abs(draws.mean() - row["mean"]) < 4 * row["sd"] / np.sqrt(draws.size), name
        assert draws.std() == pytest.approx(row["sd"], rel=0.05), name


SD_PRIORS = {"halfcauchy(0.5)": stats.halfcauchy(scale=0.5), "halfnormal(0.3)": stats.halfnorm(scale=0.3),
             "exponential(2)": stats.expon(scale=0.5), "uniform(0, 2)": stats.uniform(0, 2)}  # rate 2


@pytest.mark.parametrize("prior", list(SD_PRIORS))
def test_sd_priors_against_one_tau_quadrature_and_quad_evidence(prior):
    """Each SD prior family (the two the engine writes in closed form and two through evsynth.model.priors),
    its density here from scipy.stats:
    mu's and tau's summaries against the one-tau reference (tests/normal_normal_reference.py), and log p(y)
    against scipy quad of N(y; 0, diag(se^2 + tau^2) + 1) p(tau) over tau (mu ~ normal(0, 1) integrated out)."""
    from scipy import integrate

    table = _table(7, seed=5)
    model = description.random_effects(table, {"mu": "normal(0, 1)", "tau": prior})
    got = engine.exact_summary(model)
    density = SD_PRIORS[prior]
    upper = 2.0 if prior.startswith("uniform") else None
    ref = normal_normal_reference(table, density, 0.0, 1.0, upper)
    for name, r in (("mu", ref.mu), ("tau", ref.tau)):
        for col, key in (("mean", "mean"), ("sd", "sd"), ("q50", "50%")):
            assert got.loc[(name, name), col] == pytest.approx(r[key], abs=1e-5 * r["sd"]), (name, col)
    y, se = table.yi.to_numpy(), table.sei.to_numpy()

    def integrand(t):
        cov = np.diag(se**2 + t**2) + 1.0
        return np.exp(stats.multivariate_normal(np.zeros(y.size), cov).logpdf(y)) * density.pdf(t)

    expected = np.log(integrate.quad(integrand, 0, upper or np.inf, epsabs=0, epsrel=1e-11, limit=200)[0])
    # measured: every family within 1e-9 (Gregory's end corrections where the box ends at a bound
    # that is not an even x = 0: uniform(0, 2) at 2, exponential(2) at 0)
    assert engine.log_evidence(model) == pytest.approx(expected, abs=1e-8)


@pytest.mark.parametrize("prior, upper", [("uniform(0, 2)", 2.0), ("uniform(0, 0.3)", 0.3), ("uniform(0.1, 0.6)", 0.6),
                                          ("exponential(2)", None)])
def test_bounded_and_uneven_priors_are_integrated_to_1e_8(prior, upper):
    """Issue 28: with a uniform(0, 2) prior the engine's posterior sd of mu was 0.1252286 against 0.1252356 by
    scipy quad: the trapezoid rule at a bound where the density is neither small nor even is only second order.
    Every summary of mu, tau and the prediction now within 1e-7 of the posterior sd of an independent reference
    (tests/normal_normal_reference.py; measured <= 6e-8, mostly ~1e-9), where the plain trapezoid was 5.6e-5
    off; a prior cut where the posterior is largest (uniform(0, 0.3)) and a lower bound above 0 too."""
    table = _table(7, seed=5)
    lower_upper = {"uniform(0, 2)": (0, 2), "uniform(0, 0.3)": (0, 0.3), "uniform(0.1, 0.6)": (0.1, 0.5)}
    density = (stats.uniform(*lower_upper[prior]) if prior.startswith("uniform") else stats.expon(scale=0.5))
    ref = normal_normal_reference(table, density, 0.0, 1.0, upper, lower=0.1 if prior == "uniform(0.1, 0.6)" else 0.0)
    got = engine.exact_summary(description.random_effects(table, {"mu": "normal(0, 1)", "tau": prior}))
    for name, r in (("mu", ref.mu), ("tau", ref.tau), ("prediction", ref.predictive)):
        label = "new study" if name == "prediction" else name
        for col, key in (("mean", "mean"), ("sd", "sd"), ("q2.5", "2.5%"), ("q50", "50%"), ("q97.5", "97.5%")):
            assert got.loc[(name, label), col] == pytest.approx(r[key], abs=1e-7 * r["sd"]), (name, col)


def test_clearly_heterogeneous_studies_put_the_tau_grid_away_from_zero():
    """Precise studies spread far beyond their SEs: the posterior of tau sits away from 0, so the
    box search zooms in on a box that does not start at 0 (node spacing no longer x[1]), and tau's
    summaries must still be those of the one-tau reference (tests/normal_normal_reference.py) (measured: the box starts at
    tau = 0.43; largest difference 2e-5 sd for tau (its quantiles), 4e-14 sd for mu)."""
    rng = np.random.default_rng(21)
    sei = rng.uniform(0.05, 0.1, 12)
    table = effect_table(rng.normal(0.5, 1.0, 12), sei)
    model = description.random_effects(table, {"mu": "normal(0, 2)", "tau": "halfcauchy(1)"})
    grid = engine.posterior_grid(model)
    assert grid.nodes[0][0] > 0.5
    got = engine.exact_summary(model, grid)
    ref = normal_normal_reference(table, stats.halfcauchy(scale=1.0), 0.0, 2.0)
    for name, r in (("mu", ref.mu), ("tau", ref.tau)):
        for col, key in (("mean", "mean"), ("sd", "sd"), ("q2.5", "2.5%"), ("q50", "50%"), ("q97.5", "97.5%")):
            assert got.loc[(name, name), col] == pytest.approx(r[key], abs=1e-4 * r["sd"]), (name, col)


def test_a_grid_of_another_model_is_refused_and_an_equal_model_shares_it():
    table = _table(4)
    model = description.random_effects(table, {"tau": "halfnormal(0.5)"})
    grid = engine.posterior_grid(model)
    same = description.random_effects(table.copy(), {"tau": "halfnormal(0.5)"})  # equal, not identical
    assert engine.summary_table(same, grid).equals(engine.summary_table(model, grid))
    shifted = table.assign(yi=table["yi"] + 0.5)
    for other in (description.random_effects(table, {"tau": "halfnormal(1.0)"}),  # prior differs
                  description.random_effects(shifted, {"tau": "halfnormal(0.5)"}),  # data differ
                  description.common_effect(table)):  # structure differs
        with pytest.raises(ValueError, match="built for another model"):
            engine.fit_exact(other, grid=grid, draws=10, chains=1)
        with pytest.raises(ValueError, match="built for another model"):
            engine.summary_table(other, grid)


# ---- the node-wise linear algebra and the mixtures' quantiles (issue 26) ---------------------


@pytest.mark.parametrize("d", [1, 2, 5, 6, 7, 9])
def test_spd_solve_equals_numpy_linalg_on_both_paths(d):
    """spd_solve's Cholesky over the stack (d <= SMALL) and its LAPACK path (larger) give numpy's
    inverse, solution and log-determinant; without the inverse the solution is the same."""
    rng = np.random.default_rng(d)
    A = rng.normal(size=(40, d, d))
    Q = A @ A.transpose(0, 2, 1) + 0.1 * np.eye(d)
    b = rng.normal(size=(40, d))
    cov, mean, logdet = engine.spd_solve(Q, b)
    np.testing.assert_allclose(cov, np.linalg.inv(Q), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(mean, np.linalg.solve(Q, b[..., None])[..., 0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(logdet, np.linalg.slogdet(Q)[1], rtol=1e-12, atol=1e-12)
    none, mean_only, logdet_only = engine.spd_solve(Q, b, inverse=False)
    assert (none is None) == (d <= engine.SMALL)
    np.testing.assert_allclose(mean_only, mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(logdet_only, logdet)


def test_spd_solve_refuses_a_matrix_that_is_not_positive_definite():
    Q = np.stack([np.eye(3), np.diag([1.0, -1.0, 1.0])])
    with pytest.raises(np.linalg.LinAlgError):
        engine.spd_solve(Q, np.ones((2, 3)))


@pytest.mark.parametrize("shape_a, shape_b", [((1681, 18), (18, 25)), ((161, 10_000), (10_000,)), ((30, 7), (7,)),
                                              ((161,), (161, 10_000)), ((5,), (5,)), ((3, 4), (4, 0))])
def test_dot_in_blocks_equals_the_plain_product(shape_a, shape_b):
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=shape_a), rng.normal(size=shape_b)
    np.testing.assert_allclose(engine.dot(a, b), a @ b, rtol=1e-12, atol=1e-10)


def test_mixture_quantiles_of_several_rows_equal_brent_on_each():
    """R mixtures sharing their weights, one of them skewed and one heavy-tailed, and more
    components than the coarse stage's threshold: every quantile equals Brent's root of that row's
    CDF to 1e-10 of its mean component sd."""
    from scipy import optimize

    rng = np.random.default_rng(3)
    n = 6 * engine.COARSE_COMPONENTS
    w = rng.random(n)
    w /= w.sum()
    means = np.stack([rng.normal(0, 0.2, n), np.exp(rng.normal(0, 0.8, n)), rng.normal(1, 0.05, n)])
    sds = np.stack([np.full(n, 0.3), rng.uniform(0.05, 0.5, n), np.exp(rng.normal(-1, 1.5, n))])
    p = np.array([1e-6, 0.025, 0.5, 0.975, 1 - 1e-6])  # nearer 1 the CDF (to 1e-16) fixes no more digits
    got = engine.mixture_quantiles(w, means, sds, p)
    for r in range(3):
        cdf = lambda x: float(stats.norm.cdf(x, means[r], sds[r]) @ w)  # noqa: E731
        for k, pk in enumerate(p):
            root = optimize.brentq(lambda x: cdf(x) - pk, -1e4, 1e4, xtol=1e-14, rtol=1e-15)
            # where the density is tiny (a heavy tail) the CDF's rounding (2 ulp of 1) fixes fewer digits of x
            close = abs(got[r, k] - root) <= 1e-10 * float(sds[r] @ w) or abs(cdf(got[r, k]) - pk) <= 4.5e-16
            assert close, (r, pk, got[r, k], root)


def test_mixture_quantiles_with_each_rows_own_weights_equal_the_rows_alone():
    """Weights (R, N), one row per mixture (engines.leave_one_out's k posteriors), above the coarse
    stage's threshold: each row's quantiles equal the shared-weights call on that row alone; a zero
    weight drops its component, from the bracket too (a far component of weight 0 changes nothing)."""
    rng = np.random.default_rng(5)
    n = 5 * engine.COARSE_COMPONENTS
    W = rng.random((3, n)) ** 4
    W[2, n // 2:] = 0.0  # the last row uses the first half only
    W /= W.sum(axis=1, keepdims=True)
    means = np.stack([rng.normal(0, 0.2, n), np.exp(rng.normal(0, 0.8, n)), rng.normal(1, 0.05, n)])
    sds = np.stack([np.full(n, 0.3), rng.uniform(0.05, 0.5, n), np.exp(rng.normal(-1, 1.0, n))])
    means[2, -1] = 1e6  # weight 0: outside every quantile's bracket when counted
    p = np.array([1e-6, 0.025, 0.5, 0.975])
    got = engine.mixture_quantiles(W, means, sds, p)
    for r in range(3):
        keep = W[r] > 0
        alone = engine.mixture_quantiles(W[r, keep], means[r:r + 1, keep], sds[r:r + 1, keep], p)[0]
        np.testing.assert_allclose(got[r], alone, rtol=0, atol=1e-11 * float(sds[r] @ W[r]))
        cdf = stats.norm.cdf(got[r][:, None], means[r, keep], sds[r, keep]) @ W[r, keep]
        np.testing.assert_allclose(cdf, p, rtol=1e-9, atol=0)


@pytest.mark.parametrize("even", [True, False])
def test_sd_marginal_over_a_stack_equals_each_row_alone(even):
    """SDMarginal.of over m densities at once (engines.leave_one_out's k tau posteriors): each row's
    quantiles and CDF equal that row's own SDMarginal, reflected at an even 0 or extrapolated."""
    x = np.linspace(0.0 if even else 0.05, 3.0, 241)
    tau = 0.4 * np.sinh(x)
    centres, widths = np.array([0.2, 0.5, 1.1]), np.array([0.15, 0.3, 0.4])
    dens = np.exp(-0.5 * ((tau[None] - centres[:, None]) / widths[:, None]) ** 2) * np.cosh(x)
    stack = engine.SDMarginal.of(0.4, x, dens, even)
    p = np.array([0.025, 0.5, 0.975])
    q = stack.quantile(p)
    assert q.shape == (3, 3)
    for r in range(3):
        alone = engine.SDMarginal.of(0.4, x, dens[r], even)
        np.testing.assert_allclose(q[r], alone.quantile(p), rtol=1e-13, atol=0)
        np.testing.assert_allclose(stack.cdf(q)[r], alone.cdf(q[r]), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(alone.cdf(q[r]), p, rtol=1e-11, atol=0)  # its own quantiles


@pytest.mark.parametrize("column", [1.0, 2.0])
def test_study_effect_moments_are_the_normal_normal_moments(column):
    """E and Var of theta_i given y and tau: (tau^2 y_i + s_i^2 c_i) / (tau^2 + s_i^2) and
    (s_i^2 / (tau^2 + s_i^2))^2 Var(c_i) + tau^2 s_i^2 / (tau^2 + s_i^2), c = A g; with an intercept
    basis (its moments broadcast over the rows) and with another single column (the row products)."""
    from dataclasses import replace

    model = description.random_effects(_table(6))
    model = replace(model, X=np.full((model.n, 1), column))
    taus = np.array([[0.0], [0.15], [0.4]])
    cond = engine.conditionals(model, taus, orthant=False)
    c = cond.mean[:, :1] * column  # (G, 1): every row's A g has the same mean and variance here
    c_var = cond.cov[:, 0, :1] * column**2
    s2, t2 = model.sei**2, taus**2
    mean, var = engine.study_effect_moments(model, cond)
    assert mean == pytest.approx((t2 * model.yi + s2 * c) / (t2 + s2), abs=1e-13)
    assert var == pytest.approx((s2 / (t2 + s2)) ** 2 * c_var + t2 * s2 / (t2 + s2), abs=1e-13)
    part, part_var = engine.study_effect_moments(model, cond, slice(2, 4))
    assert np.array_equal(part, mean[:, 2:4]) and np.array_equal(part_var, var[:, 2:4])


def test_normal_quantiles_of_the_reported_probabilities_are_scipys():
    """mixture_quantiles starts from the normal quantiles of PROBS stored as literals: scipy's floats."""
    from scipy import special

    assert engine._PROBS_Z.tolist() == special.ndtri(np.asarray(engine.PROBS)).tolist()


def test_sd_marginal_quantiles_invert_the_cdf_where_the_density_reaches_zero():
    """SDMarginal.quantile (the cell's CDF polynomial tabulated, then Newton steps kept within the
    tabulated bracket) where the density is (1 - x)^2 up to x = 1 and 0 beyond (flat CDF cells, a
    kink): the CDF at each quantile is p to rounding, and below the kink the quantiles are the exact
    density's closed form 1 - (1 - p)^(1/3) (the interpolant is exact there up to the quadrature)."""
    x = np.linspace(0.0, 2.0, 161)
    marginal = engine.SDMarginal.of(0.4, x, np.maximum(0.0, 1.0 - x) ** 2, False)
    p = np.array([1e-9, 0.01, 0.5, 0.9, 0.999, 1 - 1e-9])
    xq = marginal.axis.x(marginal.quantile(p))
    np.testing.assert_allclose(marginal._cdf_x(xq), p, rtol=1e-14, atol=1e-17)
    np.testing.assert_allclose(xq[:4], -np.expm1(np.log1p(-p[:4]) / 3), rtol=1e-12)
    assert np.all(np.diff(xq) > 0) and xq[-1] < 1.0
