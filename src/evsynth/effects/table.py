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
         a study with no events in either arm is reported as not used for RR and OR (metafor's
         drop00=TRUE, which rma.mh and rma.peto use) and kept for RD (escalc's drop00=FALSE).
         An SMD analysis takes a binary row only when asked (binary_to_smd=True): the logit
         conversion of Chinn (2000), SMD = ln(OR) sqrt(3)/pi, vi = vi(ln OR) 3/pi^2.

A p-value without SDs is turned into |t| with the t distribution on the design's degrees of freedom
(Cochrane Handbook 6.5.2.3), so SE(MD) = |MD| / |t|. The route is recorded in `se_route`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..data.studies import ROB_DOMAINS, StudyDataError, is_validated, load_studies
from ..data.vocabulary import BINARY_MEASURES, CONTINUOUS_MEASURES, DEFAULT_R_PREPOST, MEASURES, P_BOUND_MODES  # noqa: F401
from .binary import CONTINUITY_TO, Continuity, _binary_row, _double_zero, _has_zero_cell, _ratio_row  # noqa: F401
from .continuous import _measure, _pre_post, _two_group, consistency_warnings, is_rank_test
from .errors import EffectSizeError

# Measures analysed on the log scale and shown back-transformed (exp) in tables and plots.
RATIO_MEASURES = ("RR", "OR", "ROM")
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
    "rob", "components", "direction", "randomised", "sample_id", "test", "means", "r_implied", "warnings",
    "source_level",
]
# Measures that cannot mix change-score and final-value rows: a two-group SMD of mean changes is
# standardised by the SD of the change, not of the outcome (Cochrane Handbook 10.5.2); MD can mix.
CHANGE_SCORE_APART = ("SMD", "SMCC", "ROM")
# The comparator of a one-group before/after change: not a concurrent control arm.
BASELINE = "baseline"




































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
    # The engines square and weight these: beyond the limits the arithmetic overflows or underflows
    # (yi = 1e300 broke the exact engine), and no printed study is there.
    if abs(out["yi"]) > MAX_EFFECT:
        field = _mean_fields(row) if row["design"] != "effect" else "yi"
        raise EffectSizeError(f"study {study!r}, field {field!r}: the effect size {out['yi']:.3g} is beyond "
                              f"+-{MAX_EFFECT:g}, the limit evsynth computes with; check the printed values")
    if not MIN_SE <= out["sei"] <= MAX_EFFECT:
        raise EffectSizeError(f"study {study!r}, field {_se_fields(row)!r}: the standard error {out['sei']:.3g} is "
                              f"outside {MIN_SE:g}..{MAX_EFFECT:g}, the range evsynth computes with; check the "
                              "printed values")
    return out


MAX_EFFECT = 1e12  # |yi| and sei at most this (in the outcome's units for MD)
MIN_SE = 1e-12     # sei at least this




def _effect_row(row, measure, r_default, p_bound, control_labels, continuity_add, continuity, binary_to_smd,
                pool_change_scores=False) -> dict:
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
    if out["used"] and row.get("means") == "change" and measure in CHANGE_SCORE_APART and not pool_change_scores:
        out.update(used=False, why_not=(
            f"two-group means are change scores: a change-score {measure} (scaled by the SD of change) is kept "
            f"apart from final-value {measure}s (pool_change_scores=True, CLI --pool-change-scores, pools them; "
            "MD may mix them, Cochrane Handbook 10.5.2)"))
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
        "components": row.get("components"), "direction": row.get("direction") or "higher",
        "randomised": row.get("randomised") or "unclear", "sample_id": row.get("sample_id"),
        "test": row.get("test"), "means": row.get("means"), "r_implied": np.nan, "warnings": "",
        "source_level": row.get("source_level"),
    }
    if row["unusable_reason"]:
        out["why_not"] = f"not usable as reported: {row['unusable_reason']}"
        return out
    if row.get("events_treat") is not None:
        return _binary_row(row, out, measure, continuity_add, continuity, binary_to_smd)
    if row.get("ratio") is not None:
        return _ratio_row(row, out, measure, binary_to_smd)
    if row["design"] == "effect":  # a ready-made yi + sei (a log OR under measure "OR", ...)
        if (row["measure"] or "").upper() != measure:
            out["why_not"] = f"ready-made effect is on the {row['measure']} scale, the analysis uses {measure}"
            return out
        out.update(yi=row["yi"], sei=row["sei"], vi=row["sei"] ** 2, se_route="given", used=True)
        return out
    if measure in BINARY_MEASURES:
        out["why_not"] = (f"continuous outcome (means): {measure} needs 2x2 counts (events_treat, events_ctrl) "
                          "or a reported ratio with its CI")
        return out
    r = row["r_prepost"] if row["r_prepost"] is not None else r_default
    if row.get("effect_sign") is not None and measure not in CENSORABLE_MEASURES:
        out["why_not"] = (f"only the direction and a test statistic are printed (no means): a standardised "
                          f"effect (SMD, SMCC) can be computed, not {measure}")
        return out
    d = _two_group(row, study) if row["design"] == "two_group" else _pre_post(row, r, study)
    if d.route == "sd_pre_r" and measure != "SMD":
        out["why_not"] = (f"only the baseline SD (sd_pre) and r: {measure} needs the SD of the change, or "
                          "sd_post, t, a CI or p; the SMD standardizes by the baseline SD (metafor SMCR)")
        return out
    yi, vi = _measure(row, d, measure, r, study)
    out.update(yi=yi, vi=vi, sei=math.sqrt(vi), se_route=d.route, n_total=d.n_total, df=d.df,
               sd_scale=d.sd_scale, used=True, r_implied=d.r_implied)
    if d.route == "p_bound":
        if p_bound == "exclude":
            out.update(used=False, why_not="p-value printed only as a bound (p_bound='exclude')")
        elif p_bound == "censor" and _effect_depends_on_statistic(row, measure) and not is_rank_test(row):
            # a rank test's bound is used as the p (never censored): it does not say that a t statistic
            # lies beyond the one at the bound (studies/README.md, "Rank tests")
            out["censored"] = True  # yi is the effect at the bound: the true one lies beyond it
    return out


def _effect_depends_on_statistic(row, measure: str) -> bool:
    """Whether yi was computed from the (bounded) test statistic. A pre/post SMD with a baseline SD
    is standardized by that SD, so its yi is exact and only the unused change SD was bounded."""
    return not (row["design"] == "pre_post" and measure == "SMD" and row["sd_pre"] is not None)


def _continuity_adds(rows: list[dict], continuity: Continuity, measure: str) -> list[float]:
    """What each 2x2 row gets added to its cells (metafor's add/to). Double-zero studies that drop00
    leaves out are removed first, as in metafor: they do not make to="if0all" correct every study."""
    binary = [r.get("events_treat") is not None and not r["unusable_reason"]
              and not (continuity.drops(measure) and _double_zero(r)) for r in rows]
    any_zero = any(b and _has_zero_cell(r) for b, r in zip(binary, rows))
    adds = []
    for is_binary, row in zip(binary, rows):
        wanted = {"all": True, "none": False, "if0all": any_zero,
                  "only0": is_binary and _has_zero_cell(row)}[continuity.to]
        adds.append(continuity.add if is_binary and wanted else 0.0)
    return adds


def _records(studies: pd.DataFrame) -> list[dict]:
    """The rows as dicts of Python values, None where a value is missing: what
    studies.astype(object).where(studies.notna(), None).to_dict("records") gives, from each
    column's tolist() (~6x faster: sweeps compute the effects once per pre/post r)."""
    names = list(studies.columns)
    rows = [dict(zip(names, values)) for values in zip(*(studies[name].tolist() for name in names))]
    for row in rows:
        for key, value in row.items():
            if value is None or isinstance(value, (str, int)):  # bool is an int
                continue
            if (value != value) if isinstance(value, float) else pd.isna(value) is True:
                row[key] = None
    return rows


def compute_effects(studies: pd.DataFrame, measure: str = "SMD", r_prepost: float = DEFAULT_R_PREPOST,
                    p_bound: str = "auto", control_labels=CONTROL_LABELS, continuity: Continuity | None = None,
                    binary_to_smd: bool = False, pool_change_scores: bool = False) -> pd.DataFrame:
    """One effect-table row per study row, in order; unusable rows stay with `why_not`.

    r_prepost: assumed pre/post correlation where a row gives none (used for pre/post SDs and for
    standardizing pre/post rows); vary it in sensitivity analyses.
    p_bound: what to do with rows whose p-value is known only as a bound ("p < 0.001"):
      "censor" marks the row for a censored likelihood (the effect lies beyond the one at the
      bound; SMD/SMCC only), "conservative" treats the bound as the p-value (Cochrane; the effect
      is then biased towards zero), "exclude" leaves it out. "auto" (default): "censor" for
      SMD/SMCC, "conservative" for MD/ROM. The mode used is in `table.attrs["p_bound"]`.
    continuity: zero-cell handling of 2x2 rows (default Continuity(add=0.5, to="only0"): metafor's
      add/to; double-zero studies reported as not used for RR and OR, kept for RD as escalc does).
    binary_to_smd: let an SMD analysis take binary rows through the logit conversion (Chinn 2000);
      their se_route then says "counts_logit" or "ci_logit". Off by default: the conversion assumes
      a logistic latent outcome.
    pool_change_scores: let an SMD/SMCC/ROM analysis take two-group rows whose means are change scores
      (`means = change`); off by default, they are kept apart with a why_not (MD takes them always).

    Paired statistics: a pre/post row with both SDs and a printed t (or an exact p) gets its SD of
    change from the statistic (se_route "t_sd" / "p_sd"); the correlation it implies is `r_implied`,
    flagged in `warnings` outside -0.2 to 0.99. A p from a rank test (`test`) is converted with the
    normal quantile and never censored (studies/README.md). Rows without means but with a printed
    direction (`effect_sign`) give SMD/SMCC from their statistic alone.

    Example:
        >>> import evsynth as es
        >>> effects = compute_effects(es.load_studies("studies/synthetic_demo.csv"), measure="SMD")
        >>> effects.loc[0, ["study_id", "se_route"]].tolist(), round(float(effects.loc[0, "yi"]), 3)
        (['syn_oxytocin_1', 'sd'], 0.618)
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
    records = _records(studies)
    adds = _continuity_adds(records, continuity, measure)
    rows = [_effect_row(row, measure, r_prepost, p_bound, labels, add, continuity, binary_to_smd,
                        pool_change_scores) for row, add in zip(records, adds)]
    domains = [c for c in ROB_DOMAINS if c in studies.columns and studies[c].notna().any()]
    table = pd.DataFrame(rows, columns=EFFECT_COLUMNS)
    for column in domains:  # risk-of-bias domains, shown only when the study table has them
        table[column] = studies[column].to_numpy()
    table.attrs.update(measure=measure, r_prepost=r_prepost, p_bound=p_bound, continuity_add=continuity.add,
                       continuity_to=continuity.to, drop00=continuity.drops(measure), binary_to_smd=binary_to_smd,
                       pool_change_scores=pool_change_scores)
    return table


def uncontrolled(effects: pd.DataFrame) -> pd.Series:
    """Rows without a concurrent comparator: one-group pre/post changes (design 'pre_post', or a
    ready-made effect versus 'baseline'). They answer 'did the outcome change?', not 'did it
    change more than without the technique?'."""
    return (effects["design"] == "pre_post") | (effects["comparator"].str.lower() == BASELINE)


def used_effects(effects: pd.DataFrame, *, allow_head_to_head: bool = False) -> pd.DataFrame:
    """Rows a pairwise model can use: usable, and (unless asked) versus a control.

    Example:
        >>> import evsynth as es
        >>> len(used_effects(es.compute_effects(es.load_studies("studies/synthetic_demo.csv"))))
        18
    """
    keep = effects["used"] & (allow_head_to_head | ~effects["head_to_head"])
    out = effects[keep].reset_index(drop=True)
    out.attrs = dict(effects.attrs)
    return out


def not_used(effects: pd.DataFrame, *, allow_head_to_head: bool = False) -> pd.DataFrame:
    """The rows a pairwise analysis leaves out, each with its reason.

    Example:
        >>> import evsynth as es
        >>> left_out = not_used(es.compute_effects(es.load_studies("studies/massage.csv")))
        >>> {"study_id", "why_not"} <= set(left_out.columns)
        True
    """
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


def study_arrays(effects: pd.DataFrame, min_k: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(study_id, yi, sei) of the rows to analyse, validated; the error names the study and field.

    An EffectTable is reduced to its used rows; any other DataFrame needs `yi` and `sei` (and
    optionally `study_id`). Censored rows (p-value known only as a bound) have no point estimate,
    so they are refused here rather than silently treated as exact.
    """
    ids, yi, sei, censored = study_data(effects, min_k)
    if censored.any():
        raise ValueError(f"studies {', '.join(ids[censored])}: censored rows (p printed as a bound) have no "
                         "point estimate; recompute the effects with p_bound='conservative' or 'exclude' "
                         "for regression-based bias diagnostics")
    return ids, yi, sei


def study_data(effects: pd.DataFrame, min_k: int = 1):
    """(study_id, yi, sei, censored) of the rows to analyse, validated (censored rows allowed:
    for them yi is the signed bound beyond which the estimate lies)."""
    if not isinstance(effects, pd.DataFrame):
        raise TypeError("expected an effect table (pandas DataFrame with yi and sei)")
    table = used_effects(effects) if {"used", "head_to_head"} <= set(effects.columns) else effects
    for column in ("yi", "sei"):
        if column not in table.columns:
            raise ValueError(f"effect table has no {column!r} column")
    ids = (table["study_id"].astype(str).to_numpy() if "study_id" in table.columns
           else np.array([f"row {i}" for i in range(len(table))]))
    yi = pd.to_numeric(table["yi"], errors="coerce").to_numpy(float)
    sei = pd.to_numeric(table["sei"], errors="coerce").to_numpy(float)
    for sid, y, s in zip(ids, yi, sei):
        if not np.isfinite(y):
            raise ValueError(f"study {sid!r}, field 'yi': not a finite number ({y})")
        if not (np.isfinite(s) and s > 0):
            raise ValueError(f"study {sid!r}, field 'sei': must be a positive finite number ({s})")
    censored = (table["censored"].astype(bool).to_numpy() if "censored" in table.columns
                else np.zeros(len(yi), bool))
    if len(yi) < min_k:
        raise ValueError(f"{len(yi)} usable studies; this method needs at least {min_k}")
    return ids, yi, sei, censored
