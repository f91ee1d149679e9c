"""Reference figures for tests/test_network_reference.py (issue 28): the network model with real
heterogeneity (tau ~ half-normal(0.5), each effect ~ normal(0, 10)) on the data of
network_metafor.json, written from the model equations with scipy and nothing of evsynth: given tau
the effects are normal (prior N(0, 10^2 I), study variances se^2 + tau^2: the conjugate update) and the
marginal likelihood is N(y | 0, 100 X X' + V); tau's posterior is prior x marginal likelihood,
integrated by scipy quad; each reported quantity's CDF is the tau-mixture of normal CDFs, its
quantiles by brentq. Run from the repository root (a few minutes):
    python tests/data/reference/network_quad.py"""

import json
from pathlib import Path

import numpy as np
from scipy import integrate, optimize, stats

HERE = Path(__file__).parent
DATA = json.loads((HERE / "network_metafor.json").read_text())["data"]
NODES = ["A", "B", "C"]
TAU_SCALE, MU_SD = 0.5, 10.0
QUAD = dict(epsabs=0, epsrel=1e-11, limit=200)


def unit(t: str) -> np.ndarray:
    return np.array([float(n == t) for n in NODES])


def design(split=None) -> np.ndarray:
    X = np.array([[(r["treat"] == t) - (r["comp"] == t) for t in NODES] for r in DATA], float)
    if split is None:
        return X
    a, b = split
    sign = np.array([1.0 if (r["treat"], r["comp"]) == (a, b) else -1.0 if (r["treat"], r["comp"]) == (b, a)
                     else 0.0 for r in DATA])
    X[sign != 0] = 0.0
    return np.column_stack([X, sign])


def posterior(X):
    y = np.array([r["yi"] for r in DATA])
    se = np.array([r["sei"] for r in DATA])

    def cond(tau):
        V = se**2 + tau**2
        P = np.linalg.inv(X.T @ (X / V[:, None]) + np.eye(X.shape[1]) / MU_SD**2)
        m = P @ X.T @ (y / V)
        loglik = stats.multivariate_normal(np.zeros(len(y)), MU_SD**2 * X @ X.T + np.diag(V)).logpdf(y)
        return m, P, loglik

    top = cond(0.0)[2]

    def w(tau):
        return stats.halfnorm(scale=TAU_SCALE).pdf(tau) * np.exp(cond(tau)[2] - top)

    Z = integrate.quad(w, 0, np.inf, **QUAD)[0]

    def cdf(L, x):
        def f(tau):
            m, P, _ = cond(tau)
            return w(tau) * stats.norm.cdf((x - L @ m) / np.sqrt(L @ P @ L))
        return integrate.quad(f, 0, np.inf, **QUAD)[0] / Z

    def summary(L):
        mean = integrate.quad(lambda t: w(t) * (L @ cond(t)[0]), 0, np.inf, **QUAD)[0] / Z
        q = {f"q{p * 100:g}": optimize.brentq(lambda x: cdf(L, x) - p, -10, 10, xtol=1e-13)
             for p in (0.025, 0.5, 0.975)}
        return {"mean": mean, **q, "P(>0)": 1 - cdf(L, 0.0)}

    def tau_summary():
        mean = integrate.quad(lambda t: w(t) * t, 0, np.inf, **QUAD)[0] / Z
        tcdf = lambda x: integrate.quad(w, 0, x, **QUAD)[0] / Z  # noqa: E731
        return {"mean": mean, **{f"q{p * 100:g}": optimize.brentq(lambda x: tcdf(x) - p, 1e-9, 5, xtol=1e-13)
                                 for p in (0.025, 0.5, 0.975)}}

    return summary, tau_summary


def main():
    out = {"priors": {"mu": "normal(0, 10)", "tau": "halfnormal(0.5)"}, "network": {}, "splits": {}}
    summary, tau_summary = posterior(design())
    for t in NODES:
        out["network"][t] = summary(unit(t))
    out["network"]["tau"] = tau_summary()
    for a, b in (("A", "B"), ("C", "control")):
        summary, _ = posterior(design((a, b)))
        direct = np.append(np.zeros(len(NODES)), 1.0)
        indirect = np.append(unit(a) - (0 if b == "control" else unit(b)), 0.0)
        out["splits"][f"{a} vs {b}"] = {"direct": summary(direct), "indirect": summary(indirect),
                                        "inconsistency": summary(direct - indirect)}
    (HERE / "network_quad.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
