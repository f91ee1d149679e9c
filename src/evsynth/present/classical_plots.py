"""Figures of the classical toolkit: the Baujat plot (which studies drive heterogeneity and the
pooled result), the cumulative forest plot (classical and Bayesian), and the funnel plot filled by
trim-and-fill. Each takes the table its method returns and gives back a matplotlib Figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import ticker

from .plots import RATIO_TICKS


def _scale(measure: str | None, back_transform: bool):
    from ..effects.table import RATIO_MEASURES

    return np.exp if back_transform and measure in RATIO_MEASURES else (lambda v: v)


def _ratio_axis(ax, axis: str = "x") -> None:
    """A log axis with plain labelled ticks (0.5, 1, 2) and a dotted line at 1."""
    setter = ax.set_xscale if axis == "x" else ax.set_yscale
    setter("log")
    lim = ax.get_xlim() if axis == "x" else ax.get_ylim()
    ticks = [v for v in RATIO_TICKS if lim[0] <= v <= lim[1]]
    target = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xticks if axis == "x" else ax.set_yticks)(ticks)
    target.set_major_formatter(ticker.FormatStrFormatter("%g"))
    target.set_minor_formatter(ticker.NullFormatter())


def baujat_plot(table: pd.DataFrame, ax=None, label_top: int = 5):
    """Baujat plot of evsynth.methods.influence.baujat's table: contribution to heterogeneity (x)
    against influence on the pooled result (y); the `label_top` studies farthest out are named."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5)) if ax is None else (ax.figure, ax)
    ax.scatter(table["x"], table["y"], s=30, facecolor="0.7", edgecolor="black", zorder=3, gid="studies")
    spread = table["x"] / max(table["x"].max(), 1e-300) + table["y"] / max(table["y"].max(), 1e-300)
    for label in spread.sort_values(ascending=False).index[:label_top]:
        ax.annotate(str(label), (table.loc[label, "x"], table.loc[label, "y"]), xytext=(4, 3),
                    textcoords="offset points", fontsize=8)
    ax.set_xlabel("contribution to heterogeneity (squared Pearson residual)")
    ax.set_ylabel("influence on the pooled result")
    ax.set_title("Baujat plot")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def cumulative_forest(table: pd.DataFrame, measure: str | None = None, back_transform: bool = True,
                      bayesian: pd.DataFrame | None = None, ax=None):
    """Cumulative forest plot: one row per added study (top: the first), the pooled estimate and its
    95% CI after it (evsynth.methods.cumulative.cumulative); `bayesian` (bayesian_cumulative's table)
    adds the posterior median and 95% CrI of each step beside it. Ratio measures on a log axis."""
    k = len(table)
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * k + 1.6)) if ax is None else (ax.figure, ax)
    scale = _scale(measure, back_transform)
    y = np.arange(k)[::-1].astype(float)
    shift = 0.18 if bayesian is not None else 0.0
    ax.errorbar(scale(table["estimate"]), y + shift,
                xerr=[scale(table["estimate"]) - scale(table["ci_low"]), scale(table["ci_high"]) - scale(table["estimate"])],
                fmt="s", color="black", ms=4, capsize=2, lw=1, label=f"{table.attrs.get('method', '')} 95% CI",
                gid="classical")
    if bayesian is not None:
        ax.errorbar(scale(bayesian["median"]), y - shift,
                    xerr=[scale(bayesian["median"]) - scale(bayesian["q2.5"]),
                          scale(bayesian["q97.5"]) - scale(bayesian["median"])],
                    fmt="o", color="tab:blue", ms=4, capsize=2, lw=1, label="Bayesian (exact) 95% CrI", gid="bayesian")
    ax.axvline(scale(0.0), color="0.3", lw=0.7, ls=":")
    ax.set_yticks(y)
    ax.set_yticklabels([f"+ {label} (k={n})" for label, n in zip(table.index, table["k"])], fontsize=8)
    ax.set_ylim(-0.7, k - 0.3)
    name = measure or "effect"
    if scale is np.exp:
        _ratio_axis(ax, "x")
        ax.set_xlabel(f"pooled {name} (log scale)")
    else:
        ax.set_xlabel(f"pooled {name}")
    ax.set_title("Cumulative meta-analysis")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def filled_funnel(result, measure: str | None = None, back_transform: bool = True, ax=None):
    """Funnel plot of a trim-and-fill result (evsynth.methods.trimfill.trimfill): observed studies
    filled black, the imputed ones open, the filled model's estimate with its 95% pseudo-confidence
    region (estimate +- 1.96 SE), standard error downwards. Ratio measures on a log axis."""
    data = result.data
    fig, ax = plt.subplots(figsize=(8.5, 4.8)) if ax is None else (ax.figure, ax)
    scale = _scale(measure, back_transform)
    se = np.sqrt(data["vi"].to_numpy(float))
    y = data["yi"].to_numpy(float)
    filled = data["filled"].to_numpy(bool)
    top = float(se.max()) * 1.05
    grid = np.linspace(0.0, top, 50)
    centre = result.fit.mu
    ax.fill_betweenx(grid, scale(centre - 1.96 * grid), scale(centre + 1.96 * grid), color="0.92", lw=0,
                     gid="pseudo_ci", label="95% pseudo-CI")
    ax.axvline(scale(centre), color="black", lw=1, gid="estimate",
               label=f"{result.method} estimate with filled studies")
    ax.scatter(scale(y[~filled]), se[~filled], s=28, color="black", zorder=3, gid="observed", label="observed")
    if filled.any():
        ax.scatter(scale(y[filled]), se[filled], s=28, facecolor="white", edgecolor="black", zorder=3,
                   gid="filled", label=f"filled ({result.k0}, {result.side} side)")
    ax.set_ylim(top, 0)
    ax.set_ylabel("standard error")
    name = measure or "effect"
    if scale is np.exp:
        _ratio_axis(ax, "x")
        ax.set_xlabel(f"{name} (log scale)")
    else:
        ax.set_xlabel(name)
    ax.set_title(f"Trim-and-fill ({result.estimator}): {result.k0} studies imputed")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: no study hidden
    fig.tight_layout()
    return fig
