"""Each technique on its own data: no pooling across techniques. Beside the partially pooled
estimate of a per-technique model (which pulls a technique with one study towards the others),
a reader needs what that technique's own studies say: a random-effects fit of its studies alone
(exact engine), or the study's own estimate (yi, 95% interval yi +- 1.96 se) when there is one.

Rule for P(> 0): a technique's posterior probability of a positive effect is not shown when its
own data do not support it -- when the own-data 95% interval includes 0 (censored single studies
count as not supporting it: their estimate is a bound). "Rests on one uncontrolled study": the
technique has exactly one used row and it is a one-group pre/post change.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..effects.table import uncontrolled, used_effects

Z975 = 1.959963984540054


def own_data(effects: pd.DataFrame, priors: dict | None = None) -> pd.DataFrame:
    """One row per technique with used rows (index: technique): k, designs, own_q50, own_low,
    own_high (the own-data median and 95% interval), how ("one study" / "random effects on its k
    studies, exact"), one_uncontrolled (bool), supports_positive (own interval above 0).

    Example: es.own_data(effects)
    """
    from ..engines.exact import posterior_grid, summary_table
    from ..model.description import random_effects

    used = used_effects(effects)
    mu_tau = {k: v for k, v in (priors or {}).items() if k in ("mu", "tau")}
    rows = []
    for technique, group in used.groupby("technique", sort=True):
        k = len(group)
        pre_post = int(uncontrolled(group).sum())
        designs = ", ".join(([f"{k - pre_post} controlled"] if k > pre_post else [])
                            + ([f"{pre_post} pre/post"] if pre_post else []))
        censored = bool(group["censored"].astype(bool).any())
        if k == 1:
            y, s = float(group["yi"].iloc[0]), float(group["sei"].iloc[0])
            mid, lo, hi, how = y, y - Z975 * s, y + Z975 * s, "its one study" + (" (censored: a bound)" if censored
                                                                                 else "")
        else:
            sub = group.reset_index(drop=True)
            sub.attrs = dict(effects.attrs)
            row = summary_table(model := random_effects(sub, mu_tau), posterior_grid(model)).loc["pooled (mu)"]
            mid, lo, hi, how = float(row["q50"]), float(row["q2.5"]), float(row["q97.5"]), \
                f"random effects on its {k} studies, exact"
        rows.append({"technique": technique, "k": k, "designs": designs, "own_q50": mid, "own_low": lo,
                     "own_high": hi, "how": how, "one_uncontrolled": k == 1 and pre_post == 1,
                     "supports_positive": bool(lo > 0 and not (k == 1 and censored))})
    return pd.DataFrame(rows).set_index("technique") if rows else pd.DataFrame(
        columns=["k", "designs", "own_q50", "own_low", "own_high", "how", "one_uncontrolled", "supports_positive"])


def withhold_unsupported(summary: pd.DataFrame, own: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The summary with P(>...) blanked on the rows "technique: X" whose own data do not support a
    positive effect (see the module docstring), and the techniques blanked."""
    out = summary.copy()
    out.attrs = dict(summary.attrs)
    pcols = [c for c in out.columns if str(c).startswith("P(>")]
    blanked = []
    for name in out.index:
        technique = str(name).removeprefix("technique: ")
        if str(name).startswith("technique: ") and technique in own.index and not own.loc[technique,
                                                                                           "supports_positive"]:
            out.loc[name, pcols] = np.nan
            blanked.append(technique)
    return out, blanked
