"""Reference posterior moments of a model with two SDs, one under a log-t prior: the synthetic
demo's by-technique model (theta_i = mu + tau_technique z_technique(i) + tau e_i; mu ~ N(0, 1),
tau ~ rhodes2015() = logstudent_t(5, -1.72, 1.295), tau_technique ~ halfnormal(0.5)), by
scipy.integrate.quad_vec over u = log tau (outer, the whole line) of a Gauss-Legendre rule over
tau_technique (inner, on [0, 2] and [2, 8], checked against one with 1.5 times the nodes),
independent of evsynth's exact engine: p(y | tau, tau_technique) is the dense Gaussian
N(0, diag(se^2 + tau^2) + tau_technique^2 Z Z' + 11') (mu integrated out), its mean of mu the
matching Gaussian conditional. Figures: log evidence, E and SD of tau and tau_technique, E of mu.

Run from the repository root: python tests/data/reference/exact_log_t_quad2.py
(writes exact_log_t_quad2.json beside it, with the rows and technique labels it used).
"""

import json
import math
from pathlib import Path

import numpy as np
from scipy import integrate, stats

HERE = Path(__file__).parent


def main():
    import evsynth as es

    demo = es.compute_effects(es.load_studies("studies/synthetic_demo.csv"))
    y, se = demo["yi"].to_numpy(float), demo["sei"].to_numpy(float)
    tech = demo["technique"].to_numpy()
    Z = (tech[:, None] == np.unique(tech)[None, :]).astype(float)
    ZZ, ones = Z @ Z.T, np.ones((y.size, y.size))

    def inner(u, legendre):
        """int over tau_technique of the density times (1, tau, tau^2, t, t^2, mu), at u: Gauss-Legendre
        on [0, 2] and [2, 8] (beyond 8 the half-normal(0.5) prior is below e^-128), batched."""
        if u > 200:  # the likelihood is below e^-200 of its value at tau = 1
            return np.zeros(6)
        x, w = legendre
        t = np.concatenate([1 + x, 5 + 3 * x])
        wt = np.concatenate([w, 3 * w])
        S = np.diag(se**2 + math.exp(2 * u))[None] + (t * t)[:, None, None] * ZZ[None]
        C = S + ones  # mu ~ N(0, 1) integrated out
        logdet = np.linalg.slogdet(C)[1]
        a = np.linalg.solve(C, np.broadcast_to(y, (t.size, y.size))[..., None])[..., 0]
        loglik = -0.5 * (logdet + a @ y + y.size * math.log(2 * math.pi))
        rhs = np.stack([np.ones(y.size), y], axis=1)
        Si = np.linalg.solve(S, np.broadcast_to(rhs, (t.size,) + rhs.shape))
        mu = Si[:, :, 1].sum(axis=1) / (1 + Si[:, :, 0].sum(axis=1))
        lp = loglik - shift + stats.t.logpdf(u, 5, -1.72, 1.295) + stats.halfnorm.logpdf(t, scale=0.5)
        d = np.exp(lp) * wt
        tau = math.exp(u)
        return np.array([d.sum(), tau * d.sum(), tau * tau * d.sum(), d @ t, d @ (t * t), d @ mu])

    shift = -20.0

    def integrate_all(n):
        legendre = np.polynomial.legendre.leggauss(n)
        total = np.zeros(6)
        for a, b in ((-np.inf, -12.0), (-12.0, -6.0), (-6.0, -3.0), (-3.0, 0.0), (0.0, 200.0)):
            total += integrate.quad_vec(lambda u: inner(u, legendre), a, b, epsabs=0, epsrel=1e-11)[0]
        return total

    total, check = integrate_all(200), integrate_all(300)
    gap = float(np.max(np.abs(total / total[0] - check / check[0])[1:] / np.abs(check / check[0])[1:]))
    print(f"Gauss-Legendre 200 vs 300 nodes per piece: largest relative difference {gap:.2e}")
    if gap > 1e-10:
        raise SystemExit("the inner rule has not converged; not written")
    Z0, e = total[0], total / total[0]
    figures = {"log_evidence": math.log(Z0) + shift, "tau_mean": e[1], "tau_sd": math.sqrt(e[2] - e[1] ** 2),
               "tau_technique_mean": e[3], "tau_technique_sd": math.sqrt(e[4] - e[3] ** 2), "mu_mean": e[5],
               "inner_rule_relative_gap": gap}
    print(figures)
    out = {"script": "tests/data/reference/exact_log_t_quad2.py", "model": "by_technique",
           "priors": {"mu": "normal(0, 1)", "tau": "rhodes2015()", "tau_technique": "halfnormal(0.5)"},
           "yi": y.tolist(), "sei": se.tolist(), "technique": tech.tolist(), "figures": figures}
    (HERE / "exact_log_t_quad2.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
