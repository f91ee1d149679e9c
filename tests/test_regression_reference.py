"""Meta-regression figures (evsynth.methods.regression) against independent values, no MCMC (issue 28):

- exact engine on metadat's BCG trials (~ ablat): every coefficient's mean, sd, 2.5/50/97.5% points
  and P(> 0), tau with and without the moderator, and the R² analogue, from one-dimensional scipy
  quad over tau (tests/quad_reference.py: the coefficients are normal given tau, written from the
  model's definition, not from the engine);
- the frequentist fit beside it: metafor 3.8.1's rma(yi, vi, mods = ~ ablat) (REML, z tests;
  tests/data/reference/staples_metafor.{R,json});
- the draw-based path (engine "pymc": no exact_summary group) and predict_at on constructed draws,
  against numpy's mean, sd and quantiles of those draws.
"""

import functools
import json

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize, stats

import evsynth as es
from evsynth.methods import regression
from evsynth.methods.regression import RegressionResult, beta_draws, coefficient_table, fit_meta_regression, predict_at
from evsynth.model.moderators import ModeratorError

from conftest import ROOT, reference_file
from quad_reference import QUAD, tau_posterior

METAFOR = json.loads(reference_file("reference/staples_metafor.json").read_text())["bcg_metareg"]["REML"]
PRIORS = {"mu": "normal(0, 10)", "tau": "halfnormal(1)", "beta": "normal(0, 0.5)"}
PRIOR_VAR = np.array([100.0, 0.25])  # mu, beta
UPPER = 8.0  # half-normal(1) mass beyond 8: 1e-15


@pytest.fixture(scope="module")
def bcg():
    studies = es.load_studies(ROOT / "studies" / "bcg.csv", extra_columns=["ablat", "alloc"])
    return es.with_study_columns(es.compute_effects(studies, measure="RR"), studies)


@pytest.fixture  # per test, not per module: mutmut maps a fixture's calls to the first test that ran it
def result(bcg):
    return fit_meta_regression(bcg, "~ ablat", PRIORS, draws=200, chains=2, seed=4)


class Quad:
    """Posterior of (tau, coefficients): tau by quad, the coefficients normal given tau."""

    def __init__(self, y, v, X, prior_var, prior_sd):
        self.y, self.v, self.X, self.prior_var = y, v, X, prior_var
        self.density = tau_posterior(y, v, X, prior_var, prior_sd)
        self.mass = self.integral(lambda t: 1.0)

    def integral(self, f):
        return integrate.quad(lambda t: self.density(t) * f(t), 0, UPPER, **QUAD)[0]

    def expect(self, f):
        return self.integral(f) / self.mass

    def given(self, t):
        """(mean, covariance) of the coefficients given tau (cached: quad revisits its nodes)."""
        return self._given(float(t))

    @functools.lru_cache(maxsize=None)  # noqa: B019 -- one Quad per data set, kept for the module
    def _given(self, t):
        w = 1 / (self.v + t**2)
        S = np.linalg.inv(self.X.T @ (w[:, None] * self.X) + np.diag(1 / self.prior_var))
        return S @ (self.X.T @ (w * self.y)), S

    def coefficient(self, j):
        def m(t):
            return self.given(t)[0][j]

        def s(t):
            return np.sqrt(self.given(t)[1][j, j])

        mean = self.expect(m)
        sd = np.sqrt(self.expect(lambda t: s(t) ** 2 + m(t) ** 2) - mean**2)

        def cdf(x):
            return self.expect(lambda t: stats.norm.cdf((x - m(t)) / s(t)))

        q = [optimize.brentq(lambda x: cdf(x) - p, mean - 10 * sd, mean + 10 * sd, xtol=1e-10)
             for p in (0.025, 0.5, 0.975)]
        return {"mean": mean, "sd": sd, "q2.5": q[0], "q50": q[1], "q97.5": q[2], "P(>0)": 1 - cdf(0.0)}

    def tau(self):
        mean = self.expect(lambda t: t)
        tau2 = self.expect(lambda t: t**2)
        return mean, np.sqrt(tau2 - mean**2), tau2


@pytest.fixture(scope="module")
def quad(bcg):
    used = es.used_effects(bcg)
    y, v = used["yi"].to_numpy(), used["vi"].to_numpy()
    one = np.ones((len(y), 1))
    return {"full": Quad(y, v, np.column_stack([one, used["ablat"].to_numpy(float)]), PRIOR_VAR, 1.0),
            "null": Quad(y, v, one, PRIOR_VAR[:1], 1.0)}


def test_coefficients_match_quadrature(result, quad):
    table = result.coefficients
    assert table.index.tolist() == ["intrcpt", "ablat"] and table.index.name == "term"
    assert table.columns.tolist() == ["mean", "sd", "q2.5", "q50", "q97.5", "P(>0)"]
    for j, term in enumerate(("intrcpt", "ablat")):
        ref = quad["full"].coefficient(j)
        for column, value in ref.items():
            assert table.loc[term, column] == pytest.approx(value, abs=2e-5 * ref["sd"]), (term, column)


def test_tau_with_and_without_the_moderator_and_r2_match_quadrature(result, quad):
    het = result.heterogeneity
    assert het.index.tolist()[:2] == ["tau (residual)", "tau (no moderators)"]
    assert het.columns.tolist() == ["mean", "sd", "q2.5", "q50", "q97.5", "P(>0)"]
    (mean, sd, tau2), (mean0, sd0, tau2_0) = quad["full"].tau(), quad["null"].tau()
    for label, m, s in (("tau (residual)", mean, sd), ("tau (no moderators)", mean0, sd0)):
        assert het.loc[label, "mean"] == pytest.approx(m, rel=1e-5), label
        assert het.loc[label, "sd"] == pytest.approx(s, rel=1e-4), label
        assert np.isnan(het.loc[label, "P(>0)"])
    assert result.R2 == pytest.approx(100 * (tau2_0 - tau2) / tau2_0, abs=1e-3)


def test_the_model_without_moderators_keeps_the_chosen_mu_and_tau_priors(bcg):
    """tau (no moderators) under tau ~ half-normal(2) and mu ~ normal(0, 3): not the defaults."""
    priors = {"mu": "normal(0, 3)", "tau": "halfnormal(2)", "beta": "normal(0, 1)"}
    fit = fit_meta_regression(bcg, "~ ablat", priors, draws=50, chains=1)
    used = es.used_effects(bcg)
    null = Quad(used["yi"].to_numpy(), used["vi"].to_numpy(), np.ones((len(used), 1)), np.array([9.0]), 2.0)
    assert fit.heterogeneity.loc["tau (no moderators)", "mean"] == pytest.approx(null.tau()[0], rel=1e-5)


def test_residual_i2_rows_summarise_the_heterogeneity_draws(result):
    from evsynth.methods.heterogeneity import heterogeneity_draws

    draws = heterogeneity_draws(result.idata)
    het = result.heterogeneity
    assert het.index.tolist()[2:] == list(draws)
    for label, values in draws.items():
        q = np.quantile(values, [0.025, 0.5, 0.975])
        assert het.loc[label].iloc[:5].tolist() == pytest.approx([values.mean(), values.std(ddof=1), *q], rel=1e-12)
        assert np.isnan(het.loc[label, "P(>0)"])


def test_frequentist_fit_beside_it_is_metafors(bcg):
    fit = fit_meta_regression(bcg, "~ ablat", PRIORS, draws=50, chains=1, knapp_hartung=False)
    freq = fit.frequentist
    assert freq.knapp_hartung is False and freq.k == 13
    assert freq.tau2 == pytest.approx(METAFOR["tau2"], rel=1e-6)
    np.testing.assert_allclose(freq.coefficients["estimate"], METAFOR["b"], rtol=1e-6)
    np.testing.assert_allclose(freq.coefficients["se"], METAFOR["se"], rtol=1e-6)
    assert freq.R2 == pytest.approx(METAFOR["R2"], rel=1e-6)
    assert "REML: tau²" in str(fit) and "Knapp-Hartung" not in str(fit)


def test_result_text_and_what_the_tree_holds(result, bcg):
    text = str(result).splitlines()
    assert text[0] == "Bayesian meta-regression, mods ~ ablat (k = 13, engine exact)"
    assert f"R² (tau² explained, posterior means): {result.R2:.1f}%" in text
    freq = result.frequentist
    assert (f"REML + Knapp-Hartung: tau² {freq.tau2:.4f}, I² {freq.I2:.2f}%, R² {freq.R2:.2f}%, "
            f"QM {freq.QM:.4f} (p {freq.QM_p:.4g})") in text
    assert result.mods == "~ ablat" and result.idata.attrs["mods"] == "~ ablat"
    assert result.diagnostics is None
    X = result.idata["constant_data"]["X"]
    assert X.dims == ("study", "moderator") and X["moderator"].to_numpy().tolist() == ["ablat"]
    np.testing.assert_array_equal(X.to_numpy()[:, 0], es.used_effects(bcg)["ablat"].to_numpy(float))
    assert result.table["ablat"].tolist() == es.used_effects(bcg)["ablat"].tolist()
    draws = beta_draws(result)
    post = result.idata["posterior"]
    np.testing.assert_array_equal(draws[:, 0], post["mu"].to_numpy().ravel())
    np.testing.assert_array_equal(draws[:, 1], post["beta"].to_numpy()[..., 0].ravel())
    assert [i for i, line in enumerate(text) if not line.strip()] == [5, 12]  # blank lines between the tables
    shown = RegressionResult(**{**result.__dict__, "diagnostics": "DIAGNOSTICS LINE"})
    assert str(shown).splitlines()[-1] == "DIAGNOSTICS LINE"


def test_refusals_word_for_word(bcg):
    with pytest.raises(ValueError, match=r"^engine 'quick' for meta-regression unknown; choose one of "
                                         r"\('exact', 'pymc'\)$"):
        fit_meta_regression(bcg, "~ ablat", engine="quick", draws=50, chains=1)
    with pytest.raises(ValueError, match=r"^options \['target_accept', 'tune'\] are for engine 'pymc' \(the exact "
                                         r"engine does not sample\)$"):
        fit_meta_regression(bcg, "~ ablat", draws=50, chains=1, tune=10, target_accept=0.9)
    with pytest.raises(ModeratorError, match=r"needs the intercept \(its mu\); drop '0 \+' / '- 1' from the formula$"):
        fit_meta_regression(bcg, "~ 0 + ablat", draws=50, chains=1)


def test_the_r2_is_truncated_at_zero_and_nan_without_tau2(bcg, monkeypatch):
    """R² = max(0, 100 (E tau²_0 - E tau²) / E tau²_0), NaN when E tau²_0 = 0: moments set by hand."""
    values = {}

    def moments(tree):
        return {"mean": 0.0}, values["full" if "beta" in tree["posterior"] else "null"]

    monkeypatch.setattr(regression, "_tau_moments", moments)
    for full, null, expected in ((0.3, 0.2, 0.0), (0.2, 0.2, 0.0), (0.1, 0.4, 75.0), (0.0, 0.0, np.nan),
                                 (0.1, 0.0, np.nan)):
        values.update(full=full, null=null)
        r2 = fit_meta_regression(bcg, "~ ablat", draws=20, chains=1).R2
        assert r2 == pytest.approx(expected, nan_ok=True), (full, null)


# --------------------------------------------------------------------------- draws (engine pymc)


def constructed_tree(mu, beta, tau, terms=("x",)):
    """A fit as engine "pymc" leaves it: posterior draws only, no exact_summary group."""
    tree = az.from_dict({"posterior": {"mu": mu, "beta": beta, "tau": tau}},
                        dims={"beta": ["moderator"]}, coords={"moderator": list(terms)})
    return tree


def test_draw_based_coefficients_and_tau(bcg):
    rng = np.random.default_rng(1)
    mu = rng.normal(0.2, 0.1, (2, 300))
    beta = np.stack([rng.normal(-0.5, 0.2, (2, 300)), rng.normal(0.1, 1.0, (2, 300))], axis=-1)
    tau = np.abs(rng.normal(0.3, 0.1, (2, 300)))
    tree = constructed_tree(mu, beta, tau, ("a", "C(b)[T.y]"))
    table = coefficient_table(tree)
    assert table.index.tolist() == ["intrcpt", "a", "C(b)[T.y]"]
    for term, draws in (("intrcpt", mu.ravel()), ("a", beta[..., 0].ravel()), ("C(b)[T.y]", beta[..., 1].ravel())):
        q = np.quantile(draws, [0.025, 0.5, 0.975])
        assert table.loc[term].tolist() == pytest.approx(
            [draws.mean(), draws.std(ddof=1), *q, (draws > 0).mean()], rel=1e-12), term
    row, tau2 = regression._tau_moments(tree)
    q = np.quantile(tau.ravel(), [0.025, 0.5, 0.975])
    assert [row[c] for c in ("mean", "sd", "q2.5", "q50", "q97.5")] == pytest.approx(
        [tau.mean(), tau.ravel().std(ddof=1), *q], rel=1e-12)
    assert np.isnan(row["P(>0)"]) and tau2 == pytest.approx(np.mean(tau**2), rel=1e-12)


def test_draws_are_flattened_chain_by_chain_whatever_the_dim_order():
    beta = np.arange(12.0).reshape(2, 3, 2)  # chain, draw, moderator
    tree = constructed_tree(np.arange(6.0).reshape(2, 3), beta, np.ones((2, 3)), ("a", "b"))
    tree["posterior"]["beta"] = tree["posterior"]["beta"].transpose("moderator", "draw", "chain")
    flat = regression._flat(tree, "beta")
    np.testing.assert_array_equal(flat, beta.reshape(6, 2))
    np.testing.assert_array_equal(regression._flat(tree, "mu"), np.arange(6.0))


def test_an_exact_summary_is_read_by_variable_and_label():
    ds = pd.DataFrame({"variable": ["mu", "beta", "tau"], "label": ["mu", "x", "tau"],
                       "mean": [1.0, 2.0, 0.5], "sd": [0.1, 0.2, 0.3], "q2.5": [0.8, 1.6, 0.1],
                       "q50": [1.0, 2.0, 0.4], "q97.5": [1.2, 2.4, 1.2], "p_gt_0": [1.0, 0.99, 1.0]})
    tree = constructed_tree(np.zeros((1, 4)), np.zeros((1, 4, 1)), np.ones((1, 4)))
    import xarray as xr

    tree["exact_summary"] = xr.Dataset.from_dataframe(ds.rename_axis("row"))
    table = coefficient_table(tree)
    assert table.loc["intrcpt"].tolist() == [1.0, 0.1, 0.8, 1.0, 1.2, 1.0]
    assert table.loc["x"].tolist() == [2.0, 0.2, 1.6, 2.0, 2.4, 0.99]
    row, tau2 = regression._tau_moments(tree)
    assert [row[c] for c in ("mean", "sd", "q2.5", "q50", "q97.5")] == [0.5, 0.3, 0.1, 0.4, 1.2]
    assert np.isnan(row["P(>0)"]) and tau2 == pytest.approx(0.3**2 + 0.5**2)
    assert regression._exact_rows(constructed_tree(np.zeros((1, 2)), np.zeros((1, 2, 1)), np.ones((1, 2)))) is None


def test_predict_at_from_constructed_draws():
    rng = np.random.default_rng(2)
    mu, slope = rng.normal(1.0, 0.1, (2, 500)), rng.normal(-0.5, 0.05, (2, 500))
    tau = np.full((2, 500), 0.0)
    tree = constructed_tree(mu, slope[..., None], tau)
    result = RegressionResult(mods="~ x", idata=tree, coefficients=coefficient_table(tree), heterogeneity=None,
                              R2=np.nan, frequentist=None, table=None)
    X_new = [[1, 0.0], [1, 2.0]]
    pred = predict_at(result, X_new)
    assert pred.columns.tolist() == ["mean", "mcse_mean", "q2.5", "q50", "q97.5", "pi_low", "pi_high"]
    for i, x in enumerate((0.0, 2.0)):
        line = (mu + x * slope).ravel()
        q = np.quantile(line, [0.025, 0.5, 0.975])
        assert pred.iloc[i].tolist() == pytest.approx(
            [line.mean(), line.std(ddof=1) / np.sqrt(1000), *q, q[0], q[2]], rel=1e-12)  # tau 0: PI = CrI
    # with tau: a new study's effect is the line plus N(0, tau²) noise drawn with `seed`
    tau = np.full((2, 500), 0.4)
    tree = constructed_tree(mu, slope[..., None], tau)
    result = RegressionResult(mods="~ x", idata=tree, coefficients=None, heterogeneity=None, R2=np.nan,
                              frequentist=None, table=None)
    line = (mu + 2.0 * slope).ravel()
    new = line + 0.4 * np.random.default_rng(7).standard_normal((1000, 1))[:, 0]
    pred = predict_at(result, [1, 2.0], seed=7)
    assert [pred.loc[0, "pi_low"], pred.loc[0, "pi_high"]] == pytest.approx(np.quantile(new, [0.025, 0.975]),
                                                                           rel=1e-12)
    assert predict_at(result, [1, 2.0], seed=8).loc[0, "pi_low"] != pred.loc[0, "pi_low"]
    default = line + 0.4 * np.random.default_rng(0).standard_normal((1000, 1))[:, 0]  # seed 0 unless given
    assert predict_at(result, [1, 2.0]).loc[0, "pi_low"] == pytest.approx(np.quantile(default, 0.025), rel=1e-12)
    # ~N(mean, 0.1² + 4 0.05² + 0.4²): the interval is about +-1.96 sd wide
    sd = np.sqrt(0.1**2 + 4 * 0.05**2 + 0.4**2)
    assert pred.loc[0, "pi_high"] - pred.loc[0, "pi_low"] == pytest.approx(2 * 1.96 * sd, rel=0.1)
    with pytest.raises(ValueError, match=r"^X_new has 3 columns; the model has 2 \(intrcpt, x\)$"):
        predict_at(RegressionResult(**{**result.__dict__, "coefficients": coefficient_table(tree)}), [[1, 0, 0]])


def test_sampled_engine_path_with_the_sampler_replaced(bcg, monkeypatch):
    """engine "pymc": the description is built and sampled with the options given (here the sampler
    returns the exact engine's draws without its summary group, so the draw-based tables are used),
    the model without moderators likewise, and the diagnostics of the regression fit are attached."""
    import evsynth.engines.fit as fit_module
    import evsynth.engines.pymc as pymc_module
    import evsynth.methods.diagnostics as diagnostics
    from evsynth.engines.exact import fit_exact

    calls = []

    def fake_fit(model, **options):
        calls.append((model.kind, options))
        tree = fit_exact(model, draws=options["draws"], chains=options["chains"], seed=options["seed"])
        del tree["exact_summary"]
        tree.attrs["engine"] = "pymc"
        return tree

    monkeypatch.setattr(pymc_module, "build", lambda model: model)
    monkeypatch.setattr(fit_module, "fit", fake_fit)
    monkeypatch.setattr(diagnostics, "diagnose", lambda tree: f"diagnosed {sorted(tree['posterior'].data_vars)}")
    fit = fit_meta_regression(bcg, "~ ablat", PRIORS, engine="pymc", draws=300, chains=2, seed=9, tune=50,
                              target_accept=0.95)
    options = {"draws": 300, "chains": 2, "seed": 9, "tune": 50, "target_accept": 0.95}
    assert calls == [("meta_regression", options), ("random_effects", options)]
    assert fit.diagnostics == "diagnosed ['beta', 'mu', 'tau', 'theta']"
    assert str(fit).splitlines()[0] == "Bayesian meta-regression, mods ~ ablat (k = 13, engine pymc)"
    assert str(fit).splitlines()[-1] == "diagnosed ['beta', 'mu', 'tau', 'theta']"
    beta = fit.idata["posterior"]["beta"].to_numpy()[..., 0].ravel()
    q = np.quantile(beta, [0.025, 0.5, 0.975])
    assert fit.coefficients.loc["ablat"].tolist() == pytest.approx(
        [beta.mean(), beta.std(ddof=1), *q, (beta > 0).mean()], rel=1e-12)
    tau = fit.idata["posterior"]["tau"].to_numpy().ravel()
    assert fit.heterogeneity.loc["tau (residual)", "mean"] == pytest.approx(tau.mean(), rel=1e-12)


def test_result_text_prints_each_table_with_four_decimals(result):
    text = str(result).splitlines()
    for term, row in result.coefficients.iterrows():
        line = next(line for line in text if line.startswith(term + " "))
        assert line.split() == [term, *[f"{v:.4f}" for v in row]], line
    line = next(line for line in text if line.startswith("tau (residual)"))
    assert line.split()[2:] == [*[f"{v:.4f}" for v in result.heterogeneity.loc["tau (residual)"].iloc[:5]], "NaN"]
    estimate = result.frequentist.coefficients["estimate"]
    assert any(line.split()[:2] == ["intrcpt", f"{estimate['intrcpt']:.4f}"] for line in text[text.index(
        next(line for line in text if line.startswith("REML"))):])


def test_defaults_and_the_seed_reach_both_fits(bcg):
    """draws 1000 x chains 4, seed 2026 unless given; the seed fixes the draws (the I² rows are summaries
    of draws), for the model without moderators too."""
    default = fit_meta_regression(bcg, "~ ablat")
    assert dict(default.idata["posterior"].sizes)["chain"] == 4 and dict(default.idata["posterior"].sizes)["draw"] == 1000
    same = fit_meta_regression(bcg, "~ ablat", draws=1000, chains=4, seed=2026)
    pd.testing.assert_frame_equal(default.heterogeneity, same.heterogeneity)
    other = fit_meta_regression(bcg, "~ ablat", seed=2027)
    assert not np.allclose(other.heterogeneity.iloc[2:, :5], default.heterogeneity.iloc[2:, :5])
    again = fit_meta_regression(bcg, "~ ablat", seed=2027)
    pd.testing.assert_frame_equal(other.heterogeneity, again.heterogeneity)
