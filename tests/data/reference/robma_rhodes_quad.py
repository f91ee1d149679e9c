"""Reference figures for tests/test_marginal_log_tau.py (issue 23): log marginal likelihoods of the
12 RoBMA-PSMA models without step-function selection on tests/test_robma.py's six studies, with
mu ~ N(0, 1) (or mu = 0), tau ~ rhodes2015() = log tau ~ Student-t(5, -1.72, 1.295) (or tau = 0),
PET / PEESE slope b ~ half-Cauchy(1) / half-Cauchy(5) (RoBMA's scales; study means mu + b se_i or
mu + b se_i^2). Written from the model equations with scipy and nothing of evsynth: mu integrated
out in closed form (y | tau, b ~ N(b x, D + s0^2 11'), D = diag(se^2 + tau^2), by the
Sherman-Morrison identities), then scipy quad / dblquad over u = log tau in [-300, 10] and
v = log b in [-60, 10]. The four selection models (3-4 dimensional) are not here. Run from the
repository root (~5 minutes):
    python tests/data/reference/robma_rhodes_quad.py"""

import json
from pathlib import Path

import numpy as np
from scipy import integrate, stats

HERE = Path(__file__).parent
YI = [0.62, 0.35, 0.81, 0.12, 0.55, 0.95]
SEI = [0.20, 0.15, 0.32, 0.12, 0.25, 0.38]
T_NU, T_LOC, T_SCALE = 5.0, -3.44 / 2, 2.59 / 2  # Rhodes et al. (2015): log tau^2 ~ t(5, -3.44, 2.59)
SLOPE_SCALE = {"PET": 1.0, "PEESE": 5.0}
U_RANGE, U_POINTS = (-300.0, 10.0), [-8.0, -4.0, -2.0, -1.0, 0.0, 1.0]
V_RANGE = (-60.0, 10.0)
QUAD = {"epsabs": 0, "epsrel": 1e-11, "limit": 400}


def log_lik(y, se, tau, s0, mean):
    """log N(y; mean, D + s0^2 11'), D = diag(se^2 + tau^2)."""
    d = se**2 + tau**2
    r = y - mean
    a = np.sum(1 / d)
    quad = np.sum(r**2 / d) - s0**2 * np.sum(r / d) ** 2 / (1 + s0**2 * a)
    logdet = np.sum(np.log(d)) + np.log1p(s0**2 * a)
    return -0.5 * (quad + logdet + len(y) * np.log(2 * np.pi))


def log_u(u):
    return stats.t.logpdf(u, T_NU, T_LOC, T_SCALE)


def log_ml(effect, heterogeneity, family):
    y, se = np.array(YI), np.array(SEI)
    s0 = 1.0 if effect else 0.0
    ref = log_lik(y, se, np.exp(-1.0), s0, 0.0)
    if family == "none":
        if not heterogeneity:
            return float(log_lik(y, se, 0.0, s0, 0.0))
        f = lambda u: np.exp(log_lik(y, se, np.exp(u), s0, 0.0) + log_u(u) - ref)
        return float(ref + np.log(integrate.quad(f, *U_RANGE, points=U_POINTS, **QUAD)[0]))
    x = se if family == "PET" else se**2
    slope = stats.halfcauchy(0, SLOPE_SCALE[family])

    def term(u, v):  # b = exp(v): density of v = p(b) b
        b, tau = np.exp(v), (np.exp(u) if heterogeneity else 0.0)
        return np.exp(log_lik(y, se, tau, s0, b * x) + slope.logpdf(b) + v - ref
                      + (log_u(u) if heterogeneity else 0.0))
    if not heterogeneity:
        val = integrate.quad(lambda v: term(0.0, v), *V_RANGE, **QUAD)[0]
    else:
        val = integrate.dblquad(lambda u, v: term(u, v), *V_RANGE, *U_RANGE, epsabs=0, epsrel=1e-9)[0]
    return float(ref + np.log(val))


def main():
    out = {"yi": YI, "sei": SEI, "tau_prior": "rhodes2015()", "mu_prior": "normal(0, 1)", "log_ml": {}}
    for effect in (False, True):
        for het in (False, True):
            for family in ("none", "PET", "PEESE"):
                name = "/".join(["effect" if effect else "no effect",
                                 "heterogeneity" if het else "no heterogeneity",
                                 {"none": "no selection"}.get(family, family)])
                out["log_ml"][name] = log_ml(effect, het, family)
                print(name, out["log_ml"][name], flush=True)
    (HERE / "robma_rhodes_quad.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
