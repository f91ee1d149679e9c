"""The quadrature evidence (engines.marginal) under priors on log tau -- Turner et al. (2015)
lognormal, Rhodes et al. (2015) log-t -- against scipy's adaptive quad of the same marginal
likelihoods written from the model equations: mu ~ N(m0, s0^2) (and a PET / PEESE slope's mean
term, linear in b) integrated out in closed form, p(y | tau, b) multivariate normal, then quad over
u = log tau (and b). Under the log-t prior the density of tau is ~ 1 / (tau |log tau|^6) near 0, a
spike the engine's former sinh axis could not resolve (the RoBMA ensemble took 260 s and stopped
short of its tolerance three times); the engine now integrates over log tau."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, special, stats

from evsynth.engines.marginal import PSMA_FAMILY, ModelSpec, log_evidence
from evsynth.methods.robma import bias_adjusted
from evsynth.model.priors import parse_prior

from test_robma import SEI, YI, table  # test_robma's six-study table
QUAD = {"epsabs": 0, "epsrel": 1e-11, "limit": 400}
U_RANGE = (-300.0, 10.0)  # u = log tau: beyond, the log-t tail holds < 1e-11 of the mass; tau = e^10 has none
U_POINTS = [-8.0, -4.0, -2.0, -1.0, 0.0, 1.0]  # where the mass is: help quad's subdivision


def quad_u(f):
    return integrate.quad(f, *U_RANGE, points=U_POINTS, **QUAD)[0]



def log_u_density(prior_text):
    """log density of u = log tau, from the published form: log tau^2 ~ N(2m, (2s)^2) (Turner) or
    Student-t(5, 2m, 2s) (Rhodes), i.e. log tau ~ N(m, s^2) / t(5, m, s)."""
    p = parse_prior(prior_text)
    if p.family == "lognormal":
        return lambda u: stats.norm.logpdf(u, *p.params)
    return lambda u: stats.t.logpdf(u, *p.params)


def log_lik(y, se, tau, m0, s0):
    """log p(y | tau) with mu ~ N(m0, s0^2) integrated out (s0 = 0: mu = 0)."""
    k = len(y)
    return stats.multivariate_normal(np.full(k, m0), np.diag(se**2 + tau**2) + s0**2).logpdf(y)


def log_ml_quad(y, se, prior_text, m0=0.0, s0=1.0):
    """log of the integral over u = log tau of p(y | tau) p(u), by scipy quad."""
    lu = log_u_density(prior_text)
    ref = log_lik(y, se, np.exp(-1.0), m0, s0)
    return ref + np.log(quad_u(lambda u: np.exp(log_lik(y, se, np.exp(u), m0, s0) + lu(u) - ref)))


@pytest.mark.parametrize("prior", ["turner2015()", "rhodes2015()", "rhodes2015(mental_health, pharma_vs_placebo)",
                                   "turner2015(all_cause_mortality, pharma_vs_placebo)"])
def test_random_effects_evidence_and_moments_equal_quad_over_log_tau(prior):
    y, se = YI, SEI
    lu = log_u_density(prior)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "quadrature stopped"
        full = log_evidence(table(), ModelSpec(True, True, False), priors={"mu": "normal(0, 1)", "tau": prior})
        null = log_evidence(table(), ModelSpec(False, True, False), priors={"mu": "normal(0, 1)", "tau": prior})
    # module TOL is 1e-3; measured differences 1e-10 to 6e-8
    assert full.log_ml == pytest.approx(log_ml_quad(y, se, prior), abs=1e-6)
    assert null.log_ml == pytest.approx(log_ml_quad(y, se, prior, s0=0.0), abs=1e-6)
    assert full.log_ml_error < 1e-3 and null.log_ml_error < 1e-3
    # posterior moments of tau: smooth in u, so no O(h^2) term as on the sinh axis
    ref = log_lik(y, se, np.exp(-1.0), 0.0, 1.0)

    def post(g):
        return quad_u(lambda u: g(u) * np.exp(log_lik(y, se, np.exp(u), 0.0, 1.0) + lu(u) - ref))
    norm = post(lambda u: 1.0)
    tau_mean = post(np.exp) / norm
    tau_sd = np.sqrt(post(lambda u: np.exp(2 * u)) / norm - tau_mean**2)
    assert full.means["tau"] == pytest.approx(tau_mean, rel=1e-6)
    assert full.sds["tau"] == pytest.approx(tau_sd, rel=1e-6)
    # the rule stays small: the former sinh axis needed 385+ tau nodes under the log-t prior
    assert full.box["tau"][2] <= 97 and null.box["tau"][2] <= 97


REFERENCE = json.loads((Path(__file__).parent / "data" / "reference" / "robma_rhodes_quad.json").read_text())


def test_rhodes_ensemble_inclusion_bayes_factors_equal_quad_reference():
    """The RoBMA-PSMA ensemble under rhodes2015(): the 12 models without selection equal scipy quad
    / dblquad (tests/data/reference/robma_rhodes_quad.py, from the model equations); the inclusion
    Bayes factors equal those from the reference log MLs (the 4 selection models, 3-4 dimensional,
    taken from the engine: one is checked by prior Monte Carlo below)."""
    assert REFERENCE["yi"] == list(YI) and REFERENCE["sei"] == list(SEI)
    assert REFERENCE["tau_prior"] == "rhodes2015()"
    assert parse_prior("rhodes2015()").params == (5.0, -1.72, 1.295)  # the script's t(5, -3.44 / 2, 2.59 / 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "quadrature stopped" (three of them before the log axis)
        b = bias_adjusted(table(), {"tau": "rhodes2015()"})
    models = b.ensemble.models.set_index("model")
    assert len(models) == 16 and len(REFERENCE["log_ml"]) == 12
    log_ml = {spec: float(models.loc[spec.name, "log_ml"]) for spec in PSMA_FAMILY}
    ref = {spec: REFERENCE["log_ml"].get(spec.name, log_ml[spec]) for spec in PSMA_FAMILY}
    for spec in PSMA_FAMILY:  # measured within 4e-9 (module TOL 1e-3)
        assert log_ml[spec] == pytest.approx(ref[spec], abs=1e-6), spec.name
    prior_prob = {spec: 0.25 * {"none": 0.5, "selection": 0.25, "PET": 0.125, "PEESE": 0.125}[spec.family]
                  for spec in PSMA_FAMILY}
    log_post = np.array([np.log(prior_prob[s]) + ref[s] for s in PSMA_FAMILY])
    post = np.exp(log_post - special.logsumexp(log_post))

    def bf(component):
        inc = np.array([component(s) for s in PSMA_FAMILY])
        p_post, p_prior = post[inc].sum(), sum(prior_prob[s] for s, i in zip(PSMA_FAMILY, inc) if i)
        return (p_post / (1 - p_post)) / (p_prior / (1 - p_prior))
    assert b.bf_effect == pytest.approx(bf(lambda s: s.effect), rel=1e-6)
    assert b.bf_heterogeneity == pytest.approx(bf(lambda s: s.heterogeneity), rel=1e-6)
    assert b.bf_bias == pytest.approx(bf(lambda s: s.family != "none"), rel=1e-6)


def test_selection_evidence_under_rhodes_prior_matches_prior_monte_carlo():
    """The selection models (not 1-D / 2-D): effect / heterogeneity / selection against 1.2 million
    prior draws (mu ~ N(0, 1), log tau ~ t(5, m, s), cumulative Dirichlet(1, 1, 1) weights)."""
    from evsynth.engines.selection import weighted_loglik

    prior = parse_prior("rhodes2015()")
    rng = np.random.default_rng(23)
    estimates = []
    for _ in range(6):
        n = 200_000
        tau = np.exp(stats.t.rvs(*prior.params, size=n, random_state=rng))
        ll = weighted_loglik(YI, SEI, rng.normal(0, 1, n), tau, rng.dirichlet(np.ones(3), n), (0.025, 0.05)).sum(axis=-1)
        estimates.append(special.logsumexp(ll) - np.log(n))
    mc, mc_se = np.mean(estimates), np.std(estimates, ddof=1) / np.sqrt(len(estimates))
    e = log_evidence(table(), ModelSpec(True, True, True), priors={"mu": "normal(0, 1)", "tau": "rhodes2015()"})
    assert abs(e.log_ml - mc) < 4 * mc_se + 1e-3, (e.log_ml, mc, mc_se)
