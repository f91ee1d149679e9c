"""Summary-of-findings table (GRADE-style): per outcome the number of studies and participants,
the pooled effect with its 95% credible interval (binary outcomes also as an absolute effect per
1000 at a stated baseline risk), and the certainty of the evidence rated by explicit rules.

Every rating follows from the analysis by the rules below, and each can be overridden by the user
with a reason (`overrides`), which the table then shows instead of the rule's reason.

Certainty starts at "high" and drops one level per "serious" and two per "very serious" rating,
down to "very low" (GRADE, Guyatt et al. 2008, 2011). Weights below are inverse-variance (1/vi).

- risk of bias (the `rob` column): weight share of studies at high risk (high, serious, critical)
  >= 50%: very serious; >= 25%, or >= 50% at least at some concerns / moderate: serious.
  A study without a judgement (or "no information") counts as "some concerns".
- inconsistency (posterior I², evsynth.methods.heterogeneity, and the 95% prediction interval for a new
  study): median I² >= 75% and the prediction interval includes no effect: very serious; median
  I² >= 50%, or a prediction interval that includes no effect while the credible interval does
  not: serious. A common-effect model or one study: not assessed.
- indirectness (design): weight share of uncontrolled pre/post rows (the change from baseline is
  not an effect of the intervention) >= 50%: very serious; any: serious.
- imprecision (user-set `imprecision_width` on the analysis scale, e.g. 0.5 SMD): the 95% CrI of
  the pooled effect wider than the threshold: serious; wider than twice it: very serious.
  Defaults: SMD/SMCC 0.5, RD 0.1, log RR/OR/ROM 2 ln(1.25) (a CrI from 0.8 to 1.25); MD has none
  (its unit is the outcome's): give it.
- publication bias (evsynth.methods.bias.egger_test, metafor's regtest): with >= 10 studies Egger's test
  p < 0.10: serious (suspected); otherwise undetected. Fewer than 10 studies (or censored rows,
  which have no point estimate): not assessed, no downgrade (the test has too little power).

"No effect" is 0 on the analysis scale (log scale for ratio measures).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..effects.table import RATIO_MEASURES, used_effects
from ..methods.heterogeneity import headline_i2
from ..methods.riskofbias import severity

DOMAINS = ("risk_of_bias", "inconsistency", "indirectness", "imprecision", "publication_bias")
RATINGS = {"not serious": 0, "serious": 1, "very serious": 2, "not assessed": 0}
CERTAINTY = {0: "high", 1: "moderate", 2: "low", 3: "very low"}
IMPRECISION_WIDTH = {"SMD": 0.5, "SMCC": 0.5, "RD": 0.1, "RR": 2 * math.log(1.25), "OR": 2 * math.log(1.25),
                     "ROM": 2 * math.log(1.25)}
MIN_STUDIES_BIAS = 10
EGGER_ALPHA = 0.10


def _draws(idata, name: str) -> np.ndarray:
    da = idata["posterior"][name]
    return da.to_numpy().reshape(-1) if da.ndim == 2 else da.stack(sample=("chain", "draw")).to_numpy()


def _weights(table: pd.DataFrame) -> np.ndarray:
    w = 1.0 / table["vi"].to_numpy(float)
    return w / w.sum()


def rate_risk_of_bias(table: pd.DataFrame) -> tuple[str, str]:
    sev = severity(table["rob"]) if "rob" in table.columns else pd.Series(np.nan, index=table.index)
    unjudged = int(sev.isna().sum())
    sev = sev.fillna(1.0).to_numpy()
    w = _weights(table)
    high, concerns = float(w[sev >= 2].sum()), float(w[sev >= 1].sum())
    why = f"{100 * high:.0f}% of the weight at high risk of bias, {100 * concerns:.0f}% at least some concerns"
    if unjudged:
        why += f" ({unjudged} of {len(table)} studies without a judgement counted as some concerns)"
    rating = "very serious" if high >= 0.5 else "serious" if high >= 0.25 or concerns >= 0.5 else "not serious"
    return rating, why


def _includes_zero(lo: float, hi: float) -> bool:
    return lo <= 0.0 <= hi


def rate_inconsistency(idata, table: pd.DataFrame) -> tuple[str, str]:
    from ..methods.summary import predictive_draws

    if "tau" not in idata["posterior"]:
        return "not assessed", "common-effect model: heterogeneity not estimated"
    if len(table) < 2:
        return "not assessed", "one study"
    # around the pooled mean: all heterogeneity (studies + techniques) when the model splits it
    _, i2 = headline_i2(idata)  # the same I² as the report's text and answer box (they label it)
    median = float(np.median(i2))
    pi = np.quantile(predictive_draws(idata), [0.025, 0.975])
    ci = np.quantile(_draws(idata, "mu"), [0.025, 0.975])
    pi_null, ci_null = _includes_zero(*pi), _includes_zero(*ci)
    why = (f"posterior median I² {median:.0f}%, 95% prediction interval {pi[0]:.2f} to {pi[1]:.2f}"
           + (" includes no effect" if pi_null else " excludes no effect"))
    if median >= 75 and pi_null:
        return "very serious", why
    if median >= 50 or (pi_null and not ci_null):
        return "serious", why
    return "not serious", why


def rate_indirectness(table: pd.DataFrame) -> tuple[str, str]:
    pre_post = (table["design"] == "pre_post").to_numpy()
    share = float(_weights(table)[pre_post].sum())
    if not pre_post.any():
        return "not serious", "all rows compare with a control group"
    why = (f"{int(pre_post.sum())} uncontrolled pre/post row(s), {100 * share:.0f}% of the weight: the change "
           "from baseline includes time trends and regression to the mean")
    return ("very serious" if share >= 0.5 else "serious"), why


def rate_imprecision(idata, measure: str, width: float | None) -> tuple[str, str]:
    if width is None:
        width = IMPRECISION_WIDTH.get(measure)
        if width is None:
            raise ValueError(f"imprecision_width: give the CrI width that is too imprecise for measure {measure!r} "
                             "(in the outcome's unit)")
    lo, hi = np.quantile(_draws(idata, "mu"), [0.025, 0.975])
    why = f"95% CrI width {hi - lo:.3f} vs threshold {width:.3g} (analysis scale)"
    return ("very serious" if hi - lo > 2 * width else "serious" if hi - lo > width else "not serious"), why


def rate_publication_bias(table: pd.DataFrame) -> tuple[str, str]:
    from ..methods.bias import egger_test

    if len(table) < MIN_STUDIES_BIAS:
        return "not assessed", f"{len(table)} studies: small-study tests need >= {MIN_STUDIES_BIAS}"
    if table["censored"].astype(bool).any():
        return "not assessed", "censored rows (p printed as a bound) have no point estimate for Egger's test"
    test = egger_test(table)
    why = f"Egger's test p = {test.pval:.3f}"
    return ("serious" if test.pval < EGGER_ALPHA else "not serious"), why


def median_control_risk(studies: pd.DataFrame, effects: pd.DataFrame) -> float:
    """Median control-group risk (events_ctrl / n_ctrl) of the used studies with counts: GRADE's usual
    assumed baseline risk. NaN when no used study gives control-group counts."""
    if not {"events_ctrl", "n_ctrl"} <= set(studies.columns):
        return float("nan")
    ids = set(used_effects(effects)["study_id"])
    rows = studies[studies["study_id"].isin(ids)]
    risk = pd.to_numeric(rows["events_ctrl"], errors="coerce") / pd.to_numeric(rows["n_ctrl"], errors="coerce")
    return float(risk.median()) if risk.notna().any() else float("nan")


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


def _override(ratings: dict, reasons: dict, given: dict, label: str) -> None:
    for domain, value in given.items():
        if domain not in DOMAINS:
            raise ValueError(f"override for {label!r}: domain {domain!r} unknown; domains: {', '.join(DOMAINS)}")
        rating, reason = value if isinstance(value, tuple) else (value, "")
        if rating not in RATINGS:
            raise ValueError(f"override for {label!r}, {domain}: rating {rating!r} unknown; ratings: {', '.join(RATINGS)}")
        if not str(reason).strip():
            raise ValueError(f"override for {label!r}, {domain}: give the reason, e.g. ('{rating}', 'why')")
        ratings[domain], reasons[domain] = rating, f"overridden by the user: {reason}"


def sof_row(label: str, effects: pd.DataFrame, idata, baseline_risk: float | None = None,
            imprecision_width: float | None = None, overrides: dict | None = None) -> dict:
    """One outcome's row of the table (see summary_of_findings)."""
    table = used_effects(effects)
    measure = effects.attrs.get("measure") or str(table["measure"].iloc[0])
    mu = _draws(idata, "mu")
    q = np.quantile(mu, [0.5, 0.025, 0.975])
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
    ratings, reasons = {}, {}
    for domain, (rating, why) in {
        "risk_of_bias": rate_risk_of_bias(table), "inconsistency": rate_inconsistency(idata, table),
        "indirectness": rate_indirectness(table), "imprecision": rate_imprecision(idata, measure, imprecision_width),
        "publication_bias": rate_publication_bias(table),
    }.items():
        ratings[domain], reasons[domain] = rating, why
    _override(ratings, reasons, dict(overrides or {}), label)
    down = sum(RATINGS[r] for r in ratings.values())
    row |= ratings | {"certainty": CERTAINTY[min(down, 3)],
                      "reasons": "; ".join(f"{d.replace('_', ' ')}: {reasons[d]}" for d in DOMAINS)}
    if n.isna().any():
        row["reasons"] += f"; participants: not reported for {int(n.isna().sum())} studies (not counted)"
    return row


def summary_of_findings(results, baseline_risk=None, imprecision_width=None, overrides: dict | None = None) -> pd.DataFrame:
    """The summary-of-findings table, one row per outcome (index: outcome).

    results: AnalysisResult objects (label, effects, idata), or {label: (effects, idata)}.
    baseline_risk: control-group risk for the absolute effect per 1000 of a binary outcome, a
    number or {label: number} (e.g. median_control_risk(studies, effects)); without it the per-1000
    columns are left out. imprecision_width: a number or {label: number}, on the analysis scale.
    overrides: {label: {domain: (rating, reason)}}, domains as in DOMAINS, ratings as in RATINGS.
    """
    items = results.items() if isinstance(results, dict) else [(r.label, (r.effects, r.idata)) for r in results]
    overrides = dict(overrides or {})
    labels = [label for label, _ in items]
    unknown = sorted(set(overrides) - set(labels))
    if unknown:
        raise ValueError(f"overrides name outcomes not in the table: {unknown} (outcomes: {labels})")

    def pick(value, label):
        return value.get(label) if isinstance(value, dict) else value

    rows = [sof_row(label, effects, idata, pick(baseline_risk, label), pick(imprecision_width, label),
                    overrides.get(label)) for label, (effects, idata) in items]
    return pd.DataFrame(rows).set_index("outcome")
