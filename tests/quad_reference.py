"""Independent references for the normal-normal models by one-dimensional scipy quad over tau:
the coefficients (mu and slopes, normal priors) are integrated out in closed form, so
p(y | tau) = N(y; 0, diag(vi + tau²) + X S X'), S the prior covariance (diagonal). Written from the
model's definition, not from evsynth's engine, for tests that need posterior moments of tau."""

import numpy as np
from scipy import integrate

QUAD = dict(points=[0.3, 1], epsabs=0, epsrel=1e-10, limit=200)


def log_marginal(tau: float, y: np.ndarray, v: np.ndarray, X: np.ndarray, prior_var: np.ndarray) -> float:
    """log p(y | tau) with coefficients ~ N(0, diag(prior_var)) integrated out."""
    cov = np.diag(v + tau**2) + (X * prior_var) @ X.T
    chol = np.linalg.cholesky(cov)
    z = np.linalg.solve(chol, y)
    return float(-0.5 * z @ z - np.log(np.diag(chol)).sum() - 0.5 * len(y) * np.log(2 * np.pi))


def tau_posterior(y, v, X, prior_var, prior_sd=1.0):
    """Unnormalized posterior density of tau under a half-normal(prior_sd) prior, scaled near its
    mode (so quad sees numbers of order one)."""
    def log_prior(t):  # half-normal(prior_sd) log density at t >= 0 (stats.halfnorm.logpdf, written out)
        return np.log(2 / (np.sqrt(2 * np.pi) * prior_sd)) - 0.5 * (t / prior_sd) ** 2

    grid = np.linspace(1e-4, 3, 60)
    top = max(log_marginal(t, y, v, X, prior_var) + log_prior(t) for t in grid)
    return lambda t: np.exp(log_marginal(t, y, v, X, prior_var) + log_prior(t) - top)


def mean_tau2(y, v, X, prior_var, prior_sd=1.0, upper=8.0) -> float:
    """Posterior mean of tau²."""
    density = tau_posterior(y, v, X, prior_var, prior_sd)
    mass = integrate.quad(density, 0, upper, **QUAD)[0]
    return integrate.quad(lambda t: t**2 * density(t), 0, upper, **QUAD)[0] / mass


def bayesian_r2(y, v, x, intercept_var, slope_var, prior_sd) -> float:
    """100 (E[tau²] without - with the moderator) / E[tau²] without: evsynth's Bayesian R² analogue."""
    one = np.ones((len(y), 1))
    null = mean_tau2(y, v, one, np.array([intercept_var]), prior_sd)
    X = np.column_stack([one, np.asarray(x, float)])
    full = mean_tau2(y, v, X, np.array([intercept_var] + [slope_var] * (X.shape[1] - 1)), prior_sd)
    return 100 * (null - full) / null
