"""Which studies the pooled answer rests on: each study left out in turn, and the rows from secondary
sources (source_level "secondary": known only from a report of the study, e.g. a news article)
left out together. Every refit is the random-effects model on the exact engine (quadrature over
tau, no MCMC), so the whole table has no Monte Carlo error; for the plain random-effects model
the k refits are one computation (engines.leave_one_out: the precision sums without study i on
one grid, equal to the refits to ~1e-8), 0.2 s at 1,000 studies instead of ~5 s.

I² here is Higgins & Thompson's tau² / (tau² + s²), s² the typical within-study variance of the
studies in that fit; its quantiles are those of tau (a monotone map), so they are exact too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..effects.table import used_effects

MIN_STUDIES = 3  # leaving one out must leave a pooled estimate of at least two studies
# Refits (models other than plain random effects) cost k refits of k studies, growing with k²: one
# took 0.06 s at 1,000 studies and 1.7 s at 100,000 (issue 25); the downdate's arrays grow with
# k x grid nodes (~0.2 s at 1,000 studies, issue 26).
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


def _fit(table: pd.DataFrame | None, priors: dict | None, model=None, vi=None, grid=None) -> dict:
    """The random-effects refit of `table`; or, given `model` (the full model's subset, as
    random_effects(table) would describe it) and the rows' sampling variances `vi`, of those."""
    from ..engines.exact import report_label, summary_rows
    from ..model.description import random_effects
    from .heterogeneity import i2_h2

    rows = summary_rows(model if model is not None else random_effects(table, priors), grid)
    summary = {report_label(*key): row for key, row in rows.items()}
    mu, tau = summary["pooled (mu)"], summary["tau (between studies)"]
    i2, _ = i2_h2(tau["q50"], table["vi"].to_numpy(float) if vi is None else vi)
    return {"mu": float(mu["q50"]), "mu_low": float(mu["q2.5"]), "mu_high": float(mu["q97.5"]), "I2": float(i2)}


def _downdated_rows(full, vi: np.ndarray, grid) -> list[dict | None] | None:
    """Every leave-one-out row at once (engines.leave_one_out: the random-effects posterior without
    each study, equal to its refit to ~1e-9), None for a row it leaves to a refit; None when the
    model is not the plain random-effects one. I² from the rest's typical variance (k - 2) /
    (sum w - sum w^2 / sum w), w = 1 / vi (frequentist.typical_variance, intercept only)."""
    from ..engines.leave_one_out import leave_one_out_summaries

    found = leave_one_out_summaries(full, grid)
    if found is None:
        return None
    w = 1 / vi
    sw, sw2 = w.sum() - w, (w**2).sum() - w**2
    s2 = (vi.size - 2) / (sw - sw2 / sw)
    t2 = found["tau"] ** 2
    i2 = 100.0 * t2 / (t2 + s2)
    return [{"mu": float(q[1]), "mu_low": float(q[0]), "mu_high": float(q[2]), "I2": float(i)} if ok else None
            for q, i, ok in zip(found["mu"], i2, found["ok"])]


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

    from ..engines.exact import posterior_grid

    mu_tau = {k: v for k, v in (priors or {}).items() if k in ("mu", "tau")}
    full = random_effects(table, mu_tau)
    grid = posterior_grid(full)
    rows = [{"study_id": "none", **_fit(table, mu_tau, full, grid=grid)}]
    # each refit is the full description's subset (no pandas per refit: 1,000 refits took 8.5 s CPU,
    # issue 26) unless leaving the study out changes the default priors (MD); the plain
    # random-effects model's rows are downdated all at once (0.1 s at 1,000 studies, not ~5 s)
    rows_match = full.n == len(table)
    fast = rows_match and (table.attrs.get("measure") != "MD" or set(mu_tau) == {"mu", "tau"})
    vi = table["vi"].to_numpy(float)
    downdated = (_downdated_rows(full, vi, grid) if fast else None) or [None] * len(table)
    for i, sid in enumerate(table["study_id"]):
        keep = np.arange(len(table)) != i
        if downdated[i] is not None:
            rows.append({"study_id": sid, **downdated[i]})
            continue
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
