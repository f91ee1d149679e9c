"""Continuous outcomes: the mean difference and its SE by the best route the printed numbers allow
(SDs, SD of the change, t, a 95% CI, an exact p, a p bound), Hedges' J, the standardised and
ratio measures, and the check that printed statistics agree with each other."""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import special, stats

from .errors import EffectSizeError


# How far a printed statistic may sit from the one the other printed numbers imply before the row is
# flagged (rounding of p and t to two or three digits stays well inside).
T_AGREEMENT = 0.2  # relative difference between a printed t and the t implied by p or by the CI


R_AGREEMENT = 0.1  # sd_change against sd_pre, sd_post and the row's r_prepost (relative)


def hedges_j(df: float) -> float:
    """Exact small-sample correction factor J(df) (Hedges 1981), as metafor uses."""
    return math.exp(special.gammaln(df / 2) - 0.5 * math.log(df / 2) - special.gammaln((df - 1) / 2))


def t_from_p(p: float, df: float) -> float:
    """|t| that gives two-sided p on df degrees of freedom."""
    return float(stats.t.isf(p / 2, df))


@dataclass
class _MeanDifference:
    md: float  # signed mean difference
    se: float  # its standard error
    route: str
    df: float
    n_total: int
    sd_scale: float  # raw-score SD used for standardizing


def _se_from_statistics(row, md: float, df: float, study: str) -> tuple[float, str]:
    """SE(MD) from t, CI, p or a p bound, in that order of preference."""
    if row["t"] is not None:
        if md == 0:
            raise EffectSizeError(f"study {study!r}, field 't': the means are equal, so no standard error can "
                                  "be back-calculated from t")
        return abs(md) / abs(row["t"]), "t_stat"
    if row["ci_low"] is not None:
        return (row["ci_high"] - row["ci_low"]) / (2 * stats.t.ppf(0.975, df)), "ci"
    for field, route in (("p", "p_value"), ("p_upper", "p_bound")):
        if row[field] is not None:
            if md == 0:
                raise EffectSizeError(f"study {study!r}, field {field!r}: the means are equal, so "
                                      "no standard error can be back-calculated from a p-value")
            if row[field] >= 1:
                raise EffectSizeError(f"study {study!r}, field {field!r}: {field} = 1 gives t = 0, which carries "
                                      "no standard error; report the SDs, t or the CI instead")
            return abs(md) / t_from_p(row[field], df), route
    raise EffectSizeError(f"study {study!r}: no SD, t, CI or p to obtain a standard error")


def _has_statistic(row) -> bool:
    return any(row[f] is not None for f in ("t", "ci_low", "p", "p_upper"))


def _two_group(row, study: str) -> _MeanDifference:
    n1, n2 = row["n_treat"], row["n_ctrl"]
    md, df = row["mean_treat"] - row["mean_ctrl"], n1 + n2 - 2
    if row["sd_treat"] is not None and row["sd_ctrl"] is not None:
        sd1, sd2 = row["sd_treat"], row["sd_ctrl"]
        se, route = math.sqrt(sd1**2 / n1 + sd2**2 / n2), "sd"
        sd_pooled = math.sqrt(((n1 - 1) * sd1**2 + (n2 - 1) * sd2**2) / df)
    else:
        se, route = _se_from_statistics(row, md, df, study)
        sd_pooled = se / math.sqrt(1 / n1 + 1 / n2)
    return _MeanDifference(md, se, route, df, n1 + n2, sd_pooled)


def _pre_post(row, r: float, study: str) -> _MeanDifference:
    n = row["n"]
    md, df = row["mean_post"] - row["mean_pre"], n - 1
    if row["sd_change"] is not None:
        sd_change, route = row["sd_change"], "sd_change"
    elif row["sd_pre"] is not None and row["sd_post"] is not None:
        s1, s2 = row["sd_pre"], row["sd_post"]
        sd_change, route = math.sqrt(s1**2 + s2**2 - 2 * r * s1 * s2), "sd"
    elif row["sd_pre"] is not None and not _has_statistic(row):
        # Only the baseline SD: enough for the SMD (metafor's SMCR needs sd1i and ri); the change SD
        # below assumes sd_post = sd_pre and serves only that SMD's bookkeeping, never an MD's SE.
        sd_change, route = row["sd_pre"] * math.sqrt(2 * (1 - r)), "sd_pre_r"
    else:
        se, route = _se_from_statistics(row, md, df, study)
        sd_change = se * math.sqrt(n)
    # Raw-score SD: the baseline SD when reported (metafor SMCR), else implied by the change SD and r.
    sd_raw = row["sd_pre"] if row["sd_pre"] is not None else sd_change / math.sqrt(2 * (1 - r))
    return _MeanDifference(md, sd_change / math.sqrt(n), route, df, n, sd_raw)


def _measure(row, d: _MeanDifference, measure: str, r: float, study: str) -> tuple[float, float]:
    """(yi, vi) on the requested scale."""
    if measure == "MD":
        return d.md, d.se**2
    if measure == "ROM":
        return _log_ratio(row, d, r, study)
    j = hedges_j(d.df)
    if row["design"] == "two_group":
        n1, n2 = row["n_treat"], row["n_ctrl"]
        g = j * d.md / d.sd_scale
        return g, 1 / n1 + 1 / n2 + g**2 / (2 * (n1 + n2))
    n = row["n"]
    if measure == "SMCC":
        g = j * d.md / (d.se * math.sqrt(n))
        return g, 1 / n + g**2 / (2 * n)
    g = j * d.md / d.sd_scale  # SMD on pre/post rows: raw-score standardization
    return g, 2 * (1 - r) / n + g**2 / (2 * n)


def _log_ratio(row, d: _MeanDifference, r: float, study: str) -> tuple[float, float]:
    if row["design"] == "two_group":
        m1, m2, n1, n2 = row["mean_treat"], row["mean_ctrl"], row["n_treat"], row["n_ctrl"]
        fields = ("mean_treat", "mean_ctrl")
    else:
        m1, m2, n1, n2 = row["mean_post"], row["mean_pre"], row["n"], row["n"]
        fields = ("mean_post", "mean_pre")
    for field, m in zip(fields, (m1, m2)):
        if m <= 0:
            raise EffectSizeError(f"study {study!r}, field {field!r}: ratio of means needs positive means")
    if row["design"] == "two_group":
        s1 = row["sd_treat"] if row["sd_treat"] is not None else d.sd_scale
        s2 = row["sd_ctrl"] if row["sd_ctrl"] is not None else d.sd_scale
        return math.log(m1 / m2), s1**2 / (n1 * m1**2) + s2**2 / (n2 * m2**2)
    # Pre/post (metafor ROMC); without both SDs, assume equal SDs implied by the change SD and r.
    if row["sd_pre"] is not None and row["sd_post"] is not None:
        s_pre, s_post = row["sd_pre"], row["sd_post"]
    else:
        s_pre = s_post = d.se * math.sqrt(n1) / math.sqrt(2 * (1 - r))
    vi = (s_post**2 / m1**2 + s_pre**2 / m2**2 - 2 * r * s_pre * s_post / (m1 * m2)) / n1
    return math.log(m1 / m2), vi


def consistency_warnings(row, df: float | None = None) -> list[str]:
    """Printed numbers of one row that contradict each other: p against t, a CI that does not hold
    the mean difference, sd_change against sd_pre/sd_post (and the row's r). Flags, not errors."""
    warnings = []
    design = row["design"]
    if design == "two_group" and None not in (row["mean_treat"], row["mean_ctrl"]):
        md = row["mean_treat"] - row["mean_ctrl"]
        df = df if df is not None else (row["n_treat"] or 0) + (row["n_ctrl"] or 0) - 2
    elif design == "pre_post" and None not in (row["mean_pre"], row["mean_post"]):
        md = row["mean_post"] - row["mean_pre"]
        df = df if df is not None else (row["n"] or 0) - 1
    else:
        return warnings
    if df is None or not df >= 1 or not math.isfinite(md):
        return warnings
    t = row["t"]
    if t is not None and row["p"] is not None and row["p"] < 1:
        t_of_p = t_from_p(row["p"], df)
        if abs(t_of_p - abs(t)) > T_AGREEMENT * max(t_of_p, abs(t)):
            warnings.append(f"p = {row['p']:g} implies |t| = {t_of_p:.2f} on {df:g} df, but t = {t:g} is printed")
    if t is not None and row["p_upper"] is not None:
        p_of_t = 2 * stats.t.sf(abs(t), df)
        if p_of_t > row["p_upper"] * (1 + T_AGREEMENT) and p_of_t - row["p_upper"] > 1e-3:
            warnings.append(f"t = {t:g} gives p = {p_of_t:.3g} on {df:g} df, above the printed bound "
                            f"p < {row['p_upper']:g}")
    if row["ci_low"] is not None and row["ci_high"] is not None and not row["ci_low"] <= md <= row["ci_high"]:
        warnings.append(f"the 95% CI ({row['ci_low']:g}, {row['ci_high']:g}) does not contain the mean "
                        f"difference {md:g}")
    if design == "pre_post" and None not in (row["sd_change"], row["sd_pre"], row["sd_post"]):
        s1, s2, sc = row["sd_pre"], row["sd_post"], row["sd_change"]
        implied_r = (s1**2 + s2**2 - sc**2) / (2 * s1 * s2)
        if not -1 <= implied_r <= 1:
            warnings.append(f"sd_change = {sc:g} is impossible with sd_pre = {s1:g} and sd_post = {s2:g} "
                            f"(it must lie between {abs(s1 - s2):g} and {s1 + s2:g})")
        elif row["r_prepost"] is not None:
            expected = math.sqrt(max(s1**2 + s2**2 - 2 * row["r_prepost"] * s1 * s2, 0.0))
            if abs(expected - sc) > R_AGREEMENT * max(expected, sc):
                warnings.append(f"sd_change = {sc:g} disagrees with sd_pre, sd_post and r_prepost = "
                                f"{row['r_prepost']:g} (which give {expected:.3g}; implied r = {implied_r:.2f})")
    return warnings
