"""Which studies the pooled answer rests on: each study left out in turn, and the rows from secondary
sources (source_level "secondary": known only from a report of the study, e.g. a news article)
left out together. Every refit is the random-effects model on the exact engine (quadrature over
tau, no MCMC), so the whole table costs well under a second and has no Monte Carlo error.

I² here is Higgins & Thompson's tau² / (tau² + s²), s² the typical within-study variance of the
studies in that fit; its quantiles are those of tau (a monotone map), so they are exact too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..effects.table import used_effects

MIN_STUDIES = 3  # leaving one out must leave a pooled estimate of at least two studies
# k refits of k studies: the cost grows with k². One refit took 0.06 s at 1,000 studies and 1.7 s at
# 100,000 (a synthetic table), i.e. ~1 minute at this limit and ~2 days at 100,000 (issue 25).
MAX_STUDIES = 1000


@dataclass
class Influence:
    """Fields: table -- one row per study left out (study_id, mu, mu_low, mu_high: posterior median
    and 95% CrI of the pooled effect without it; I2: posterior median I² in % without it; shift:
    mu minus the all-studies median), first row "none" (all studies); most -- the study whose removal
    moves the pooled median most; secondary -- the same row with every secondary-source row left out
    (None when there is none, or too few studies would remain); secondary_ids; model (text)."""

    table: pd.DataFrame
    most: str | None
    secondary: pd.Series | None
    secondary_ids: list
    model: str = "random effects, exact engine"

    def lines(self, measure: str = "", digits: int = 2) -> list[str]:
        """Plain sentences for a terminal: the most influential study and the secondary-source check."""
        t, f = self.table.set_index("study_id"), f".{digits}f"
        full = t.loc["none"]
        out = []
        if self.most is not None:
            m = t.loc[self.most]
            out.append(f"leave-one-out (random effects, exact): most influential {self.most}; without it "
                       f"{measure} {m['mu']:{f}} (95% CrI {m['mu_low']:{f}} to {m['mu_high']:{f}}) vs "
                       f"{full['mu']:{f}} with all, I² {full['I2']:.0f}% -> {m['I2']:.0f}%")
        if self.secondary is not None:
            s = self.secondary
            out.append(f"without secondary-source rows ({', '.join(self.secondary_ids)}): {measure} {s['mu']:{f}} "
                       f"(95% CrI {s['mu_low']:{f}} to {s['mu_high']:{f}}), I² {s['I2']:.0f}%")
        elif self.secondary_ids:
            out.append(f"secondary-source rows ({', '.join(self.secondary_ids)}): leaving them out leaves fewer "
                       f"than 2 studies, not refitted")
        return out


def _fit(table: pd.DataFrame | None, priors: dict | None, model=None, vi=None) -> dict:
    """The random-effects refit of `table`; or, given `model` (the full model's subset, as
    random_effects(table) would describe it) and the rows' sampling variances `vi`, of those."""
    from ..engines.exact import report_label, summary_rows
    from ..model.description import random_effects
    from .heterogeneity import i2_h2

    rows = summary_rows(model if model is not None else random_effects(table, priors))
    summary = {report_label(*key): row for key, row in rows.items()}
    mu, tau = summary["pooled (mu)"], summary["tau (between studies)"]
    i2, _ = i2_h2(tau["q50"], table["vi"].to_numpy(float) if vi is None else vi)
    return {"mu": float(mu["q50"]), "mu_low": float(mu["q2.5"]), "mu_high": float(mu["q97.5"]), "I2": float(i2)}


def _same_priors(full, rest: pd.DataFrame, priors: dict) -> bool:
    """Whether random_effects(rest) resolves the priors the full model has (MD's defaults follow the
    studies' median raw-score SD, so leaving one out can change them; then the refit is built anew)."""
    from ..model.description import resolve_priors

    return all(full.settings.get(f"prior_{k}") == v for k, v in resolve_priors(rest, priors).items())


def leave_one_out(effects: pd.DataFrame, priors: dict | None = None,
                  max_studies: int = MAX_STUDIES) -> Influence | None:
    """Each used study left out in turn (random effects, exact engine); None below MIN_STUDIES;
    ValueError (the limit stated) above `max_studies`, before any refit.

    Example: es.leave_one_out(effects).table
    """
    table = used_effects(effects).reset_index(drop=True)
    table.attrs = dict(effects.attrs)
    if len(table) < MIN_STUDIES:
        return None
    if len(table) > max_studies:
        raise ValueError(f"k = {len(table):,} > {max_studies:,} studies (one refit per study: the cost grows "
                         f"with k²)")
    from ..model.description import random_effects

    mu_tau = {k: v for k, v in (priors or {}).items() if k in ("mu", "tau")}
    full = random_effects(table, mu_tau)
    rows = [{"study_id": "none", **_fit(table, mu_tau, full)}]
    # each refit is the full description's subset (no pandas per refit: 1,000 refits took 8.5 s CPU,
    # issue 26) unless leaving the study out changes the default priors (MD)
    rows_match = full.n == len(table)
    fast = rows_match and (table.attrs.get("measure") != "MD" or set(mu_tau) == {"mu", "tau"})
    vi = table["vi"].to_numpy(float)
    for i, sid in enumerate(table["study_id"]):
        keep = np.arange(len(table)) != i
        if fast:
            rows.append({"study_id": sid, **_fit(None, mu_tau, full.subset(keep), vi[keep])})
            continue
        rest = table.drop(index=i).reset_index(drop=True)
        rest.attrs = dict(table.attrs)
        model = full.subset(keep) if rows_match and _same_priors(full, rest, mu_tau) else None
        rows.append({"study_id": sid, **_fit(rest, mu_tau, model)})
    out = pd.DataFrame(rows)
    out["shift"] = out["mu"] - out.loc[0, "mu"]
    most = str(out.loc[out["shift"].iloc[1:].abs().idxmax(), "study_id"])
    level = table["source_level"] if "source_level" in table.columns else pd.Series(None, index=table.index)
    secondary_ids = table.loc[level == "secondary", "study_id"].tolist()
    secondary = None
    if secondary_ids and len(table) - len(secondary_ids) >= 2:
        rest = table[level != "secondary"].reset_index(drop=True)
        rest.attrs = dict(table.attrs)
        secondary = pd.Series(_fit(rest, mu_tau))
    return Influence(out, most, secondary, secondary_ids)
