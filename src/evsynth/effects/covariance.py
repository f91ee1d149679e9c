"""Sampling covariance V of effect sizes that share participants.

Rows of one study (or one sample) that measure the same people have correlated sampling errors;
treating them as independent counts those people twice. Here V is block-diagonal by cluster:
  - `impute_covariance(vi, cluster, rho)`: a stated within-cluster correlation,
    V_ij = rho sqrt(vi vj) for two rows of one cluster (metafor's vcalc(vi, cluster, obs, rho),
    clubSandwich's impute_covariance_matrix(vi, cluster, r)); rho is usually a guess, so vary it
    (evsynth.methods.robust's CR2 SEs stay valid when it is wrong).
  - `shared_control_covariance(...)`: the covariance that two contrasts of a multi-arm trial get
    from their common control arm (mean differences: the control mean's variance sd_c^2 / n_c;
    SMDs: Gleser & Olkin 2009, 1 / n_c + d_1 d_2 / (2 N) with N the sum of the three arms).
  - `check_covariance(V, n)`: a user-given matrix, checked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


class CovarianceError(ValueError):
    """A sampling covariance that cannot be used (names the rows or field)."""


def _clusters(cluster, n: int) -> np.ndarray:
    cluster = pd.Series(list(cluster))
    if len(cluster) != n:
        raise CovarianceError(f"cluster has {len(cluster)} labels for {n} rows")
    if cluster.isna().any():
        rows = ", ".join(str(i + 1) for i in np.flatnonzero(cluster.isna().to_numpy()))
        raise CovarianceError(f"cluster label missing in row(s) {rows}")
    return pd.factorize(cluster.astype(str))[0]


def impute_covariance(vi, cluster, rho: float) -> np.ndarray:
    """V with vi on the diagonal and rho sqrt(vi vj) between two rows of one cluster, 0 across.

    >>> impute_covariance([0.04, 0.09, 0.01], ["a", "a", "b"], 0.6)[0, 1]   # 0.6 * 0.2 * 0.3
    0.036
    """
    vi = np.asarray(vi, float).ravel()
    if not np.all(np.isfinite(vi)) or np.any(vi <= 0):
        bad = ", ".join(str(i + 1) for i in np.flatnonzero(~(np.isfinite(vi) & (vi > 0))))
        raise CovarianceError(f"sampling variance vi must be finite and > 0 (row(s) {bad})")
    if not (np.isfinite(rho) and -1 < rho < 1):
        raise CovarianceError(f"rho = {rho!r}: a within-study correlation must lie strictly between -1 and 1")
    codes = _clusters(cluster, vi.size)
    same = codes[:, None] == codes[None, :]
    sd = np.sqrt(vi)
    V = np.where(same, rho * np.outer(sd, sd), 0.0)
    V[np.diag_indices(vi.size)] = vi
    return check_covariance(V, vi.size)


def shared_control_covariance(vi, trial, n_control, sd_control=None, yi=None, n_total=None,
                              measure: str = "MD") -> np.ndarray:
    """V of contrasts against a common control arm: rows of one trial share its control group.

    MD: Cov = sd_control^2 / n_control. SMD: Cov = 1 / n_control + d_1 d_2 / (2 n_total), n_total
    the participants in all arms of the trial (Gleser & Olkin 2009, eq. 19.19). Rows of different
    trials: 0.

    Example:
        >>> V = shared_control_covariance([0.1, 0.2, 0.3], trial=["a", "a", "b"], n_control=[50, 50, 40],
        ...                               sd_control=[1.0, 1.0, 1.0])
        >>> V.round(3).tolist()     # the two rows of trial "a" share 1^2 / 50
        [[0.1, 0.02, 0.0], [0.02, 0.2, 0.0], [0.0, 0.0, 0.3]]
    """
    vi = np.asarray(vi, float).ravel()
    codes = _clusters(trial, vi.size)
    n_c = np.asarray(n_control, float).ravel()
    same = (codes[:, None] == codes[None, :]) & ~np.eye(vi.size, dtype=bool)
    if measure == "MD":
        if sd_control is None:
            raise CovarianceError("shared control (MD): sd_control is needed")
        cov = np.asarray(sd_control, float).ravel() ** 2 / n_c
        V = np.where(same, cov[:, None], 0.0)
    elif measure == "SMD":
        if yi is None or n_total is None:
            raise CovarianceError("shared control (SMD): yi and n_total are needed")
        d, N = np.asarray(yi, float).ravel(), np.asarray(n_total, float).ravel()
        V = np.where(same, 1 / n_c[:, None] + np.outer(d, d) / (2 * N[:, None]), 0.0)
    else:
        raise CovarianceError(f"measure {measure!r}: shared-control covariances for 'MD' or 'SMD'")
    for j in np.unique(codes):  # one control arm per trial: its n and SD must agree across the trial's rows
        rows = np.flatnonzero(codes == j)
        if rows.size > 1 and not np.allclose(n_c[rows], n_c[rows[0]]):
            raise CovarianceError(f"trial {list(trial)[rows[0]]!r}: n_control differs between its rows "
                                  "(one shared control arm has one size)")
    V = (V + V.T) / 2
    V[np.diag_indices(vi.size)] = vi
    return check_covariance(V, vi.size)


def check_covariance(V, n: int) -> np.ndarray:
    """A user-given V: n x n, finite, symmetric, positive definite."""
    V = np.asarray(V, float)
    if V.shape != (n, n):
        raise CovarianceError(f"V has shape {V.shape}; expected ({n}, {n}), one row and column per effect")
    if not np.all(np.isfinite(V)):
        raise CovarianceError("V has entries that are not finite numbers")
    if not np.allclose(V, V.T, rtol=0, atol=1e-12 * np.abs(V).max()):
        raise CovarianceError("V is not symmetric")
    if np.linalg.eigvalsh(V).min() <= 0:
        raise CovarianceError("V is not positive definite: a correlation of +-1, or covariances larger "
                              "than the variances allow")
    return V
