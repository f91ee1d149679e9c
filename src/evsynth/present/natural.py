"""Effects on the scale a reader thinks in: ratio measures (RR, OR, ROM) are fitted on the log scale
and shown back-transformed ("RR 0.50 [0.35, 0.72]"); other measures as they are.

A posterior quantile back-transforms exactly (exp is monotone), so the median and the equal-tailed
95% interval of exp(mu) are exp of those of mu; a mean would not."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..effects.table import RATIO_MEASURES

# the summary rows that are effects (a tau or an I² is not on the effect's scale)
EFFECT_ROW_PREFIXES = ("pooled (mu)", "intercept (mu)", "technique: ", "prediction (new study)")


def is_ratio(measure: str | None) -> bool:
    """True for measures analysed as log ratios (RR, OR, ROM)."""
    return measure in RATIO_MEASURES


def natural(value: float, measure: str | None) -> float:
    """`value` (log scale for ratios) on the natural scale.

    Example:
        >>> round(natural(np.log(0.5), "RR"), 3), natural(0.3, "SMD")
        (0.5, 0.3)
    """
    return float(np.exp(value)) if is_ratio(measure) else float(value)


def effect_text(row, measure: str | None, digits: int = 2) -> str:
    """A summary row (q50, q2.5, q97.5) as "RR 0.50 [0.35, 0.72]" (median [95% interval]).

    Example:
        >>> effect_text({"q50": np.log(0.5), "q2.5": np.log(0.35), "q97.5": np.log(0.72)}, "RR")
        'RR 0.50 [0.35, 0.72]'
    """
    lo, mid, hi = (natural(row[k], measure) for k in ("q2.5", "q50", "q97.5"))
    return f"{measure} {mid:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def natural_scale_table(summary: pd.DataFrame, measure: str | None) -> pd.DataFrame:
    """The effect rows of a summary (evsynth.methods.summary.summarize) as median and 95% interval on
    the natural scale, with P(effect > null): for a ratio P(ratio > 1) = P(log ratio > 0).

    Example:
        >>> s = pd.DataFrame({"q2.5": [-1.05], "q50": [-0.69], "q97.5": [-0.33], "P(>0)": [0.0]},
        ...                  index=["pooled (mu)"])
        >>> natural_scale_table(s, "RR").round(2).to_dict("records")
        [{'parameter': 'pooled (mu)', 'RR (median)': 0.5, 'q2.5': 0.35, 'q97.5': 0.72, 'P(RR>1)': 0.0}]
    """
    rows = [p for p in summary.index if str(p).startswith(EFFECT_ROW_PREFIXES)]
    pcol = "P(>0)" if "P(>0)" in summary.columns else None
    null = "1" if is_ratio(measure) else "0"
    out = pd.DataFrame({"parameter": rows,
                        f"{measure} (median)": [natural(summary.at[p, "q50"], measure) for p in rows],
                        "q2.5": [natural(summary.at[p, "q2.5"], measure) for p in rows],
                        "q97.5": [natural(summary.at[p, "q97.5"], measure) for p in rows]})
    if pcol:
        out[f"P({measure}>{null})"] = [summary.at[p, pcol] for p in rows]
    return out
