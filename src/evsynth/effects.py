"""Effect sizes and their standard errors from study summaries (metafor's escalc, for our designs).

Each row first gets the mean difference and its standard error by the best route its numbers
allow (SDs, then t, CI, exact p, and last a p-value bound), then the requested measure:

- "MD"   raw mean difference (treatment - comparator, or post - pre)
- "SMD"  standardized mean difference with Hedges' exact small-sample factor J. Pre/post rows are
         standardized by the raw-score SD (metafor's "SMCR"), so they sit on the same scale as
         two-group rows; when only the change SD is known, SD_raw = SD_change / sqrt(2 (1 - r)).
- "SMCC" pre/post standardized by the change-score SD (metafor's "SMCC"); two-group rows as SMD.
- "ROM"  log ratio of means, for outcomes on a ratio scale of unknown unit (cups, "units").
- "RR", "OR", "RD"  log risk ratio, log odds ratio, risk difference of a binary outcome, from a 2x2
         table (events_treat/n_treat vs events_ctrl/n_ctrl, as metafor's escalc) or from a ratio
         reported with its 95% CI (design "effect": yi = log ratio, SE from the CI on the log scale).
         A zero cell gets `add` (0.5) in every cell of that study only (metafor's to="only0");
         a study with no events in either arm is reported as not used (metafor's drop00=TRUE).
         An SMD analysis takes a binary row only when asked (binary_to_smd=True): the logit
         conversion of Chinn (2000), SMD = ln(OR) sqrt(3)/pi, vi = vi(ln OR) 3/pi^2.

A p-value without SDs is turned into |t| with the t distribution on the design's degrees of freedom
(Cochrane Handbook 6.5.2.3), so SE(MD) = |MD| / |t|. The route is recorded in `se_route`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special, stats

from .studies import ROB_DOMAINS, StudyDataError, is_validated, load_studies
from .vocabulary import BINARY_MEASURES, CONTINUOUS_MEASURES, DEFAULT_R_PREPOST, MEASURES, P_BOUND_MODES  # noqa: F401

# Measures analysed on the log scale and shown back-transformed (exp) in tables and plots.
RATIO_MEASURES = ("RR", "OR", "ROM")
CONTINUITY_TO = ("only0", "all", "if0all", "none")
# "auto": censor where the effect is standardized (its SE does not depend on the unknown statistic),
# else treat the bound as p. Censoring recovers the pooled effect where the bound-as-p fallback
# biases it towards zero (benchmarks/censoring_simulation.py, tests/test_censoring.py).
CENSORABLE_MEASURES = ("SMD", "SMCC")
# Comparator labels that mean "no active technique"; other labels make a row head-to-head.
CONTROL_LABELS = frozenset(
    {"control", "usual care", "standard care", "no massage", "placebo", "education only", "baseline", "none"}
)

EFFECT_COLUMNS = [
    "study_id", "technique", "comparator", "outcome", "unit", "design", "measure", "yi", "sei", "vi",
    "se_route", "n_total", "df", "sd_scale", "censored", "head_to_head", "used", "why_not", "synthetic",
    "rob", "components", "direction", "warnings",
]
# The comparator of a one-group before/after change: not a concurrent control arm.
BASELINE = "baseline"
# How far a printed statistic may sit from the one the other printed numbers imply before the row is
# flagged (rounding of p and t to two or three digits stays well inside).
T_AGREEMENT = 0.2  # relative difference between a printed t and the t implied by p or by the CI
R_AGREEMENT = 0.1  # sd_change against sd_pre, sd_post and the row's r_prepost (relative)


class EffectSizeError(ValueError):
    """An effect size cannot be computed; the message names the study and the field."""


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


@dataclass(frozen=True)
class Continuity:
    """Zero-cell handling of 2x2 tables, as metafor's escalc/rma arguments add, to and drop00."""

    add: float = 0.5
    to: str = "only0"  # "only0": studies with a zero cell; "all"; "if0all": all if any has one; "none"
    drop00: bool = True  # a study with no events (or only events) in both arms carries no information

    def __post_init__(self):
        if self.to not in CONTINUITY_TO:
            raise EffectSizeError(f"continuity to={self.to!r} unknown; choose one of {CONTINUITY_TO}")
        if not (math.isfinite(self.add) and self.add >= 0):
            raise EffectSizeError(f"continuity add={self.add} must be a finite number >= 0")


def _cells(row) -> tuple[float, float, float, float]:
    """(ai, bi, ci, di): events and non-events in the treatment, then the comparator arm."""
    a, c = row["events_treat"], row["events_ctrl"]
    return a, row["n_treat"] - a, c, row["n_ctrl"] - c


def _has_zero_cell(row) -> bool:
    return min(_cells(row)) == 0


def _double_zero(row) -> bool:
    a, b, c, d = _cells(row)
    return (a == 0 and c == 0) or (b == 0 and d == 0)


def _binary_effect(row, measure: str, add: float) -> tuple[float, float]:
    """(yi, vi) of a 2x2 table after adding `add` to every cell (metafor escalc formulas)."""
    a, b, c, d = (x + add for x in _cells(row))
    n1, n2 = a + b, c + d
    if measure == "RR":
        return math.log((a / n1) / (c / n2)), 1 / a - 1 / n1 + 1 / c - 1 / n2
    if measure == "OR":
        return math.log(a * d / (b * c)), 1 / a + 1 / b + 1 / c + 1 / d
    p1, p2 = a / n1, c / n2  # RD, metafor's large-sample variance (vtype="LS")
    return p1 - p2, p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2


def logit_to_smd(log_or: float, vi: float) -> tuple[float, float]:
    """Chinn (2000): a log odds ratio as a standardized mean difference (logistic latent scale)."""
    return log_or * math.sqrt(3) / math.pi, vi * 3 / math.pi**2


def _binary_row(row, out: dict, measure: str, add: float, continuity: Continuity, binary_to_smd: bool) -> dict:
    study = row["study_id"]
    if measure not in BINARY_MEASURES and not (measure == "SMD" and binary_to_smd):
        hint = " (or SMD with binary_to_smd=True, the logit conversion)" if measure == "SMD" else ""
        out["why_not"] = f"binary outcome (2x2 counts): analyse with {', '.join(BINARY_MEASURES)}{hint}, not {measure}"
        return out
    if continuity.drop00 and _double_zero(row):
        out["why_not"] = ("no events (or all events) in both arms: the 2x2 table carries no information on a "
                          "relative effect (metafor drop00)")
        return out
    a, b, c, d = _cells(row)
    if add == 0 and min(a, b, c, d) == 0 and measure != "RD":
        raise EffectSizeError(f"study {study!r}, field 'events_treat': a zero cell without continuity correction "
                              f"gives an infinite {measure}; use add > 0 or to='only0'")
    yi, vi = _binary_effect(row, "OR" if measure == "SMD" else measure, add)
    route = "counts"
    if measure == "SMD":
        (yi, vi), route = logit_to_smd(yi, vi), "counts_logit"
    if vi <= 0:
        raise EffectSizeError(f"study {study!r}, field 'events_treat': the risk difference has zero variance "
                              "(no events or all events in both arms); use a continuity correction")
    out.update(yi=yi, vi=vi, sei=math.sqrt(vi), se_route=route, n_total=row["n_treat"] + row["n_ctrl"], used=True)
    return out


def _ratio_row(row, out: dict, measure: str, binary_to_smd: bool) -> dict:
    """A ratio (RR/OR) printed with its 95% CI: log scale, SE = log-CI width / (2 z_0.975)."""
    given = row["measure"].upper()
    yi = math.log(row["ratio"])
    sei = (math.log(row["ci_high"]) - math.log(row["ci_low"])) / (2 * stats.norm.ppf(0.975))
    route = "ci"
    if measure == "SMD" and given == "OR" and binary_to_smd:
        (yi, vi), route = logit_to_smd(yi, sei**2), "ci_logit"
        sei = math.sqrt(vi)
    elif given != measure:
        out["why_not"] = f"ready-made effect is on the {given} scale, the analysis uses {measure}"
        return out
    out.update(yi=yi, sei=sei, vi=sei**2, se_route=route, used=True)
    return out


def _se_fields(row) -> str:
    """The printed numbers the row's standard error comes from, in compute_effects' order (for messages)."""
    design = row["design"]
    if design == "effect":
        return "sei" if row.get("ratio") is None else "ci_low/ci_high"
    if row.get("events_treat") is not None:
        return "events_treat/events_ctrl"
    sds = ("sd_change",) if design == "pre_post" else ()
    pairs = [("sd_pre", "sd_post")] if design == "pre_post" else [("sd_treat", "sd_ctrl")]
    for field in sds:
        if row[field] is not None:
            return field
    for pair in pairs:
        if all(row[f] is not None for f in pair):
            return "/".join(pair)
    for field in ("t", "ci_low", "p", "p_upper"):
        if row[field] is not None:
            return field
    return "n"


def _mean_fields(row) -> str:
    return {"two_group": "mean_treat/mean_ctrl", "pre_post": "mean_pre/mean_post"}.get(row["design"], "yi")


def _check_finite(out: dict, row) -> dict:
    """A used row must have a finite yi and a positive, finite SE; otherwise it is refused, by name."""
    if not out["used"]:
        return out
    study = row["study_id"]
    if not math.isfinite(out["yi"]):
        field = _mean_fields(row) if out["se_route"] not in ("counts", "counts_logit", "ci", "ci_logit") else "ratio"
        raise EffectSizeError(f"study {study!r}, field {field!r}: the effect size is not a finite number "
                              f"(yi = {out['yi']}); check the printed values")
    if not (math.isfinite(out["vi"]) and out["vi"] > 0):  # then sei = sqrt(vi) (or a given sei > 0) is too
        raise EffectSizeError(f"study {study!r}, field {_se_fields(row)!r}: the standard error is not a positive, "
                              f"finite number (sei = {out['sei']:.3g}); check the printed values")
    return out


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


def _effect_row(row, measure, r_default, p_bound, control_labels, continuity_add, continuity, binary_to_smd) -> dict:
    """One effect-table row; numbers the arithmetic cannot take (p = 1, t ~ 0, overflowing values)
    are refused naming the study and the field the standard error comes from."""
    try:
        out = _effect_values(row, measure, r_default, p_bound, control_labels, continuity_add, continuity,
                             binary_to_smd)
    except (ZeroDivisionError, OverflowError) as exc:
        raise EffectSizeError(f"study {row['study_id']!r}, field {_se_fields(row)!r}: the printed numbers "
                              f"give no finite effect size or standard error ({exc}); check them") from None
    out = _check_finite(out, row)
    if not row["unusable_reason"]:
        out["warnings"] = "; ".join(consistency_warnings(row, out["df"] if math.isfinite(out["df"]) else None))
    return out


def _effect_values(row, measure, r_default, p_bound, control_labels, continuity_add, continuity,
                   binary_to_smd) -> dict:
    study = row["study_id"]
    comparator = row["comparator"] or ("baseline" if row["design"] == "pre_post" else "control")
    out = {
        "study_id": study, "technique": row["technique"], "comparator": comparator,
        "outcome": row["outcome"], "unit": row["unit"], "design": row["design"], "measure": measure,
        "yi": np.nan, "sei": np.nan, "vi": np.nan, "se_route": "", "n_total": np.nan, "df": np.nan,
        "sd_scale": np.nan, "censored": False, "head_to_head": comparator.lower() not in control_labels,
        "used": False, "why_not": "", "synthetic": bool(row["synthetic"]), "rob": row.get("rob"),
        "components": row.get("components"), "direction": row.get("direction") or "higher", "warnings": "",
    }
    if row["unusable_reason"]:
        out["why_not"] = f"not usable as reported: {row['unusable_reason']}"
        return out
    if row.get("events_treat") is not None:
        return _binary_row(row, out, measure, continuity_add, continuity, binary_to_smd)
    if row.get("ratio") is not None:
        return _ratio_row(row, out, measure, binary_to_smd)
    if measure in BINARY_MEASURES:
        out["why_not"] = (f"continuous outcome (means): {measure} needs 2x2 counts (events_treat, events_ctrl) "
                          "or a reported ratio with its CI")
        return out
    r = row["r_prepost"] if row["r_prepost"] is not None else r_default
    if row["design"] == "effect":
        if (row["measure"] or "").upper() != measure:
            out["why_not"] = f"ready-made effect is on the {row['measure']} scale, the analysis uses {measure}"
            return out
        out.update(yi=row["yi"], sei=row["sei"], vi=row["sei"] ** 2, se_route="given", used=True)
        return out
    d = _two_group(row, study) if row["design"] == "two_group" else _pre_post(row, r, study)
    yi, vi = _measure(row, d, measure, r, study)
    out.update(yi=yi, vi=vi, sei=math.sqrt(vi), se_route=d.route, n_total=d.n_total, df=d.df,
               sd_scale=d.sd_scale, used=True)
    if d.route == "p_bound":
        if p_bound == "exclude":
            out.update(used=False, why_not="p-value printed only as a bound (p_bound='exclude')")
        elif p_bound == "censor" and _effect_depends_on_statistic(row, measure):
            out["censored"] = True  # yi is the effect at the bound: the true one lies beyond it
    return out


def _effect_depends_on_statistic(row, measure: str) -> bool:
    """Whether yi was computed from the (bounded) test statistic. A pre/post SMD with a baseline SD
    is standardized by that SD, so its yi is exact and only the unused change SD was bounded."""
    return not (row["design"] == "pre_post" and measure == "SMD" and row["sd_pre"] is not None)


def _continuity_adds(rows: list[dict], continuity: Continuity) -> list[float]:
    """What each 2x2 row gets added to its cells (metafor's add/to)."""
    binary = [r.get("events_treat") is not None and not r["unusable_reason"] for r in rows]
    any_zero = any(b and _has_zero_cell(r) for b, r in zip(binary, rows))
    adds = []
    for is_binary, row in zip(binary, rows):
        wanted = {"all": True, "none": False, "if0all": any_zero,
                  "only0": is_binary and _has_zero_cell(row)}[continuity.to]
        adds.append(continuity.add if is_binary and wanted else 0.0)
    return adds


def compute_effects(studies: pd.DataFrame, measure: str = "SMD", r_prepost: float = DEFAULT_R_PREPOST,
                    p_bound: str = "auto", control_labels=CONTROL_LABELS, continuity: Continuity | None = None,
                    binary_to_smd: bool = False) -> pd.DataFrame:
    """One effect-table row per study row, in order; unusable rows stay with `why_not`.

    r_prepost: assumed pre/post correlation where a row gives none (used for pre/post SDs and for
    standardizing pre/post rows); vary it in sensitivity analyses.
    p_bound: what to do with rows whose p-value is known only as a bound ("p < 0.001"):
      "censor" marks the row for a censored likelihood (the effect lies beyond the one at the
      bound; SMD/SMCC only), "conservative" treats the bound as the p-value (Cochrane; the effect
      is then biased towards zero), "exclude" leaves it out. "auto" (default): "censor" for
      SMD/SMCC, "conservative" for MD/ROM. The mode used is in `table.attrs["p_bound"]`.
    continuity: zero-cell handling of 2x2 rows (default Continuity(add=0.5, to="only0",
      drop00=True): metafor's add/to, and double-zero studies reported as not used).
    binary_to_smd: let an SMD analysis take binary rows through the logit conversion (Chinn 2000);
      their se_route then says "counts_logit" or "ci_logit". Off by default: the conversion assumes
      a logistic latent outcome.
    """
    measure = measure.upper()
    if measure not in MEASURES:
        raise EffectSizeError(f"measure {measure!r} unknown; choose one of {MEASURES}")
    if p_bound not in P_BOUND_MODES:
        raise EffectSizeError(f"p_bound {p_bound!r} unknown; choose one of {P_BOUND_MODES}")
    if not -1 < r_prepost < 1:
        raise EffectSizeError(f"r_prepost {r_prepost} must lie strictly between -1 and 1")
    if p_bound == "auto":
        p_bound = "censor" if measure in CENSORABLE_MEASURES else "conservative"
    if p_bound == "censor" and measure not in CENSORABLE_MEASURES:
        raise EffectSizeError("p_bound='censor' needs a standardized measure (SMD or SMCC), whose SE "
                              "does not depend on the unknown statistic")
    if not is_validated(studies):  # a hand-made table goes through the loader's checks first
        try:
            studies = load_studies(studies)
        except StudyDataError as exc:
            raise EffectSizeError(f"compute_effects takes a study table from load_studies (columns of your own "
                                  f"declared with extra_columns=[...]); this one is refused: {exc}") from None
    continuity = Continuity() if continuity is None else continuity
    labels = frozenset(label.lower() for label in control_labels)
    records = studies.astype(object).where(studies.notna(), None).to_dict("records")
    adds = _continuity_adds(records, continuity)
    rows = [_effect_row(row, measure, r_prepost, p_bound, labels, add, continuity, binary_to_smd)
            for row, add in zip(records, adds)]
    domains = [c for c in ROB_DOMAINS if c in studies.columns and studies[c].notna().any()]
    table = pd.DataFrame(rows, columns=EFFECT_COLUMNS)
    for column in domains:  # risk-of-bias domains, shown only when the study table has them
        table[column] = studies[column].to_numpy()
    table.attrs.update(measure=measure, r_prepost=r_prepost, p_bound=p_bound, continuity_add=continuity.add,
                       continuity_to=continuity.to, drop00=continuity.drop00, binary_to_smd=binary_to_smd)
    return table


def uncontrolled(effects: pd.DataFrame) -> pd.Series:
    """Rows without a concurrent comparator: one-group pre/post changes (design 'pre_post', or a
    ready-made effect versus 'baseline'). They answer 'did the outcome change?', not 'did it
    change more than without the technique?'."""
    return (effects["design"] == "pre_post") | (effects["comparator"].str.lower() == BASELINE)


def used_effects(effects: pd.DataFrame, *, allow_head_to_head: bool = False) -> pd.DataFrame:
    """Rows a pairwise model can use: usable, and (unless asked) versus a control."""
    keep = effects["used"] & (allow_head_to_head | ~effects["head_to_head"])
    out = effects[keep].reset_index(drop=True)
    out.attrs = dict(effects.attrs)
    return out


def not_used(effects: pd.DataFrame, *, allow_head_to_head: bool = False) -> pd.DataFrame:
    """The rows a pairwise analysis leaves out, each with its reason."""
    out = effects.copy()
    h2h = out["used"] & out["head_to_head"] & (not allow_head_to_head)
    out.loc[h2h, "why_not"] = ("head-to-head comparison (" + out["technique"] + " vs " + out["comparator"]
                               + "): needs the network model")
    return out[~out["used"] | h2h][["study_id", "technique", "comparator", "outcome", "why_not"]]


def check_poolable(table: pd.DataFrame, measure: str | None) -> pd.DataFrame:
    """Refuse a table no model should pool: empty, repeated studies, raw differences in mixed units."""
    if table.empty:
        raise ValueError("no usable effect sizes: see evsynth.effects.not_used(effects) for why")
    if table["study_id"].duplicated().any():
        raise ValueError("duplicate study_id in the effect table")
    units = sorted(set(table["unit"].dropna()))
    if measure == "MD" and len(units) > 1:
        raise ValueError(f"MD pools raw differences, but the units differ ({', '.join(units)}); "
                         "use SMD or ROM, or analyse one unit at a time")
    return table
