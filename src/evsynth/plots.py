"""Figures: forest plot with technique subtotals, pooled diamond and prediction interval.

Functions take an optional `ax` and return the matplotlib Figure, like ArviZ's plotting API.
"""

from __future__ import annotations

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .effects import used_effects
from .summary import predictive_draws


def _interval(draws: np.ndarray) -> tuple[float, float, float]:
    lo, mid, hi = np.quantile(draws, (0.025, 0.5, 0.975))
    return lo, mid, hi


def _diamond(ax, y: float, lo: float, mid: float, hi: float, color: str, height: float = 0.35):
    ax.fill([lo, mid, hi, mid], [y, y + height, y, y - height], color=color, zorder=3)


def forest(idata: az.InferenceData, effects: pd.DataFrame, ax=None, threshold: float | None = 0.0):
    """Studies grouped by technique (observed yi +- 1.96 se, and shrunken theta), a diamond per
    technique, the pooled diamond and the 95% prediction interval for a new study."""
    table = used_effects(effects)
    post = az.extract(idata)
    has_tech = "technique_effect" in post
    groups = sorted(table["technique"].unique()) if has_tech else [None]
    rows = []  # (label, kind, payload)
    for tech in groups:
        members = table if tech is None else table[table["technique"] == tech]
        if tech is not None:
            rows.append((tech, "header", None))
        rows += [(f"  {r.study_id}", "study", r) for r in members.itertuples()]
        if tech is not None:
            rows.append((f"  {tech} (technique effect)", "technique", tech))
    rows += [("Pooled (mu)", "pooled", None), ("Prediction, new study", "prediction", None)]

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.32 * len(rows) + 1.2))
    fig = ax.figure
    ys = np.arange(len(rows))[::-1]
    for y, (label, kind, payload) in zip(ys, rows):
        if kind == "study":
            lo, hi = payload.yi - 1.96 * payload.sei, payload.yi + 1.96 * payload.sei
            marker = ">" if payload.censored else "s"
            ax.plot([lo, hi], [y, y], color="0.4", lw=1)
            ax.plot(payload.yi, y, marker=marker, color="0.2", ms=5, zorder=3)
            theta = post["theta"].sel(study=payload.study_id).to_numpy()
            ax.plot(np.median(theta), y - 0.18, "o", color="tab:blue", ms=3, zorder=3)
        elif kind == "technique":
            _diamond(ax, y, *_interval(post["technique_effect"].sel(technique=payload).to_numpy()), "tab:blue")
        elif kind == "pooled":
            _diamond(ax, y, *_interval(post["mu"].to_numpy()), "black")
        elif kind == "prediction":
            lo, mid, hi = _interval(predictive_draws(idata))
            ax.plot([lo, hi], [y, y], color="tab:red", lw=3, solid_capstyle="butt")
    ax.set_yticks(ys, [r[0] for r in rows])
    for tick, (_, kind, _) in zip(ax.get_yticklabels(), rows):
        tick.set_fontweight("bold" if kind in ("header", "pooled") else "normal")
    if threshold is not None:
        ax.axvline(threshold, color="0.6", ls="--", lw=0.8)
    measure = idata.attrs.get("measure", effects.attrs.get("measure", "effect"))
    ax.set_xlabel(f"{measure}\nsquares: observed ±1.96 SE (> censored bound); dots: posterior median; "
                  "diamonds: 95% CrI; red: 95% prediction interval", fontsize=8)
    ax.set_ylim(-0.8, len(rows) - 0.2)
    fig.tight_layout()
    return fig
