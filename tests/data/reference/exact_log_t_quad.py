"""Reference posteriors of the normal-normal random-effects model under priors on log tau
(logstudent_t: rhodes2015(); lognormal: turner2015()), by scipy.integrate.quad in u = log tau,
independent of evsynth's exact engine (no grid, no sinh axis): mu is integrated out analytically
(y ~ N(m0 1, diag(se^2 + tau^2) + s0^2 11') under mu ~ N(m0, s0^2), or the flat-prior limit), the
prior term is the density of u (Student-t / normal), quantiles by brentq on CDFs computed by quad.
Each figure is computed twice, in u and in v (u = m + s sinh(v)), and the script refuses to write
when the two differ by more than 1e-9 relative (the reference's own error).

Run from the repository root: python tests/data/reference/exact_log_t_quad.py
It writes tests/data/reference/exact_log_t_quad.json (the study rows it used are stored there too).
"""

import json
import math
from itertools import pairwise
from pathlib import Path

import numpy as np
from scipy import integrate, optimize, special, stats

HERE = Path(__file__).parent


def datasets():
    """yi, sei of each case, from the bundled studies through evsynth's own effect sizes (stored
    in the JSON, so the test does not depend on compute_effects)."""
    import evsynth as es

    demo = es.compute_effects(es.load_studies("studies/synthetic_demo.csv"))
    bcg = es.compute_effects(es.load_studies("studies/bcg.csv", extra_columns=["ablat", "alloc"]), measure="OR")
    demo_y, demo_s = demo["yi"].to_numpy(float), demo["sei"].to_numpy(float)
    bcg_y, bcg_s = bcg["yi"].to_numpy(float), bcg["sei"].to_numpy(float)
    return {
        "demo_k18_rhodes": (demo_y, demo_s, "rhodes2015()", (5.0, -1.72, 1.295), "normal(0, 1)"),
        "demo_k3_rhodes": (demo_y[:3], demo_s[:3], "rhodes2015()", (5.0, -1.72, 1.295), "normal(0, 1)"),
        "demo_k2_rhodes": (demo_y[3:5], demo_s[3:5], "rhodes2015()", (5.0, -1.72, 1.295), "normal(0, 1)"),
        "demo_k18_rhodes_flat_mu": (demo_y, demo_s, "rhodes2015()", (5.0, -1.72, 1.295), "flat"),
        "bcg_k13_rhodes": (bcg_y, bcg_s, "rhodes2015()", (5.0, -1.72, 1.295), "normal(0, 1)"),
        "bcg_k13_turner": (bcg_y, bcg_s, "turner2015()", (-1.28, 0.87), "normal(0, 1)"),
        "bcg_k3_turner": (bcg_y[:3], bcg_s[:3], "turner2015()", (-1.28, 0.87), "normal(0, 1)"),
    }


class Posterior:
    def __init__(self, yi, sei, tau_params, mu_prior):
        self.y, self.s2 = np.asarray(yi, float), np.asarray(sei, float) ** 2
        self.flat = mu_prior == "flat"
        self.m0, self.p0 = (0.0, 0.0) if self.flat else (0.0, 1.0)  # normal(0, 1)
        self.tau_params = tau_params
        self.loc, self.scl = tau_params[-2], tau_params[-1]
        us = np.linspace(self.loc - 30, self.loc + 30, 20001)
        self.shift = max(self.log_joint_u(u) for u in us)  # keeps exp() in range

    def log_prior_u(self, u):
        if len(self.tau_params) == 3:
            nu, m, s = self.tau_params
            return stats.t.logpdf(u, nu, m, s)
        m, s = self.tau_params
        return stats.norm.logpdf(u, m, s)

    def cond(self, tau):
        """log p(y | tau) (mu integrated out), E[mu | tau, y], Var[mu | tau, y]."""
        v = self.s2 + tau * tau
        w = 1 / v
        q = self.p0 + w.sum()
        b = self.p0 * self.m0 + (w * self.y).sum()
        mean = b / q
        ll = -0.5 * (np.log(v).sum() + math.log(q) + (w * self.y**2).sum() + self.p0 * self.m0**2 - b * mean
                     + (self.y.size - (1 if self.flat else 0)) * math.log(2 * math.pi))
        if not self.flat:
            ll += 0.5 * math.log(self.p0)
        return ll, mean, 1 / q

    def log_joint_u(self, u):
        return self.cond(math.exp(u))[0] + self.log_prior_u(u)

    def density_u(self, u):
        if u > 200:  # tau = e^200: the likelihood is below e^-200 of its value at tau = 1
            return 0.0
        return math.exp(self.log_joint_u(u) - self.shift)

    # the two coordinates: u itself, and v with u = loc + scl sinh(v)
    def integrate(self, g, coordinate, upper=None):
        """int p(u | y) g(u) du over (-inf, upper), unnormalised."""
        if coordinate == "u":
            def f(u):
                d = self.density_u(u)
                return d * g(u) if d else 0.0
            hi = np.inf if upper is None else upper
            mode = self.loc
            pts = [p for p in (mode - 10, mode - 3, mode, mode + 3) if p < hi]
            parts = [(-np.inf, pts[0])] + list(pairwise(pts)) + [(pts[-1], hi)] if pts else [(-np.inf, hi)]
        else:
            def f(v):
                u = self.loc + self.scl * math.sinh(v)
                d = self.density_u(u)
                return d * g(u) * self.scl * math.cosh(v) if d else 0.0
            # |v| = 30: |u - loc| = 1e13 scales, where u's density is below e^-140 of its peak in v
            hi = 30.0 if upper is None else math.asinh((upper - self.loc) / self.scl)
            pts = [p for p in (-4.0, -2.0, -1.0, 0.0, 1.0, 2.0) if p < hi]
            parts = [(-30.0, pts[0])] + list(pairwise(pts)) + [(pts[-1], hi)] if pts else [(-30.0, hi)]
        total = 0.0
        for a, b in parts:
            val, _ = integrate.quad(f, a, b, epsabs=0, epsrel=1e-13, limit=1000)
            total += val
        return total

    def figures(self, coordinate):
        Z = self.integrate(lambda u: 1.0, coordinate)
        E = lambda g: self.integrate(g, coordinate) / Z
        tau_mean = E(lambda u: math.exp(min(u, 200)))
        tau_sd = math.sqrt(E(lambda u: (math.exp(min(u, 200)) - tau_mean) ** 2))

        def mu_parts(u):
            _, m, v = self.cond(math.exp(u))
            return m, v

        mu_mean = E(lambda u: mu_parts(u)[0])
        mu_sd = math.sqrt(E(lambda u: mu_parts(u)[1] + (mu_parts(u)[0] - mu_mean) ** 2))

        def pred(u):
            m, v = mu_parts(u)
            return m, v + math.exp(2 * min(u, 200))

        out = {"tau": {"mean": tau_mean, "sd": tau_sd}, "mu": {"mean": mu_mean, "sd": mu_sd},
               "prediction": {"mean": mu_mean, "sd": math.sqrt(E(lambda u: pred(u)[1] + (pred(u)[0] - mu_mean) ** 2))}}
        tau_cdf = lambda t: self.integrate(lambda u: 1.0, coordinate, upper=math.log(t)) / Z
        for p in (0.025, 0.5, 0.975):
            key = f"q{100 * p:g}"
            out["tau"][key] = optimize.brentq(lambda t, p=p: tau_cdf(t) - p, 1e-12, 50.0, xtol=1e-15, rtol=1e-14)
            for name, parts in (("mu", mu_parts), ("prediction", pred)):
                def cdf(x, parts=parts):
                    return E(lambda u: special.ndtr((x - parts(u)[0]) / math.sqrt(parts(u)[1])))
                out[name][key] = optimize.brentq(lambda x, cdf=cdf, p=p: cdf(x) - p, -20.0, 20.0, xtol=1e-14, rtol=1e-14)
        return out


def main():
    result = {"script": "tests/data/reference/exact_log_t_quad.py", "method": __doc__.strip().splitlines()[0],
              "cases": {}}
    for name, (yi, sei, prior, params, mu_prior) in datasets().items():
        post = Posterior(yi, sei, params, mu_prior)
        a, b = post.figures("u"), post.figures("v")
        worst = 0.0
        for q in a:
            for k in a[q]:
                worst = max(worst, abs(a[q][k] - b[q][k]) / abs(b[q][k]))
        print(f"{name}: u vs v largest relative difference {worst:.2e}")
        if worst > 1e-9:
            raise SystemExit(f"{name}: the two quadratures disagree ({worst:.2e}); not written")
        result["cases"][name] = {"yi": list(map(float, yi)), "sei": list(map(float, sei)), "tau_prior": prior,
                                 "mu_prior": mu_prior, "figures": b, "u_vs_v_relative": worst}
    (HERE / "exact_log_t_quad.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
