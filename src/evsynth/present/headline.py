"""The first lines for each outcome, in the terminal (`evsynth fit`) and in the report's results
paragraph: the unadjusted pooled effect with its 95% interval, the certainty rating, the
publication-bias-adjusted estimate, and the study the answer leans on most. An effect is never
led by P(> 0) alone: that probability says nothing about bias, design or how large the effect is.
"""

from __future__ import annotations

import pandas as pd

from ..effects.table import used_effects
from .natural import effect_text, is_ratio, natural


def _pooled(result) -> pd.Series | None:
    name = next((p for p in result.summary.index if str(p).endswith("(mu)")), None)
    return None if name is None else result.summary.loc[name]


def pooled_text(result) -> str:
    """'pooled effect SMD 1.19 [0.39, 1.98] (median [95% CrI]), 5 studies'."""
    measure = result.idata.attrs.get("measure") or result.effects.attrs.get("measure", "")
    k = len(used_effects(result.effects))
    row = _pooled(result)
    if row is None:
        return f"no pooled effect in this model, {k} studies"
    return f"pooled effect {effect_text(row, measure)} (median [95% CrI], unadjusted), {k} studies"


def bias_text(result) -> str:
    """The bias-adjusted figure, on the natural scale, or why there is none."""
    b = getattr(result, "bias_adjusted", None)
    if b is None:
        return "bias-adjusted estimate not computed"
    if not b.ran:
        return f"bias-adjusted estimate not computed: {b.reason}"
    measure = result.idata.attrs.get("measure") or result.effects.attrs.get("measure", "")
    ratio = is_ratio(measure)
    lo, mean, hi = (natural(v, measure) for v in (b.low, b.mean, b.high))
    centre = f"median {natural(b.median, measure):.2f}" if ratio else f"{mean:.2f}"
    return (f"bias-adjusted {measure} {centre} [{lo:.2f}, {hi:.2f}] (model-averaged, 95% CrI"
            + (", includes no effect" if b.includes_zero else "") + f"); P(effect) {b.p_effect:.2f}, "
            f"P(publication bias) {b.p_bias:.2f}, P(heterogeneity) {b.p_heterogeneity:.2f}")


def certainty_text(result) -> str:
    c = getattr(result, "certainty", None)
    return "certainty not rated" if c is None else f"certainty {c}"


def headline_lines(result) -> list[str]:
    """The first lines for an outcome: effect + interval, certainty, bias-adjusted figure, influence."""
    lines = [pooled_text(result), certainty_text(result), bias_text(result)]
    influence = getattr(result, "influence", None)
    if influence is not None:
        measure = result.idata.attrs.get("measure") or result.effects.attrs.get("measure", "")
        lines += influence.lines(f"log {measure}" if is_ratio(measure) else measure)
    return lines
