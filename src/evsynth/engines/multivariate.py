"""The multivariate model (several outcomes per trial; metafor's rma.mv(..., random = ~ outcome |
trial, struct = "UN")) on the PyMC engine, with the trial deviations integrated out:

    beta_k ~ prior of mu                          (one mean per outcome k)
    Sigma = diag(tau) Omega diag(tau),  tau_k ~ prior of tau,  Omega ~ LKJ(eta)
    y ~ N(beta[k], V + M),  M_ij = Sigma[k_i, k_j] when rows i, j are of one trial, else 0
    (V: the sampling covariance, e.g. vcalc; M: the trials' outcome deviations u_c ~ N(0, Sigma))

The same posterior as sampling u_c = L z_c (non-centered), without the funnel between small tau and
z: that version did not converge on simulated data (worst R-hat 2.23 over 40 datasets at
target_accept 0.95, benchmarks/multivariate_coverage.py); this one passes (docs/validation.md).
Deterministics: `tau` (dim outcome) and `rho` (outcome x outcome). PyMC only: the exact engine
integrates SDs with fixed correlations (up to three); an unknown correlation matrix is not one of
its parameters (two outcomes would be three quadrature axes, tau_1, tau_2 and rho, which the engine
does not take today), so this model is sampled. Frequentist counterpart:
evsynth.methods.multilevel.multilevel(table, "~ outcome | trial", V=V, mods="~ 0 + C(outcome)").
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..model.priors import parse_prior


def multivariate(table: pd.DataFrame, V=None, outcome: str = "outcome", cluster: str = "trial",
                 priors: dict | None = None, eta: float = 2.0):
    """The pm.Model of the unstructured multivariate model on `table` (columns yi, vi or V, and the
    `outcome` and `cluster` columns). priors: "mu" (each outcome's mean, normal), "tau" (each
    outcome's between-trial SD). eta: the LKJ concentration (2: mild shrinkage towards rho = 0).

    >>> import evsynth as es, pandas as pd, pymc as pm                         # doctest: +SKIP
    >>> berkey = pd.read_csv("tests/data/berkey1998.csv")                     # doctest: +SKIP
    >>> with es.multivariate(berkey, V=V):  # V: vcalc's matrix, tests/data/reference/multilevel.json  # doctest: +SKIP
    ...     idata = pm.sample(target_accept=0.99)                              # doctest: +SKIP
    """
    import pymc as pm
    import pytensor.tensor as pt

    for column in ("yi", outcome, cluster) + (("vi",) if V is None else ()):
        if column not in table.columns:
            raise ValueError(f"column {column!r} is not in the table")
    chosen = {"mu": "normal(0, 1)", "tau": "halfnormal(0.5)"} | dict(priors or {})
    mu_prior, tau_prior = parse_prior(chosen["mu"]), parse_prior(chosen["tau"], "tau")
    if mu_prior.family != "normal" or tau_prior.family not in ("halfnormal", "halfcauchy", "exponential"):
        raise ValueError("the multivariate model takes a normal prior on mu and a half-normal, half-Cauchy or "
                         "exponential prior on tau")
    y = table["yi"].to_numpy(float)
    V = np.diag(table["vi"].to_numpy(float)) if V is None else np.asarray(V, float)
    if V.shape != (y.size, y.size):
        raise ValueError(f"V has shape {V.shape}; expected ({y.size}, {y.size})")
    outcomes = sorted(table[outcome].astype(str).unique())
    clusters = list(pd.unique(table[cluster].astype(str)))
    if len(outcomes) < 2:
        raise ValueError(f"column {outcome!r} has one outcome: the multivariate model needs two or more")
    k = table[outcome].astype(str).map({o: j for j, o in enumerate(outcomes)}).to_numpy()
    c = table[cluster].astype(str).map({t: j for j, t in enumerate(clusters)}).to_numpy()
    sd_dist = {"halfnormal": lambda p: pm.HalfNormal("tau", sigma=p[0], dims="outcome"),
               "halfcauchy": lambda p: pm.HalfCauchy("tau", beta=p[0], dims="outcome"),
               "exponential": lambda p: pm.Exponential("tau", lam=p[0], dims="outcome")}[tau_prior.family]
    coords = {"outcome": outcomes, "outcome_": outcomes, "row": np.arange(y.size),
              "row_": np.arange(y.size)}
    with pm.Model(coords=coords) as model:
        beta = pm.Normal("mu", mu=mu_prior.params[0], sigma=mu_prior.params[1], dims="outcome")
        tau = sd_dist(tau_prior.params)
        corr = lkj_correlation(pm, pt, len(outcomes), eta)
        pm.Deterministic("rho", corr, dims=("outcome", "outcome_"))
        Sigma = tau[:, None] * corr * tau[None, :]
        same_trial = (c[:, None] == c[None, :]).astype(float)
        # data as pm.Data: a simulation study swaps datasets of the same shape without recompiling
        cov = pm.Data("V", V, dims=("row", "row_")) + Sigma[k][:, k] * same_trial
        pm.MvNormal("y", mu=beta[k], cov=cov, observed=pm.Data("yi", y, dims="row"), dims="row")
    model.evsynth_settings = {"model": "multivariate", "prior_mu": str(mu_prior), "prior_tau": str(tau_prior),
                              "lkj_eta": f"{eta:g}", "outcomes": ", ".join(outcomes)}
    return model


def lkj_correlation(pm, pt, d: int, eta: float):
    """A d x d correlation matrix with the LKJ(eta) prior, built from its canonical partial
    correlations (Lewandowski, Kurowicka & Joe 2009, the C-vine): the partial correlation of
    level j + 1 is 2 Beta(b_j, b_j) - 1 with b_j = eta + (d - 2 - j) / 2, independently, and the
    Cholesky factor is L[i, 0] = z_i0, L[i, j] = z_ij sqrt(1 - sum_{l<j} L[i, l]^2) (Stan's
    read_corr_L). Written out instead of pm.LKJCholeskyCov / pm.LKJCorr: their initial point
    compiles their random generator's graph (a Scan with a dot) with PyTensor's C backend, which on
    a pip install warns "could not link to a BLAS installation"; this graph has no dot at all.
    For d = 2 it is rho = 2 Beta(eta, eta) - 1. Checked against pm.LKJCorr's draws (tests)."""
    pairs = [(i, j) for i in range(1, d) for j in range(i)]
    b = np.array([eta + (d - 2 - j) / 2 for _, j in pairs])
    z = 2 * pm.Beta("corr_cpc", alpha=b, beta=b, shape=len(pairs)) - 1
    L = [[pt.as_tensor(1.0 if (i == 0 and j == 0) else 0.0) for j in range(d)] for i in range(d)]
    for k, (i, j) in enumerate(pairs):
        used = sum((L[i][l] ** 2 for l in range(j)), pt.as_tensor(0.0))
        L[i][j] = z[k] * pt.sqrt(1 - used) if j else z[k]
    for i in range(1, d):
        L[i][i] = pt.sqrt(1 - sum((L[i][l] ** 2 for l in range(i)), pt.as_tensor(0.0)))
    return pt.stack([pt.stack([sum((L[i][l] * L[j][l] for l in range(d)), pt.as_tensor(0.0)) for j in range(d)])
                     for i in range(d)])
