"""Classical (frequentist) random-effects meta-analysis and meta-regression on plain arrays.

Formulas follow R's metafor (Viechtbauer 2010) so results can be checked against its published
numbers: common-effect (inverse-variance), DerSimonian-Laird and REML estimation of tau^2,
optional Hartung-Knapp(-Sidik-Jonkman) inference, metafor-style I^2, H^2 and prediction
interval, and the REML mixed-effects meta-regression with QE/QM tests and pseudo-R^2. These are the reference point the Bayesian fits are compared with, not a replacement.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ..effects.distributions import chi2_sf, f_sf, norm_ppf, norm_sf, t_ppf, t_sf
from ..effects.table import used_effects
from ..model.moderators import design_matrix

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
    return q, df, float(chi2_sf(q, df))


def _as_design(X, k: int) -> np.ndarray:
    X = np.ones((k, 1)) if X is None else np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[0] != k:
        raise ValueError(f"moderator matrix X must have one row per study ({k}), not shape {X.shape}")
    if X.shape[1] >= k:
        raise ValueError(f"{X.shape[1]} coefficients need more than {k} studies")
    return X


def weighted_least_squares(yi: np.ndarray, X: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least squares: coefficients and (X'WX)^-1, their covariance when w = 1/(vi + tau^2)."""
    XtW = X.T * w
    bread = np.linalg.inv(XtW @ X)
    return bread @ (XtW @ yi), bread


def _projection(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    """P = W - W X (X'WX)^-1 X'W, the REML projection (residual-maker) of a meta-regression."""
    WX = X * w[:, None]
    return np.diag(w) - WX @ np.linalg.inv(X.T @ WX) @ WX.T


def typical_variance(vi, X=None) -> float:
    """Higgins & Thompson's (2002) "typical" within-study variance s^2, as metafor uses for I^2, H^2:
    (k - p) / tr(P) with weights 1/vi; for intercept-only models (k - 1) sum(w) / ((sum w)^2 - sum w^2)."""
    vi = np.asarray(vi, dtype=float).ravel()
    X = _as_design(X, vi.size)
    w = 1.0 / vi
    WX = X * w[:, None]
    # tr(P) = sum(w) - tr((X'WX)^-1 X'W^2 X): P itself is k x k (75 GB at 100,000 studies)
    return float((vi.size - X.shape[1]) / (w.sum() - np.trace(np.linalg.solve(X.T @ WX, WX.T @ WX))))


def tau2_dersimonian_laird(yi, vi, X=None) -> float:
    """Method-of-moments tau^2 (DerSimonian & Laird 1986), truncated at 0; with a design matrix X
    (intercept included) the residual version (QE - (k - p)) / tr(P), as metafor's rma(mods=, "DL")."""
    yi, vi = _as_arrays(yi, vi)
    X = _as_design(X, yi.size)
    P = _projection(X, 1.0 / vi)
    return float(max(0.0, (yi @ P @ yi - (yi.size - X.shape[1])) / np.trace(P)))


def tau2_reml(yi, vi, X=None, threshold: float = 1e-12, max_iter: int = 100) -> float:
    """REML tau^2 of a (meta-)regression by Fisher scoring, kept >= 0: metafor's algorithm (start at
    the Hedges estimate, stop when tau^2 changes by less than `threshold`).

    X: moderator matrix with the intercept column (None: intercept only). The one REML estimator
    of the package: random-effects pooling, meta-regression and Egger's mixed-effects test use it.
    threshold: metafor stops at 1e-5 by default, which can leave the 4th printed decimal unsettled
    when tau^2 is small; 1e-12 converges. `threshold=1e-5` reproduces metafor's default output when
    tau^2 > 0; at the boundary it does not: metafor halves a step that would cross 0 and stops at a
    small positive tau^2 (up to ~1e-5, an I^2 of up to ~0.02%), where this scoring returns 0, the
    converged value (metafor with threshold=1e-12 gives < 1e-12, tests/test_effects_conventions.py).
    max_iter: metafor's maxiter; if scoring has not settled by then, the score equation is bracketed.
    """
    yi, vi = _as_arrays(yi, vi)
    X = _as_design(X, yi.size)
    k, p = X.shape
    ols = _projection(X, np.ones(k))  # Hedges (HE) start: (RSS - tr(P V)) / (k - p)
    tau2 = max(0.0, float((yi @ ols @ yi - np.sum(np.diag(ols) * vi)) / (k - p)))
    for _ in range(max_iter):
        P = _projection(X, 1.0 / (vi + tau2))
        Py = P @ yi
        new = max(0.0, tau2 + (Py @ Py - np.trace(P)) / np.sum(P * P.T))  # kept in the parameter space
        if abs(new - tau2) < threshold:
            return float(new)
        tau2 = new
    # Fisher scoring can oscillate around the root without settling (metafor then stops with "did not
    # converge"); the REML score equation y'PPy = tr(P) is solved by bracketing instead.
    return _tau2_reml_bracketed(yi, vi, X, threshold)


def _tau2_reml_bracketed(yi, vi, X, threshold: float) -> float:
    def score(tau2):  # twice the derivative of the restricted log-likelihood
        P = _projection(X, 1.0 / (vi + tau2))
        Py = P @ yi
        return float(Py @ Py - np.trace(P))

    if score(0.0) <= 0:
        return 0.0
    high = max(float(np.var(yi)), 1e-8)
    while score(high) > 0:
        high *= 2
    from scipy import optimize  # here: the fixed-point iteration's fallback only (its import ~0.1 s)

    return float(optimize.brentq(score, 0.0, high, xtol=threshold, rtol=4 * np.finfo(float).eps))


def _tau2_se(vi: np.ndarray, tau2: float, method: str, X=None) -> float:
    """Large-sample SE of tau^2 as metafor reports it: "REML" (inverse Fisher information) or "DL"."""
    if method == "REML":
        P = _projection(_as_design(X, vi.size), 1.0 / (vi + tau2))
        return float(np.sqrt(2.0 / np.sum(P * P.T)))
    # DL: metafor's SE for the DL estimator (variance of the Q-based moment estimator)
    X = _as_design(X, vi.size)
    P = _projection(X, 1.0 / vi)
    trP, df = np.trace(P), vi.size - X.shape[1]
    return float(np.sqrt((2 * df + 4 * tau2 * trP + 2 * tau2**2 * np.sum(P * P)) / trP**2))


def _inference(yi, vi, X, tau2: float, knapp_hartung: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """(coefficients, their covariance, df): Wald (df = inf) or Knapp-Hartung t on k - p df, whose
    scale is the weighted residual variance, untruncated (metafor's test="knha")."""
    w = 1.0 / (vi + tau2)
    coef, cov = weighted_least_squares(yi, X, w)
    if not knapp_hartung:
        return coef, cov, np.inf
    df = yi.size - X.shape[1]
    return coef, cov * float(w @ (yi - X @ coef) ** 2) / df, float(df)


def _critical(df: float) -> float:
    return float(norm_ppf(0.5 + LEVEL / 2) if np.isinf(df) else t_ppf(0.5 + LEVEL / 2, df))


def _two_sided_p(stat, df: float):
    return 2 * (norm_sf(np.abs(stat)) if np.isinf(df) else t_sf(np.abs(stat), df))


def _fit(yi, vi, tau2: float, method: str, knapp_hartung: bool, tau2_se: float) -> MetaResult:
    k = yi.size
    X = np.ones((k, 1))
    coef, cov, df = _inference(yi, vi, X, tau2, knapp_hartung)
    mu, se = float(coef[0]), float(np.sqrt(cov[0, 0]))
    crit, stat = _critical(df), mu / se
    q, q_df, q_p = cochran_q(yi, vi)
    if method == "FE":
        i2 = max(0.0, 100 * (q - q_df) / q) if q > 0 else 0.0
        h2 = q / q_df
    else:
        s2 = typical_variance(vi)
        i2 = 100 * tau2 / (tau2 + s2)
        h2 = (tau2 + s2) / s2
    # metafor: same critical value as the CI; a common-effect model predicts no spread (no interval)
    half_pi = np.nan if method == "FE" else crit * np.sqrt(se**2 + tau2)
    return MetaResult(
        method=method, k=k, mu=mu, se=se, ci_low=mu - crit * se, ci_high=mu + crit * se,
        z=float(stat), pval=float(_two_sided_p(stat, df)), tau2=float(tau2), tau2_se=tau2_se,
        tau=float(np.sqrt(tau2)), Q=q, Q_df=q_df, Q_p=q_p, I2=float(i2), H2=float(h2),
        pi_low=mu - half_pi, pi_high=mu + half_pi, knapp_hartung=knapp_hartung,
    )


def common_effect(yi, vi, knapp_hartung: bool = False) -> MetaResult:
    """Common-effect (fixed-effect) inverse-variance meta-analysis.

    Example:
        >>> import numpy as np
        >>> yi = np.log([4 / 123, 6 / 306]) - np.log([11 / 139, 29 / 303])    # two BCG trials, log RR
        >>> round(common_effect(yi, [1/4 - 1/123 + 1/11 - 1/139, 1/6 - 1/306 + 1/29 - 1/303]).mu, 3)
        -1.325
    """
    yi, vi = _as_arrays(yi, vi)
    return _fit(yi, vi, 0.0, "FE", knapp_hartung, 0.0)


def dersimonian_laird(yi, vi, knapp_hartung: bool = False) -> MetaResult:
    """Random-effects meta-analysis with the DerSimonian-Laird tau^2.

    Example:
        >>> import numpy as np
        >>> yi = np.log([4 / 123, 6 / 306]) - np.log([11 / 139, 29 / 303])    # two BCG trials, log RR
        >>> round(dersimonian_laird(yi, [1/4 - 1/123 + 1/11 - 1/139, 1/6 - 1/306 + 1/29 - 1/303]).mu, 3)
        -1.325
    """
    yi, vi = _as_arrays(yi, vi)
    tau2 = tau2_dersimonian_laird(yi, vi)
    return _fit(yi, vi, tau2, "DL", knapp_hartung, _tau2_se(vi, tau2, "DL"))


def reml(yi, vi, knapp_hartung: bool = False, threshold: float = 1e-12) -> MetaResult:
    """Random-effects meta-analysis with the REML tau^2 (metafor's default; threshold: see tau2_reml).
    Returns a MetaResult: mu with its SE, CI, z and p; tau², I², H², Cochran's Q and the 95%
    prediction interval (Knapp-Hartung t and its CI with knapp_hartung=True), as metafor's rma().

    Example:
        >>> import numpy as np
        >>> yi = np.log([4 / 123, 6 / 306]) - np.log([11 / 139, 29 / 303])    # two BCG trials, log RR
        >>> vi = [1/4 - 1/123 + 1/11 - 1/139, 1/6 - 1/306 + 1/29 - 1/303]
        >>> fit = reml(yi, vi)
        >>> round(fit.mu, 3), round(fit.tau2, 3), round(fit.Q, 3)
        (-1.325, 0.0, 0.931)
    """
    yi, vi = _as_arrays(yi, vi)
    tau2 = tau2_reml(yi, vi, threshold=threshold)
    return _fit(yi, vi, tau2, "REML", knapp_hartung, _tau2_se(vi, tau2, "REML"))


# --------------------------------------------------------------------------- meta-regression


@dataclass(frozen=True)
class MetaRegression:
    """A mixed-effects meta-regression (REML), as metafor's rma(yi, vi, mods=...) prints it.

    coefficients: one row per column of X (estimate, se, statistic, pval, ci_low, ci_high);
    statistic is z, or t on df = k - p under Knapp-Hartung. QE tests residual heterogeneity
    (chi^2 on k - p df); QM tests all coefficients but the intercept (chi^2 on m df, or F(m, k - p)
    under Knapp-Hartung). I2, H2: residual, with the typical variance of the regression; R2: metafor's
    pseudo-R^2, the percentage of the intercept-only model's tau^2 explained (truncated at 0).
    """

    coefficients: pd.DataFrame
    cov: np.ndarray
    df: float  # inf for z-tests
    k: int
    tau2: float
    tau2_se: float
    tau: float
    I2: float
    H2: float
    R2: float  # nan without an intercept or with intercept only
    QE: float
    QE_df: int
    QE_p: float
    QM: float
    QM_df: int
    QM_p: float
    knapp_hartung: bool
    method: str = "REML"  # the tau^2 estimator, or "FE" (a fixed-effects meta-regression: tau^2 = 0)

    def predict(self, X_new) -> pd.DataFrame:
        """Fitted effect at rows of X_new (same columns as X) with its 95% CI and prediction interval
        (none for a fixed-effects model: metafor prints none). Example: fit.predict([[1, 10], [1, 50]])"""
        X_new = np.atleast_2d(np.asarray(X_new, dtype=float))
        coef = self.coefficients["estimate"].to_numpy()
        pred = X_new @ coef
        se = np.sqrt(np.einsum("ij,jk,ik->i", X_new, self.cov, X_new))
        crit = _critical(self.df)
        half_pi = np.nan if self.method == "FE" else crit * np.sqrt(se**2 + self.tau2)
        return pd.DataFrame({"pred": pred, "se": se, "ci_low": pred - crit * se, "ci_high": pred + crit * se,
                             "pi_low": pred - half_pi, "pi_high": pred + half_pi})


REGRESSION_METHODS = ("REML", "DL", "FE")


def _tau2_by(yi, vi, X, method: str, threshold: float) -> tuple[float, float]:
    """(tau^2, its SE) of a (meta-)regression by `method`: REML, DL, or FE (tau^2 = 0)."""
    if method == "FE":
        return 0.0, np.nan
    if method not in REGRESSION_METHODS:
        raise ValueError(f"meta-regression method {method!r} unknown; choose one of {', '.join(REGRESSION_METHODS)}")
    tau2 = tau2_reml(yi, vi, X, threshold) if method == "REML" else tau2_dersimonian_laird(yi, vi, X)
    return tau2, _tau2_se(vi, tau2, method, X)


def mixed_effects(yi, vi, X, names=None, knapp_hartung: bool = False, threshold: float = 1e-12,
                  method: str = "REML") -> MetaRegression:
    """Meta-regression of yi on the columns of X (intercept first, e.g. from moderators.design_matrix):
    mixed-effects with the tau^2 estimator `method` (REML or DL), or "FE" for the fixed-effects
    meta-regression (tau^2 = 0; I^2 and H^2 from QE, no R^2, as
    metafor); threshold: REML convergence, see tau2_reml."""
    yi, vi = _as_arrays(yi, vi)
    X = _as_design(X, yi.size)
    method = method.upper()
    names = [f"X{j}" for j in range(X.shape[1])] if names is None else list(names)
    has_intercept = bool(np.allclose(X[:, 0], 1.0))
    tau2, tau2_se = _tau2_by(yi, vi, X, method, threshold)
    coef, cov, df = _inference(yi, vi, X, tau2, knapp_hartung)
    se = np.sqrt(np.diag(cov))
    stat = coef / se
    crit = _critical(df)
    table = pd.DataFrame({"estimate": coef, "se": se, "statistic": stat, "pval": _two_sided_p(stat, df),
                          "ci_low": coef - crit * se, "ci_high": coef + crit * se}, index=pd.Index(names, name="term"))
    k, p = X.shape
    P_fe = _projection(X, 1.0 / vi)
    qe = float(yi @ P_fe @ yi)
    tested = slice(1, p) if has_intercept else slice(0, p)
    b, V = coef[tested], cov[tested, tested]
    m = b.size
    qm = float(b @ np.linalg.solve(V, b)) if m else np.nan
    if knapp_hartung:
        qm, qm_p = qm / m if m else np.nan, float(f_sf(qm / m, m, df)) if m else np.nan
    else:
        qm_p = float(chi2_sf(qm, m)) if m else np.nan
    s2 = (k - p) / np.trace(P_fe)
    r2 = np.nan
    if has_intercept and p > 1 and method != "FE":
        tau2_null = _tau2_by(yi, vi, np.ones((k, 1)), method, threshold)[0]
        r2 = 0.0 if tau2_null == 0 else max(0.0, 100 * (tau2_null - tau2) / tau2_null)
    if method == "FE":
        i2, h2 = (max(0.0, 100 * (qe - (k - p)) / qe) if qe > 0 else 0.0), qe / (k - p)
    else:
        i2, h2 = 100 * tau2 / (tau2 + s2), (tau2 + s2) / s2
    return MetaRegression(coefficients=table, cov=cov, df=df, k=k, tau2=tau2, tau2_se=tau2_se,
                          tau=float(np.sqrt(tau2)), I2=float(i2), H2=float(h2),
                          R2=float(r2), QE=qe, QE_df=k - p, QE_p=float(chi2_sf(qe, k - p)), QM=qm, QM_df=m,
                          QM_p=qm_p, knapp_hartung=knapp_hartung, method=method)


def meta_regression(effects: pd.DataFrame, mods, knapp_hartung: bool = False,
                    threshold: float = 1e-12, method: str = "REML") -> MetaRegression:
    """metafor's rma(yi, vi, mods = ..., method = method) on an effect table (its used rows) with
    moderator columns; method "REML" (default), "DL" or "FE".

    mods: a formula ("~ ablat", "~ C(rob)") or a list of columns; see moderators.design_matrix.
    Example: meta_regression(effects, "~ ablat", method="FE").predict([[1, 10], [1, 50]])
    """
    table = used_effects(effects) if {"used", "head_to_head"} <= set(effects.columns) else effects
    X, names = design_matrix(table, mods)
    return mixed_effects(table["yi"], table["vi"], X, names, knapp_hartung, threshold, method)


_METHODS = {"FE": common_effect, "DL": dersimonian_laird, "REML": reml}


def leave_one_out(yi, vi, method: str = "REML", labels=None, knapp_hartung: bool = False) -> pd.DataFrame:
    """Refit omitting each study in turn; one row per omitted study (index = its label)."""
    yi, vi = _as_arrays(yi, vi)
    fit = _METHODS[method]
    labels = list(range(1, yi.size + 1)) if labels is None else list(labels)
    rows = [fit(np.delete(yi, i), np.delete(vi, i), knapp_hartung=knapp_hartung).to_series()
            for i in range(yi.size)]
    return pd.DataFrame(rows, index=pd.Index(labels, name="omitted"))
