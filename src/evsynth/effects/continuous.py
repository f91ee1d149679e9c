"""Continuous outcomes: the mean difference and its SE by the best route the printed numbers allow
(SDs, SD of the change, t, a 95% CI, an exact p, a p bound), Hedges' J, the standardised and
ratio measures, and the check that printed statistics agree with each other."""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import special

from .distributions import norm_isf, t_isf, t_ppf, t_sf

from .errors import EffectSizeError


# How far a printed statistic may sit from the one the other printed numbers imply before the row is
# flagged (rounding of p and t to two or three digits stays well inside).
T_AGREEMENT = 0.2  # relative difference between a printed t and the t implied by p or by the CI


R_AGREEMENT = 0.1  # sd_change against sd_pre, sd_post and the row's r_prepost (relative)
# A pre/post correlation implied by a printed t (or exact p) and the SDs outside this range is an
# integrity flag: change scores of one group over days correlate positively, rarely perfectly.
R_PLAUSIBLE = (-0.2, 0.99)
RANK_TESTS = ("wilcoxon", "mann-whitney", "kruskal-wallis")  # evsynth.data.studies.RANK_TESTS


def hedges_j(df: float) -> float:
    """Exact small-sample correction factor J(df) (Hedges 1981), as metafor uses."""
    return math.exp(special.gammaln(df / 2) - 0.5 * math.log(df / 2) - special.gammaln((df - 1) / 2))


def t_from_p(p: float, df: float) -> float:
    """|t| that gives two-sided p on df degrees of freedom."""
    return float(t_isf(p / 2, df))


def is_rank_test(row) -> bool:
    """Whether the row's printed p comes from a rank test (Wilcoxon, Mann-Whitney, Kruskal-Wallis)."""
    return row.get("test") in RANK_TESTS


def statistic_from_p(row, p: float, df: float) -> float:
    """|t| standing for a printed p: the t quantile on df for a t-test (or an unnamed test), the
    standard normal quantile for a rank test. A rank test's p fixes no t: its large-sample z is the
    smaller of the two at small n, so the effect it gives leans towards zero (studies/README.md)."""
    return float(norm_isf(p / 2)) if is_rank_test(row) else t_from_p(p, df)


@dataclass
class _MeanDifference:
    md: float  # signed mean difference
    se: float  # its standard error
    route: str
    df: float
    n_total: int
    sd_scale: float  # raw-score SD used for standardizing
    r: float | None = None  # pre/post correlation behind the SE when not the assumed one (implied by t)
    r_implied: float = math.nan  # pre/post correlation the printed t (or p) and SDs imply


def _se_from_statistics(row, md: float, df: float, study: str) -> tuple[float, str]:
    """SE(MD) from t, CI, p or a p bound, in that order of preference."""
    if row["t"] is not None:
        if md == 0:
            raise EffectSizeError(f"study {study!r}, field 't': the means are equal, so no standard error can "
                                  "be back-calculated from t")
        return abs(md) / abs(row["t"]), "t_stat"
    if row["ci_low"] is not None:
        return (row["ci_high"] - row["ci_low"]) / (2 * t_ppf(0.975, df)), "ci"
    for field, route in (("p", "p_value"), ("p_upper", "p_bound")):
        if row[field] is not None:
            if md == 0:
                raise EffectSizeError(f"study {study!r}, field {field!r}: the means are equal, so "
                                      "no standard error can be back-calculated from a p-value")
            if row[field] >= 1:
                raise EffectSizeError(f"study {study!r}, field {field!r}: {field} = 1 gives t = 0, which carries "
                                      "no standard error; report the SDs, t or the CI instead")
            return abs(md) / statistic_from_p(row, row[field], df), route
    raise EffectSizeError(f"study {study!r}: no SD, t, CI or p to obtain a standard error")


def _has_statistic(row) -> bool:
    return any(row[f] is not None for f in ("t", "ci_low", "p", "p_upper"))


def _difference(row, first: str, second: str) -> float:
    """first - second; for a row whose means are not printed, its printed sign in arbitrary units
    (+1 or -1): a standardised effect from a test statistic does not depend on the scale."""
    if row.get("effect_sign") is not None and row[first] is None:
        return 1.0 if row["effect_sign"] == "positive" else -1.0
    return row[first] - row[second]


def _two_group(row, study: str) -> _MeanDifference:
    n1, n2 = row["n_treat"], row["n_ctrl"]
    md, df = _difference(row, "mean_treat", "mean_ctrl"), n1 + n2 - 2
    if row["sd_treat"] is not None and row["sd_ctrl"] is not None:
        sd1, sd2 = row["sd_treat"], row["sd_ctrl"]
        se, route = math.sqrt(sd1**2 / n1 + sd2**2 / n2), "sd"
        sd_pooled = math.sqrt(((n1 - 1) * sd1**2 + (n2 - 1) * sd2**2) / df)
    else:
        se, route = _se_from_statistics(row, md, df, study)
        sd_pooled = se / math.sqrt(1 / n1 + 1 / n2)
    return _MeanDifference(md, se, route, df, n1 + n2, sd_pooled)


def paired_statistic(row, df: float) -> tuple[float, str] | None:
    """(|t|, route) of a pre/post row's paired test as printed: t itself ("t_sd"), or an exact p of a
    paired t-test or an unnamed test ("p_sd"); None for a bound or a rank test's p (no t follows)."""
    if row["t"] is not None:
        return abs(row["t"]), "t_sd"
    if row["p"] is not None and row["p"] < 1 and not is_rank_test(row):
        return t_from_p(row["p"], df), "p_sd"
    return None


def implied_r(sd_pre: float, sd_post: float, sd_change: float) -> float:
    """Pre/post correlation from the two SDs and the SD of the change: var(d) = s1² + s2² - 2 r s1 s2."""
    return (sd_pre**2 + sd_post**2 - sd_change**2) / (2 * sd_pre * sd_post)


def _pre_post(row, r: float, study: str) -> _MeanDifference:
    """Pre/post mean change and its SE. With both SDs and a printed t (or exact p), the SD of the
    change comes from the statistic, sd_change = |md| sqrt(n) / |t|, and the correlation it implies
    replaces the assumed r; an implied r outside R_PLAUSIBLE is flagged (consistency_warnings) and
    the larger of the two SEs (statistic or assumed r) is kept, so a flagged row never gains weight."""
    n = row["n"]
    md, df = _difference(row, "mean_post", "mean_pre"), n - 1
    r_used, r_hat = None, math.nan
    if row["sd_change"] is not None:
        sd_change, route = row["sd_change"], "sd_change"
    elif row["sd_pre"] is not None and row["sd_post"] is not None:
        s1, s2 = row["sd_pre"], row["sd_post"]
        sd_change, route = math.sqrt(s1**2 + s2**2 - 2 * r * s1 * s2), "sd"
        statistic = paired_statistic(row, df)
        if statistic is not None and md != 0:
            from_t = abs(md) * math.sqrt(n) / statistic[0]
            r_hat = implied_r(s1, s2, from_t)
            if R_PLAUSIBLE[0] <= r_hat <= R_PLAUSIBLE[1] or from_t > sd_change:
                sd_change, route, r_used = from_t, statistic[1], r_hat
    elif row["sd_pre"] is not None and not _has_statistic(row):
        # Only the baseline SD: enough for the SMD (metafor's SMCR needs sd1i and ri); the change SD
        # below assumes sd_post = sd_pre and serves only that SMD's bookkeeping, never an MD's SE.
        sd_change, route = row["sd_pre"] * math.sqrt(2 * (1 - r)), "sd_pre_r"
    else:
        se, route = _se_from_statistics(row, md, df, study)
        sd_change = se * math.sqrt(n)
    # Raw-score SD: the baseline SD when reported (metafor SMCR), else implied by the change SD and r.
    sd_raw = row["sd_pre"] if row["sd_pre"] is not None else sd_change / math.sqrt(2 * (1 - r))
    return _MeanDifference(md, sd_change / math.sqrt(n), route, df, n, sd_raw, r_used, r_hat)


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
    r = d.r if d.r is not None else r
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
    r = d.r if d.r is not None else r
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
        p_of_t = 2 * t_sf(abs(t), df)
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
    if design == "pre_post" and row["sd_change"] is None and None not in (row["sd_pre"], row["sd_post"]):
        warnings += _implied_r_warning(row, md, df)
    return warnings


def _implied_r_warning(row, md: float, df: float) -> list[str]:
    """The pre/post correlation a printed t (or exact p) implies with the SDs, when implausible."""
    statistic = paired_statistic(row, df)
    if statistic is None or md == 0:
        return []
    s1, s2, n = row["sd_pre"], row["sd_post"], df + 1
    sd_change = abs(md) * math.sqrt(n) / statistic[0]
    r = implied_r(s1, s2, sd_change)
    if R_PLAUSIBLE[0] <= r <= R_PLAUSIBLE[1]:
        return []
    shown = f"t = {row['t']:g}" if statistic[1] == "t_sd" else f"p = {row['p']:g}"
    kind = "impossible (outside -1 to 1)" if not -1 <= r <= 1 else f"outside {R_PLAUSIBLE[0]:g} to {R_PLAUSIBLE[1]:g}"
    return [f"{shown} with sd_pre = {s1:g} and sd_post = {s2:g} implies an SD of change of {sd_change:.3g} "
            f"and a pre/post correlation r = {r:.4g}, {kind}; the larger SE (statistic or assumed r) is used"]
