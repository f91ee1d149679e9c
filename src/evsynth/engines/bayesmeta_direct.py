"""bayesmeta's DIRECT mixture for mu (Roever & Friede 2017, JCGS 26:217), rebuilt from the exact
posterior: a validation helper only (tests/test_exact.py and benchmarks/validation_table.py match
bayesmeta's printed figures with it); evsynth itself reports the exact posterior.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize

from .exact import NormalMixture


def bayesmeta_direct(post, delta: float = 0.01, epsilon: float = 1e-4) -> NormalMixture:
    """The discrete mixture bayesmeta uses for mu, from an ExactPosterior (evsynth.engines.normal_normal).

    bayesmeta reports mu's mean, sd and quantiles from a few support points in tau, spaced so
    that neighbouring conditionals (mu, prediction, each theta_i) differ by a symmetrised KL
    divergence delta, truncated at tau's 1 - epsilon quantile. This reproduces that
    approximation so published bayesmeta numbers can be matched exactly; the exact posterior
    is `post.mu_mixture`.
    """

    def divergence(t1, t2):
        c = post.conditional([t1, t2])
        means = np.column_stack([c["mu_mean"], c["mu_mean"], c["theta_mean"]])
        sds = np.column_stack([c["mu_sd"], c["pred_sd"], c["theta_sd"]])
        (m1, m2), (s1, s2) = means, sds
        kl = (m1 - m2) ** 2 * 0.5 * (1 / s1**2 + 1 / s2**2) + (s1**2 - s2**2) ** 2 / (2 * s1**2 * s2**2)
        return kl.max()

    def next_tau(t):
        upper = max(1.0, 2 * t)
        while divergence(t, upper) <= delta:
            upper *= 2
        return optimize.brentq(lambda u: divergence(t, u) - delta, t, upper, xtol=1e-12)

    max_tau = post.tau_quantile(1 - epsilon)[0]
    support, bound = [0.0], next_tau(0.0)
    weights = [float(post.tau_cdf(bound))]
    while bound <= max_tau or len(support) < 2:
        ref = next_tau(bound)
        new_bound = next_tau(ref)
        weights.append(max(0.0, float(post.tau_cdf(new_bound) - post.tau_cdf(bound))))
        support.append(ref)
        bound = new_bound
    c = post.conditional(support)
    w = np.array(weights)
    return NormalMixture(w / w.sum(), c["mu_mean"], c["mu_sd"])
