"""Cluster-robust variance estimation: CR2 standard errors with Satterthwaite degrees of freedom
(Bell & McCaffrey 2002; Pustejovsky & Tipton 2018), as clubSandwich's coef_test(fit, vcov = "CR2")
gives them for a metafor fit.

Why: a multilevel or correlated-effects model is only a working model; when the assumed
within-study correlation (or the nesting) is wrong its model-based SEs are wrong, while the
sandwich over independent clusters (studies) stays consistent. CR2 corrects the sandwich's
small-sample bias under the working model, and the Satterthwaite df say how many clusters really
inform each coefficient (df below 4 or so: the test is not trustworthy, Tipton 2015).

With weights W = M^-1 (the inverse of the fitted marginal covariance M, clubSandwich's
"inverse_var" case for rma.mv), bread B = (X' W X)^-1, residuals e = y - X beta and, per cluster j,
    A_j = R_j' (R_j (I - X_j B X_j' W_j) M_j R_j')^(-1/2) R_j,     R_j' R_j = M_j,
    V_CR2 = B [sum_j X_j' W_j A_j e_j e_j' A_j' W_j X_j] B.
For coefficient i, with G_j = B X_j' W_j A_j R_j' and H_j = B X_j' W_j A_j X_j L (L L' = B), the
Satterthwaite df are tr(P)^2 / ||P||_F^2, P = diag(|G_j[i]|^2) - H[i]' H[i] (J x J).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

LEVEL = 0.95


def _inverse_sqrt(matrix: np.ndarray, tol: float = 1e-12) -> np.ndarray:
    """Symmetric matrix^(-1/2), eigenvalues below tol set to 0 (clubSandwich's matrix_power)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    powered = np.where(values > tol, np.abs(values) ** -0.5, 0.0)
    return (vectors * powered) @ vectors.T


@dataclass(frozen=True)
class RobustResult:
    """CR2 inference: one row per coefficient (estimate, se, statistic = t, df (Satterthwaite),
    pval, ci_low, ci_high); cov the CR2 covariance; clusters the number of clusters."""

    coefficients: pd.DataFrame
    cov: np.ndarray
    clusters: int

    def lines(self) -> list[str]:
        out = [f"cluster-robust (CR2) inference over {self.clusters} clusters, Satterthwaite df"]
        for name, row in self.coefficients.iterrows():
            flag = "  (df < 4: unreliable)" if row["df"] < 4 else ""
            out.append(f"  {name:<24} {row['estimate']:>8.4f}  SE {row['se']:.4f}  t {row['statistic']:.2f}  "
                       f"df {row['df']:.1f}  p {row['pval']:.3g}{flag}")
        return out


def cr2(yi, X, M, cluster, names=None) -> RobustResult:
    """CR2 / Satterthwaite inference for the GLS fit of yi on X with working covariance M (n x n,
    block-diagonal by cluster); cluster: one label per row (the studies)."""
    y = np.asarray(yi, float)
    X = np.asarray(X, float)
    M = np.asarray(M, float)
    cluster = np.asarray(cluster)
    n, p = X.shape
    if M.shape != (n, n) or y.shape != (n,) or cluster.shape != (n,):
        raise ValueError(f"yi {y.shape}, X {X.shape}, M {M.shape} and cluster {cluster.shape} do not match")
    codes, labels = pd.factorize(pd.Series(cluster).astype(str))
    J = len(labels)
    if J < 2:
        raise ValueError("cluster-robust variance estimation needs at least 2 clusters")
    rows = [np.flatnonzero(codes == j) for j in range(J)]
    across = np.ones((n, n), bool)
    for r in rows:
        across[np.ix_(r, r)] = False
    if np.any(M[across] != 0):
        raise ValueError("the working covariance M links rows of different clusters: cluster at a level "
                         "that contains every random effect (the studies)")
    W_blocks = [np.linalg.inv(M[np.ix_(r, r)]) for r in rows]
    XtWX = sum(X[r].T @ W @ X[r] for r, W in zip(rows, W_blocks))
    B = np.linalg.inv(XtWX)
    beta = B @ sum(X[r].T @ W @ y[r] for r, W in zip(rows, W_blocks))
    e = y - X @ beta
    L = np.linalg.cholesky(B)
    components, G_list, H_list = [], [], []
    for r, W in zip(rows, W_blocks):
        Mj = M[np.ix_(r, r)]
        R = np.linalg.cholesky(Mj).T  # upper: R' R = M_j
        IH = np.eye(r.size) - X[r] @ B @ X[r].T @ W
        A = R.T @ _inverse_sqrt(R @ IH @ Mj @ R.T) @ R
        E = X[r].T @ W @ A  # p x n_j
        components.append(E @ e[r])
        ME = B @ E
        G_list.append(ME @ R.T)  # p x n_j
        H_list.append(ME @ X[r] @ L)  # p x p
    C = np.column_stack(components)
    cov = B @ (C @ C.T) @ B
    se = np.sqrt(np.diag(cov))
    df = np.empty(p)
    for i in range(p):
        Hi = np.column_stack([H[i] for H in H_list])  # p x J
        P = -Hi.T @ Hi
        P[np.diag_indices(J)] += [float(G[i] @ G[i]) for G in G_list]
        df[i] = np.trace(P) ** 2 / np.sum(P * P)
    t = beta / se
    crit = stats.t.ppf(0.5 + LEVEL / 2, df)
    names = [f"X{j}" for j in range(p)] if names is None else list(names)
    table = pd.DataFrame({"estimate": beta, "se": se, "statistic": t, "df": df, "pval": 2 * stats.t.sf(np.abs(t), df),
                          "ci_low": beta - crit * se, "ci_high": beta + crit * se}, index=pd.Index(names, name="term"))
    return RobustResult(table, cov, J)


def robust(fit, cluster=None) -> RobustResult:
    """CR2 inference for a multilevel fit (evsynth.methods.multilevel.multilevel), clustered by
    its outermost level unless `cluster` (one label per row) is given.

    >>> import evsynth as es, pandas as pd                                   # doctest: +SKIP
    >>> dat = pd.read_csv("tests/data/assink2016.csv")                      # doctest: +SKIP
    >>> es.robust(es.multilevel(dat, "~ 1 | study/esid")).coefficients      # SE 0.1186, df 15.4  # doctest: +SKIP
    """
    cluster = fit.clusters if cluster is None else cluster
    return cr2(fit.yi, fit.X, fit.M, cluster, fit.coefficients.index)
