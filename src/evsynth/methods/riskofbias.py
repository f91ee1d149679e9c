"""Risk of bias as analysis input: severity of the RoB 2 / ROBINS-I overall judgements (the `rob`
column of the study and effect tables), a subgroup analysis by judgement, and the moderator formula
that puts it into a meta-regression.

Sensitivity needs nothing from here: `rob` is a study-table column, so the exclusion grammar
(evsynth.data.rules) takes `exclude="rob == 'high'"` or `"rob in ('high', 'serious', 'critical')"`;
a study without a judgement is never excluded by such a rule (a missing cell matches nothing).

Severity puts the two tools on one scale (Sterne et al. 2019, 2016): low (0); some concerns or
moderate (1); high or serious (2); critical (3). "no information" and an empty cell have none.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..effects.table import used_effects
from .frequentist import meta_regression, reml

SEVERITY = {"low": 0, "some concerns": 1, "moderate": 1, "high": 2, "serious": 2, "critical": 3}
HIGH = ("high", "serious", "critical")  # judgements that put a study at high risk of bias
LEVEL_ORDER = ("low", "some concerns", "moderate", "high", "serious", "critical", "no information")


def severity(rob: pd.Series) -> pd.Series:
    """0-3 per judgement (NaN: no judgement or "no information")."""
    return rob.map(lambda v: SEVERITY.get(v, np.nan) if isinstance(v, str) else np.nan).astype(float)


def _judged(effects: pd.DataFrame) -> pd.DataFrame:
    table = used_effects(effects) if "used" in effects.columns else effects
    if "rob" not in table.columns:
        raise ValueError("the effect table has no 'rob' column: add risk-of-bias judgements to the study table")
    missing = table.loc[table["rob"].isna() | table["rob"].astype(str).str.strip().eq(""), "study_id"].tolist()
    if missing:
        raise ValueError(f"studies without a risk-of-bias judgement (field 'rob'): {', '.join(map(str, missing))}; "
                         "fill them in (or 'no information') or leave those studies out explicitly")
    return table


def rob_formula(effects: pd.DataFrame) -> str:
    """The mods formula of a RoB moderator analysis: one coefficient per judgement level present,
    as a contrast with the least severe level (the intercept).

    Example:
        >>> import evsynth as es
        >>> studies = es.load_studies("studies/bcg.csv", extra_columns=["ablat", "alloc"])
        >>> effects = es.compute_effects(studies, measure="RR")
        >>> effects["rob"] = ["low"] * 6 + ["some concerns"] * 7    # illustrative judgements
        >>> rob_formula(effects)
        "~ C(rob, levels=['low', 'some concerns'])"
    """
    table = _judged(effects)
    levels = [level for level in LEVEL_ORDER if level in set(table["rob"])]
    if len(levels) < 2:
        raise ValueError(f"every used study has risk of bias {levels[0]!r}: there is no RoB contrast to estimate")
    return f"~ C(rob, levels={levels!r})"


def rob_subgroups(effects: pd.DataFrame, knapp_hartung: bool = False) -> pd.DataFrame:
    """Pooled effect (REML) per risk-of-bias judgement, with the test for subgroup differences.

    One row per judgement present (least severe first): k, estimate, its 95% CI, tau²; a single
    study is its own estimate (tau² not estimable). attrs["QM"], attrs["QM_p"]: the moderator test
    of the meta-regression on the judgement (one common residual tau², metafor's rma(mods = ~ rob)).

    Example:
        >>> import evsynth as es
        >>> studies = es.load_studies("studies/bcg.csv", extra_columns=["ablat", "alloc"])
        >>> effects = es.compute_effects(studies, measure="RR")
        >>> effects["rob"] = ["low"] * 6 + ["some concerns"] * 7    # illustrative judgements
        >>> rob_subgroups(effects)[["k", "estimate"]].round(3)
                        k  estimate
        rob
        low             6    -0.988
        some concerns   7    -0.488
    """
    table = _judged(effects)
    rows = []
    for level in [lv for lv in LEVEL_ORDER if lv in set(table["rob"])]:
        sub = table[table["rob"] == level]
        if len(sub) == 1:
            yi, se = float(sub["yi"].iloc[0]), float(sub["sei"].iloc[0])
            rows.append({"rob": level, "k": 1, "estimate": yi, "ci_low": yi - 1.959964 * se,
                         "ci_high": yi + 1.959964 * se, "tau2": np.nan})
            continue
        fit = reml(sub["yi"], sub["vi"], knapp_hartung=knapp_hartung)
        rows.append({"rob": level, "k": len(sub), "estimate": fit.mu, "ci_low": fit.ci_low, "ci_high": fit.ci_high,
                     "tau2": fit.tau2})
    out = pd.DataFrame(rows).set_index("rob")
    if len(out) > 1 and len(table) > len(out):
        test = meta_regression(table, rob_formula(table), knapp_hartung=knapp_hartung)
        out.attrs.update(QM=test.QM, QM_df=test.QM_df, QM_p=test.QM_p)
    return out
