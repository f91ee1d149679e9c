"""Which studies drive a classical meta-analysis: metafor's influence() (case-deletion
diagnostics) and the Baujat plot's coordinates.

influence(): for each study, the model is refitted without it (same tau^2 estimator) and
- rstudent: externally standardised residual (y_i - x_i b_(-i)) / sqrt(v_i + tau2_(-i) + x_i V_(-i) x_i')
- dffits:   (x_i b - x_i b_(-i)) / sqrt(h_i (tau2_(-i) + v_i))
- cook_d:   (b - b_(-i))' V^-1 (b - b_(-i))
- cov_r:    det V_(-i) / det V
- tau2_del, QE_del: tau^2 and the residual Q without the study
- hat, weight: the study's leverage and its share of the weights (percent)
- dfbs:     (b - b_(-i)) / sqrt(diag V_(-i)), per coefficient, V_(-i) = (X'WX)^-1 over all k studies
            with W at tau2_(-i) (metafor's DFBETAS)
A study is flagged influential (metafor's rules, Viechtbauer & Cheung 2010) when any of:
|dffits| > 3 sqrt(p / (k - p)), the chi^2(p) CDF of cook_d > 0.5, hat > 3 p / k, or any |dfbs| > 1.

baujat(): x = the study's squared Pearson residual (y_i - x_i b)^2 / (v_i + tau^2) (for the
common-effect model its contribution to Cochran's Q), y = its influence on the pooled result
(x_i b - x_i b_(-i))^2 / (x_i V_(-i) x_i'), as metafor's baujat() computes them for the model given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .frequentist import _as_arrays, _as_design, _projection, weighted_least_squares
from .tau2 import TAU2_METHODS, estimate_tau2


@dataclass(frozen=True)
class _Fit:
    coef: np.ndarray
    cov: np.ndarray
    tau2: float
    QE: float


def refit(yi, vi, X, method: str) -> _Fit:
    """Coefficients, their covariance, tau^2 and QE of rma(yi, vi, mods = X, method) (Wald)."""
    k, p = X.shape
    tau2 = 0.0 if method == "FE" or k <= p else estimate_tau2(yi, vi, method, X)[0]
    coef, cov = weighted_least_squares(yi, X, 1.0 / (vi + tau2))
    qe = float(yi @ _projection(X, 1.0 / vi) @ yi) if k > p else 0.0
    return _Fit(coef, cov, tau2, qe)


def check_method(method: str) -> str:
    method = method.upper()
    if method != "FE" and method not in TAU2_METHODS:
        raise ValueError(f"method {method!r} unknown; choose FE or one of {', '.join(TAU2_METHODS)}")
    return method


def study_labels(labels, k: int) -> pd.Index:
    labels = list(range(1, k + 1)) if labels is None else list(labels)
    if len(labels) != k:
        raise ValueError(f"{len(labels)} labels for {k} studies")
    return pd.Index(labels, name="study")


def influence(yi, vi, method: str = "REML", X=None, labels=None) -> pd.DataFrame:
    """Case-deletion diagnostics of metafor's influence(rma(yi, vi, mods = X, method = method)): one
    row per study with rstudent, dffits, cook_d, cov_r, tau2_del, QE_del, hat, weight, dfbs_<term>
    and `influential` (metafor's "*").

    Example: influence(table.yi, table.vi, labels=table.study_id).query("influential")
    """
    yi, vi = _as_arrays(yi, vi)
    method = check_method(method)
    X = _as_design(X, yi.size)
    k, p = X.shape
    if k - 1 <= p:
        raise ValueError(f"influence diagnostics need more than {p + 1} studies (k = {k})")
    full = refit(yi, vi, X, method)
    w = 1.0 / (vi + full.tau2)
    hat = np.einsum("ij,jk,ik->i", X, full.cov, X) * w
    rows = []
    for i in range(k):
        keep = np.arange(k) != i
        d = refit(yi[keep], vi[keep], X[keep], method)
        xi = X[i]
        delta = full.coef - d.coef
        pred_full, pred_del = xi @ full.coef, xi @ d.coef
        rows.append({
            "rstudent": (yi[i] - pred_del) / np.sqrt(vi[i] + d.tau2 + xi @ d.cov @ xi),
            "dffits": (pred_full - pred_del) / np.sqrt(hat[i] * (d.tau2 + vi[i])),
            "cook_d": float(delta @ np.linalg.solve(full.cov, delta)),
            "cov_r": float(np.linalg.det(d.cov) / np.linalg.det(full.cov)),
            "tau2_del": d.tau2, "QE_del": d.QE, "hat": hat[i], "weight": 100 * w[i] / w.sum(),
            **{f"dfbs_{j}": v for j, v in enumerate(delta / np.sqrt(np.diag(
                weighted_least_squares(yi, X, 1.0 / (vi + d.tau2))[1])))},
        })
    table = pd.DataFrame(rows, index=study_labels(labels, k))
    dfbs = table[[c for c in table.columns if c.startswith("dfbs_")]]
    table["influential"] = ((table["dffits"].abs() > 3 * np.sqrt(p / (k - p)))
                            | (stats.chi2.cdf(table["cook_d"], p) > 0.5)
                            | (table["hat"] > 3 * p / k)
                            | (dfbs.abs() > 1).any(axis=1))
    table.attrs.update(method=method, k=k, p=p)
    return table


def baujat(yi, vi, method: str = "FE", X=None, labels=None) -> pd.DataFrame:
    """Baujat et al. (2002) coordinates as metafor's baujat(rma(..., method = method)): x, the study's
    squared Pearson residual (its contribution to Cochran's Q under FE); y, its influence on the
    pooled estimate (one row per study).

    Example: baujat(table.yi, table.vi, labels=table.study_id)
    """
    yi, vi = _as_arrays(yi, vi)
    method = check_method(method)
    X = _as_design(X, yi.size)
    k = yi.size
    full = refit(yi, vi, X, method)
    pred = X @ full.coef
    x = (yi - pred) ** 2 / (vi + full.tau2)
    y = np.empty(k)
    for i in range(k):
        keep = np.arange(k) != i
        d = refit(yi[keep], vi[keep], X[keep], method)
        y[i] = (pred[i] - X[i] @ d.coef) ** 2 / (X[i] @ d.cov @ X[i])
    return pd.DataFrame({"x": x, "y": y}, index=study_labels(labels, k))
