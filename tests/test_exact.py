"""evsynth.engines.normal_normal against bayesmeta's published numbers, closed forms and an MCMC fit.

Reference numbers: tests/data/reference_figures.md (bayesmeta on the unrounded eight-schools data).
bayesmeta computes tau summaries by adaptive quadrature but mu summaries from a coarse discrete
mixture (DIRECT, delta = 0.01), so mu is compared at 3 decimals against the exact posterior and
at the printed precision against `bayesmeta_direct`, our emulation of that approximation.
"""

import time

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize, special, stats

from evsynth.engines.bayesmeta_direct import bayesmeta_direct
from evsynth.engines.normal_normal import check_against_exact, exact_posterior
from evsynth.methods.frequentist import common_effect

from conftest import assert_printed, reference_file


# bayesmeta's Rubin1981 data (unrounded eight schools), as listed in tests/data/reference_figures.md
Y8 = np.array([28.39, 7.94, -2.75, 6.82, -0.64, 0.63, 18.01, 12.16])
S8 = np.array([14.9, 10.2, 16.3, 11.0, 9.4, 11.4, 10.4, 17.6])


@pytest.fixture(scope="module")
def readme():
    return reference_file("reference_figures.md").read_text()


@pytest.fixture(scope="module")
def halfcauchy_post():
    return exact_posterior(Y8, S8, tau_prior="halfcauchy(25)", mu_prior="normal(0, 50)")


@pytest.fixture(scope="module")
def uniform_post():
    return exact_posterior(Y8, S8, tau_prior="uniform", mu_prior=None)


# ----------------------------------------------------------------------------- bayesmeta numbers


def test_halfcauchy_tau_matches_bayesmeta(readme, halfcauchy_post):
    # bayesmeta integrates tau adaptively, so 4 printed decimals must agree
    assert_printed(halfcauchy_post.tau["50%"], "4.7585")
    assert_printed(halfcauchy_post.tau["mean"], "5.8845")


def test_halfcauchy_mu_matches_bayesmeta_to_3_decimals(readme, halfcauchy_post):
    mu = halfcauchy_post.mu
    assert_printed(mu["50%"], "7.9630", tol=1e-3)
    assert_printed(mu["mean"], "7.9857", tol=1e-3)
    assert_printed(mu["sd"], "4.9958", tol=1e-3)
    assert_printed(mu["P(mu>0)"], "0.94875", tol=1e-4)


def test_uniform_priors_match_bayesmeta(readme, uniform_post):
    assert uniform_post.tau_prior == "uniform(0, inf)" and uniform_post.mu_prior == "flat"
    assert_printed(uniform_post.tau["50%"], "5.2277")
    assert_printed(uniform_post.mu["50%"], "8.0559", tol=1e-3)


def test_bayesmeta_direct_reproduces_published_mu_exactly(readme, halfcauchy_post, uniform_post):
    direct = bayesmeta_direct(halfcauchy_post)
    assert_printed(direct.ppf(0.5)[0], "7.9630")
    assert_printed(direct.mean, "7.9857")
    assert_printed(direct.sd, "4.9958")
    assert_printed(1 - direct.cdf(0.0), "0.94875")
    assert_printed(bayesmeta_direct(uniform_post).ppf(0.5)[0], "8.0559")


def test_flat_mu_prior_differs_from_normal_50(halfcauchy_post):
    # guards against silently ignoring mu_prior: the published numbers need N(0, 50)
    flat = exact_posterior(Y8, S8, tau_prior="halfcauchy(25)")
    assert abs(flat.mu["50%"] - halfcauchy_post.mu["50%"]) > 0.05


# ----------------------------------------------------------------------------- independent checks


def test_against_adaptive_quadrature(halfcauchy_post):
    # scipy.quad over tau of the conditional moments: a second, independent integration
    prior = stats.halfcauchy(0, 25)  # frozen once: freezing per call cost most of the test's time

    def unnorm(t):
        v = S8**2 + t**2
        w = 1 / v
        sw = w.sum() + 1 / 50**2
        m = (w @ Y8) / sw
        ll = -0.5 * (np.log(v).sum() + (w * (Y8 - m) ** 2).sum() + m**2 / 50**2 + np.log(sw))
        return np.exp(ll) * prior.pdf(t), m, 1 / sw

    opts = dict(a=0, b=np.inf, epsabs=0, epsrel=1e-11, limit=400)
    z = integrate.quad(lambda t: unnorm(t)[0], **opts)[0]
    e_tau = integrate.quad(lambda t: unnorm(t)[0] * t, **opts)[0] / z
    e_mu = integrate.quad(lambda t: unnorm(t)[0] * unnorm(t)[1], **opts)[0] / z
    p_pos = integrate.quad(lambda t: unnorm(t)[0] * stats.norm.sf(0, unnorm(t)[1], np.sqrt(unnorm(t)[2])),
                           **opts)[0] / z
    assert halfcauchy_post.tau["mean"] == pytest.approx(e_tau, abs=1e-6)
    assert halfcauchy_post.mu["mean"] == pytest.approx(e_mu, abs=1e-6)
    assert halfcauchy_post.mu["P(mu>0)"] == pytest.approx(p_pos, abs=1e-7)


@pytest.mark.parametrize("tau", [0.0, 3.0, 12.0])
def test_fixed_tau_gives_weighted_mean(tau):
    post = exact_posterior(Y8, S8, tau_prior=tau)
    w = 1 / (S8**2 + tau**2)
    assert post.mu["mean"] == pytest.approx(w @ Y8 / w.sum(), rel=1e-12)
    assert post.mu["sd"] == pytest.approx(w.sum() ** -0.5, rel=1e-12)
    assert post.mu["50%"] == pytest.approx(w @ Y8 / w.sum(), rel=1e-9)
    assert post.predictive["sd"] == pytest.approx(np.sqrt(1 / w.sum() + tau**2), rel=1e-12)
    # theta_i given tau: precision-weighted compromise between y_i and mu
    b = S8**2 / (S8**2 + tau**2)
    expected = (1 - b) * Y8 + b * (w @ Y8 / w.sum())
    np.testing.assert_allclose(post.theta["mean"], expected, rtol=1e-12)


def test_narrow_tau_prior_gives_common_effect():
    post = exact_posterior(Y8, S8, tau_prior="halfnormal(1e-4)")
    fe = common_effect(Y8, S8**2)
    assert post.mu["mean"] == pytest.approx(fe.mu, abs=1e-6)
    assert post.mu["sd"] == pytest.approx(fe.se, abs=1e-6)
    assert post.mu["2.5%"] == pytest.approx(fe.ci_low, abs=1e-5)
    assert post.mu["97.5%"] == pytest.approx(fe.ci_high, abs=1e-5)


def test_normal_mu_prior_with_fixed_tau_is_conjugate():
    post = exact_posterior(Y8, S8, tau_prior=5.0, mu_prior="normal(2, 3)")
    prec = np.sum(1 / (S8**2 + 25)) + 1 / 9
    mean = (np.sum(Y8 / (S8**2 + 25)) + 2 / 9) / prec
    assert post.mu["mean"] == pytest.approx(mean, rel=1e-12)
    assert post.mu["sd"] == pytest.approx(prec**-0.5, rel=1e-12)


@pytest.mark.parametrize("family,scale", [("halfnormal", 1.0), ("halfcauchy", 2.0), ("exponential", 0.5)])
def test_uninformative_data_return_the_prior(family, scale):
    # with huge standard errors the likelihood is flat in tau over the prior's bulk (it only
    # bites at tau ~ s, which removes ~1/s of the half-Cauchy's heavy tail: s = 1e9 is enough)
    post = exact_posterior(Y8, np.full(8, 1e9), tau_prior=f"{family}({scale})")
    prior = {"halfnormal": stats.halfnorm(0, scale), "halfcauchy": stats.halfcauchy(0, scale),
             "exponential": stats.expon(0, 1 / scale)}[family]
    for p in (0.025, 0.5, 0.975):
        assert post.tau_quantile(p)[0] == pytest.approx(prior.ppf(p), rel=1e-4)
    if family != "halfcauchy":  # the half-Cauchy prior has no mean
        assert post.tau["mean"] == pytest.approx(prior.mean(), rel=1e-4)


class QuadReference:
    """The same posterior by scipy's adaptive quadrature over tau (no grid of ours): p(tau | y) is
    the prior times the closed-form marginal likelihood of the normal-normal model with mu
    integrated out; everything else is a normal conditional given tau."""

    def __init__(self, tau_pdf, mu_sd=None, upper=np.inf):
        self.tau_pdf, self.mu_prec, self.upper = tau_pdf, 0.0 if mu_sd is None else mu_sd**-2, upper
        self.z = self._quad(lambda t: 1.0)

    def conditional(self, t):
        v = S8**2 + t**2
        w = 1 / v
        sw = w.sum() + self.mu_prec
        m = (w @ Y8) / sw  # the mu prior has mean 0
        ll = -0.5 * (np.log(v).sum() + (w * (Y8 - m) ** 2).sum() + self.mu_prec * m**2 + np.log(sw))
        b = S8**2 / v
        return dict(dens=np.exp(ll + 30) * self.tau_pdf(t), mu_mean=m, mu_var=1 / sw,
                    theta_mean=(1 - b) * Y8 + b * m, theta_var=b * t**2 + b**2 / sw)

    def _quad(self, f, a=0.0, b=None):
        b = self.upper if b is None else b
        return integrate.quad(lambda t: self.conditional(t)["dens"] * f(t), a, b, epsabs=0, epsrel=1e-11,
                              limit=400)[0]

    def expect(self, f, a=0.0, b=None):
        return self._quad(f, a, b) / self.z

    def tau_cdf(self, x):
        return self.expect(lambda t: 1.0, 0.0, x)

    def mu_cdf(self, x):
        def conditional_cdf(t):  # Phi((x - m) / s), as stats.norm.cdf(x, m, s) without its per-call checks
            c = self.conditional(t)
            return special.ndtr((x - c["mu_mean"]) / np.sqrt(c["mu_var"]))

        return self.expect(conditional_cdf)

    def quantile(self, cdf, p, lo, hi):
        return optimize.brentq(lambda x: cdf(x) - p, lo, hi, xtol=1e-12)


@pytest.fixture(scope="module")
def halfcauchy_quad():
    # the half-Cauchy(25) density written out (stats.halfcauchy(0, 25).pdf to ~1e-16; its per-call
    # argument checks cost more than the rest of the integrand)
    return QuadReference(lambda t: 2 / (np.pi * 25 * (1 + (t / 25) ** 2)), mu_sd=50.0)


def test_quantiles_and_cdfs_against_quadrature(halfcauchy_post, halfcauchy_quad):
    ref = halfcauchy_quad
    for x in (1.0, 4.0, 10.0, 30.0):
        assert halfcauchy_post.tau_cdf(x) == pytest.approx(ref.tau_cdf(x), abs=1e-8)
    for x in (-5.0, 0.0, 8.0, 15.0):
        assert float(halfcauchy_post.mu_cdf(x)) == pytest.approx(ref.mu_cdf(x), abs=1e-8)
    for p in (0.025, 0.5, 0.975):
        assert halfcauchy_post.tau_quantile(p)[0] == pytest.approx(ref.quantile(ref.tau_cdf, p, 1e-9, 200), abs=1e-6)
        assert halfcauchy_post.mu_quantile(p)[0] == pytest.approx(ref.quantile(ref.mu_cdf, p, -50, 60), abs=1e-6)
    # the inverse functions agree with each other far into the tails
    p = np.array([0.001, 0.1, 0.5, 0.9, 0.999])
    np.testing.assert_allclose(halfcauchy_post.tau_cdf(halfcauchy_post.tau_quantile(p)), p, atol=1e-10)
    np.testing.assert_allclose(halfcauchy_post.mu_cdf(halfcauchy_post.mu_quantile(p)), p, atol=1e-10)


def test_moments_against_quadrature(halfcauchy_post, halfcauchy_quad):
    ref = halfcauchy_quad
    c = ref.conditional
    tau_mean = ref.expect(lambda t: t)
    assert halfcauchy_post.tau["sd"] == pytest.approx(np.sqrt(ref.expect(lambda t: (t - tau_mean) ** 2)), abs=1e-6)
    mu_mean = ref.expect(lambda t: c(t)["mu_mean"])
    mu_var = ref.expect(lambda t: c(t)["mu_var"] + (c(t)["mu_mean"] - mu_mean) ** 2)
    assert halfcauchy_post.mu["sd"] == pytest.approx(np.sqrt(mu_var), abs=1e-6)
    # a new study's effect: mu's conditional variance plus tau^2
    assert halfcauchy_post.predictive["sd"] == pytest.approx(np.sqrt(mu_var + ref.expect(lambda t: t**2)), abs=1e-6)
    pred_median = ref.quantile(lambda x: ref.expect(lambda t: stats.norm.cdf(
        x, c(t)["mu_mean"], np.sqrt(c(t)["mu_var"] + t**2))), 0.5, -50, 60)
    assert halfcauchy_post.predictive["50%"] == pytest.approx(pred_median, abs=1e-6)


def test_theta_against_quadrature(halfcauchy_post, halfcauchy_quad):
    ref = halfcauchy_quad
    c = ref.conditional
    theta = halfcauchy_post.theta
    assert list(theta.columns) == ["y", "se", "mean", "sd"]
    for i in (0, 2, 6):
        mean = ref.expect(lambda t: c(t)["theta_mean"][i])
        var = ref.expect(lambda t: c(t)["theta_var"][i] + (c(t)["theta_mean"][i] - mean) ** 2)
        assert theta["mean"].iloc[i] == pytest.approx(mean, abs=1e-6)
        assert theta["sd"].iloc[i] == pytest.approx(np.sqrt(var), abs=1e-6)
        cdf_at_y = ref.expect(lambda t: stats.norm.cdf(Y8[i], c(t)["theta_mean"][i], np.sqrt(c(t)["theta_var"][i])))
        assert float(halfcauchy_post.theta_mixture(i).cdf(Y8[i])) == pytest.approx(cdf_at_y, abs=1e-8)
    # shrinkage towards mu, with less uncertainty than the study alone
    mu = halfcauchy_post.mu["mean"]
    assert np.all(np.abs(theta["mean"] - mu) < np.abs(theta["y"] - mu))
    assert np.all(theta["sd"] < theta["se"])


def test_heavy_tails_report_missing_moments():
    # improper uniform tau prior, flat mu, 3 studies: tau density ~ tau^-2, so no mean
    post = exact_posterior(Y8[:3], S8[:3], tau_prior="uniform")
    assert post.tau["mean"] == np.inf and post.mu["sd"] == np.inf
    assert np.isfinite(post.tau["50%"]) and np.isfinite(post.mu["50%"])
    with pytest.raises(ValueError, match="improper"):
        exact_posterior(Y8[:2], S8[:2], tau_prior="uniform")


def test_bad_priors_are_refused():
    with pytest.raises(ValueError, match="tau > 0"):
        exact_posterior(Y8, S8, tau_prior="normal(0, 1)")
    with pytest.raises(ValueError, match="conjugate"):
        exact_posterior(Y8, S8, mu_prior="halfnormal(1)")
    with pytest.raises(ValueError):
        exact_posterior(Y8, -S8)


def test_fast_enough_for_50_studies():
    # benchmarks/bench_exact.py measures properly; this only catches gross regressions
    rng = np.random.default_rng(3)
    sei = rng.uniform(0.1, 0.5, 50)
    yi = rng.normal(0.3, np.sqrt(0.04 + sei**2))
    exact_posterior(yi, sei).summary()
    t0 = time.perf_counter()
    post = exact_posterior(yi, sei)
    post.summary(), post.theta
    assert time.perf_counter() - t0 < 0.5


# ----------------------------------------------------------------------------- MCMC comparison


@pytest.fixture(scope="module")
def mcmc_idata():
    """Non-centred eight-schools fit with the contract's constant_data and attrs."""
    pm = pytest.importorskip("pymc")
    d = pd.read_csv(reference_file("eight_schools.csv"))
    with pm.Model(coords={"study": d.school.tolist()}):
        yi = pm.Data("yi", d.y.to_numpy(float), dims="study")
        sei = pm.Data("sei", d.sigma.to_numpy(float), dims="study")
        mu = pm.Normal("mu", 0, 5)
        tau = pm.HalfCauchy("tau", 5)
        z = pm.Normal("z", 0, 1, dims="study")
        theta = pm.Deterministic("theta", mu + tau * z, dims="study")
        pm.Normal("y", theta, sei, observed=yi, dims="study")
        idata = pm.sample(draws=1000, tune=1000, chains=4, cores=1, random_seed=20240601,
                          target_accept=0.95, progressbar=False, compute_convergence_checks=False)
    # PyMC files observed pm.Data under observed_data; the contract wants yi in constant_data too
    idata.constant_data["yi"] = idata.observed_data["y"].copy()
    idata.attrs.update(model="random_effects", prior_mu="normal(0, 5)", prior_tau="halfcauchy(5)")
    return idata


@pytest.mark.slow  # the fixture samples eight schools with PyMC (4 x 2000)
def test_mcmc_agrees_with_exact(mcmc_idata):
    table = check_against_exact(mcmc_idata)
    assert list(table.columns) == ["parameter", "statistic", "mcmc", "exact", "mcse", "z", "ok"]
    assert len(table) == 8 and (table.mcse > 0).all()
    assert table.ok.all(), table.to_string()
    # the README's approximate PyMC/Stan figures: mu mean about 4.4, tau mean about 3.6
    exact = table.set_index(["parameter", "statistic"]).exact
    assert exact["mu", "mean"] == pytest.approx(4.4, abs=0.1)
    assert exact["tau", "mean"] == pytest.approx(3.6, abs=0.1)


@pytest.mark.slow  # the fixture samples eight schools with PyMC (4 x 2000)
def test_check_detects_a_wrong_prior(mcmc_idata):
    # same draws judged against a much tighter tau prior: the check must flag tau
    table = check_against_exact(mcmc_idata, tau_prior="halfnormal(1)")
    assert not table[table.parameter == "tau"].ok.all(), table.to_string()


def test_bounded_tau_prior_against_adaptive_quadrature():
    # uniform(0, 10): the posterior density of tau is far from zero at the upper end of the grid, so
    # the end-corrected weights there matter (a prior vanishing at the grid end would hide them).
    def unnorm(t):
        v = S8**2 + t**2
        w = 1 / v
        m = (w @ Y8) / w.sum()
        return np.exp(-0.5 * (np.log(v).sum() + (w * (Y8 - m) ** 2).sum() + np.log(w.sum()))), m, 1 / w.sum()

    opts = dict(a=0, b=10, epsabs=0, epsrel=1e-12, limit=200)
    z = integrate.quad(lambda t: unnorm(t)[0], **opts)[0]
    e_tau = integrate.quad(lambda t: unnorm(t)[0] * t, **opts)[0] / z
    e_tau2 = integrate.quad(lambda t: unnorm(t)[0] * t**2, **opts)[0] / z
    e_mu = integrate.quad(lambda t: unnorm(t)[0] * unnorm(t)[1], **opts)[0] / z
    cdf_5 = integrate.quad(lambda t: unnorm(t)[0], 0, 5, epsabs=0, epsrel=1e-12)[0] / z
    post = exact_posterior(Y8, S8, tau_prior="uniform(0, 10)")
    assert unnorm(10.0)[0] > 0.3 * unnorm(0.0)[0]  # the premise: much density at the upper bound
    assert post.tau["mean"] == pytest.approx(e_tau, abs=1e-7)
    assert post.tau["sd"] == pytest.approx(np.sqrt(e_tau2 - e_tau**2), abs=1e-7)
    assert post.mu["mean"] == pytest.approx(e_mu, abs=1e-7)
    assert post.tau_cdf(5.0) == pytest.approx(cdf_5, abs=1e-8)


# ----------------------------------------------------------------------------- priors, labels, tails


def test_prior_spellings_and_labels():
    flat = exact_posterior(Y8, S8, tau_prior=3.0)
    for spelling in ("flat", " Flat ", "uniform", "UNIFORM()"):
        post = exact_posterior(Y8, S8, tau_prior=3.0, mu_prior=spelling)
        assert post.mu_prior == "flat" and post.mu["mean"] == flat.mu["mean"]
    assert exact_posterior(Y8, S8, tau_prior=3.0, mu_prior="normal(0, 50)").mu_prior == "normal(0, 50)"
    assert flat.tau_prior == "fixed(3)"
    assert exact_posterior(Y8, S8, tau_prior=" Uniform() ").tau_prior == "uniform(0, inf)"
    assert exact_posterior(Y8, S8, tau_prior="uniform(0, 10)").tau_prior == "uniform(0, 10)"
    assert exact_posterior(Y8, S8, tau_prior="halfcauchy(25)").tau_prior == "halfcauchy(25)"
    summary = flat.summary()
    assert list(summary.index) == ["mu", "tau", "predictive"]
    assert set(summary.columns) == {"mean", "sd", "2.5%", "50%", "97.5%", "P(mu>0)"}
    with pytest.raises(ValueError, match="fixed tau must be finite and >= 0"):
        exact_posterior(Y8, S8, tau_prior=np.inf)
    with pytest.raises(ValueError, match="fixed tau must be finite and >= 0"):
        exact_posterior(Y8, S8, tau_prior=-1.0)
    with pytest.raises(ValueError, match="lower bound must be >= 0"):
        exact_posterior(Y8, S8, tau_prior="uniform(-1, 10)")


def test_tau_prior_with_a_positive_lower_bound_against_quadrature():
    # uniform(4, 10): no mass below 4; moments by scipy quad over [4, 10]
    ref = QuadReference(lambda t: 1.0, upper=10.0)
    z = ref._quad(lambda t: 1.0, 4.0, 10.0)
    mean = ref._quad(lambda t: t, 4.0, 10.0) / z
    sd = np.sqrt(ref._quad(lambda t: (t - mean) ** 2, 4.0, 10.0) / z)
    post = exact_posterior(Y8, S8, tau_prior="uniform(4, 10)")
    assert post.tau_cdf(3.99) == 0.0 and post.tau["2.5%"] > 4.0
    assert post.tau["mean"] == pytest.approx(mean, abs=1e-7)
    assert post.tau["sd"] == pytest.approx(sd, abs=1e-7)
    assert post.tau["50%"] == pytest.approx(
        optimize.brentq(lambda x: ref._quad(lambda t: 1.0, 4.0, x) / z - 0.5, 4.0, 10.0), abs=1e-7)


@pytest.mark.parametrize("prior, mean_exists, sd_exists", [
    ("halfcauchy(5)", False, False),           # tail tau^-2: no mean
    ("halfstudent_t(1.5, 5)", True, False),    # tail tau^-2.5: mean, no variance
    ("halfstudent_t(2.5, 5)", True, True),     # tail tau^-3.5: both
    ("halfnormal(5)", True, True),
])
def test_moments_that_exist_with_one_study(prior, mean_exists, sd_exists):
    # One study, flat mu prior: p(y | tau) is constant in tau for large tau (it does not fall
    # like tau^-(k - 1) = tau^0), so the posterior tail of tau is the prior's: a half-t with nu
    # degrees of freedom falls like tau^-(nu + 1); the r-th moment exists when nu > r.
    post = exact_posterior(Y8[:1], S8[:1], tau_prior=prior)
    assert np.isfinite(post.tau["mean"]) == mean_exists
    assert np.isfinite(post.tau["sd"]) == sd_exists
    assert np.isfinite(post.tau["50%"])
    assert np.isfinite(post.mu["sd"]) == sd_exists  # mu's variance needs E[tau^2]
    if prior == "halfnormal(5)":  # the likelihood in tau is then N(y; mu, s^2 + tau^2) with mu flat: constant
        assert post.tau["mean"] == pytest.approx(stats.halfnorm(0, 5).mean(), rel=1e-6)


def iid_posterior_draws(seed=1, chains=4, draws=1000):
    """Independent draws from the eight-schools posterior (tau ~ halfcauchy(25), mu ~ N(0, 50)) by
    inverse-CDF sampling of tau on a fine trapezoid grid and normal draws of mu given tau: the
    ideal sampler, written without evsynth.engines.normal_normal."""
    t = np.linspace(0, 300, 200001)
    v = S8**2 + t[:, None] ** 2
    w = 1 / v
    sw = w.sum(1) + 1 / 50**2
    m = (w @ Y8) / sw
    ll = -0.5 * (np.log(v).sum(1) + (w * (Y8 - m[:, None]) ** 2).sum(1) + m**2 / 50**2 + np.log(sw))
    dens = np.exp(ll - ll.max()) * stats.halfcauchy.pdf(t, 0, 25)
    cdf = np.concatenate([[0], np.cumsum((dens[1:] + dens[:-1]) / 2)])
    rng = np.random.default_rng(seed)
    tau = np.interp(rng.random(chains * draws), cdf / cdf[-1], t)
    mu = rng.normal(np.interp(tau, t, m), np.sqrt(np.interp(tau, t, 1 / sw)))
    return mu.reshape(chains, draws), tau.reshape(chains, draws)


def posterior_idata(mu, tau):
    import arviz as az

    idata = az.from_dict({"posterior": {"mu": mu, "tau": tau}, "constant_data": {"yi": Y8, "sei": S8}},
                         dims={"yi": ["study"], "sei": ["study"]})
    idata.attrs.update(prior_mu="normal(0, 50)", prior_tau="halfcauchy(25)")
    return idata


def test_check_against_exact_on_ideal_draws():
    mu, tau = iid_posterior_draws()
    table = check_against_exact(posterior_idata(mu, tau))
    assert list(table.columns) == ["parameter", "statistic", "mcmc", "exact", "mcse", "z", "ok"]
    assert table.ok.all(), table.to_string()
    rows = table.set_index(["parameter", "statistic"])
    # the exact column is bayesmeta's printed posterior (tau by adaptive quadrature, mu at 3 decimals)
    assert_printed(rows.loc[("tau", "mean"), "exact"], "5.8845")
    assert_printed(rows.loc[("tau", "50%"), "exact"], "4.7585")
    assert_printed(rows.loc[("mu", "mean"), "exact"], "7.9857", tol=1e-3)
    assert_printed(rows.loc[("mu", "50%"), "exact"], "7.9630", tol=1e-3)
    # the mcmc column is the draws' own mean and quantiles; for independent draws the MCSE of a
    # mean is sd / sqrt(n)
    assert rows.loc[("mu", "mean"), "mcmc"] == pytest.approx(mu.mean(), rel=1e-12)
    assert rows.loc[("tau", "97.5%"), "mcmc"] == pytest.approx(np.quantile(tau, 0.975), rel=1e-12)
    assert rows.loc[("mu", "mean"), "mcse"] == pytest.approx(4.9958 / np.sqrt(mu.size), rel=0.1)
    assert rows.loc[("tau", "mean"), "mcse"] == pytest.approx(tau.std() / np.sqrt(tau.size), rel=0.1)
    assert rows.loc[("mu", "2.5%"), "mcse"] > rows.loc[("mu", "50%"), "mcse"]  # tails are noisier
    np.testing.assert_allclose(table.z, (table.mcmc - table.exact) / table.mcse, rtol=1e-12)
    assert table.attrs["tau_prior"] == "halfcauchy(25)" and table.attrs["mu_prior"] == "normal(0, 50)"


def test_check_against_exact_flags_shifted_draws_and_wrong_priors():
    mu, tau = iid_posterior_draws()
    shifted = check_against_exact(posterior_idata(mu + 1.0, tau))  # 1.0 is about 13 MCSE of the mean
    mu_rows = shifted[shifted.parameter == "mu"].set_index("statistic")
    assert not mu_rows.loc[["mean", "2.5%", "50%"], "ok"].any() and shifted[shifted.parameter == "tau"].ok.all()
    assert check_against_exact(posterior_idata(mu, tau), threshold=1e-3).ok.sum() == 0
    wrong = check_against_exact(posterior_idata(mu, tau), tau_prior="halfnormal(1)", mu_prior="normal(0, 1)")
    flagged = wrong.set_index(["parameter", "statistic"]).ok
    assert not flagged["tau"].any() and not flagged["mu", "mean"] and not flagged["mu", "50%"]
    assert wrong.attrs["tau_prior"] == "halfnormal(1)" and wrong.attrs["mu_prior"] == "normal(0, 1)"


def test_inputs_are_checked():
    for yi, sei in (([1.0, np.nan], [1.0, 1.0]), ([1.0, 2.0], [1.0, 0.0]), ([1.0, 2.0], [1.0, np.inf])):
        with pytest.raises(ValueError, match="yi must be finite and sei finite and > 0"):
            exact_posterior(yi, sei)
    for yi, sei in (([1.0, 2.0], [1.0]), ([], [])):
        with pytest.raises(ValueError, match="yi and sei must be non-empty and of equal length"):
            exact_posterior(yi, sei)
    # integers are numbers too
    assert exact_posterior([1, 3], [1, 1], tau_prior=0).mu["mean"] == pytest.approx(2.0, rel=1e-12)


def test_study_labels():
    post = exact_posterior(Y8, S8, tau_prior="halfcauchy(25)", labels=list("ABCDEFGH"))
    assert list(post.theta.index) == list("ABCDEFGH") and post.theta.index.name == "study"
    assert post.theta_mixture("C").mean == pytest.approx(post.theta.loc["C", "mean"], rel=1e-12)
    assert exact_posterior(Y8, S8, tau_prior=2.0).theta.index.name == "study"


def test_tau_cdf_outside_and_at_the_ends_of_the_grid():
    bounded = exact_posterior(Y8, S8, tau_prior="uniform(4, 10)")
    ref = QuadReference(lambda t: 1.0, upper=10.0)
    z = ref._quad(lambda t: 1.0, 4.0, 10.0)
    assert bounded.tau_cdf(-1.0) == 0.0 and bounded.tau_cdf(4.0) == 0.0
    assert bounded.tau_cdf(10.0) == 1.0 and bounded.tau_cdf(1e6) == 1.0
    assert bounded.tau_cdf(9.99) == pytest.approx(ref._quad(lambda t: 1.0, 4.0, 9.99) / z, abs=1e-9)
    assert bounded.tau_cdf(9.99) < 1.0
    np.testing.assert_array_equal(bounded.tau_cdf(np.array([3.0, 11.0])), [0.0, 1.0])
    fixed = exact_posterior(Y8, S8, tau_prior=3.0)  # a point mass at 3
    np.testing.assert_array_equal(fixed.tau_cdf(np.array([2.9, 3.0, 3.1])), [0.0, 1.0, 1.0])
    assert fixed.tau_quantile([0.1, 0.9]).tolist() == [3.0, 3.0]


def test_heavy_tails_reach_the_study_effects():
    # 3 studies, improper uniform tau prior, flat mu: tau has no mean, so no theta_i has a variance
    post = exact_posterior(Y8[:3], S8[:3], tau_prior="uniform")
    assert post.theta_mixture(0).sd == np.inf and np.isinf(post.theta["sd"]).all()
    assert post.predictive["sd"] == np.inf
    proper = exact_posterior(Y8[:3], S8[:3], tau_prior="halfnormal(10)")
    assert np.isfinite(proper.theta_mixture(0).sd) and np.isfinite(proper.theta["sd"]).all()


def test_normal_mixture_against_scipy():
    from evsynth.engines.exact import NormalMixture

    w, m, s = np.array([0.2, 0.5, 0.3]), np.array([-1.0, 0.5, 3.0]), np.array([0.5, 1.0, 2.0])
    mix = NormalMixture(w, m, s)
    x = np.array([-2.0, 0.0, 1.0, 4.0])
    np.testing.assert_allclose(mix.pdf(x), sum(wi * stats.norm.pdf(x, mi, si) for wi, mi, si in zip(w, m, s)), rtol=1e-12)
    np.testing.assert_allclose(mix.cdf(x), sum(wi * stats.norm.cdf(x, mi, si) for wi, mi, si in zip(w, m, s)), rtol=1e-12)
    for p in (1e-6, 0.025, 0.5, 0.975, 1 - 1e-6):
        ref = optimize.brentq(lambda v: sum(wi * stats.norm.cdf(v, mi, si) for wi, mi, si in zip(w, m, s)) - p,
                              -30, 30, xtol=1e-14)
        assert mix.ppf(p)[0] == pytest.approx(ref, abs=1e-10)
    assert mix.mean == pytest.approx(w @ m) and mix.sd == pytest.approx(np.sqrt(w @ (s**2 + m**2) - (w @ m) ** 2))
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"probabilities must be in \(0, 1\)"):
            mix.ppf(bad)


def test_check_against_exact_records_its_settings():
    mu, tau = iid_posterior_draws()
    table = check_against_exact(posterior_idata(mu, tau), threshold=3.0)
    assert table.attrs["threshold"] == 3.0
    assert table.ok.tolist() == (table.z.abs() < 3.0).tolist()


@pytest.mark.parametrize("w, m, s", [
    ([0.5, 0.5], [-10.0, 10.0], [0.1, 0.1]),  # two narrow modes far apart: Newton overshoots between them
    ([0.98, 0.02], [0.0, 40.0], [1.0, 0.2]),  # a small far mode: steps land outside the bracket
    (np.full(50, 0.02), np.linspace(-5, 5, 50), np.linspace(0.05, 2.0, 50)),  # a posterior-like mixture
])
def test_normal_mixture_quantiles_where_newton_needs_its_safeguard(w, m, s):
    from evsynth.engines.exact import NormalMixture

    w, m, s = (np.asarray(a, float) for a in (w, m, s))
    mix = NormalMixture(w, m, s)
    p = np.array([1e-10, 1e-4, 0.01, 0.3, 0.49, 0.5, 0.51, 0.97, 0.99, 1 - 1e-6])
    got = mix.ppf(p)
    for pi, x in zip(p, got):
        cdf = lambda v: float(w @ stats.norm.cdf(v, m, s)) - pi  # noqa: E731
        ref = optimize.brentq(cdf, -100, 100, xtol=1e-13, rtol=1e-15)
        assert x == pytest.approx(ref, abs=1e-9 * (w @ s)), pi


def test_one_study_with_a_normal_mu_prior_has_a_mean_tau():
    # mu ~ N(0, 1) integrated out: p(y | tau) = N(y; 0, s^2 + 1 + tau^2) falls like 1/tau, so with a
    # half-Cauchy prior (tail tau^-2) the posterior tail is tau^-3: a mean, no variance.
    from scipy import integrate

    y, s = Y8[0], S8[0]
    dens = lambda t: stats.halfcauchy.pdf(t, 0, 5) * stats.norm.pdf(y, 0, np.sqrt(s**2 + 1 + t**2))  # noqa: E731
    mean = integrate.quad(lambda t: t * dens(t), 0, np.inf, limit=200)[0] / integrate.quad(dens, 0, np.inf)[0]
    post = exact_posterior(Y8[:1], S8[:1], tau_prior="halfcauchy(5)", mu_prior="normal(0, 1)")
    assert post.tau["mean"] == pytest.approx(mean, rel=1e-5) and np.isinf(post.tau["sd"])
