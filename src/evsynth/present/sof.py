"""Summary-of-findings table (GRADE-style): per outcome the number of studies and participants,
the pooled effect with its 95% credible interval (binary outcomes also as an absolute effect per
1000 at a stated baseline risk), and the certainty of the evidence rated by explicit rules.

Every rating follows from the analysis by the rules of evsynth.methods.certainty (certainty
starts by design: randomised high, otherwise low; then risk of bias, inconsistency, indirectness,
imprecision and publication bias, the last by the RoBMA-PSMA ensemble when it ran), and each can be
overridden by the user with a reason (`overrides`), which the table then shows instead of the
rule's reason.
"""

from __future__ import annotations


import numpy as np
import pandas as pd

from ..effects.table import RATIO_MEASURES, used_effects
from ..methods.certainty import (CERTAINTY, DOMAINS, EGGER_ALPHA, IMPRECISION_WIDTH, MIN_STUDIES_BIAS,  # noqa: F401
                                 RATINGS, _draws, rate_certainty, rate_design, rate_imprecision,
                                 rate_inconsistency, rate_indirectness, rate_publication_bias,
                                 rate_risk_of_bias)
from ..methods.summary import MU_ROW


def median_control_risk(studies: pd.DataFrame, effects: pd.DataFrame) -> float:
    """Median control-group risk (events_ctrl / n_ctrl) of the used studies with counts: GRADE's usual
    assumed baseline risk. NaN when no used study gives control-group counts.

    Example:
        >>> import evsynth as es
        >>> studies = es.load_studies("studies/bcg.csv", extra_columns=["ablat", "alloc"])
        >>> round(median_control_risk(studies, es.compute_effects(studies, measure="RR")), 4)
        0.0159
    """
    if not {"events_ctrl", "n_ctrl"} <= set(studies.columns):
        return float("nan")
    ids = set(used_effects(effects)["study_id"])
    rows = studies[studies["study_id"].isin(ids)]
    risk = pd.to_numeric(rows["events_ctrl"], errors="coerce") / pd.to_numeric(rows["n_ctrl"], errors="coerce")
    median = risk.median()  # NaN when no used study gives both counts (pandas skips NaN); pd.NA when the
    return float("nan") if pd.isna(median) else float(median)  # counts are nullable integers, all missing


def per_1000(draws: np.ndarray, measure: str, baseline: float) -> np.ndarray:
    """Absolute effect per 1000 people at control-group risk `baseline`, from draws on the analysis scale."""
    if measure == "RR":
        return 1000 * baseline * (np.exp(draws) - 1)
    if measure == "OR":
        odds = baseline / (1 - baseline) * np.exp(draws)
        return 1000 * (odds / (1 + odds) - baseline)
    if measure == "RD":
        return 1000 * draws
    raise ValueError(f"an absolute effect per 1000 needs a binary measure (RR, OR, RD), not {measure!r}")


def _fit_priors(idata) -> dict:
    return {k: idata.attrs[f"prior_{k}"] for k in ("mu", "tau") if idata.attrs.get(f"prior_{k}")}


def sof_row(label: str, effects: pd.DataFrame, idata, baseline_risk: float | None = None,
            imprecision_width: float | None = None, overrides: dict | None = None, adjusted=None,
            summary: pd.DataFrame | None = None) -> dict:
    """One outcome's row of the table (see summary_of_findings); adjusted: the outcome's
    methods.robma.BiasAdjusted (computed here when not given); summary: the fit's summarize() table,
    whose pooled median and 95% CrI the row then quotes (as the rest of the output does)."""
    table = used_effects(effects)
    measure = effects.attrs.get("measure") or str(table["measure"].iloc[0])
    mu = _draws(idata, "mu")
    quoted = summary is not None and MU_ROW in summary.index
    q = summary.loc[MU_ROW, ["q50", "q2.5", "q97.5"]].to_numpy(float) if quoted else np.quantile(mu, [0.5, 0.025, 0.975])
    shown = np.exp(q) if measure in RATIO_MEASURES else q
    n = table["n_total"]
    row = {"outcome": label, "studies": len(table), "participants": int(n.sum()) if n.notna().any() else np.nan,
           "measure": measure, "effect": shown[0], "effect_low": shown[1], "effect_high": shown[2]}
    if measure in ("RR", "OR", "RD"):
        row["baseline_risk"] = np.nan if baseline_risk is None else float(baseline_risk)
        if baseline_risk is not None and np.isfinite(baseline_risk):
            if not 0 < baseline_risk < 1:
                raise ValueError(f"baseline_risk for {label!r}: {baseline_risk} must lie strictly between 0 and 1")
            a = np.quantile(per_1000(mu, measure, baseline_risk), [0.5, 0.025, 0.975])
            row |= {"per_1000": a[0], "per_1000_low": a[1], "per_1000_high": a[2]}
    if adjusted is None:  # the ensemble is part of the rating: fit it when the caller has not
        from ..methods.robma import bias_adjusted

        adjusted = bias_adjusted(effects, _fit_priors(idata))
    c = rate_certainty(effects, idata, adjusted, imprecision_width, overrides, label, summary=summary)
    row |= c.ratings | {"start": c.start, "certainty": c.rating,
                        "reasons": "; ".join([f"design: {c.start_reason}"]
                                             + [f"{d.replace('_', ' ')}: {c.reasons[d]}" for d in DOMAINS])}
    if n.isna().any():
        row["reasons"] += f"; participants: not reported for {int(n.isna().sum())} studies (not counted)"
    return row


def summary_of_findings(results, baseline_risk=None, imprecision_width=None, overrides: dict | None = None,
                        adjusted: dict | None = None) -> pd.DataFrame:
    """The summary-of-findings table, one row per outcome (index: outcome).

    results: AnalysisResult objects (label, effects, idata), or {label: (effects, idata)}.
    baseline_risk: control-group risk for the absolute effect per 1000 of a binary outcome, a
    number or {label: number} (e.g. median_control_risk(studies, effects)); without it the per-1000
    columns are left out. imprecision_width: a number or {label: number}, on the analysis scale.
    overrides: {label: {domain: (rating, reason)}}, domains as in DOMAINS, ratings as in RATINGS.
    adjusted: {label: methods.robma.BiasAdjusted} (AnalysisResults carry theirs); an outcome
    without one gets its bias ensemble fitted here.

    Example:
        >>> import evsynth as es
        >>> studies = es.load_studies("studies/bcg.csv", extra_columns=["ablat", "alloc"])
        >>> effects = es.compute_effects(studies, measure="RR")
        >>> result = es.run_analysis("tuberculosis", effects, engine="exact", draws=500, chains=2)
        >>> table = summary_of_findings([result])
        >>> row = table.loc["tuberculosis"]
        >>> int(row["studies"]), row["measure"], row["certainty"]
        (13, 'RR', 'very low')
    """
    items = results.items() if isinstance(results, dict) else [(r.label, (r.effects, r.idata)) for r in results]
    summaries = {} if isinstance(results, dict) else {r.label: getattr(r, "summary", None) for r in results}
    adjusted = dict(adjusted or {}) if isinstance(results, dict) else \
        {r.label: getattr(r, "bias_adjusted", None) for r in results} | dict(adjusted or {})
    overrides = dict(overrides or {})
    labels = [label for label, _ in items]
    unknown = sorted(set(overrides) - set(labels))
    if unknown:
        raise ValueError(f"overrides name outcomes not in the table: {unknown} (outcomes: {labels})")

    def pick(value, label):
        return value.get(label) if isinstance(value, dict) else value

    rows = [sof_row(label, effects, idata, pick(baseline_risk, label), pick(imprecision_width, label),
                    overrides.get(label), adjusted.get(label), summaries.get(label))
            for label, (effects, idata) in items]
    return pd.DataFrame(rows).set_index("outcome")
