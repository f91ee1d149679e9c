"""Classical (frequentist) random-effects meta-analysis on plain arrays.

Formulas follow R's metafor (Viechtbauer 2010) so results can be checked against its published
numbers: common-effect (inverse-variance), DerSimonian-Laird and REML estimation of tau^2,
optional Hartung-Knapp(-Sidik-Jonkman) inference, and metafor-style I^2, H^2 and prediction
interval. These are the reference point the Bayesian fits are compared with, not a replacement.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

LEVEL = 0.95


@dataclass(frozen=True)
class MetaResult:
    """Summary of one meta-analysis fit (fields named as in metafor's print-out)."""

    method: str
    k: int
    mu: float
    se: float
    ci_low: float
    ci_high: float
    z: float  # Wald z, or t under Knapp-Hartung
    pval: float
    tau2: float
    tau2_se: float
    tau: float
    Q: float
    Q_df: int
    Q_p: float
    I2: float  # percent
    H2: float
    pi_low: float
    pi_high: float
    knapp_hartung: bool = False

    @property
    def estimate(self) -> float:
        return self.mu

    def to_series(self) -> pd.Series:
        return pd.Series(asdict(self))


def _as_arrays(yi, vi) -> tuple[np.ndarray, np.ndarray]:
    yi = np.asarray(yi, dtype=float).ravel()
    vi = np.asarray(vi, dtype=float).ravel()
    if yi.shape != vi.shape:
        raise ValueError(f"yi and vi differ in length ({yi.size} vs {vi.size})")
    if yi.size < 2:
        raise ValueError("need at least 2 studies")
    if not (np.all(np.isfinite(yi)) and np.all(np.isfinite(vi))):
        raise ValueError("yi and vi must be finite")
    if np.any(vi <= 0):
        raise ValueError("sampling variances vi must be > 0")
    return yi, vi


def cochran_q(yi, vi) -> tuple[float, int, float]:
    """Cochran's Q around the common-effect mean, its df and p-value."""
    yi, vi = _as_arrays(yi, vi)
    w = 1.0 / vi
    mu_fe = np.sum(w * yi) / np.sum(w)
    q = float(np.sum(w * (yi - mu_fe) ** 2))
    df = yi.size - 1
    return q, df, float(stats.chi2.sf(q, df))


def _typical_variance(vi: np.ndarray) -> float:
    # Higgins & Thompson (2002) "typical" within-study variance, as metafor uses for I^2 and H^2.
    w = 1.0 / vi
    return (vi.size - 1) * np.sum(w) / (np.sum(w) ** 2 - np.sum(w**2))


def tau2_dersimonian_laird(yi, vi) -> float:
    """Method-of-moments tau^2 (DerSimonian & Laird 1986), truncated at 0."""
    yi, vi = _as_arrays(yi, vi)
    w = 1.0 / vi
    q, df, _ = cochran_q(yi, vi)
    return float(max(0.0, (q - df) / (np.sum(w) - np.sum(w**2) / np.sum(w))))


def tau2_reml(yi, vi, tol: float = 1e-12, max_iter: int = 1000) -> float:
    """REML tau^2 by Fisher scoring (metafor's algorithm), started at DL and kept >= 0."""
    yi, vi = _as_arrays(yi, vi)
    tau2 = tau2_dersimonian_laird(yi, vi)
    for _ in range(max_iter):
        w = 1.0 / (vi + tau2)
        # P = W - W 1 (1'W1)^-1 1'W is the REML projection for an intercept-only model.
        py = w * yi - w * np.sum(w * yi) / np.sum(w)
        tr_p = np.sum(w) - np.sum(w**2) / np.sum(w)
        tr_pp = np.sum(w**2) - 2 * np.sum(w**3) / np.sum(w) + (np.sum(w**2) / np.sum(w)) ** 2
        step = (py @ py - tr_p) / tr_pp
        new = tau2 + step
        while new < 0:  # step-halving keeps the iterate in the parameter space
            step /= 2
            new = tau2 + step
            if step < tol:
                new = 0.0
                break
        if abs(new - tau2) < tol * max(1.0, tau2):
            return float(new)
        tau2 = new
    raise RuntimeError("REML Fisher scoring did not converge")


def _tau2_se(vi: np.ndarray, tau2: float, method: str) -> float:
    """Large-sample SE of tau^2 (inverse Fisher information), as metafor reports."""
    w = 1.0 / (vi + tau2)
    if method == "REML":
        tr_pp = np.sum(w**2) - 2 * np.sum(w**3) / np.sum(w) + (np.sum(w**2) / np.sum(w)) ** 2
        return float(np.sqrt(2.0 / tr_pp))
    if method == "DL":
        # metafor's SE for the DL estimator (variance of Q-based moment estimator).
        a = 1.0 / vi
        s1, s2, s3 = np.sum(a), np.sum(a**2), np.sum(a**3)
        c = s1 - s2 / s1
        k = vi.size
        var = 2 * (k - 1) / c**2 + 4 * tau2 / c + 2 * tau2**2 * (s2 - 2 * s3 / s1 + s2**2 / s1**2) / c**2
        return float(np.sqrt(var))
    return 0.0


def _fit(yi, vi, tau2: float, method: str, knapp_hartung: bool, tau2_se: float) -> MetaResult:
    k = yi.size
    w = 1.0 / (vi + tau2)
    mu = float(np.sum(w * yi) / np.sum(w))
    if knapp_hartung:
        # Hartung-Knapp: rescale by the weighted residual variance, t with k-1 df (no truncation,
        # metafor's default test="knha").
        se = float(np.sqrt(np.sum(w * (yi - mu) ** 2) / ((k - 1) * np.sum(w))))
        crit = stats.t.ppf(0.5 + LEVEL / 2, k - 1)
        stat = mu / se
        pval = 2 * stats.t.sf(abs(stat), k - 1)
    else:
        se = float(1.0 / np.sqrt(np.sum(w)))
        crit = stats.norm.ppf(0.5 + LEVEL / 2)
        stat = mu / se
        pval = 2 * stats.norm.sf(abs(stat))
    q, df, q_p = cochran_q(yi, vi)
    if method == "FE":
        i2 = max(0.0, 100 * (q - df) / q) if q > 0 else 0.0
        h2 = q / df
    else:
        s2 = _typical_variance(vi)
        i2 = 100 * tau2 / (tau2 + s2)
        h2 = (tau2 + s2) / s2
    half_pi = crit * np.sqrt(se**2 + tau2)  # metafor: same critical value as the CI
    return MetaResult(
        method=method, k=k, mu=mu, se=se, ci_low=mu - crit * se, ci_high=mu + crit * se,
        z=float(stat), pval=float(pval), tau2=float(tau2), tau2_se=tau2_se,
        tau=float(np.sqrt(tau2)), Q=q, Q_df=df, Q_p=q_p, I2=float(i2), H2=float(h2),
        pi_low=mu - half_pi, pi_high=mu + half_pi, knapp_hartung=knapp_hartung,
    )


def common_effect(yi, vi, knapp_hartung: bool = False) -> MetaResult:
    """Common-effect (fixed-effect) inverse-variance meta-analysis."""
    yi, vi = _as_arrays(yi, vi)
    return _fit(yi, vi, 0.0, "FE", knapp_hartung, 0.0)


def dersimonian_laird(yi, vi, knapp_hartung: bool = False) -> MetaResult:
    """Random-effects meta-analysis with the DerSimonian-Laird tau^2."""
    yi, vi = _as_arrays(yi, vi)
    tau2 = tau2_dersimonian_laird(yi, vi)
    return _fit(yi, vi, tau2, "DL", knapp_hartung, _tau2_se(vi, tau2, "DL"))


def reml(yi, vi, knapp_hartung: bool = False) -> MetaResult:
    """Random-effects meta-analysis with the REML tau^2 (metafor's default)."""
    yi, vi = _as_arrays(yi, vi)
    tau2 = tau2_reml(yi, vi)
    return _fit(yi, vi, tau2, "REML", knapp_hartung, _tau2_se(vi, tau2, "REML"))


_METHODS = {"FE": common_effect, "DL": dersimonian_laird, "REML": reml}


def leave_one_out(yi, vi, method: str = "REML", labels=None, knapp_hartung: bool = False) -> pd.DataFrame:
    """Refit omitting each study in turn; one row per omitted study (index = its label)."""
    yi, vi = _as_arrays(yi, vi)
    fit = _METHODS[method]
    labels = list(range(1, yi.size + 1)) if labels is None else list(labels)
    rows = [fit(np.delete(yi, i), np.delete(vi, i), knapp_hartung=knapp_hartung).to_series()
            for i in range(yi.size)]
    return pd.DataFrame(rows, index=pd.Index(labels, name="omitted"))
