"""GRADE-style certainty of one outcome's evidence, by explicit rules (the summary-of-findings table,
evsynth.present.sof, shows it; run_analysis puts it on every result as `certainty`).

Certainty starts by study design (GRADE's route, Guyatt et al. 2008, 2011; not ROBINS-I): "high"
when every used row is randomised (`randomised == "yes"` in the effect table), otherwise "low"
(non-randomised or unclear rows, and one-group pre/post rows, which are never randomised; a table
without the column counts as unclear). It then drops one level per "serious" and two per "very
serious" rating, down to "very low". Weights below are the pooled model's random-effects weights
1/(vi + tau^2) at the posterior median of tau (between studies), the weights `evsynth fit` and the
report quote for the pre/post share; 1/vi when the model has no tau (common effect).

- risk of bias (the `rob` column): weight share of studies at high risk (high, serious, critical)
  >= 50%: very serious; >= 25%, or >= 50% at least at some concerns / moderate: serious.
  A study without a judgement (or "no information") counts as "some concerns".
- inconsistency (posterior I², evsynth.methods.heterogeneity, and the 95% prediction interval for a new
  study): median I² >= 75% and the prediction interval includes no effect: very serious; median
  I² >= 50%, or a prediction interval that includes no effect while the credible interval does
  not: serious. A common-effect model or one study: not assessed.
- indirectness (design): weight share of uncontrolled pre/post rows (the change from baseline is
  not an effect of the intervention: there is no comparator) >= 50%: very serious; any: serious.
  This is the missing comparator; the start at "low" is the missing randomisation (confounding).
- imprecision (user-set `imprecision_width` on the analysis scale, e.g. 0.5 SMD): the 95% CrI of
  the pooled effect wider than the threshold: serious; wider than twice it: very serious.
  Defaults: SMD/SMCC 0.5, RD 0.1, log RR/OR/ROM 2 ln(1.25) (a CrI from 0.8 to 1.25); MD has none
  (its unit is the outcome's): give it.
- publication bias: when the RoBMA-PSMA ensemble ran (evsynth.methods.robma, k >= 3): serious when
  the inclusion Bayes factor for bias is >= 3 (moderate evidence, P(bias) >= 0.75 at its prior of
  1/2); otherwise not serious. The reason also says whether the bias-adjusted 95% CrI includes no
  effect while the unadjusted one does not, but that alone does not downgrade: the averaged
  interval reaches 0 whenever P(no effect) >= 2.5% (the no-effect models hold a point mass there),
  and with precise or equal-SE studies the bias families cannot be told apart (P(bias) near 1/2
  under no bias), so a rule on P(bias) > 1/2 or on the interval downgraded unbiased simulated
  evidence in about a third of cases. Without the ensemble: Egger's test (metafor's regtest) with >= 10 studies, p < 0.10:
  serious; fewer than 10 studies (or censored rows): not assessed, no downgrade.

"No effect" is 0 on the analysis scale (log scale for ratio measures).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..effects.table import uncontrolled, used_effects
from .heterogeneity import headline_i2
from .riskofbias import severity
from .summary import (MU_ROW, PREDICTION_ROW, predictive_draws, random_effects_weights, summary_quantiles,
                      summary_tau)

DOMAINS = ("risk_of_bias", "inconsistency", "indirectness", "imprecision", "publication_bias")
RATINGS = {"not serious": 0, "serious": 1, "very serious": 2, "not assessed": 0}
CERTAINTY = {0: "high", 1: "moderate", 2: "low", 3: "very low"}
START = {"high": 0, "low": 2}
BF_BIAS = 3.0  # publication bias is serious when BF_bias reaches this
IMPRECISION_WIDTH = {"SMD": 0.5, "SMCC": 0.5, "RD": 0.1, "RR": 2 * math.log(1.25), "OR": 2 * math.log(1.25),
                     "ROM": 2 * math.log(1.25)}
MIN_STUDIES_BIAS = 10
EGGER_ALPHA = 0.10


def _draws(idata, name: str) -> np.ndarray:
    da = idata["posterior"][name]
    return da.to_numpy().reshape(-1) if da.ndim == 2 else da.stack(sample=("chain", "draw")).to_numpy()


def _weights(table: pd.DataFrame, tau: float = 0.0) -> np.ndarray:
    w = random_effects_weights(table["vi"], tau)
    return w / w.sum()


def median_tau(idata) -> float:
    """The posterior median of tau (between studies), 0 when the model has none (common effect)."""
    return float(np.median(_draws(idata, "tau"))) if "tau" in idata["posterior"] else 0.0


def rate_risk_of_bias(table: pd.DataFrame, tau: float = 0.0) -> tuple[str, str]:
    sev = severity(table["rob"]) if "rob" in table.columns else pd.Series(np.nan, index=table.index)
    unjudged = int(sev.isna().sum())
    sev = sev.fillna(1.0).to_numpy()
    w = _weights(table, tau)
    high, concerns = float(w[sev >= 2].sum()), float(w[sev >= 1].sum())
    why = f"{100 * high:.0f}% of the weight at high risk of bias, {100 * concerns:.0f}% at least some concerns"
    if unjudged:
        why += f" ({unjudged} of {len(table)} studies without a judgement counted as some concerns)"
    rating = "very serious" if high >= 0.5 else "serious" if high >= 0.25 or concerns >= 0.5 else "not serious"
    return rating, why


def _includes_zero(lo: float, hi: float) -> bool:
    return lo <= 0.0 <= hi


def rate_inconsistency(idata, table: pd.DataFrame, ci: tuple[float, float] | None = None,
                       pi: tuple[float, float] | None = None) -> tuple[str, str]:
    """ci, pi: the pooled 95% CrI and the 95% prediction interval the output quotes (default: from
    the draws in idata)."""
    if "tau" not in idata["posterior"]:
        return "not assessed", "common-effect model: heterogeneity not estimated"
    if len(table) < 2:
        return "not assessed", "one study"
    # around the pooled mean: all heterogeneity (studies + techniques) when the model splits it
    _, i2 = headline_i2(idata)  # the same I² as the report's text and answer box (they label it)
    median = float(np.median(i2))
    pi = np.quantile(predictive_draws(idata), [0.025, 0.975]) if pi is None else pi
    ci = np.quantile(_draws(idata, "mu"), [0.025, 0.975]) if ci is None else ci
    pi_null, ci_null = _includes_zero(*pi), _includes_zero(*ci)
    why = (f"posterior median I² {median:.0f}%, 95% prediction interval {pi[0]:.2f} to {pi[1]:.2f}"
           + (" includes no effect" if pi_null else " excludes no effect"))
    if median >= 75 and pi_null:
        return "very serious", why
    if median >= 50 or (pi_null and not ci_null):
        return "serious", why
    return "not serious", why


def rate_indirectness(table: pd.DataFrame, tau: float = 0.0) -> tuple[str, str]:
    pre_post = uncontrolled(table).to_numpy()
    share = float(_weights(table, tau)[pre_post].sum())
    if not pre_post.any():
        return "not serious", "all rows compare with a control group"
    why = (f"{int(pre_post.sum())} uncontrolled pre/post row(s), {100 * share:.0f}% of the weight: the change "
           "from baseline includes time trends and regression to the mean")
    return ("very serious" if share >= 0.5 else "serious"), why


def rate_imprecision(idata, measure: str, width: float | None, ci: tuple[float, float] | None = None
                     ) -> tuple[str, str]:
    """ci: the pooled 95% CrI the output quotes (default: from the draws in idata)."""
    if width is None:
        width = IMPRECISION_WIDTH.get(measure)
        if width is None:
            raise ValueError(f"imprecision_width: give the CrI width that is too imprecise for measure {measure!r} "
                             "(in the outcome's unit)")
    lo, hi = np.quantile(_draws(idata, "mu"), [0.025, 0.975]) if ci is None else ci
    why = f"95% CrI width {hi - lo:.3f} vs threshold {width:.3g} (analysis scale)"
    return ("very serious" if hi - lo > 2 * width else "serious" if hi - lo > width else "not serious"), why


def randomised(table: pd.DataFrame) -> pd.Series:
    """"yes" / "no" / "unclear" per row: the `randomised` column (missing column or cell: "unclear");
    a one-group pre/post row is "no" whatever the column says (there is no allocation)."""
    col = table["randomised"] if "randomised" in table.columns else pd.Series(np.nan, index=table.index)
    value = col.map(lambda v: str(v).strip().lower() if isinstance(v, str) and str(v).strip() else "unclear")
    value = value.where(value.isin(["yes", "no", "unclear"]), "unclear")
    return value.where(table["design"] != "pre_post", "no")


def rate_design(table: pd.DataFrame, tau: float = 0.0) -> tuple[str, str]:
    """(start, reason): "high" when every used row is randomised, else "low" (GRADE's route)."""
    value = randomised(table)
    w = _weights(table, tau)
    counts = {v: int((value == v).sum()) for v in ("yes", "no", "unclear")}
    share = float(w[(value == "yes").to_numpy()].sum())
    why = (f"{counts['yes']} randomised, {counts['no']} non-randomised, {counts['unclear']} unclear row(s), "
           f"randomised rows carry {100 * share:.0f}% of the weight")
    if counts["yes"] == len(table):
        return "high", why + ": starts high (GRADE: randomised trials)"
    return "low", why + ": starts low (GRADE: non-randomised or unclear evidence; not ROBINS-I)"


def publication_bias_rule(bf_bias: float) -> str:
    """The ensemble's rating: "serious" when bf_bias >= BF_BIAS, else "not serious"."""
    return "serious" if bf_bias >= BF_BIAS else "not serious"


def rate_publication_bias(table: pd.DataFrame, adjusted=None, unadjusted: tuple[float, float] | None = None
                          ) -> tuple[str, str]:
    """adjusted: a methods.robma.BiasAdjusted (the ensemble); unadjusted: the pooled 95% CrI."""
    from .bias import egger_test

    if adjusted is not None and adjusted.ran and unadjusted is not None:
        rating = publication_bias_rule(adjusted.bf_bias)
        flips = _includes_zero(adjusted.low, adjusted.high) and not _includes_zero(*unadjusted)
        why = (f"RoBMA-PSMA: P(bias) {adjusted.p_bias:.2f}, BF_bias {adjusted.bf_bias:.3g} "
               f"({'>=' if rating == 'serious' else '<'} {BF_BIAS:g}), bias-adjusted 95% CrI {adjusted.low:.2f} to "
               f"{adjusted.high:.2f} vs unadjusted {unadjusted[0]:.2f} to {unadjusted[1]:.2f}"
               + (" (the adjusted interval includes no effect, the unadjusted does not)" if flips else ""))
        return rating, why
    fallback = f" (bias-adjusted ensemble: {adjusted.reason})" if adjusted is not None and not adjusted.ran else ""
    if len(table) < MIN_STUDIES_BIAS:
        return "not assessed", f"{len(table)} studies: small-study tests need >= {MIN_STUDIES_BIAS}{fallback}"
    if table["censored"].astype(bool).any():
        return "not assessed", "censored rows (p printed as a bound) have no point estimate for Egger's test" + fallback
    test = egger_test(table)
    why = f"Egger's test p = {test.pval:.3f}{fallback}"
    return ("serious" if test.pval < EGGER_ALPHA else "not serious"), why


@dataclass
class Certainty:
    """The certainty of one outcome's evidence. Fields: rating ("high", "moderate", "low", "very
    low"); start ("high" or "low", by design) and start_reason; ratings {domain: "not serious" |
    "serious" | "very serious" | "not assessed"} and reasons {domain: plain words}, domains as in
    DOMAINS; downgrades (levels dropped below the start, before the floor at "very low")."""

    rating: str
    start: str
    start_reason: str
    ratings: dict = field(default_factory=dict)
    reasons: dict = field(default_factory=dict)
    downgrades: int = 0

    def __str__(self) -> str:
        """Short, for a headline: 'VERY LOW (GRADE-style; started low: ...; downgraded for ...)'."""
        down = [f"{d.replace('_', ' ')} {r}" for d, r in self.ratings.items() if r in ("serious", "very serious")]
        start = "started high: all randomised" if self.start == "high" else "started low: not all randomised"
        return (f"{self.rating.upper()} (GRADE-style; {start}"
                + (f"; downgraded for {', '.join(down)})" if down else ")"))

    def text(self) -> str:
        """The rating with every reason, for a reader."""
        parts = [f"start {self.start} ({self.start_reason})"]
        parts += [f"{d.replace('_', ' ')}: {self.ratings[d]} ({self.reasons[d]})" for d in DOMAINS]
        return f"{self.rating.upper()}: " + "; ".join(parts)


def override(ratings: dict, reasons: dict, given: dict, label: str) -> None:
    for domain, value in given.items():
        if domain not in DOMAINS:
            raise ValueError(f"override for {label!r}: domain {domain!r} unknown; domains: {', '.join(DOMAINS)}")
        rating, reason = value if isinstance(value, tuple) else (value, "")
        if rating not in RATINGS:
            raise ValueError(f"override for {label!r}, {domain}: rating {rating!r} unknown; ratings: {', '.join(RATINGS)}")
        if not str(reason).strip():
            raise ValueError(f"override for {label!r}, {domain}: give the reason, e.g. ('{rating}', 'why')")
        ratings[domain], reasons[domain] = rating, f"overridden by the user: {reason}"


def rate_certainty(effects: pd.DataFrame, idata, adjusted=None, imprecision_width: float | None = None,
                   overrides: dict | None = None, label: str = "", tau: float | None = None,
                   summary: pd.DataFrame | None = None) -> Certainty:
    """The certainty of one outcome (the rules in this module's docstring). adjusted: the
    outcome's methods.robma.BiasAdjusted (publication bias by the ensemble), else Egger's test.
    overrides: {domain: (rating, reason)}. tau: the between-study SD the weights use (default: its
    posterior median in idata, 0 without one). summary: the fit's summarize() table, whose figures
    the output quotes: tau's median, the pooled 95% CrI and the prediction interval are then read
    from it, so the reasons quote the same numbers (the exact engine's table is exact; its draws
    carry Monte Carlo error).

    Example: es.rate_certainty(result.effects, result.idata, result.bias_adjusted).rating
    """
    table = used_effects(effects)
    measure = effects.attrs.get("measure") or str(table["measure"].iloc[0])
    ci, pi = ((q[0], q[2]) if q else None for q in (summary_quantiles(summary, MU_ROW),
                                                     summary_quantiles(summary, PREDICTION_ROW)))
    unadjusted = ci or tuple(np.quantile(_draws(idata, "mu"), [0.025, 0.975]))
    if tau is None and summary is not None:
        tau = summary_tau(summary)
    tau = median_tau(idata) if tau is None else tau
    start, start_reason = rate_design(table, tau)
    ratings, reasons = {}, {}
    for domain, (rating, why) in {
        "risk_of_bias": rate_risk_of_bias(table, tau), "inconsistency": rate_inconsistency(idata, table, ci, pi),
        "indirectness": rate_indirectness(table, tau), "imprecision": rate_imprecision(idata, measure, imprecision_width, ci),
        "publication_bias": rate_publication_bias(table, adjusted, unadjusted),
    }.items():
        ratings[domain], reasons[domain] = rating, why
    override(ratings, reasons, dict(overrides or {}), label)
    down = sum(RATINGS[r] for r in ratings.values())
    return Certainty(CERTAINTY[min(START[start] + down, 3)], start, start_reason, ratings, reasons, down)
