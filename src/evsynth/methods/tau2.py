"""The between-study variance tau^2: every estimator metafor's rma() offers for the normal-normal
model, their standard errors, and the Q-profile confidence intervals for tau^2, tau, I^2 and H^2.

Estimators (metafor 3.8 rma.uni, Viechtbauer 2005, 2010), all truncated at 0:
- "DL"   DerSimonian-Laird moments (evsynth.methods.frequentist.tau2_dersimonian_laird's general form)
- "REML" restricted maximum likelihood (frequentist.tau2_reml)
- "ML"   maximum likelihood (Fisher scoring)
- "PM"   Paule-Mandel: the generalised Q statistic equals its expectation k - p
- "EB"   Morris' empirical Bayes (its fixed point is PM's equation, so the two agree)
- "SJ"   Sidik-Jonkman: one weighted step from the sample variance of yi
- "HE"   Hedges: ordinary least-squares moments
- "HS"   Hunter-Schmidt
The Q-profile interval (Viechtbauer 2007) inverts the generalised Q: the bounds are where
Q(tau^2) equals the chi^2(k - p) quantiles; it does not depend on the estimator. I^2 and H^2 are
monotone in tau^2 given the typical within-study variance, so their bounds map from tau^2's.

Differences from metafor: metafor stops PM's root search at tol = 1.2e-4 and the scoring of
ML/REML/EB at a change below 1e-5, so its default printout can differ in the 5th significant digit;
here each is solved to ~1e-12 (docs/validation.md).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize, stats

from .frequentist import (
    MetaResult,
    _as_arrays,
    _as_design,
    _fit,
    _projection,
    _tau2_se,
    common_effect,
    tau2_dersimonian_laird,
    tau2_reml,
    typical_variance,
)

TAU2_METHODS = ("DL", "REML", "ML", "PM", "EB", "SJ", "HE", "HS")
LEVEL = 0.95


def generalized_q(yi, vi, tau2: float, X=None) -> float:
    """Q(tau^2) = y' P y with weights 1/(vi + tau^2): the residual heterogeneity statistic at tau^2."""
    yi, vi = np.asarray(yi, float), np.asarray(vi, float)
    return float(yi @ _projection(_as_design(X, yi.size), 1.0 / (vi + tau2)) @ yi)


def _q_root(yi, vi, X, target: float) -> float:
    """The tau^2 >= 0 with Q(tau^2) = target (0 if Q(0) is already below it); Q decreases in tau^2."""
    if generalized_q(yi, vi, 0.0, X) <= target:
        return 0.0
    high = max(float(np.var(yi)), 1e-8)
    while generalized_q(yi, vi, high, X) > target:
        high *= 4
    return float(optimize.brentq(lambda t: generalized_q(yi, vi, t, X) - target, 0.0, high,
                                 xtol=1e-14, rtol=4 * np.finfo(float).eps, maxiter=500))


def _ml_score(yi, vi, X, tau2: float) -> float:
    """Twice the derivative of the ML log-likelihood in tau^2: y'PPy - tr(W)."""
    w = 1.0 / (vi + tau2)
    Py = _projection(X, w) @ yi
    return float(Py @ Py - np.sum(w))


def _tau2_ml(yi, vi, X) -> float:
    """ML tau^2: the root of the score (0 if the score is negative at 0; it changes sign once)."""
    if _ml_score(yi, vi, X, 0.0) <= 0:
        return 0.0
    high = max(float(np.var(yi)), 1e-8)
    while _ml_score(yi, vi, X, high) > 0:
        high *= 4
    return float(optimize.brentq(lambda t: _ml_score(yi, vi, X, t), 0.0, high, xtol=1e-14,
                                 rtol=4 * np.finfo(float).eps, maxiter=500))


def estimate_tau2(yi, vi, method: str = "REML", X=None) -> tuple[float, float]:
    """(tau^2, its standard error as metafor reports it) by `method` (TAU2_METHODS), for the
    intercept-only model (X None) or a meta-regression with design matrix X (intercept included).

    Example: tau2, se = estimate_tau2(table.yi, table.vi, "PM")
    """
    yi, vi = _as_arrays(yi, vi)
    method = method.upper()
    if method not in TAU2_METHODS:
        raise ValueError(f"tau^2 method {method!r} unknown; choose one of {', '.join(TAU2_METHODS)}")
    X = _as_design(X, yi.size)
    k, p = X.shape
    yc = yi - yi.mean()  # metafor works on centred y; P annihilates the shift when X has an intercept
    y = yc if np.allclose(X[:, 0], 1.0) else yi
    if method == "DL":
        tau2 = tau2_dersimonian_laird(yi, vi, X)
        return tau2, _tau2_se(vi, tau2, "DL", X)
    if method == "HS":
        P = _projection(X, 1.0 / vi)
        sw = float(np.sum(1.0 / vi))
        tau2 = max(0.0, (float(y @ P @ y) - k) / sw)
        se = np.sqrt((2 * (k - p) + 4 * tau2 * np.trace(P) + 2 * tau2**2 * np.sum(P * P)) / sw**2)
        return tau2, float(se)
    if method == "HE":
        P = _projection(X, np.ones(k))
        PV = P * vi[None, :]
        tau2 = max(0.0, (float(y @ P @ y) - np.trace(PV)) / (k - p))
        se = np.sqrt((2 * np.sum(PV * PV.T) + 4 * tau2 * np.trace(PV) + 2 * tau2**2 * (k - p)) / (k - p) ** 2)
        return tau2, float(se)
    if method == "SJ":
        tau2_0 = float(np.mean(yc**2))
        P = _projection(X, 1.0 / (vi + tau2_0))
        PV = P * vi[None, :]
        tau2 = max(0.0, tau2_0 * float(y @ P @ y) / (k - p))
        se = np.sqrt(tau2_0**2 / (k - p) ** 2 * (2 * np.sum(PV * PV.T) + 4 * tau2 * np.sum(PV * P)
                                                 + 2 * tau2**2 * np.sum(P * P)))
        return tau2, float(se)
    if method == "REML":
        tau2 = tau2_reml(yi, vi, X)
        return tau2, _tau2_se(vi, tau2, "REML", X)
    if method == "ML":
        tau2 = _tau2_ml(yi, vi, X)
        return tau2, float(np.sqrt(2.0 / np.sum((1.0 / (vi + tau2)) ** 2)))
    tau2 = _q_root(yi, vi, X, float(k - p))  # PM and EB
    return tau2, float(np.sqrt(2 * k**2 / (k - p) / np.sum(1.0 / (vi + tau2)) ** 2))


def q_profile_tau2(yi, vi, X=None, level: float = LEVEL) -> tuple[float, float]:
    """Q-profile confidence interval for tau^2 (Viechtbauer 2007; metafor confint): the tau^2 where
    Q(tau^2) equals the upper and the lower chi^2(k - p) quantile; a bound below 0 is 0."""
    yi, vi = _as_arrays(yi, vi)
    X = _as_design(X, yi.size)
    df = yi.size - X.shape[1]
    alpha = 1 - level
    low = _q_root(yi, vi, X, float(stats.chi2.ppf(1 - alpha / 2, df)))
    high = _q_root(yi, vi, X, float(stats.chi2.ppf(alpha / 2, df)))
    return low, high


def heterogeneity_ci(yi, vi, method: str = "REML", X=None, level: float = LEVEL) -> pd.DataFrame:
    """metafor's confint(rma(...)): tau^2, tau, I^2 (%) and H^2 with the estimate by `method` and the
    Q-profile interval (rows; columns estimate, ci_low, ci_high). I^2 and H^2 use the typical
    within-study variance s^2 (residual, for a meta-regression).

    Example: heterogeneity_ci(table.yi, table.vi, method="PM")
    """
    yi, vi = _as_arrays(yi, vi)
    tau2, _ = estimate_tau2(yi, vi, method, X)
    low, high = q_profile_tau2(yi, vi, X, level)
    s2 = typical_variance(vi, X)
    t2 = np.array([tau2, low, high])
    table = pd.DataFrame([t2, np.sqrt(t2), 100 * t2 / (t2 + s2), (t2 + s2) / s2],
                         index=pd.Index(["tau^2", "tau", "I^2 (%)", "H^2"], name="quantity"),
                         columns=["estimate", "ci_low", "ci_high"])
    table.attrs.update(method=method.upper(), level=level, k=yi.size)
    return table


def rma(yi, vi, method: str = "REML", knapp_hartung: bool = False) -> MetaResult:
    """Random-effects meta-analysis with the tau^2 estimator `method` (TAU2_METHODS, or "FE" for the
    common-effect model): metafor's rma(yi, vi, method = ...), printed fields in a MetaResult.

    Example: rma(table.yi, table.vi, method="PM").mu
    """
    yi, vi = _as_arrays(yi, vi)
    if method.upper() == "FE":
        return common_effect(yi, vi, knapp_hartung)
    tau2, se = estimate_tau2(yi, vi, method)
    return _fit(yi, vi, tau2, method.upper(), knapp_hartung, se)
