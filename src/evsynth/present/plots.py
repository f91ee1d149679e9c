"""Figures: forest, contour-enhanced funnel, sensitivity, prior/posterior, predictive checks, and
thin wrappers over ArviZ's trace and rank plots.

Every function returns the matplotlib Figure. Single-panel plots take an optional `ax`, like
ArviZ's plotting API. Artists a reader (or a test) needs to find carry a `gid`, e.g.
"diamond:pooled", "contour:0.95", "scenario:<name>"; the forest's study rows are one
present.text_column.TextColumn per column (each row with its gid, e.g. "weight:<study>") and
collections of marks ("study-ci", "study", "theta"), so 1,000 rows are a handful of artists.

Example:
    >>> import matplotlib.pyplot as plt
    >>> import evsynth as es
    >>> studies = es.load_studies("studies/bcg.csv", extra_columns=["ablat", "alloc"])
    >>> figure = es.plots.funnel(es.compute_effects(studies, measure="RR"))
    >>> type(figure).__name__, len(figure.axes)
    ('Figure', 1)
    >>> plt.close(figure)
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib import ticker
import numpy as np
import pandas as pd
import xarray as xr

from ..effects.distributions import norm_ppf
from ..effects.table import RATIO_MEASURES, used_effects
from ..methods.frequentist import MetaRegression, meta_regression
from ..model.priors import parse_prior
from ..methods.summary import (MU_ROW, PREDICTION_ROW, TAU_ROW, predictive_draws, random_effects_weights,
                               stacked_posterior, summary_quantiles, summary_tau)

FAIL_COLOR = "tab:red"
RATIO_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)  # labelled ticks of a log ratio axis
DIAGNOSTIC_VARS = ("mu", "tau", "tau_technique", "technique_effect")
SENSITIVITY_COLUMNS = ("scenario", "parameter", "q2.5", "q50", "q97.5", "p_gt_0", "verdict")
# Which SE routes rest on a reported spread (SD, CI, t) and which on a p-value alone.
SE_FROM_P = {"p_value": "SE from exact p-value", "p_bound": "SE from p-value bound (p < ...)"}


def _new_ax(ax, figsize):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def _interval(draws: np.ndarray) -> tuple[float, float, float]:
    lo, mid, hi = np.quantile(draws, (0.025, 0.5, 0.975))
    return lo, mid, hi


def _row_medians(draws: np.ndarray) -> np.ndarray:
    """np.median(draws, axis=1), a block of rows at a time: the same values without np.median's
    copy of the whole array (1,000 studies x 4,000 draws: 32 MB of fresh pages, ~0.1 s, issue 26)."""
    step = max(1, 16_000 // max(draws.shape[1], 1))
    blocks = [np.median(draws[i:i + step], axis=1) for i in range(0, draws.shape[0], step)]
    return np.concatenate(blocks) if blocks else np.median(draws, axis=1)


def _diamond(ax, y: float, lo: float, mid: float, hi: float, color: str, gid: str, height: float = 0.35):
    ax.fill([lo, mid, hi, mid], [y, y + height, y, y - height], color=color, zorder=3, gid=gid)


def _synthetic_note(effects: pd.DataFrame) -> str:
    if "synthetic" in effects and effects["synthetic"].astype(bool).any():
        return "SYNTHETIC DATA (not evidence)"
    return ""


def _label_right(ax, y: float, text: str, color: str = "0.2"):
    """Numbers in a column right of the axes (x in axes coordinates, y in data)."""
    ax.text(1.02, y, text, transform=ax.get_yaxis_transform(), va="center", ha="left", fontsize=8,
            color=color, family="monospace")


def _fmt(lo: float, mid: float, hi: float) -> str:
    return f"{_num(mid):>6} [{_num(lo):>6}, {_num(hi):>6}]"


def _num(value: float) -> str:
    """Two decimals, and never "-0.00"."""
    text = f"{value:.2f}"
    return "0.00" if text == "-0.00" else text


def _estimate(lo: float, mid: float, hi: float) -> str:
    return f"{_num(mid)} [{_num(lo)}, {_num(hi)}]"


# Forest plot layout, in inches (text columns sit at fixed distances from the plot area).
FOREST_PLOT_WIDTH = 3.4
# One row per study at FOREST_ROW_HEIGHT inches and 120 dpi: past ~2,270 rows the PNG exceeds
# matplotlib's 65,536-pixel limit, and 20,000 rows took over a minute to lay out (issue 25).
MAX_FOREST_STUDIES = 2000
FOREST_ROW_HEIGHT = 0.24
FOREST_CHAR = 0.066  # width of one character at the forest's 8-point font
FOREST_INDENT = 0.16
ROB_COLORS = {"low": "#2e7d32", "some concerns": "#d49b00", "moderate": "#d49b00", "high": "#c62828",
              "serious": "#c62828", "critical": "#7b1010", "no information": "0.55"}
ROB_SHORT = {"some concerns": "some", "no information": "n/i"}
PRE_POST = "pre_post"


def _favours(table: pd.DataFrame, favours) -> tuple[str, str] | None:
    """(left, right) labels under the axis: where effects favour the comparator and the technique.

    From the outcome's declared direction ("higher" is better: a positive effect favours the
    technique); no labels when the rows disagree on the direction."""
    if favours is not None:
        return tuple(favours)
    directions = set(table["direction"].dropna()) if "direction" in table else {"higher"}
    if len(directions) != 1:
        return None
    techniques, comparators = set(table["technique"]), set(table["comparator"])
    treat = next(iter(techniques)) if len(techniques) == 1 else "technique"
    comp = next(iter(comparators)) if len(comparators) == 1 else "comparator"
    pair = (f"favours {comp}", f"favours {treat}")
    return pair if directions == {"higher"} else pair[::-1]


def _forest_rows(table: pd.DataFrame, post, idata, summary: pd.DataFrame | None = None) -> list[dict]:
    """One dict per row, top to bottom: kind, label, indent and the interval on the yi scale; the
    posterior rows from `summary` where it has them, else from the draws."""
    def posterior(row: str, draws) -> tuple[float, float, float]:
        return summary_quantiles(summary, row) or _interval(draws())

    has_tech = "technique_effect" in post
    indent = 1 if has_tech else 0
    rows = []
    for tech in (sorted(table["technique"].unique()) if has_tech else [None]):
        members = table if tech is None else table[table["technique"] == tech]
        if tech is not None:
            rows.append({"kind": "header", "label": tech, "indent": 0})
        for r in members.itertuples():
            lo, hi = (r.yi, r.yi) if r.censored else (r.yi - 1.96 * r.sei, r.yi + 1.96 * r.sei)
            rows.append({"kind": "study", "label": str(r.study_id), "indent": indent, "row": r,
                         "interval": (lo, r.yi, hi)})
        if tech is not None:
            rows.append({"kind": "technique", "label": "Technique effect", "indent": indent, "technique": tech,
                         "interval": posterior(f"technique: {tech}",
                                               lambda: post["technique_effect"].sel(technique=tech).to_numpy())})
    rows.append({"kind": "pooled", "label": "Pooled (mu)", "indent": 0,
                 "interval": posterior(MU_ROW, lambda: post["mu"].to_numpy())})
    if "tau" in post:  # a common-effect model has no between-study spread to predict with
        rows.append({"kind": "prediction", "label": "Prediction, new study", "indent": 0,
                     "interval": posterior(PREDICTION_ROW, lambda: predictive_draws(idata))})
    return rows


def _forest_texts(rows: list[dict], scale) -> list[str]:
    """The estimate column, aligned: median [lower, upper], each number right-justified."""
    numbers = [[_num(scale(v)) for v in (r["interval"][1], r["interval"][0], r["interval"][2])]
               if "interval" in r else None for r in rows]
    width = [max((len(n[k]) for n in numbers if n), default=0) for k in range(3)]
    texts = []
    for row, n in zip(rows, numbers):
        if n is None:
            texts.append("")
        elif row["kind"] == "study" and row["row"].censored:
            texts.append(f"{'>' if row['row'].yi > 0 else '<'}{n[0]:>{width[0] - 1}} (bound)")
        else:
            texts.append(f"{n[0]:>{width[0]}} [{n[1]:>{width[1]}}, {n[2]:>{width[2]}}]")
    return texts


INTERVAL_KIND = {"study": "CI", "technique": "CrI", "pooled": "CrI", "prediction": "PI"}


# "Surname AB," / "Surname," / "Two Surnames AB": a citation that opens with its first author
AUTHOR = r"^([A-Z][\w'()-]*),|^([A-Z][\w'()-]*(?: [A-Z][\w'()-]*)?) [A-Z]{1,4}(?=[,.\s]|$)"


def author_year(studies: pd.DataFrame) -> dict[str, str]:
    """{study_id: "Hesti 2017"}: the first author's surname, when the citation opens with one
    ("Hesti KY, Pramono N, ..."), and the year (the `year` column, else a year in the citation). A
    citation that opens with a title or "(authors not in stored copy)" keeps the study id; two
    studies with the same label get their study id added.

    Example:
        >>> author_year(pd.DataFrame({"study_id": ["h17", "x"], "year": [2017, 2020],
        ...     "citation": ["Hesti KY, Pramono N. Effect of ...", "(authors not in stored copy) Pengaruh ..."]}))
        {'h17': 'Hesti 2017', 'x': 'x'}
    """
    import re

    out = {}
    for row in studies.itertuples():
        citation = str(getattr(row, "citation", "") or "").strip()
        found = re.match(AUTHOR, citation)
        if not found:
            out[row.study_id] = str(row.study_id)
            continue
        year = getattr(row, "year", None)
        if year is None or pd.isna(year):
            in_text = re.search(r"\b(1[89]\d\d|20\d\d)\b", citation)
            year = in_text.group(1) if in_text else ""
        out[row.study_id] = f"{found.group(1) or found.group(2)} {year if isinstance(year, str) else int(year)}".strip()
    counts = pd.Series(list(out.values())).value_counts()
    return {sid: (f"{label} ({sid})" if counts[label] > 1 and label != sid else label) for sid, label in out.items()}


def _arm_texts(studies: pd.DataFrame | None, table: pd.DataFrame) -> dict[str, tuple[str, str]] | None:
    """{study_id: (treatment arm, comparator arm)} as printed in the study table: events/n for
    counts, mean (SD) for means, a pre/post row's post and baseline; None when no row has arm data."""
    if studies is None:
        return None
    info = studies.set_index("study_id")

    def cell(row, mean, sd):
        m, d = row.get(mean), row.get(sd)
        if m is None or pd.isna(m):
            return ""
        return f"{m:g} ({d:g})" if d is not None and pd.notna(d) else f"{m:g}"

    out = {}
    ids = [sid for sid in table["study_id"] if sid in info.index]
    # one selection, then plain dicts (info.loc per study cost ~1 ms: 1 s at 1,000 studies, issue 26)
    for sid, row in zip(ids, info.loc[ids].to_dict("records")):
        if pd.notna(row.get("events_treat")) and pd.notna(row.get("n_treat")):
            pair = (f"{row['events_treat']:.0f}/{row['n_treat']:.0f}", f"{row['events_ctrl']:.0f}/{row['n_ctrl']:.0f}")
        elif row.get("design") == PRE_POST:
            pair = (cell(row, "mean_post", "sd_post"), cell(row, "mean_pre", "sd_pre"))
        else:
            pair = (cell(row, "mean_treat", "sd_treat"), cell(row, "mean_ctrl", "sd_ctrl"))
        if any(pair):
            out[sid] = pair
    return out or None


def _weights(table: pd.DataFrame, post, summary: pd.DataFrame | None = None) -> dict[str, float]:
    """Random-effects weight (%) of each uncensored study: 1/(se^2 + tau^2) at the posterior median
    tau (the summary's when given; 0 without one), as RevMan's and metafor's forest plots; a
    censored row has no weight."""
    tau = summary_tau(summary) if summary is not None else None
    if tau is None:
        tau = float(np.median(post["tau"].to_numpy())) if "tau" in post and post["tau"].ndim == 1 else 0.0
    kept = table[~table["censored"].astype(bool)]
    w = random_effects_weights(kept["sei"].to_numpy(float) ** 2, tau)
    return dict(zip(kept["study_id"], 100 * w / w.sum()))


def heterogeneity_text(table: pd.DataFrame, idata, summary: pd.DataFrame | None = None) -> str:
    """The line under the pooled row: tau² (posterior median and 95% CrI; squared from the summary's
    tau row when given), the one labelled I² (methods.heterogeneity.headline_i2) and Cochran's Q on
    the uncensored rows."""
    from ..methods.frequentist import cochran_q
    from ..methods.heterogeneity import headline_i2

    post = stacked_posterior(idata)
    parts = []
    if "tau" in post and post["tau"].ndim == 1:
        quoted = summary_quantiles(summary, TAU_ROW)
        lo, mid, hi = np.square(quoted) if quoted else _interval(post["tau"].to_numpy() ** 2)
        parts.append(f"tau\u00b2 {mid:.2f} [{lo:.2f}, {hi:.2f}] CrI")
    try:
        found = headline_i2(idata)
    except ValueError:  # a fit without its sampling variances: the table's
        found = headline_i2(idata, vi=table["sei"].to_numpy(float) ** 2)
    except KeyError:
        found = None
    if found is not None:
        label, draws = found
        parts.append(f"{label.removesuffix('; posterior)') + ')'} {np.median(draws):.0f}% (posterior median)")
    kept = table[~table["censored"].astype(bool)]
    if len(kept) >= 2:
        q, df, p = cochran_q(kept["yi"].to_numpy(float), kept["sei"].to_numpy(float) ** 2)
        p_text = "< 0.001" if p < 0.001 else f"= {p:.3f}"
        parts.append(f"Q = {q:.2f}, df = {df}, p {p_text}" + (" (uncensored rows)" if len(kept) < len(table) else ""))
    return "Heterogeneity: " + "; ".join(parts) if parts else ""


def forest(idata: xr.DataTree, effects: pd.DataFrame, ax=None, threshold: float | None = 0.0,
           favours: tuple[str, str] | None = None, studies: pd.DataFrame | None = None,
           summary: pd.DataFrame | None = None):
    """Forest plot in the layout of metafor's forest() and RevMan.

    Columns: study (grouped and indented by technique when the model has technique effects), n,
    risk of bias (when the table has a `rob` judgement), the plot, and the estimate [95% interval]
    (studies: observed yi and its 95% CI; diamonds: posterior median and 95% CrI; the red bar: 95%
    prediction interval for a new study). Study squares have area proportional to the precision
    1/se^2; open squares are pre/post (single-group) designs, filled ones controlled comparisons.
    A censored row (the effect lies beyond the value at a reported p-value bound) is a triangle at
    the bound with an arrow towards the side where the effect lies. Blue dots: posterior median
    of each study's effect. Ratio measures (RR, OR, ROM) are drawn back-transformed on a log axis.
    "favours" labels come from the outcome's direction (or `favours=(left, right)`). `threshold`
    draws a dashed line at a value of interest (on the yi scale) besides the line of no effect.
    `effects` must be the table the model was fitted on. With `studies` (the study table) the rows
    are labelled author-year (citation and year) and the arms' data (events/n or mean (SD)) are
    shown. Every study has its weight (%, 1/(se^2 + tau^2) at the posterior median tau); under the
    pooled row a heterogeneity line gives tau², the labelled I² and Cochran's Q; each interval says
    what it is: CI (a study's), CrI (posterior), PI (prediction). `summary`: the fit's summarize()
    table (the exact engine's is exact): the technique, pooled and prediction rows, tau² and the
    weights' tau are then its figures, the ones the rest of the output quotes, not draw quantiles.
    """
    table = used_effects(effects)
    post = stacked_posterior(idata)
    missing = sorted(set(table["study_id"]) - set(post["study"].to_numpy()))
    if missing:
        raise ValueError(f"studies {missing} are in the effect table but not in the fit; "
                         "pass the effect table the model was fitted on")
    measure = idata.attrs.get("measure", effects.attrs.get("measure", "effect"))
    ratio = measure in RATIO_MEASURES
    scale = np.exp if ratio else (lambda v: v)
    rows = _forest_rows(table, post, idata, summary)
    names = author_year(studies[studies["study_id"].isin(table["study_id"])]) if studies is not None else {}
    for row in rows:
        if row["kind"] == "study":
            row["label"] = names.get(row["row"].study_id, row["label"])
    arms = _arm_texts(studies, table)
    weights = _weights(table, post, summary)
    hetero = heterogeneity_text(table, idata, summary)
    if hetero:  # its own row under the pooled (and prediction) rows
        rows.append({"kind": "heterogeneity", "label": hetero, "indent": 0})
    texts = _forest_texts(rows, scale)
    has_rob = "rob" in table and table["rob"].notna().any()

    # widths of the text columns (inches), left of the plot: study | n | RoB; right: estimate
    label_w = max(len(r["label"]) * FOREST_CHAR + r["indent"] * FOREST_INDENT
                  for r in rows + [{"kind": "header", "label": "Study", "indent": 0}] if r["kind"] != "heterogeneity") + 0.15
    arm_w = (max(len(t) for pair in arms.values() for t in pair + ("Comparator",)) * FOREST_CHAR + 0.3
             if arms else 0.0)
    n_w, rob_w = 0.45, (0.55 if has_rob else 0.0)
    left_w = label_w + 2 * arm_w + n_w + rob_w + 0.1
    weight_w = 0.55
    right_w = max(len(t) for t in texts + ["Estimate [95% interval]"]) * FOREST_CHAR + 0.45 + weight_w
    title = " - ".join(t for t in (_synthetic_note(table), idata.attrs.get("analysis", "")) if t)
    if ax is None:
        width = left_w + FOREST_PLOT_WIDTH + right_w + 0.2
        top_w = 0.62 if title else 0.4
        height = FOREST_ROW_HEIGHT * len(rows) + top_w + 1.2
        fig, ax = plt.subplots(figsize=(width, height))
        fig.subplots_adjust(left=(left_w + 0.1) / width, right=1 - (right_w + 0.1) / width,
                            top=1 - top_w / height, bottom=1.15 / height)
    fig = ax.figure
    plot_w = ax.get_position().width * fig.get_figwidth()  # inches
    at = lambda inches: inches / plot_w  # noqa: E731  (axes fraction of an offset in inches)
    where = ax.get_yaxis_transform()  # x in axes fraction, y in data
    text_kw = dict(transform=where, va="center", fontsize=8, clip_on=False)
    x_label, x_n, x_rob, x_est = at(-left_w), at(-rob_w - 0.12), at(-rob_w / 2 - 0.05), 1 + at(0.12)
    x_treat, x_ctrl = at(-rob_w - n_w - arm_w - 0.12), at(-rob_w - n_w - 0.12)  # right-aligned arm columns
    est_w = max(len(t) for t in texts) * FOREST_CHAR
    x_kind, x_weight = 1 + at(0.12 + est_w + 0.08), 1 + at(right_w - 0.05)

    # x range on the yi scale: every drawn interval, the censored bounds and the null line
    ends = [v for r in rows for v in r.get("interval", ())] + [0.0] + ([threshold] if threshold is not None else [])
    lo_x, hi_x = min(ends), max(ends)
    pad = 0.06 * (hi_x - lo_x or 1.0)
    limits = (lo_x - pad, hi_x + pad)

    sei = table["sei"].to_numpy(float)
    precision_max = np.max(1 / sei[~table["censored"].to_numpy(bool)] ** 2, initial=0) or 1.0
    ys = np.arange(len(rows))[::-1].astype(float)
    # every study's posterior median at once (one xarray selection per row took ~2 ms: 2 s at 1,000 studies)
    theta_median = {} if "theta" not in post else dict(zip(
        post["study"].to_numpy(), _row_medians(post["theta"].transpose("study", ...).to_numpy())))
    # the study rows' texts as one TextColumn per column and their marks as collections: 1,000
    # studies drew ~7,000 artists (issue 26); the summary rows keep a Text or patch each
    columns: dict[tuple, list] = {}

    def cell(x, y, text, gid, **kw):
        key = (x, tuple(sorted(kw.items())))
        columns.setdefault(key, []).append((y, text, gid))

    segments, squares, sizes, faces, theta_xy = [], [], [], [], []
    for y, row, text in zip(ys, rows, texts):
        kind, (lo, mid, hi) = row["kind"], row.get("interval", (np.nan,) * 3)
        bold = kind in ("header", "pooled")
        if kind == "study":
            r = row["row"]
            sid = r.study_id
            cell(x_label + at(row["indent"] * FOREST_INDENT), y, row["label"], f"row-label:study:{sid}", ha="left")
            cell(x_est, y, text, f"estimate:study:{sid}", ha="left", family="monospace", color="black")
            cell(x_kind, y, "bound" if r.censored else INTERVAL_KIND[kind], f"interval-kind:study:{sid}", ha="left",
                 color="black")
            if sid in weights:
                cell(x_weight, y, f"{weights[sid]:.1f}", f"weight:{sid}", ha="right")
            if arms and sid in arms:
                cell(x_treat, y, arms[sid][0], f"arm-treat:{sid}", ha="right")
                cell(x_ctrl, y, arms[sid][1], f"arm-ctrl:{sid}", ha="right")
            if not np.isnan(r.n_total):
                cell(x_n, y, f"{r.n_total:.0f}", f"n:{sid}", ha="right")
            if has_rob and isinstance(r.rob, str):
                cell(x_rob, y, ROB_SHORT.get(r.rob, r.rob), f"rob:{sid}", ha="center",
                     color=ROB_COLORS.get(r.rob, "0.2"), fontweight="bold")
            face = "white" if r.design == PRE_POST else "black"
            if r.censored:
                side = 1 if r.yi > 0 else 0
                ax.annotate("", xy=(scale(limits[side]), y), xytext=(scale(r.yi), y),
                            arrowprops=dict(arrowstyle="-|>", color="0.25", lw=1, shrinkA=0, shrinkB=0,
                                            mutation_scale=8), gid=f"study-ci:{sid}")
                ax.plot(scale(r.yi), y, marker=">" if side else "<", ms=6, color="black", mfc=face, mew=1,
                        zorder=3, gid=f"study:{sid}")
            else:
                segments.append([(scale(lo), y), (scale(hi), y)])
                squares.append((scale(mid), y))
                sizes.append(max(3.0, 11.0 * np.sqrt((1 / r.sei**2) / precision_max)) ** 2)  # area ~ precision
                faces.append(face)
            theta_xy.append((scale(theta_median[sid]), y - 0.22))
            continue
        ax.text(x_label + at(row["indent"] * FOREST_INDENT), y, row["label"], ha="left", gid=f"row-label:{kind}",
                fontweight="bold" if bold else "normal", fontstyle="italic" if kind == "technique" else "normal",
                **text_kw)
        if kind in ("header", "heterogeneity"):
            continue
        color = "tab:red" if kind == "prediction" else "black"
        ax.text(x_est, y, text, ha="left", family="monospace", color=color, gid=f"estimate:{kind}", **text_kw)
        ax.text(x_kind, y, INTERVAL_KIND[kind], ha="left", color=color, gid=f"interval-kind:{kind}", **text_kw)
        if kind in ("technique", "pooled"):
            gid = "diamond:pooled" if kind == "pooled" else f"diamond:technique:{row['technique']}"
            _diamond(ax, y, scale(lo), scale(mid), scale(hi), "black" if kind == "pooled" else "0.45", gid=gid,
                     height=0.3)
        else:
            ax.plot([scale(lo), scale(hi)], [y, y], color="tab:red", lw=2.5, solid_capstyle="butt", gid="prediction")
    if segments:  # each uncensored study's 95% CI, its square (area ~ precision; open: pre/post)
        from matplotlib.collections import LineCollection

        ax.add_collection(LineCollection(segments, colors="0.25", linewidths=1, gid="study-ci"), autolim=False)
        ax.scatter(*np.transpose(squares), s=sizes, marker="s", facecolors=faces, edgecolors="black", linewidths=1,
                   zorder=3, gid="study")
    if theta_xy:  # the posterior median of each study's effect
        ax.plot(*np.transpose(theta_xy), "o", ls="", color="tab:blue", ms=3, zorder=4, gid="theta")
    from .text_column import TextColumn

    for (x, kw), cells in columns.items():
        ax.add_artist(TextColumn(ax, x, cells, **text_kw, **dict(kw)))

    # headers, above the first row, with a rule under them spanning all columns
    top = len(rows) - 0.2
    header_kw = dict(transform=where, va="bottom", fontsize=8, fontweight="bold", clip_on=False)
    ax.text(x_label, top + 0.25, "Study", ha="left", gid="header:study", **header_kw)
    ax.text(x_n, top + 0.25, "n", ha="right", gid="header:n", **header_kw)
    if has_rob:
        ax.text(x_rob, top + 0.25, "RoB", ha="center", gid="header:rob", **header_kw)
    if arms:
        ax.text(x_treat, top + 0.25, "Treatment", ha="right", gid="header:treatment", **header_kw)
        ax.text(x_ctrl, top + 0.25, "Comparator", ha="right", gid="header:comparator", **header_kw)
    ax.text(x_est, top + 0.25, "Estimate [95% interval]", ha="left", gid="header:estimate", **header_kw)
    ax.text(x_weight, top + 0.25, "Weight %", ha="right", gid="header:weight", **header_kw)
    ax.plot([x_label, 1 + at(right_w)], [top + 0.1, top + 0.1], transform=where, color="black", lw=0.6,
            clip_on=False, gid="rule:header")
    first_summary = next(i for i, r in enumerate(rows) if r["kind"] == "pooled")
    ax.plot([x_label, 1 + at(right_w)], [ys[first_summary] + 0.5] * 2, transform=where, color="0.6", lw=0.5,
            clip_on=False)

    null = scale(0.0)
    ax.axvline(null, color="0.2", lw=0.8, zorder=1, gid="null")
    if threshold is not None and threshold != 0:
        ax.axvline(scale(threshold), color="0.5", ls="--", lw=0.8, gid="threshold")
    if ratio:
        ax.set_xscale("log")
        ax.set_xlim(scale(limits[0]), scale(limits[1]))
        ax.set_xticks([v for v in RATIO_TICKS if scale(limits[0]) <= v <= scale(limits[1])])
        ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel(f"{measure} (log scale)", fontsize=8)
    else:
        ax.set_xlim(*limits)
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: _num(v) if abs(v) < 10 else f"{v:g}"))
        ax.set_xlabel(measure, fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_yticks([])
    for spine in ("left", "right", "top"):
        ax.spines[spine].set_visible(False)
    labels = _favours(table, favours)
    if labels:
        for text, sign, side in ((f"\u2190 {labels[0]}", -1, "left"), (f"{labels[1]} \u2192", 1, "right")):
            ax.annotate(text, xy=(null, 0), xycoords=ax.get_xaxis_transform(), xytext=(6 * sign, -30),
                        textcoords="offset points", ha="right" if sign < 0 else "left", va="top", fontsize=8,
                        gid=f"favours:{side}")
    _forest_legend(ax, table)
    if title:
        ax.text(x_label, top + 1.2, title, transform=where, fontsize=9, fontweight="bold", va="bottom",
                color=FAIL_COLOR if _synthetic_note(table) else "black", clip_on=False, gid="title")
    return fig


def _forest_legend(ax, table: pd.DataFrame):
    """What each mark means; only the marks the plot shows."""
    from matplotlib.lines import Line2D

    designs = set(table["design"])
    handles = []
    if designs - {PRE_POST}:
        handles.append(Line2D([], [], ls="", marker="s", color="black", label="controlled study, 95% CI"))
    if PRE_POST in designs:
        handles.append(Line2D([], [], ls="", marker="s", color="black", mfc="white", label="pre/post study, 95% CI"))
    if table["censored"].any():
        handles.append(Line2D([], [], ls="", marker=">", color="black", label="censored: effect beyond bound"))
    handles += [Line2D([], [], ls="", marker="o", ms=3, color="tab:blue", label="posterior study effect"),
                Line2D([], [], ls="", marker="D", color="black", label="posterior median, 95% CrI"),
                Line2D([], [], color="tab:red", lw=2.5, label="95% prediction interval")]
    # 0.5% of the height above the bottom edge, at most 0.1 inch (the same up to 20 inches): a tall
    # figure's 0.5% (1,000 studies: 1.2 inches) put the legend over the last rows
    bottom = min(0.005, 0.1 / ax.figure.get_figheight())
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, bottom), bbox_transform=ax.figure.transFigure,
              ncol=3, fontsize=7, frameon=False, handlelength=1.5, columnspacing=1.2)


def contour_z(contours=(0.90, 0.95, 0.99)) -> np.ndarray:
    """Two-sided critical z for each contour level, e.g. 0.95 -> 1.96."""
    levels = np.sort(np.asarray(contours, dtype=float))
    if levels.size == 0 or np.any((levels <= 0) | (levels >= 1)) or np.unique(levels).size != levels.size:
        raise ValueError(f"contours {tuple(contours)}: need distinct levels strictly between 0 and 1")
    return norm_ppf(1 - (1 - levels) / 2)


def funnel(effects: pd.DataFrame, ax=None, center: float | None = None, contours=(0.90, 0.95, 0.99)):
    """Contour-enhanced funnel plot (Peters et al. 2008): yi against its SE, SE axis inverted.

    Shaded bands mark where a study's two-sided test against zero has p between consecutive
    levels: |yi| between z_a * se and z_b * se (z = 1.645, 1.96, 2.576 for 0.90, 0.95, 0.99).
    Marker shape says how the SE was obtained: an SE back-calculated from a p-value puts the
    point on that p's contour by construction, so such points say nothing about asymmetry.
    `center` (e.g. the pooled estimate) draws a vertical line.
    """
    table = used_effects(effects)
    table = table[np.isfinite(table["yi"]) & np.isfinite(table["sei"])]
    if table.empty:
        raise ValueError("funnel: no usable effect sizes (see evsynth.effects.not_used)")
    levels = np.sort(np.asarray(contours, dtype=float))
    z = contour_z(levels)
    ax = _new_ax(ax, (6.5, 4.5))
    fig = ax.figure

    se_max = float(table["sei"].max()) * 1.15
    x_lim = max(float(np.abs(table["yi"]).max()), z[-1] * se_max) * 1.1
    if center is not None:
        x_lim = max(x_lim, abs(center) * 1.1)
    se = np.linspace(0, se_max, 50)
    shades = np.linspace(0.9, 0.7, len(levels))  # lighter = closer to p = 0.10
    for k, (level, z_in) in enumerate(zip(levels, z)):
        outer = z[k + 1] * se if k + 1 < len(z) else np.full_like(se, x_lim)
        p_hi, p_lo = 1 - level, (1 - levels[k + 1]) if k + 1 < len(z) else None
        label = f"{p_lo:g} < p < {p_hi:g}" if p_lo is not None else f"p < {p_hi:g}"
        for side, name in ((1, label), (-1, "_nolegend_")):
            ax.fill_betweenx(se, side * z_in * se, side * outer, color=str(shades[k]), lw=0, zorder=0,
                             label=name, gid=f"contour:{level:g}")
        ax.plot([-z_in * se_max, 0, z_in * se_max], [se_max, 0, se_max], color="0.5", lw=0.5, zorder=1,
                gid=f"contour-line:{level:g}")

    routes = table["se_route"].map(lambda r: SE_FROM_P.get(r, "SE from SD, CI or t"))
    routes = routes.where(~table["censored"].astype(bool), "censored (yi is a bound)")
    markers = {"SE from SD, CI or t": "o", "SE from exact p-value": "^",
               "SE from p-value bound (p < ...)": "v", "censored (yi is a bound)": ">"}
    for route, group in table.groupby(routes, sort=True):
        ax.plot(group["yi"], group["sei"], ls="none", marker=markers[route], color="black", ms=6, zorder=4,
                label=route, gid=f"studies:{route}")
    if len(table) <= 12:
        for row in table.itertuples():  # labels point inwards, so that they stay inside the axes
            inward = -1 if row.yi > 0.3 * x_lim else 1
            ax.annotate(row.study_id, (row.yi, row.sei), xytext=(5 * inward, 3), textcoords="offset points",
                        fontsize=7, ha="left" if inward > 0 else "right", gid=f"label:{row.study_id}")
    if center is not None:
        ax.axvline(center, color="tab:blue", lw=1.2, label=f"pooled estimate ({center:.2f})", gid="center")
    ax.axvline(0, color="0.3", lw=0.6, ls=":")
    ax.set_xlim(-x_lim, x_lim)
    ax.set_ylim(se_max, 0)  # inverted: precise studies at the top
    measure = effects.attrs.get("measure", "effect")
    ax.set_xlabel(f"{measure} (yi)")
    ax.set_ylabel("standard error (sei)")
    note = _synthetic_note(table)
    ax.set_title("Contour-enhanced funnel plot" + (f" - {note}" if note else ""), fontsize=10)
    ax.legend(fontsize=7, loc="lower left", framealpha=0.9)
    fig.tight_layout()
    return fig


def regplot(effects: pd.DataFrame, moderator: str, fit: MetaRegression | None = None, beta_draws=None,
            ax=None, back_transform: bool = True, n_grid: int = 100):
    """Bubble plot of a meta-regression on one continuous moderator (metafor's regplot).

    Each used study is a circle at (moderator, yi), its area proportional to its weight
    1 / (vi + tau^2) in the fit; the fitted line and its 95% CI band come from `fit` (default: the
    REML meta-regression `mods = [moderator]`, frequentist.meta_regression), with the 95% prediction
    band dashed. `beta_draws` (n_draws x 2 posterior draws of intercept and slope, e.g. from a Bayesian
    meta-regression) adds the posterior median line and its 95% credible band. Ratio measures (RR, OR,
    ROM) are drawn back-transformed (exp) on a log axis unless back_transform=False.
    """
    table = used_effects(effects)
    if moderator not in table.columns:
        raise ValueError(f"regplot: moderator column {moderator!r} not in the effect table")
    fit = meta_regression(table, [moderator]) if fit is None else fit
    if list(fit.coefficients.index) != ["intrcpt", moderator]:
        raise ValueError(f"regplot draws one moderator: the fit's terms are {list(fit.coefficients.index)}, "
                         f"expected ['intrcpt', {moderator!r}]")
    x = table[moderator].to_numpy(float)
    measure = effects.attrs.get("measure", "effect")
    scale = np.exp if back_transform and measure in RATIO_MEASURES else (lambda v: v)
    ax = _new_ax(ax, (6.5, 4.5))
    fig = ax.figure

    weights = 1 / (table["vi"].to_numpy(float) + fit.tau2)
    sizes = 400 * weights / weights.max()  # area proportional to weight, the largest 400 pt^2
    ax.scatter(x, scale(table["yi"].to_numpy(float)), s=sizes, facecolor="0.75", edgecolor="black", zorder=3,
               gid="studies", label="studies (area ~ weight)")
    grid = np.linspace(x.min(), x.max(), n_grid)
    X_grid = np.column_stack([np.ones_like(grid), grid])
    pred = fit.predict(X_grid)
    ax.plot(grid, scale(pred["pred"]), color="black", lw=1.5, gid="fitted", label="REML fit")
    ax.fill_between(grid, scale(pred["ci_low"]), scale(pred["ci_high"]), color="0.6", alpha=0.35, lw=0,
                    gid="band:ci", label="95% CI")
    for column in ("pi_low", "pi_high"):
        ax.plot(grid, scale(pred[column]), color="0.4", lw=0.8, ls="--", gid=f"band:{column}",
                label="95% prediction interval" if column == "pi_low" else "_nolegend_")
    if beta_draws is not None:
        beta = np.asarray(beta_draws, dtype=float)
        if beta.ndim != 2 or beta.shape[1] != 2:
            raise ValueError(f"beta_draws must be n_draws x 2 (intercept, slope), not shape {beta.shape}")
        lines = beta @ X_grid.T  # one fitted line per draw
        lo, mid, hi = np.quantile(lines, (0.025, 0.5, 0.975), axis=0)
        ax.plot(grid, scale(mid), color="tab:blue", lw=1.5, gid="bayes:median", label="posterior median")
        ax.fill_between(grid, scale(lo), scale(hi), color="tab:blue", alpha=0.2, lw=0, gid="band:bayes",
                        label="95% credible band")
    if scale is np.exp:
        ax.set_yscale("log")
        low, high = ax.get_ylim()
        ax.set_yticks([v for v in RATIO_TICKS if low <= v <= high])
        ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        ax.axhline(1.0, color="0.3", lw=0.6, ls=":")
        ax.set_ylabel(f"{measure} (log scale)")
    else:
        ax.axhline(0.0, color="0.3", lw=0.6, ls=":")
        ax.set_ylabel(f"{measure} (yi)")
    ax.set_xlabel(moderator)
    slope = fit.coefficients.loc[moderator]
    note = _synthetic_note(table)
    ax.set_title(f"Meta-regression on {moderator}: slope {slope.estimate:.3g} "
                 f"[{slope.ci_low:.3g}, {slope.ci_high:.3g}]" + (f" - {note}" if note else ""), fontsize=10)
    ax.legend(fontsize=7, framealpha=0.9)
    fig.tight_layout()
    return fig


def sensitivity_plot(table: pd.DataFrame, parameter: str = "pooled (mu)", ax=None, threshold: float | None = 0.0):
    """One row per sensitivity scenario: median and 95% interval of `parameter`.

    `table` is tidy (evsynth.methods.sensitivity's output): columns scenario, parameter, q2.5, q50,
    q97.5, p_gt_0, verdict (and problems). Scenarios whose fit failed its diagnostics
    (verdict FAIL) are drawn in red and labelled FAIL; their numbers are not to be trusted.
    """
    missing = [c for c in SENSITIVITY_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"sensitivity table lacks columns {missing}")
    rows = table[table["parameter"] == parameter].reset_index(drop=True)
    if rows.empty:
        raise ValueError(f"parameter {parameter!r} not in the sensitivity table; "
                         f"available: {sorted(table['parameter'].unique())}")
    own_figure = ax is None
    ax = _new_ax(ax, (9, 0.35 * len(rows) + 1.3))
    fig = ax.figure
    ys = np.arange(len(rows))[::-1]
    labels = []
    for y, (_, row) in zip(ys, rows.iterrows()):
        lo, mid, hi = (float(row[q]) for q in ("q2.5", "q50", "q97.5"))
        scenario = str(row["scenario"])
        if str(row.get("problems", "")).startswith("not fitted"):  # too few studies: no fit, not a failure
            labels.append(f"{scenario}  [not fitted]")
            _label_right(ax, y, "not fitted: " + str(row["problems"]).removeprefix("not fitted: "), color="0.5")
            continue
        failed = str(row["verdict"]).upper() != "PASS"
        color = FAIL_COLOR if failed else "black"
        labels.append(f"{scenario}  [FAIL]" if failed else scenario)
        if np.isfinite([lo, mid, hi]).all():
            ax.plot([lo, hi], [y, y], color=color, lw=1.5, gid=f"scenario:{scenario}")
            ax.plot(mid, y, "X" if failed else "o", color=color, ms=6, zorder=3, gid=f"median:{scenario}")
            p = float(row["p_gt_0"])
            text = _fmt(lo, mid, hi) + (f"  P(>0) {p:.2f}" if np.isfinite(p) else "")
        else:
            text = "not estimated"
        _label_right(ax, y, text + ("  FAIL" if failed else ""), color=color)
    ax.set_yticks(ys, labels)
    for tick, label in zip(ax.get_yticklabels(), labels):
        if label.endswith("[FAIL]"):
            tick.set_color(FAIL_COLOR)
        elif label.endswith("[not fitted]"):
            tick.set_color("0.5")
    if threshold is not None:
        ax.axvline(threshold, color="0.6", ls="--", lw=0.8, gid="threshold")
    ax.set_xlabel(f"{parameter}: posterior median and 95% interval per scenario "
                  "(red X / FAIL: diagnostics failed)", fontsize=8)
    ax.set_ylim(-0.8, len(rows) - 0.2)
    if own_figure:  # long scenario labels (exclusion rules) get the width they need, not a clipped axis
        fig.set_size_inches(max(9.0, 6.0 + 0.075 * max(map(len, labels))), fig.get_size_inches()[1])
    fig.tight_layout()
    return fig


def prior_posterior(idata: xr.DataTree, var: str = "tau", ax=None):
    """Posterior histogram of a scalar parameter with its prior density on top.

    With few studies the posterior of tau stays close to its prior: the data cannot tell how
    much studies differ, and this plot shows it instead of hiding it.
    """
    if var not in idata.posterior:
        raise ValueError(f"{var!r} is not in the posterior; it has {sorted(idata.posterior.data_vars)}")
    import arviz as az  # here: the forest plot of `fit` needs none of ArviZ

    draws = az.extract(idata, var_names=[var]).to_numpy().ravel()
    ax = _new_ax(ax, (6, 3.5))
    fig = ax.figure
    ax.hist(draws, bins=50, density=True, color="tab:blue", alpha=0.5, label="posterior", gid="posterior")
    prior_text = idata.attrs.get(f"prior_{var}")
    if prior_text:
        prior = parse_prior(prior_text)
        upper = max(np.quantile(draws, 0.995), 1e-9)
        lower = 0.0 if prior.support == "positive" else np.quantile(draws, 0.005)
        grid = np.linspace(lower, upper, 200)
        ax.plot(grid, np.exp(prior.logpdf(grid)), color="black", lw=1.5, label=f"prior {prior}", gid="prior")
    lo, mid, hi = _interval(draws)
    ax.set_title(f"{var}: median {mid:.2f}, 95% interval [{lo:.2f}, {hi:.2f}]", fontsize=10)
    ax.set_xlabel(var)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def predictive_check(idata: xr.DataTree, ax=None, seed: int = 0):
    """Per study: observed yi against two 95% predictive intervals.

    - posterior predictive (idata.posterior_predictive['y'], from pm.sample_posterior_predictive):
      a replicate of the same study, whose theta was fitted to that study;
    - new-study replicate: theta drawn afresh from its technique (or mu) and tau, then y from
      N(theta, sei). This one can flag a study that does not fit with the others.
    """
    post = idata.posterior
    constant = idata.constant_data
    studies = list(post["study"].to_numpy())
    # pm.sample_posterior_predictive(extend_inferencedata=True) rewrites constant_data with the
    # model's non-observed data only (yi is observed data there), so read yi from observed_data.
    observed = (idata["observed_data"]["y"] if "observed_data" in idata.children else constant["yi"]).to_numpy()
    sei = constant["sei"].to_numpy()
    import arviz as az

    stacked = az.extract(idata, keep_dataset=True)
    rng = np.random.default_rng(seed)
    n = stacked.sizes["sample"]
    if "technique_effect" in stacked and "technique_idx" in constant:
        centre = stacked["technique_effect"].to_numpy()[constant["technique_idx"].to_numpy()]  # study x sample
    else:
        centre = np.broadcast_to(stacked["mu"].to_numpy(), (len(studies), n))
    tau = stacked["tau"].to_numpy() if "tau" in stacked else np.zeros(n)
    fresh = centre + tau * rng.standard_normal(centre.shape) + sei[:, None] * rng.standard_normal(centre.shape)

    ax = _new_ax(ax, (7, 0.45 * len(studies) + 1.3))
    fig = ax.figure
    ys = np.arange(len(studies))[::-1]
    has_pp = "posterior_predictive" in idata and "y" in idata.posterior_predictive
    if has_pp:
        rep = az.extract(idata, group="posterior_predictive", var_names=["y"]).transpose("study", ...).to_numpy()
    for k, (y, study) in enumerate(zip(ys, studies)):
        if has_pp:
            lo, _, hi = _interval(rep[k])
            ax.plot([lo, hi], [y + 0.12, y + 0.12], color="tab:blue", lw=2, gid=f"ppc:{study}",
                    label="posterior predictive (same study)" if k == 0 else "_nolegend_")
        lo, _, hi = _interval(fresh[k])
        ax.plot([lo, hi], [y - 0.12, y - 0.12], color="tab:orange", lw=2, gid=f"new-study:{study}",
                label="replicate as a new study" if k == 0 else "_nolegend_")
        p_new = float((fresh[k] > observed[k]).mean())
        ax.plot(observed[k], y, "kD", ms=6, zorder=3, gid=f"observed:{study}",
                label="observed yi" if k == 0 else "_nolegend_")
        _label_right(ax, y, f"P(new > obs) {p_new:.2f}")
    ax.set_yticks(ys, studies)
    ax.set_xlabel(f"{idata.attrs.get('measure', 'effect')}: 95% predictive intervals", fontsize=8)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def _diagnostic_vars(idata, var_names):
    if var_names is not None:
        return list(var_names)
    return [v for v in DIAGNOSTIC_VARS if v in idata.posterior]


def _figure(plot_collection):
    """The matplotlib Figure behind an arviz-plots PlotCollection."""
    fig = plot_collection.viz["figure"].item()
    fig.tight_layout()
    return fig


def trace(idata: xr.DataTree, var_names=None):
    """ArviZ trace plot (per-chain densities and traces) of the model's top-level parameters;
    returns the Figure. Chains that disagree show as densities and traces that do not overlap."""
    import arviz as az

    return _figure(az.plot_trace_dist(idata, var_names=_diagnostic_vars(idata, var_names), backend="matplotlib"))


def rank(idata: xr.DataTree, var_names=None):
    """ArviZ rank plot (fractional-rank ECDF differences with a simultaneous envelope), one panel
    per parameter; curves inside the envelope mean the chains agree."""
    import arviz as az

    return _figure(az.plot_rank(idata, var_names=_diagnostic_vars(idata, var_names), backend="matplotlib"))
