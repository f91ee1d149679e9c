"""Builder math: with study_effects=False the study effects are integrated out analytically.
Checked against the non-centered model's own likelihood with each study's effect integrated
numerically (scipy quad), on the real data's censored row and on the by-technique model."""

import numpy as np
import pytest
from scipy import integrate, stats

import evsynth as es

from conftest import censored_milk_effects, outcome_effects


def _study_likelihood(y, se, censored):
    """p(y_i | theta) as the models define it: a censored row's y is the bound it lies beyond."""
    if not censored:
        return lambda theta: stats.norm.pdf(y, theta, se)
    if y > 0:
        return lambda theta: stats.norm.sf(y, theta, se)
    return lambda theta: stats.norm.cdf(y, theta, se)


def _integrated(table, centres, tau):
    """sum_i log of the integral over theta_i of p(y_i | theta_i) N(theta_i | centre_i, tau)."""
    total = 0.0
    for (y, se, cens), centre in zip(table[["yi", "sei", "censored"]].itertuples(index=False), centres):
        lik = _study_likelihood(y, se, cens)
        value, _ = integrate.quad(lambda t: lik(t) * stats.norm.pdf(t, centre, tau), centre - 12 * tau,
                                  centre + 12 * tau, points=[y], limit=200)
        total += np.log(value)
    return total


def _check(builder, effects, point, centres, tau, z):
    """marginal logp == full logp - (its z priors and likelihood) + the numerical integral."""
    table = es.used_effects(effects)
    full = builder(effects).compile_logp()(point | {"z": z})
    theta = centres + tau * z
    own = stats.norm.logpdf(z).sum() + sum(
        np.log(_study_likelihood(y, se, c)(t)) for (y, se, c), t in
        zip(table[["yi", "sei", "censored"]].itertuples(index=False), theta))
    marginal = builder(effects, study_effects=False)
    assert {"z", "theta"}.isdisjoint(marginal.named_vars)
    assert marginal.compile_logp()(point) == pytest.approx(full - own + _integrated(table, centres, tau), abs=1e-6)


def test_random_effects_integrates_the_study_effects_out_censored_row_included():
    effects = censored_milk_effects()
    table = es.used_effects(effects)
    mu, tau = 0.3, 0.4
    z = np.linspace(-0.5, 0.7, len(table))
    _check(es.random_effects, effects, {"mu": mu, "tau_log__": np.log(tau)}, np.full(len(table), mu), tau, z)


def test_by_technique_integrates_the_study_effects_out():
    effects = outcome_effects("synthetic_demo.csv")
    table = es.used_effects(effects)
    techniques = sorted(table["technique"].unique())
    mu, tau, tau_technique = 0.4, 0.25, 0.3
    z_technique = np.linspace(-1.0, 1.2, len(techniques))
    effect = dict(zip(techniques, mu + tau_technique * z_technique))
    centres = table["technique"].map(effect).to_numpy()
    point = {"mu": mu, "tau_log__": np.log(tau), "tau_technique_log__": np.log(tau_technique),
             "z_technique": z_technique}
    z = np.linspace(-1.5, 1.5, len(table))
    _check(es.by_technique, effects, point, centres, tau, z)
