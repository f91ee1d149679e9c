"""Common-effect pooling of 2x2 tables without per-study normal approximations: Mantel-Haenszel
(RR, OR, RD) and Peto's odds ratio, as metafor's rma.mh and rma.peto compute them.

They use the counts themselves (no continuity correction: a zero cell contributes what it holds), so
they stay usable for sparse data where inverse-variance pooling of corrected log ratios is biased.
- MH OR: Robins-Breslow-Greenland variance; with the Cochran-Mantel-Haenszel test (with and
  without continuity correction) and the Breslow-Day / Tarone tests of a common OR.
- MH RR: Greenland-Robins variance. MH RD: Sato's (1989) variance (metafor's choice).
- Peto: sum(O - E) / sum(V) with the hypergeometric variance V.
The heterogeneity test (Q, I^2, H^2) is Cochran's Q of the per-study estimates around the pooled
one, with those estimates as rma.mh/rma.peto take them (for MH 1/2 added to the cells of a study with
a zero cell, for Peto none; double-zero studies left out of Q only), as metafor does.
Results are MetaResult rows on the log scale (RR, OR) or the risk scale (RD), without tau^2 and
without a prediction interval (these are common-effect methods).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .frequentist import LEVEL, MetaResult

COUNT_COLUMNS = ("events_treat", "n_treat", "events_ctrl", "n_ctrl")
MH_MEASURES = ("RR", "OR", "RD")


def _counts(table: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """(a, b, c, d) of the rows with counts (treatment events, non-events, control events, non-events);
    a row missing a count is refused by its study and field."""
    missing = [c for c in COUNT_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"Mantel-Haenszel/Peto pooling needs 2x2 counts: columns {', '.join(missing)} missing")
    ids = table["study_id"].astype(str) if "study_id" in table.columns else pd.Series(range(len(table))).astype(str)
    for column in COUNT_COLUMNS:
        values = pd.to_numeric(table[column], errors="coerce")
        bad = values.isna() | (values < 0)
        if bad.any():
            raise ValueError(f"study {ids[bad.to_numpy()].iloc[0]!r}, field {column!r}: a count >= 0 is needed")
    a, n1, c, n2 = (pd.to_numeric(table[col]).to_numpy(float) for col in COUNT_COLUMNS)
    for name, events, n in (("events_treat", a, n1), ("events_ctrl", c, n2)):
        if np.any(events > n):
            raise ValueError(f"study {ids[events > n].iloc[0]!r}, field {name!r}: more events than participants")
    if a.size < 1:
        raise ValueError("no 2x2 tables to pool")
    return a, n1 - a, c, n2 - c


def _escalc(a, b, c, d, measure: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-study estimates for Q (metafor's rma.mh/rma.peto: add 1/2 to only0, drop00)."""
    cells = np.column_stack([a, b, c, d])
    keep = ~(((a == 0) & (c == 0)) | ((b == 0) & (d == 0)))
    cells = cells[keep]
    zero = (cells == 0).any(axis=1) & (measure != "PETO")  # Peto's O - E needs no correction
    a_, b_, c_, d_ = (cells + 0.5 * zero[:, None]).T
    if measure == "PETO":
        n1, n2 = a_ + b_, c_ + d_
        N, m1 = n1 + n2, a_ + c_
        V = n1 * n2 * m1 * (N - m1) / (N**2 * (N - 1))
        yi, vi = (a_ - n1 * m1 / N) / V, 1 / V
        return yi, vi
    n1, n2 = a_ + b_, c_ + d_
    if measure == "RR":
        yi, vi = np.log(a_ / n1) - np.log(c_ / n2), 1 / a_ - 1 / n1 + 1 / c_ - 1 / n2
    elif measure == "OR":
        yi, vi = np.log(a_ * d_ / (b_ * c_)), 1 / a_ + 1 / b_ + 1 / c_ + 1 / d_
    else:
        p1, p2 = a_ / n1, c_ / n2
        yi, vi = p1 - p2, p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2
    return yi, vi


def _result(method: str, k: int, est: float, se: float, yi, vi) -> MetaResult:
    crit = float(stats.norm.ppf(0.5 + LEVEL / 2))
    z = est / se
    q = float(np.sum((yi - est) ** 2 / vi))
    q_df = max(yi.size - 1, 0)
    i2 = max(0.0, 100 * (q - q_df) / q) if q > 0 else 0.0
    nan = float("nan")
    return MetaResult(method=method, k=k, mu=float(est), se=float(se), ci_low=est - crit * se, ci_high=est + crit * se,
                      z=float(z), pval=float(2 * stats.norm.sf(abs(z))), tau2=0.0, tau2_se=0.0, tau=0.0, Q=q, Q_df=q_df,
                      Q_p=float(stats.chi2.sf(q, q_df)) if q_df else nan, I2=float(i2),
                      H2=float(q / q_df) if q_df else nan, pi_low=nan, pi_high=nan)


def mantel_haenszel(counts: pd.DataFrame, measure: str = "OR") -> MetaResult:
    """Mantel-Haenszel pooled RR, OR or RD of 2x2 tables (metafor's rma.mh), a common-effect estimate.

    counts: rows with events_treat, n_treat, events_ctrl, n_ctrl (a study table's binary rows).
    Example: mantel_haenszel(load_studies("studies/bcg.csv"), "RR").mu  (a log risk ratio)
    """
    measure = measure.upper()
    if measure not in MH_MEASURES:
        raise ValueError(f"Mantel-Haenszel measure {measure!r} unknown; choose one of {', '.join(MH_MEASURES)}")
    a, b, c, d = _counts(counts)
    n1, n2 = a + b, c + d
    N = n1 + n2
    if measure == "OR":
        R, S = np.sum(a * d / N), np.sum(b * c / N)
        if R == 0 or S == 0:
            raise ValueError("the Mantel-Haenszel OR is 0 or infinite: no discordant information in the tables")
        P, Q = (a + d) / N, (b + c) / N
        var = (np.sum(P * a * d / N) / (2 * R**2) + np.sum(P * b * c / N + Q * a * d / N) / (2 * R * S)
               + np.sum(Q * b * c / N) / (2 * S**2))
        est = np.log(R / S)
    elif measure == "RR":
        R, S = np.sum(a * n2 / N), np.sum(c * n1 / N)
        if R == 0 or S == 0:
            raise ValueError("the Mantel-Haenszel RR is 0 or infinite: no events in one arm of every table")
        est = np.log(R / S)
        var = np.sum((n1 * n2 * (a + c) - a * c * N) / N**2) / (R * S)
    else:
        w = n1 * n2 / N
        est = np.sum(a * n2 / N - c * n1 / N) / np.sum(w)
        P = (n1**2 * c - n2**2 * a + n1 * n2 * (n2 - n1) / 2) / N**2
        Q = (a * (n2 - c) + c * (n1 - a)) / (2 * N)
        var = (est * np.sum(P) + np.sum(Q)) / np.sum(w) ** 2
    yi, vi = _escalc(a, b, c, d, measure)
    return _result(f"MH-{measure}", a.size, float(est), float(np.sqrt(var)), yi, vi)


def cochran_mantel_haenszel(counts: pd.DataFrame, correct: bool = True) -> dict[str, tuple[float, float]]:
    """Tests of OR = 1 across the tables, each (chi^2 on 1 df, p), as metafor's rma.mh prints them:
    "cochran" (Cochran's variance, N^3 in the denominator; metafor's CO) and "mantel_haenszel"
    (the hypergeometric variance, N^2 (N - 1); metafor's MH), with Yates' correction when `correct`.

    Example:
        >>> import evsynth as es
        >>> studies = es.load_studies("studies/bcg.csv", extra_columns=["ablat", "alloc"])
        >>> chi2, p = cochran_mantel_haenszel(studies)["mantel_haenszel"]
        >>> round(chi2, 2), p < 1e-30
        (135.69, True)
    """
    a, b, c, d = _counts(counts)
    n1, n2 = a + b, c + d
    N, xt, yt = n1 + n2, a + c, b + d
    dev = abs(np.sum(a - n1 / N * xt)) - (0.5 if correct else 0.0)
    out = {}
    for name, denom in (("cochran", N), ("mantel_haenszel", N - 1)):
        stat = float(dev**2 / np.sum(n1 / N * n2 / N * xt * yt / denom))
        out[name] = (stat, float(stats.chi2.sf(stat, 1)))
    return out


def breslow_day_tarone(counts: pd.DataFrame) -> dict[str, tuple[float, float, int]]:
    """Tests that the tables share one odds ratio (the Mantel-Haenszel OR), each (chi^2, p, df):
    "breslow_day" (Breslow & Day 1980) and "tarone" (Tarone 1985: Breslow-Day minus the term that
    makes it inconsistent when the MH estimate is not the conditional ML one; the one to quote), as
    metafor's rma.mh prints them (BD, TA). A table's expected treatment events under the common OR
    psi solve a (n2 - m1 + a) = psi (n1 - a)(m1 - a); tables whose expectation is 0 or that have no
    events or no non-events are left out (df = tables kept - 1; p is nan below 2 tables).

    Example:
        >>> import evsynth as es
        >>> studies = es.load_studies("studies/bcg.csv", extra_columns=["ablat", "alloc"])
        >>> chi2, p, df = breslow_day_tarone(studies)["tarone"]
        >>> round(chi2, 1), df, p < 1e-25
        (171.8, 12, True)
    """
    a, b, c, d = _counts(counts)
    psi = np.exp(mantel_haenszel(counts, "OR").mu)
    n1, n2 = a + b, c + d
    m1, m0 = a + c, b + d  # events, non-events
    if psi == 1.0:
        expected = n1 * m1 / (n1 + n2)
    else:  # the root of (psi - 1) x^2 - A x + psi n1 m1 = 0 that lies inside the table's margins
        A = psi * (n1 + m1) + (n2 - m1)
        expected = (A - np.sqrt(A**2 - 4 * n1 * m1 * psi * (psi - 1))) / (2 * (psi - 1))
    keep = (expected > 0) & (m1 > 0) & (m0 > 0)
    e, a = expected[keep], a[keep]
    cells = np.column_stack([e, n1[keep] - e, m1[keep] - e, n2[keep] - m1[keep] + e])
    var = 1 / np.sum(1 / cells, axis=1)
    bd = max(0.0, float(np.sum((a - e) ** 2 / var)))
    tarone = max(0.0, bd - float(np.sum(a - e)) ** 2 / float(np.sum(var)))
    df = int(keep.sum()) - 1
    p = (lambda x: float(stats.chi2.sf(x, df)) if df >= 1 else float("nan"))
    return {"breslow_day": (bd, p(bd), df), "tarone": (tarone, p(tarone), df)}


def peto(counts: pd.DataFrame) -> MetaResult:
    """Peto's one-step pooled log odds ratio (metafor's rma.peto): sum(O - E) / sum(V), SE 1/sqrt(sum V).

    Example: peto(load_studies("studies/bcg.csv")).mu
    """
    a, b, c, d = _counts(counts)
    n1, n2 = a + b, c + d
    N, m1 = n1 + n2, a + c
    V = n1 * n2 * m1 * (N - m1) / (N**2 * (N - 1))
    if np.sum(V) == 0:
        raise ValueError("Peto's odds ratio needs at least one table with events and non-events")
    est = np.sum(a - n1 * m1 / N) / np.sum(V)
    yi, vi = _escalc(a, b, c, d, "PETO")
    return _result("PETO", a.size, float(est), float(1 / np.sqrt(np.sum(V))), yi, vi)
