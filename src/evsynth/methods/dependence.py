"""How much the pooled effect depends on the assumed within-study correlation of sampling errors.

Rows of one study that measure the same participants have correlated sampling errors, but their
correlation is almost never reported: metafor's vcalc and clubSandwich's impute_covariance_matrix
make V from an assumed r. This verb refits over a grid of r (the working-model sensitivity that is
the Bayesian counterpart of robust variance estimation): per r, the REML multilevel fit (estimate,
model-based SE), its cluster-robust CR2 SE and Satterthwaite df (valid whatever r is), and the
exact Bayesian posterior of mu (mean and 95% CrI) from the same nested model with that V.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..effects.covariance import impute_covariance
from ..engines import exact
from ..model import description
from .multilevel import multilevel
from .robust import robust


def _effect_like(table: pd.DataFrame) -> pd.DataFrame:
    """An effect table (the columns the model description reads) from any table with yi and vi."""
    out = table.reset_index(drop=True).copy()
    if "sei" not in out:
        out["sei"] = np.sqrt(out["vi"].to_numpy(float))
    if "vi" not in out:
        out["vi"] = out["sei"].to_numpy(float) ** 2
    defaults = {"study_id": [f"row {i + 1}" for i in range(len(out))], "used": True, "head_to_head": False,
                "censored": False, "unit": "", "outcome": "outcome"}
    for column, value in defaults.items():
        if column not in out:
            out[column] = value
    out.attrs = dict(table.attrs) or {"measure": "SMD"}
    return out


def correlation_sensitivity(table: pd.DataFrame, random, rhos=(0.0, 0.2, 0.4, 0.6, 0.8), cluster: str | None = None,
                            priors: dict | None = None, bayes: bool = True) -> pd.DataFrame:
    """One row per assumed r: REML estimate, model SE, CR2 SE and df, sigma^2 per level, and (bayes)
    the exact posterior mean and 95% CrI of mu. random: as evsynth.methods.multilevel.multilevel
    ("~ 1 | study/esid"); cluster: the column whose rows share participants (default: the
    outermost level). The table: an effect table, or any table with yi and vi (or sei).

    >>> import evsynth as es, pandas as pd                                            # doctest: +SKIP
    >>> es.correlation_sensitivity(pd.read_csv("tests/data/assink2016.csv"), "~ 1 | study/esid")  # doctest: +SKIP
    """
    data = _effect_like(table)
    data = data[data["used"].astype(bool)].reset_index(drop=True)
    paths = description._nesting_paths(random)
    column = cluster or paths[0][0]
    rows = []
    for rho in rhos:
        V = impute_covariance(data["vi"], data[column], float(rho)) if rho else None
        fit = multilevel(data, random, V=V)
        rob = robust(fit).coefficients.iloc[0]
        coef = fit.coefficients.iloc[0]
        row = {"rho": float(rho), "estimate": coef["estimate"], "se": coef["se"], "se_CR2": rob["se"],
               "df_CR2": rob["df"], "ci_low_CR2": rob["ci_low"], "ci_high_CR2": rob["ci_high"]}
        row |= {f"sigma2[{name}]": value for name, value in fit.components["estimate"].items()}
        if bayes:
            model = description.multilevel(data, priors, random=random, rho=float(rho), cluster=column)
            summary = exact.summary_table(model).loc["pooled (mu)"]
            row |= {"mu_mean": summary["mean"], "mu_q2.5": summary["q2.5"], "mu_q97.5": summary["q97.5"]}
        rows.append(row)
    out = pd.DataFrame(rows).set_index("rho")
    out.attrs["note"] = ("REML and Bayesian (exact engine) fits with V from the assumed r; CR2 SEs and "
                         "Satterthwaite df are cluster-robust (valid whatever r is)")
    return out
