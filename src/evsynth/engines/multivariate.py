"""The multivariate model (several outcomes per trial; metafor's rma.mv(..., random = ~ outcome |
trial, struct = "UN")) on the PyMC engine, non-centered:

    beta_k ~ prior of mu                          (one mean per outcome k)
    Sigma = diag(tau) Omega diag(tau),  tau_k ~ prior of tau,  Omega ~ LKJ(eta)
    u_c = L z_c,  z_c ~ N(0, I)                   (L L' = Sigma: trial c's outcome deviations)
    theta_i = beta[k_i] + u[c_i, k_i],   y ~ N(theta, V)   (V: the sampling covariance, e.g. vcalc)

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
    sd_dist = {"halfnormal": lambda p: pm.HalfNormal.dist(sigma=p[0], shape=len(outcomes)),
               "halfcauchy": lambda p: pm.HalfCauchy.dist(beta=p[0], shape=len(outcomes)),
               "exponential": lambda p: pm.Exponential.dist(lam=p[0], shape=len(outcomes))}[tau_prior.family]
    coords = {"outcome": outcomes, "outcome_": outcomes, "trial": clusters, "row": np.arange(y.size),
              "row_": np.arange(y.size)}
    with pm.Model(coords=coords) as model:
        beta = pm.Normal("mu", mu=mu_prior.params[0], sigma=mu_prior.params[1], dims="outcome")
        chol, corr, sds = pm.LKJCholeskyCov("chol", n=len(outcomes), eta=eta, sd_dist=sd_dist(tau_prior.params),
                                            compute_corr=True)
        pm.Deterministic("tau", sds, dims="outcome")
        pm.Deterministic("rho", corr, dims=("outcome", "outcome_"))
        z = pm.Normal("z", 0.0, 1.0, dims=("trial", "outcome"))
        u = pt.dot(z, chol.T)
        theta = pm.Deterministic("theta", beta[k] + u[c, k], dims="row")
        # data as pm.Data: a simulation study swaps datasets of the same shape without recompiling
        pm.MvNormal("y", mu=theta, cov=pm.Data("V", V, dims=("row", "row_")), observed=pm.Data("yi", y, dims="row"),
                    dims="row")
    model.evsynth_settings = {"model": "multivariate", "prior_mu": str(mu_prior), "prior_tau": str(tau_prior),
                              "lkj_eta": f"{eta:g}", "outcomes": ", ".join(outcomes)}
    return model
