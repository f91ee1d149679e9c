"""The censored-row probabilities of the exact engine: the bivariate normal CDF by Owen's T against
one-dimensional adaptive quadrature (scipy quad of phi(x) Phi((b - rho x) / sqrt(1 - rho^2)) over
x <= a), and log_orthant's two-row path against its general (scipy multivariate normal) path."""

import numpy as np
from scipy import integrate, special, stats

from evsynth.engines.exact import bivariate_normal_cdf, log_orthant


def quad_cdf(a, b, rho):
    r = np.sqrt(1 - rho**2)
    # phi(x) written out: stats.norm.pdf's argument checks cost ~20x the integrand itself
    return integrate.quad(lambda x: np.exp(-0.5 * x * x) / SQRT_2PI * special.ndtr((b - rho * x) / r), -np.inf,
                          a, epsabs=1e-14, epsrel=1e-12)[0]


SQRT_2PI = np.sqrt(2 * np.pi)


def test_bivariate_normal_cdf_against_quadrature_including_zero_arguments():
    rng = np.random.default_rng(1)
    a, b, rho = rng.normal(0, 2, 200), rng.normal(0, 2, 200), rng.uniform(-0.999, 0.999, 200)
    a[:20] = 0
    b[15:35] = 0  # 15..19: both zero (Sheppard's formula)
    expected = [quad_cdf(*args) for args in zip(a, b, rho)]
    np.testing.assert_allclose(bivariate_normal_cdf(a, b, rho), expected, rtol=0, atol=1e-13)


def test_bivariate_normal_cdf_closed_forms():
    # independence: the product; a = b = 0: 1/4 + asin(rho) / (2 pi)
    np.testing.assert_allclose(bivariate_normal_cdf(0.7, -0.4, 0.0), stats.norm.cdf(0.7) * stats.norm.cdf(-0.4),
                               atol=1e-15)
    for rho in (-0.9, -0.3, 0.5, 0.95):
        np.testing.assert_allclose(bivariate_normal_cdf(0, 0, rho), 0.25 + np.arcsin(rho) / (2 * np.pi), atol=1e-15)


def test_two_censored_rows_match_the_general_path():
    rng = np.random.default_rng(7)
    nodes = 40
    mean = rng.normal(0, 1, (nodes, 2))
    raw = rng.normal(0, 1, (nodes, 2, 2))
    cov = raw @ raw.transpose(0, 2, 1) + 0.2 * np.eye(2)
    bounds, direction = np.array([0.5, -0.3]), np.array([1.0, -1.0])
    fast = log_orthant(mean, cov, bounds, direction)
    # the general path: P(v > 0) for v = shift + noise as a multivariate normal CDF (scipy, per node)
    shift = direction * (mean - bounds)
    D = np.outer(direction, direction)
    slow = [np.log(stats.multivariate_normal(-s, c * D).cdf(np.zeros(2), rng=np.random.default_rng(0)))
            for s, c in zip(shift, cov)]
    np.testing.assert_allclose(fast, slow, atol=1e-4)
    # and each node against quadrature, tightly
    sd = np.sqrt(np.stack([cov[:, 0, 0], cov[:, 1, 1]], axis=1))
    rho = cov[:, 0, 1] * D[0, 1] / (sd[:, 0] * sd[:, 1])
    expected = [np.log(quad_cdf(s0 / d0, s1 / d1, r)) for (s0, s1), (d0, d1), r in zip(shift, sd, rho)]
    np.testing.assert_allclose(fast, expected, rtol=0, atol=1e-7)
