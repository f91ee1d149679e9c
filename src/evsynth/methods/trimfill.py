"""Trim-and-fill (Duval & Tweedie 2000) as metafor's trimfill(): estimate how many studies are
"missing" on one side of the funnel, trim the most extreme ones, re-estimate the centre, iterate,
then mirror the trimmed studies around that centre and refit with the filled-in studies.

- estimator "L0" (default) or "R0" (rank-based counts of the asymmetric studies);
- side: where studies are missing; None chooses it as metafor does, from the sign of the slope of
  yi on sqrt(vi) (a positive slope: small studies sit right, so the left side is filled);
- the model (FE or any tau^2 estimator) is used for the trimmed fits and the final one.

It is a sensitivity analysis, not a correction: the filled studies are imputations under the
assumption that asymmetry comes from suppressed studies (other causes: true heterogeneity related
to size, chance). Results carry that caveat in the report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .frequentist import MetaResult, _as_arrays
from .influence import check_method, refit
from .tau2 import rma

ESTIMATORS = ("L0", "R0")
SIDES = ("left", "right")


@dataclass(frozen=True)
class TrimFill:
    """k0 studies estimated missing on `side`, with metafor's se_k0 (and p_k0 for R0); `fit` is the
    model on the observed plus filled studies, `data` those studies (column `filled`)."""

    k0: int
    se_k0: float
    p_k0: float  # R0 only (nan for L0)
    side: str
    estimator: str
    method: str
    fit: MetaResult
    data: pd.DataFrame


def _side(yi, vi, method: str) -> str:
    X = np.column_stack([np.ones(yi.size), np.sqrt(vi)])
    return "right" if refit(yi, vi, X, method).coef[1] < 0 else "left"


def trimfill(yi, vi, method: str = "REML", estimator: str = "L0", side: str | None = None, labels=None,
             max_iter: int = 100) -> TrimFill:
    """metafor's trimfill(rma(yi, vi, method = method), estimator = ..., side = ...).

    Example: tf = trimfill(table.yi, table.vi, method="FE"); tf.k0, tf.fit.mu
    """
    yi_obs, vi_obs = _as_arrays(yi, vi)
    method = check_method(method)
    if estimator not in ESTIMATORS:
        raise ValueError(f"trim-and-fill estimator {estimator!r} unknown; choose one of {', '.join(ESTIMATORS)}")
    if side is not None and side not in SIDES:
        raise ValueError(f"trim-and-fill side {side!r} unknown; choose left, right or None (chosen from the data)")
    side = _side(yi_obs, vi_obs, method) if side is None else side
    sign = -1.0 if side == "right" else 1.0
    order = np.argsort(sign * yi_obs, kind="stable")
    y, v = sign * yi_obs[order], vi_obs[order]
    k = y.size
    k0, previous, se_k0 = 0, -1, 0.0
    for _ in range(max_iter):
        if k0 == previous:
            break
        previous = k0
        beta = float(refit(y[:k - k0], v[:k - k0], np.ones((k - k0, 1)), method).coef[0])
        centred = y - beta
        ranks = np.empty(k)
        ranks[np.argsort(np.abs(centred), kind="stable")] = np.arange(1, k + 1)
        signed = np.sign(centred) * ranks
        if estimator == "R0":
            k0_raw = (k - np.max(-signed[signed < 0])) - 1 if np.any(signed < 0) else k - 1
            se_k0 = np.sqrt(2 * max(0, k0_raw) + 2)
        else:
            sr = np.sum(signed[signed > 0])
            k0_raw = (4 * sr - k * (k + 1)) / (2 * k - 1)
            var_sr = (k * (k + 1) * (2 * k + 1) + 10 * k0_raw**3 + 27 * k0_raw**2 + 17 * k0_raw
                      - 18 * k * k0_raw**2 - 18 * k * k0_raw + 6 * k**2 * k0_raw) / 24
            se_k0 = 4 * np.sqrt(var_sr) / (2 * k - 1)
        k0 = max(0, int(np.round(k0_raw)))  # R's round: half to even, as numpy's
        se_k0 = max(0.0, float(se_k0))
    else:
        raise ValueError(f"trim-and-fill did not converge in {max_iter} iterations")
    names = list(range(1, k + 1)) if labels is None else [str(x) for x in labels]
    data = pd.DataFrame({"study": names, "yi": yi_obs, "vi": vi_obs, "filled": False})
    if k0 > 0:
        fill_y = sign * (2 * beta - y[k - k0:])  # mirrored around the last trimmed estimate
        data = pd.concat([data, pd.DataFrame({"study": [f"filled {i + 1}" for i in range(k0)], "yi": fill_y,
                                              "vi": v[k - k0:], "filled": True})], ignore_index=True)
    fit = rma(data["yi"].to_numpy(), data["vi"].to_numpy(), method=method)
    p_k0 = 0.5 ** (k0 + 1) if estimator == "R0" else float("nan")
    return TrimFill(k0=k0, se_k0=se_k0, p_k0=p_k0, side=side, estimator=estimator, method=method, fit=fit, data=data)
