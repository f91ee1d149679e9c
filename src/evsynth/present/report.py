"""The HTML report: the main job written as one self-contained file (tables, verdicts, and
forest/funnel/tau figures as base64 PNG), for readers who do not open notebooks. `write_report`
takes the results of evsynth.methods.analysis.run_analysis; the command is evsynth.cli.report.
"""

from __future__ import annotations

import base64
import html
import io
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..methods.analysis import AnalysisResult, entered_rows
from ..methods.analysis import rows_not_in_model as analysis_rows_not_in_model
from ..methods.conflict import prior_data_conflict
from ..methods.designs import design_moderator, prepost_weight_share
from ..methods.summary import MU_ROW, summarize, summary_quantiles, summary_tau
from ..effects.table import RATIO_MEASURES, used_effects
from ..effects.techniques import format_coverage, technique_coverage

SE_ROUTE_WORDS = {
    "sd": "from the reported SDs",
    "sd_change": "from the reported SD of the change",
    "t_stat": "from the t statistic",
    "t_sd": "SD of the change from the printed paired t and the SDs (the pre/post correlation they imply, "
            "not an assumed one)",
    "p_sd": "SD of the change from the printed exact p and the SDs (the pre/post correlation they imply)",
    "ci": "from the 95% CI",
    "p_value": "back-calculated from an exact p-value (as if from a t-test; a rank test's p through the normal "
               "quantile, which leans towards zero)",
    "p_bound": "back-calculated from a p-value bound (p < ...): an upper bound on the SE (a rank test's bound is "
               "used as the p, not censored)",
    "given": "given ready-made in the study table",
}
SE_ROUTE_SHORT = {"sd": "reported SDs", "sd_change": "SD of the change", "t_stat": "t statistic", "ci": "95% CI",
                  "t_sd": "paired t with SDs", "p_sd": "paired p with SDs",
                  "p_value": "exact p-value", "p_bound": "p-value bound", "given": "given", "censored": "censored"}
CENSORED_WORDS = ("censored: p known only as a bound, so yi is the effect at the bound and the true effect "
                  "lies beyond it (censored likelihood)")
# Effect table columns and the words a reader sees for them (metafor's names stay in the CSVs).
EFFECT_LABELS = {"study_id": "Study", "technique": "Technique", "comparator": "Comparator", "outcome": "Outcome",
                 "design": "Design", "source_level": "Source", "measure": "Measure", "yi": "Effect",
                 "sei": "SE", "how the SE was obtained": "How the SE was obtained", "rob": "Risk of bias",
                 "computable": "Effect size computed", "warnings": "Contradictions in the printed numbers",
                 "in_model": "Entered a model"}
DESIGN_WORDS = {"pre_post": "pre/post (one group)", "two_group": "two groups", "effect": "effect as printed"}
SUMMARY_LABELS = {"mean": "Mean", "sd": "SD", "q2.5": "2.5%", "q50": "Median", "q97.5": "97.5%"}
DIAGNOSTIC_LABELS = {"r_hat": "R-hat", "ess_bulk": "Bulk ESS", "ess_tail": "Tail ESS"}
NOT_USED_LABELS = {"study_id": "Study", "technique": "Technique", "comparator": "Comparator", "outcome": "Outcome",
                   "why_not": "Reason"}
MODEL_WORDS = {"random_effects": "random-effects", "common_effect": "common-effect",
               "by_technique": "per-technique (technique effects around a pooled mean)",
               "selection": "selection (publication bias)"}
RANK_TESTS = ("mann-whitney", "wilcoxon")

CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1.5em; max-width: 100%; }
td { overflow-wrap: break-word; max-width: 24em; } td:last-child { max-width: none; }
.results { font-size: 1.05em; line-height: 1.5; background: #f6f8fb; padding: 0.6em 1em; border-left: 4px solid #4a6fa5; }
.refs li { margin: 0.25em 0; overflow-wrap: anywhere; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } .num { text-align: right; font-variant-numeric: tabular-nums; }
.banner { padding: 0.6em 1em; margin: 1em 0; border-radius: 4px; font-weight: bold; }
.fail { background: #fde2e2; color: #8a1010; border: 2px solid #c62828; }
.pass { background: #e3f4e1; color: #1b5e20; }
.synthetic { background: #fff3cd; color: #6b4e00; border: 2px solid #d4a106; }
img { max-width: 100%; display: block; margin: 0.5em 0 1.5em; }
.note { color: #555; font-size: 0.9em; }
.answer { border: 2px solid #4a6fa5; border-radius: 6px; padding: 0.3em 1em; margin: 0.8em 0; background: #f6f8fb; }
.answer h3 { margin: 0.3em 0; } .answer table { margin: 0.3em 0; font-size: 0.95em; }
.answer th { background: none; width: 9em; } .toc { columns: 2; font-size: 0.9em; }
"""


def in_model(results: list[AnalysisResult]) -> set[tuple[str, str]]:
    """(study_id, outcome) of every row that entered one of the fitted models."""
    return entered_rows(r.effects for r in results)


def effect_table(studies: pd.DataFrame, effects: pd.DataFrame, entered: set | None = None) -> pd.DataFrame:
    """The effect sizes with where each came from, in a reader's words: source level, the SE route,
    whether an effect size could be computed and whether the row entered a fitted model
    (`entered`, from in_model; without it that column is left out)."""
    level = studies.set_index("study_id")["source_level"]
    route = effects["se_route"].where(~effects["censored"].astype(bool), "censored")
    words = route.map(SE_ROUTE_SHORT).fillna(route)
    view = effects.assign(source_level=effects["study_id"].map(level), **{"how the SE was obtained": words},
                          design=effects["design"].map(DESIGN_WORDS).fillna(effects["design"]),
                          computable=effects["used"].map({True: "yes", False: "no"}))
    columns = [c for c in EFFECT_LABELS if c != "in_model"
               and not (c == "rob" and effects["rob"].isna().all())
               and not (c == "warnings" and (effects["warnings"] == "").all())
               and not (c == "measure" and effects["measure"].nunique() == 1)]
    if entered is not None:
        view["in_model"] = [("yes" if (s, o) in entered else "no")
                            for s, o in zip(effects["study_id"], effects["outcome"])]
        columns.append("in_model")
    return view[columns].rename(columns=EFFECT_LABELS)


def se_route_legend(effects: pd.DataFrame) -> str:
    """What each SE route in the effect table means, for the routes the table uses."""
    route = effects["se_route"].where(~effects["censored"].astype(bool), "censored")
    words = SE_ROUTE_WORDS | {"censored": CENSORED_WORDS.removeprefix("censored: ")}
    items = [f"<li><b>{_e(SE_ROUTE_SHORT.get(r, r))}</b>: {_e(words.get(r, r))}</li>"
             for r in dict.fromkeys(route) if r]
    return '<p class="note">How the SE was obtained:</p><ul class="note">' + "".join(items) + "</ul>"


def rows_not_in_model(effects: pd.DataFrame, skipped: dict, entered: set | None = None) -> pd.DataFrame:
    """analysis.rows_not_in_model in a reader's column names."""
    return analysis_rows_not_in_model(effects, skipped, entered).rename(columns=NOT_USED_LABELS)


def caveats(studies: pd.DataFrame, effects: pd.DataFrame) -> list[str]:
    """Plain-words warnings that follow from the rows actually used."""
    used = used_effects(effects)
    info = studies.set_index("study_id").loc[used["study_id"]]
    out = [f"{row.study_id}: the printed numbers contradict each other ({row.warnings}); the row is kept as "
           "computed, check the source." for row in effects[effects["warnings"] != ""].itertuples()]
    pre_post = used.loc[used["design"] == "pre_post", "study_id"].tolist()
    if pre_post:
        out.append(f"One-group pre/post rows ({', '.join(pre_post)}): the change from before to after includes "
                   "regression to the mean and natural time trends (e.g. milk volume rises by itself over the first "
                   "postpartum days), so it is not an effect of the technique.")
    abstracts = info.index[info["source_level"] == "abstract"].tolist()
    if abstracts:
        out.append(f"{len(abstracts)} of {len(used)} used rows come from abstracts only ({', '.join(abstracts)}): "
                   "figures could not be checked against the full text.")
    from_p = used.loc[used["se_route"].isin(["p_value", "p_bound"]), "study_id"].tolist()
    if from_p:
        out.append(f"SEs back-calculated from p-values ({', '.join(from_p)}): exact only if the p came from a "
                   "t-test on the same comparison.")
    bound = used[used["se_route"] == "p_bound"]
    censored = bound.loc[bound["censored"].astype(bool), "study_id"].tolist()
    as_p = bound.loc[~bound["censored"].astype(bool), "study_id"].tolist()
    if censored:
        out.append(f"p-values known only as bounds, censored ({', '.join(censored)}): the model is told only "
                   "that the effect lies beyond the one computed at the bound.")
    if as_p:
        out.append(f"p-values known only as bounds, used as if exact ({', '.join(as_p)}): the SE is an upper "
                   "bound and the effect is biased towards zero.")
    tests = used.set_index("study_id")["test"] if "test" in used else pd.Series(dtype=object)
    named = [s for s in from_p if tests.get(s) in ("wilcoxon", "mann-whitney", "kruskal-wallis")]
    if named:
        out.append(f"SE from a rank test's p-value (the study table's test: {', '.join(named)}): converted with the "
                   "normal quantile and a bound used as the p, never censored, which leans towards zero "
                   "(studies/README.md, Rank tests).")
    notes = info.loc[[s for s in from_p if s not in named], "note"].fillna("").str.lower()
    rank = notes.index[notes.str.contains("|".join(RANK_TESTS))].tolist()
    if rank:
        out.append(f"SE from a p-value whose note mentions a rank test (Mann-Whitney/Wilcoxon) but whose test is "
                   f"not recorded: {', '.join(rank)}. The p-value is treated as a t-test p-value, an approximation.")
    if effects["synthetic"].any():
        out.append("Some rows are SYNTHETIC (generated by code); they are not evidence.")
    return out


FIGURE_DPI = 100
# matplotlib versions whose Agg text placement tight_png's single draw reproduces byte for byte (tested:
# tests/test_report_png.py with constraints.txt's 3.10.8); others (3.11 renders text anew) use savefig
SINGLE_DRAW_MATPLOTLIB = ((3, 10),)


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    data = tight_png(fig, FIGURE_DPI)
    plt.close(fig)
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def tight_png(fig, dpi: int = FIGURE_DPI) -> bytes:
    """A PNG of `fig` with the pixels and metadata of `fig.savefig(format="png", dpi=dpi,
    bbox_inches="tight")`, drawn once.

    savefig's "tight" draws the figure to measure it, then draws it again on a new canvas of the
    measured size, where every text extent is measured again (the canvas's text cache is per
    canvas). Here the tight box is measured on the figure's own canvas (already warm from the
    plot's tight_layout), the figure is drawn once into that canvas shifted as savefig shifts it,
    and the box is cut out: the same pixels (tests/test_report_png.py). Agg places paths by the
    canvas's whole-pixel height and text by its height as given, so the cut starts at an even row
    offset and text flips by the height savefig's canvas would have. The pixels are written by
    present.png (no row-filter search, zlib level 1; the report's 8 figures: encoding 0.074 ->
    0.016 s, 342 -> 334 kB). Anything this does not cover (another backend or dpi, a layout engine,
    images, a box larger than the canvas, a matplotlib outside SINGLE_DRAW_MATPLOTLIB) is saved by
    savefig itself.
    """
    import matplotlib as mpl

    data = _drawn_once(fig, dpi, mpl)
    if data is None:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
        data = buffer.getvalue()
    return data


@contextmanager
def _ticks_once(fig):
    """Each axis's ticks located and labelled once while the figure is measured and drawn.

    matplotlib recomputes an axis's ticks (locator, formatter, every tick's position and label)
    whenever the tight box or the draw asks, about ten times per axis here: half the time of a
    single draw. Nothing they depend on (data and view limits, the axes' size) changes in between:
    the figure is only shifted. Figures whose axes keep an aspect ratio (apply_aspect may move the
    limits) are left alone."""
    axes = [axis for ax in fig.axes for axis in getattr(ax, "_axis_map", {}).values()]
    if not axes or any(ax.get_aspect() != "auto" for ax in fig.axes):
        yield
        return
    patched = []
    try:
        for axis in axes:
            axis._update_ticks = (lambda ticks=axis._update_ticks(): ticks)  # the instance shadows the method
            patched.append(axis)
        yield
    finally:
        for axis in patched:
            del axis._update_ticks


def _drawn_once(fig, dpi, mpl) -> bytes | None:
    """tight_png's single draw, or None where it does not apply."""
    try:
        from matplotlib._tight_bbox import adjust_bbox
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.layout_engine import PlaceHolderLayoutEngine
        from matplotlib.transforms import Bbox

        from .png import png_bytes, savefig_text
    except ImportError:  # a matplotlib without these: savefig
        return None
    canvas, engine = fig.canvas, fig.get_layout_engine()  # after tight_layout: a placeholder, which lays out nothing
    if (tuple(mpl.__version_info__[:2]) not in SINGLE_DRAW_MATPLOTLIB
            or type(canvas) is not FigureCanvasAgg or fig.dpi != dpi or not isinstance(engine, PlaceHolderLayoutEngine | None)
            or fig.images or any(ax.images for ax in fig.axes)
            or not all(mpl.rcParams[f"savefig.{c}"] == "auto" for c in ("facecolor", "edgecolor"))):
        return None
    renderer = canvas.get_renderer()
    given = renderer.height
    width, height = int(renderer.width), int(renderer.height)
    with _ticks_once(fig):
        box = fig.get_tightbbox(renderer).padded(mpl.rcParams["savefig.pad_inches"])
        w, h = box.width * dpi, box.height * dpi  # the size of savefig's canvas, in pixels
        shift, lift = height - int(h), 0
        if shift % 2:  # text positions are rounded half to even: an odd whole-pixel offset could move one
            box, shift, lift = Bbox.from_extents(box.x0, box.y0 - 1 / dpi, box.x1, box.y1), shift - 1, 1
        if int(w) > width or shift < 0:
            return None
        restore = adjust_bbox(fig, box)  # as savefig: the figure shifted so that the box starts at (0, -lift)
        try:
            renderer.clear()
            renderer.height = h + shift + lift  # Agg flips text by this height, paths by the canvas's int height
            fig.draw(renderer)
            pixels = np.asarray(renderer.buffer_rgba())[shift:shift + int(h), :int(w)]
        finally:
            renderer.height = given
            restore()
    return b"".join(png_bytes(pixels, dpi, savefig_text()))


def number(value, decimals: int = 2) -> str:
    """A figure as a reader wants it: counts and ESS without decimals, no "-0.00"."""
    if pd.isna(value):
        return ""
    text = f"{value:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _decimals(column: str) -> int:
    name = str(column).lower()
    if "ess" in name or name in ("n", "studies", "participants", "k"):
        return 0
    return 3 if ("r-hat" in name or "r_hat" in name or "mcse" in name) else 2


def _cell(value, decimals: int) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return number(value, decimals)
    return str(value)


def _table(frame: pd.DataFrame, index: bool = True) -> str:
    """An HTML table: numbers right-aligned and rounded for reading (ESS without decimals), text
    left-aligned, empty cells for missing values."""
    if index:
        frame = frame.reset_index()
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
               for c in frame.columns]
    decimals = [_decimals(c) for c in frame.columns]
    head = "".join(f'<th{" class=\"num\"" if num else ""}>{_e(str(c).replace("_", " "))}</th>'
                   for c, num in zip(frame.columns, numeric))
    body = []
    for row in frame.itertuples(index=False):
        cells = "".join(f'<td{" class=\"num\"" if num else ""}>{_e(_cell(v, d))}</td>'
                        for v, num, d in zip(row, numeric, decimals))
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _e(text) -> str:
    return html.escape(str(text))


def _p_text(p: float) -> str:
    return "> 0.99" if p > 0.995 else "< 0.01" if p < 0.005 else f"{p:.2f}"


def _interval_text(row, scale) -> str:
    return f"{number(scale(row['q50']))} (95% CrI {number(scale(row['q2.5']))} to {number(scale(row['q97.5']))})"


def _i2(result: AnalysisResult) -> tuple[str, float, float, float] | None:
    """(label, median, 2.5%, 97.5%) of the outcome's one headline I² (methods.heterogeneity.headline_i2:
    the same one the summary-of-findings rating uses), or None."""
    from ..methods.heterogeneity import headline_i2

    try:
        found = headline_i2(result.idata)
    except (ValueError, KeyError):
        return None
    if found is None:
        return None
    label, draws = found
    lo, mid, hi = np.quantile(draws, (0.025, 0.5, 0.975))
    return label, float(mid), float(lo), float(hi)


def _i2_text(result: AnalysisResult) -> str:
    found = _i2(result)
    if found is None:
        return ""
    label, mid, lo, hi = found
    return f"; {label} median {mid:.0f}% ({lo:.0f}% to {hi:.0f}%)"


def results_paragraph(result: AnalysisResult, studies: pd.DataFrame | None = None) -> str:
    """A plain-language paragraph of the numbers of one analysis: what entered the model, the
    pooled effect with its 95% CrI and P(effect > 0), per-technique effects, heterogeneity, the
    prediction for a new study, and the caveats that follow from the rows and the diagnostics."""
    used = used_effects(result.effects)
    k, n = len(used), used["n_total"].sum(min_count=1)
    attrs = result.idata.attrs
    measure = attrs.get("measure") or result.effects.attrs.get("measure", "effect")
    ratio = measure in RATIO_MEASURES
    scale = np.exp if ratio else (lambda v: v)
    null = "1" if ratio else "0"
    summary = result.summary
    pcol = next((c for c in summary.columns if c.startswith("P(>")), None)
    model = MODEL_WORDS.get(attrs.get("model", ""), attrs.get("model", "a"))
    people = f", {n:.0f} participants" if pd.notna(n) else ""
    text = [f"{k} studies{people} entered a {model} model of {result.label} ({measure}"
            f"{', back-transformed' if ratio else ''})."]
    pooled = summary.loc["pooled (mu)"]
    sentence = f"The pooled effect was {_interval_text(pooled, scale)}, not adjusted for publication bias"
    certainty = getattr(result, "certainty", None)
    if certainty is not None:
        sentence += f"; the certainty of this evidence is {certainty.rating.upper()} (GRADE-style, see below)"
    text.append(sentence + ".")
    adjusted = getattr(result, "bias_adjusted", None)
    if adjusted is not None and adjusted.ran:
        text.append(f"Adjusted for publication bias (RoBMA-PSMA model averaging) the effect was "
                    f"{number(scale(adjusted.median if ratio else adjusted.mean))} (95% CrI {number(scale(adjusted.low))} to "
                    f"{number(scale(adjusted.high))})" + (f", an interval that includes {null}" if adjusted.includes_zero
                                                           else "")
                    + f"; the probability of an effect at all is {_p_text(adjusted.p_effect)} and of publication "
                    f"bias {_p_text(adjusted.p_bias)}.")
    elif adjusted is not None:
        text.append(f"No bias-adjusted estimate: {adjusted.reason}.")
    if pcol and pd.notna(pooled[pcol]):
        text.append(f"Without that adjustment, the probability that the effect exceeds {null} is "
                    f"{_p_text(float(pooled[pcol]))}.")
    techniques = [i for i in summary.index if i.startswith("technique: ")]
    if techniques:
        text.append("By technique: " + "; ".join(
            f"{i.removeprefix('technique: ')} {_interval_text(summary.loc[i], scale)}" for i in techniques) + ".")
    if "tau (between studies)" in summary.index:
        tau = summary.loc["tau (between studies)"]
        text.append(f"Between-study SD (tau) {_interval_text(tau, lambda v: v).replace('95% CrI ', '')}"
                    f"{_i2_text(result)}.")
    if "prediction (new study)" in summary.index:
        pred = summary.loc["prediction (new study)"]
        text.append(f"The effect in a new study would lie between {number(scale(pred['q2.5']))} and "
                    f"{number(scale(pred['q97.5']))} (95% prediction interval)"
                    + (f", which includes {null}." if pred["q2.5"] < 0 < pred["q97.5"] else "."))
    text += _result_caveats(result, used, k)
    return " ".join(text)


def _anchor(label: str) -> str:
    from ..methods.analysis import slug

    return "outcome-" + slug(label)


def _natural_interval(row, measure: str) -> str:
    from .natural import natural

    return (f"{number(natural(row['q50'], measure))} (95% CrI {number(natural(row['q2.5'], measure))} to "
            f"{number(natural(row['q97.5'], measure))})")


def _certainty_text(result: AnalysisResult, sof: pd.DataFrame | None) -> str:
    """AnalysisResult.certainty when the analysis rated it, else the summary-of-findings row's."""
    given = getattr(result, "certainty", None)
    if given is not None:
        return str(given)
    if sof is None or result.label not in sof.index:
        return "not rated"
    row = sof.loc[result.label]
    down = [f"{d.replace('_', ' ')} {row[d]}" for d in ("risk_of_bias", "inconsistency", "indirectness",
                                                         "imprecision", "publication_bias")
            if row[d] in ("serious", "very serious")]
    return f"{str(row['certainty']).upper()} (GRADE-style" + (f"; downgraded for {', '.join(down)})" if down else ")")


def _bias_text(result: AnalysisResult, sof: pd.DataFrame | None) -> str:
    """AnalysisResult.bias_adjusted when the analysis computed it, else why there is no such figure."""
    given = getattr(result, "bias_adjusted", None)
    if given is not None and getattr(given, "ran", None) is not None:  # methods.robma.BiasAdjusted
        if not given.ran:
            return f"not computed: {given.reason}"
        from .natural import natural

        measure = result.idata.attrs.get("measure") or result.effects.attrs.get("measure", "effect")
        mid = natural(given.median, measure) if measure in RATIO_MEASURES else given.mean
        return (f"{measure} {number(mid)} (95% CrI {number(natural(given.low, measure))} to "
                f"{number(natural(given.high, measure))}), RoBMA-PSMA model average; P(bias) "
                f"{_p_text(given.p_bias)}, P(effect) {_p_text(given.p_effect)}")
    if given is not None:
        return str(given)
    if sof is not None and result.label in sof.index:
        reason = next((part.removeprefix("publication bias: ") for part in str(sof.loc[result.label, "reasons"])
                       .split("; ") if part.startswith("publication bias: ")), "")
        return f"none computed; publication bias {sof.loc[result.label, 'publication_bias']}" + (
            f" ({reason})" if reason else "")
    return "none computed"


def answer_box(result: AnalysisResult, sof: pd.DataFrame | None = None) -> str:
    """The answer for one outcome, first thing in the report: the pooled effect on the natural scale
    (ratios back-transformed) with its 95% CrI, the prediction interval, the certainty, the
    bias-adjusted figure (or why there is none), the one labelled I², and what it rests on."""
    used = used_effects(result.effects)
    k, n = len(used), used["n_total"].sum(min_count=1)
    attrs = result.idata.attrs
    measure = attrs.get("measure") or result.effects.attrs.get("measure", "effect")
    summary = result.summary
    pooled = next((p for p in summary.index if str(p).endswith("(mu)")), None)
    rows = []
    if pooled is not None:
        scale = " (back-transformed from the log scale)" if measure in RATIO_MEASURES else ""
        rows.append(("Effect", f"{measure} {_natural_interval(summary.loc[pooled], measure)}, posterior median"
                               f"{scale}"))
    if "prediction (new study)" in summary.index:
        pred = summary.loc["prediction (new study)"]
        from .natural import natural

        rows.append(("New study", f"95% prediction interval {number(natural(pred['q2.5'], measure))} to "
                                  f"{number(natural(pred['q97.5'], measure))}"))
    rows.append(("Certainty", _certainty_text(result, sof)))
    rows.append(("Bias-adjusted", _bias_text(result, sof)))
    found = _i2(result)
    if found is not None:
        label, mid, lo, hi = found
        rows.append(("Heterogeneity", f"{label}: median {mid:.0f}% ({lo:.0f}% to {hi:.0f}%)"))
    design = used["design"].value_counts()
    parts = [f"{k} stud{'y' if k == 1 else 'ies'}" + (f", {n:.0f} participants" if pd.notna(n) else "")]
    parts += [f"{v} {DESIGN_WORDS.get(d, d)}" for d, v in design.items()]
    censored = int(used["censored"].astype(bool).sum())
    if censored:
        parts.append(f"{censored} censored (p printed as a bound)")
    model = MODEL_WORDS.get(attrs.get("model", ""), attrs.get("model", ""))
    engine = attrs.get("engine", "")
    parts.append(f"{model} model" + (f", {engine} engine" if engine else ""))
    parts.append(f"diagnostics {result.diagnostics.verdict}" if engine != "exact" else "exact posterior (no MCMC)")
    rows.append(("Rests on", "; ".join(parts)))
    failed = "" if result.diagnostics.ok else '<p class="fail">DIAGNOSTICS FAILED: do not trust these numbers</p>'
    body = "".join(f"<tr><th>{_e(a)}</th><td>{_e(b)}</td></tr>" for a, b in rows)
    return (f'<section class="answer"><h3><a href="#{_anchor(result.label)}">{_e(result.label)}</a></h3>{failed}'
            f"<table>{body}</table></section>")


def _result_caveats(result: AnalysisResult, used: pd.DataFrame, k: int) -> list[str]:
    out = []
    if not result.diagnostics.ok:
        out.append("The fit FAILED its convergence diagnostics: these numbers are not to be trusted.")
    pre_post = int((used["design"] == "pre_post").sum())
    if pre_post:
        tau = summary_tau(result.summary) or 0.0
        share = prepost_weight_share(result.effects, tau)
        out.append(f"{pre_post} of {k} studies are one-group pre/post designs, whose change includes time trends "
                   f"and regression to the mean; they carry {share:.0%} of the weight (weights 1/(se² + tau²) at "
                   f"the posterior median tau {tau:.2f}).")
    censored = int(used["censored"].astype(bool).sum())
    if censored:
        out.append(f"{censored} stud{'y is' if censored == 1 else 'ies are'} known only beyond a p-value bound "
                   "(censored).")
    if k < 5 and "tau" in result.idata.posterior:
        out.append(f"With {k} studies the between-study SD rests largely on its prior.")
    out += [f"Prior-data conflict: {w}." for w in prior_data_conflict(result.idata, result.effects).warnings]
    return out


def references(studies: pd.DataFrame) -> pd.DataFrame:
    """One row per distinct (citation, source), with the study rows that cite it, in table order."""
    source = studies["source"] if "source" in studies else pd.Series("", index=studies.index)
    frame = pd.DataFrame({"citation": studies["citation"].astype(str).str.strip(),
                          "source": source.fillna("").astype(str).str.strip(), "study_id": studies["study_id"]})
    grouped = frame.groupby(["citation", "source"], sort=False)["study_id"].agg(lambda ids: list(dict.fromkeys(ids)))
    return grouped.reset_index().rename(columns={"study_id": "rows"})


def references_section(studies: pd.DataFrame) -> str:
    """The reference list: every citation of the study table with its source (a link when it is one)."""
    items = []
    for ref in references(studies).itertuples():
        source = ""
        if ref.source:
            link = ref.source.startswith(("http://", "https://"))
            source = (f' <a href="{_e(ref.source)}">{_e(ref.source)}</a>' if link else f" {_e(ref.source)}")
        items.append(f"<li>{_e(ref.citation)}.{source} <span class=\"note\">({_e(', '.join(ref.rows))})</span></li>")
    return "<h2 id=\"references\">References</h2>\n<ol class=\"refs\">" + "".join(items) + "</ol>"


def _design_section(effects: pd.DataFrame) -> list[str]:
    """Controlled and pre/post rows side by side (evsynth.methods.designs), or why they cannot be."""
    try:
        table = design_moderator(effects)
    except ValueError as exc:
        return [f'<p class="note">Design (controlled vs pre/post) not contrasted: {_e(exc)}</p>']
    return ["<h3>Design: controlled vs pre/post studies (meta-regression, exact engine)</h3>",
            '<p class="note">A pre/post change also contains time trends and regression to the mean; only '
            "controlled rows estimate what the technique adds.</p>", _table(table.rename(columns=SUMMARY_LABELS))]


def _regression_section(result: AnalysisResult, mods) -> list[str]:
    """--mods: the Bayesian meta-regression (exact engine) beside the REML + Knapp-Hartung fit."""
    from ..methods.regression import fit_meta_regression

    try:
        reg = fit_meta_regression(result.effects, mods)
    except ValueError as exc:
        return [f'<p class="note">Meta-regression on {_e(mods)} not fitted: {_e(exc)}</p>']
    freq = reg.frequentist
    return [f"<h3>Meta-regression on {_e(reg.mods)} (exact engine; REML + Knapp-Hartung beside it)</h3>",
            f'<p class="note">Bayesian: 95% CrI and P(beta &gt; 0); residual heterogeneity explained (R² analogue) '
            f"{reg.R2:.1f}%. REML: tau² {freq.tau2:.4f}, I² (REML, residual) {freq.I2:.1f}%, QM {freq.QM:.3f}, "
            f"p {freq.QM_p:.4g} on {freq.df:g} df.</p>",
            _table(reg.coefficients.rename(columns=SUMMARY_LABELS).rename_axis("Term")),
            _table(freq.coefficients.rename_axis("Term (REML)"))]


def _dependence_section(result: AnalysisResult) -> list[str]:
    """A nested model (evsynth fit / report --random): its levels, the assumed correlation of the
    sampling errors within a sample, and the variance components; nothing for other models."""
    from ..methods.analysis import dependence_lines

    lines = dependence_lines(result)
    if not lines:
        return []
    return ["<h3>Dependent effects: random structure, assumed correlation, variance components</h3>",
            "<ul>" + "".join(f"<li>{_e(line)}</li>" for line in lines) + "</ul>",
            '<p class="note">Rows that share participants (the same sample_id) are kept and modelled as nested '
            "groups instead of being reduced to one row per sample; the correlation of their sampling errors is "
            "assumed, not estimated from these data.</p>"]


def _analysis_section(result: AnalysisResult, threshold: float | None, mods=None, studies=None) -> str:
    from . import plots  # matplotlib only when a figure is drawn

    d = result.diagnostics
    parts = [f'<h2 id="{_anchor(result.label)}">Outcome: {_e(result.label)}</h2>',
             (f'<div class="banner pass">Exact posterior: no sampler, so nothing to diagnose</div>'
              if result.idata.attrs.get("engine") == "exact" and d.ok else
              f'<div class="banner {"pass" if d.ok else "fail"}">Diagnostics {d.verdict}'
              + ("" if d.ok else ": do not trust these numbers until the fit passes") + "</div>")]
    if d.problems:
        parts.append("<ul>" + "".join(f"<li>{_e(p)}</li>" for p in d.problems) + "</ul>")
    parts.append(f'<p class="note">{_e(str(d).splitlines()[0])}</p>')
    summary = result.summary
    if threshold is not None:
        extra = summarize(result.idata, threshold=threshold)
        column = f"P(>{threshold:g})"
        summary = summary.join(extra[[column]]) if column not in summary else summary
    parts.insert(1, f'<p class="results">{_e(results_paragraph(result))}</p>')
    if result.notes:
        parts.insert(2, '<ul class="note">' + "".join(f"<li>{_e(n)}</li>" for n in result.notes) + "</ul>")
    parts += ["<h3>Posterior summary (95% equal-tailed intervals)</h3>",
              _table(summary.rename(columns=SUMMARY_LABELS).rename_axis("Parameter"))]
    parts += _dependence_section(result)
    parts += ["<h3>Every technique: its estimate, or why there is none</h3>",
              _table(format_coverage(technique_coverage(result.effects, result.summary, own=getattr(result, "own_data", None))), index=False)]
    parts += _design_section(result.effects)
    parts += _bias_section(result) + _influence_section(result)
    if mods is not None and result.idata.attrs.get("model") != "meta_regression":
        parts += _regression_section(result, mods)
    quoted = summary_quantiles(result.summary, MU_ROW)  # the pooled median the report quotes
    center = quoted[1] if quoted else float(result.idata.posterior["mu"].median())
    parts += ["<h3>Forest plot</h3>",
              _png(plots.forest(result.idata, result.effects, studies=studies, summary=result.summary))]
    parts += ["<h3>Funnel plot</h3>",
              '<p class="note">Shaded: where a study is significant against zero at p &lt; 0.10, 0.05, 0.01. '
              "Points whose SE was back-calculated from a p-value sit on that p's contour by construction. "
              "With few studies a funnel plot cannot show small-study asymmetry.</p>",
              _png(plots.funnel(result.effects, center=center))]
    if "tau" in result.idata.posterior and result.idata.attrs.get("prior_tau"):
        parts += ["<h3>Between-study SD (tau): prior and posterior</h3>",
                  _png(plots.prior_posterior(result.idata, "tau"))]
    parts += ["<h3>Convergence diagnostics per parameter</h3>",
              _table(d.table.rename(columns=DIAGNOSTIC_LABELS).rename_axis("Parameter"))]
    attrs = {k: v for k, v in result.idata.attrs.items()
             if k.startswith("prior_") or k in ("model", "sampler", "data_hash")}
    parts += ["<p class=\"note\">" + _e("; ".join(f"{k}: {v}" for k, v in attrs.items())) + "</p>"]
    return "\n".join(parts)


BIAS_WORDS = (
    "What the bias-adjusted estimate means: studies with small, non-significant results are less often "
    "published, so a pooled effect can be too large. The ensemble fits 16 models -- effect or none, "
    "heterogeneity or none, and no bias, selection of significant results (a step function in the p-value), "
    "PET (small studies show larger effects in proportion to their SE) or PEESE (in proportion to SE²) -- and "
    "averages them by how well each predicts the data (RoBMA-PSMA, Bartos et al. 2023; marginal likelihoods by "
    "quadrature). P(effect) is the posterior probability that there is any effect; P(bias) that publication "
    "bias is present; a Bayes factor (BF) above 1 says the data favour including that component, above 3 "
    "moderately. The adjusted interval is wider than the unadjusted one because it includes the possibility "
    "of bias.")
INFLUENCE_WORDS = (
    "What leave-one-out means: the pooled effect refitted with each study left out in turn (random-effects "
    "model, exact engine), and with every row from a secondary source (known only from a report about the "
    "study) left out. A large shift, or a large fall in I² (the share of the spread between studies not due "
    "to chance), means the answer leans on that study.")


def _bias_section(result: AnalysisResult) -> list[str]:
    """The bias-adjusted estimate: its 16 models and inclusion Bayes factors, or why it was not run
    (model tables on the analysis scale: log for ratios)."""
    from .headline import bias_text

    adjusted = getattr(result, "bias_adjusted", None)
    if adjusted is None:
        return []
    parts = ["<h3>Publication bias: the bias-adjusted estimate (RoBMA-PSMA)</h3>", f'<p class="note">{_e(BIAS_WORDS)}</p>',
             f"<p>{_e(bias_text(result))}</p>"]
    if adjusted.ran and adjusted.ensemble is not None:
        inc = adjusted.ensemble.inclusion[["prior_prob", "post_prob", "BF_incl"]].rename(
            columns={"prior_prob": "prior probability", "post_prob": "posterior probability",
                     "BF_incl": "inclusion BF"})
        parts += [_table(inc.rename_axis("component")),
                  _table(adjusted.table().rename(columns={"prior_prob": "prior probability",
                                                          "post_prob": "posterior probability",
                                                          "b_mean": "slope mean (PET/PEESE)"})),
                  '<p class="note">Priors: ' + _e("; ".join(f"{k}: {v}" for k, v in adjusted.priors.items()))
                  + "</p>"]
    return parts


def _influence_section(result: AnalysisResult) -> list[str]:
    """Leave-one-out table and the secondary-source sensitivity."""
    influence = getattr(result, "influence", None)
    if influence is None:
        return []
    view = influence.table.rename(columns={"study_id": "left out", "mu": "pooled median", "mu_low": "2.5%",
                                           "mu_high": "97.5%", "I2": "I² median %", "shift": "shift"})
    view["left out"] = view["left out"].replace({"none": "(none: all studies)"})
    parts = ["<h3>Influence: each study left out</h3>", f'<p class="note">{_e(INFLUENCE_WORDS)}</p>',
             _table(view, index=False)]
    parts += [f"<p>{_e(line)}</p>" for line in influence.lines()]
    return parts


def sof_table(studies: pd.DataFrame, results: list[AnalysisResult]) -> tuple[pd.DataFrame | None, str]:
    """(the summary-of-findings table, "") or (None, why it could not be rated)."""
    from .sof import median_control_risk, summary_of_findings

    if not results:
        return None, "no outcome analysed"
    baseline = {r.label: median_control_risk(studies, r.effects) for r in results}
    try:
        return summary_of_findings(results, baseline_risk=baseline), ""
    except ValueError as exc:
        return None, str(exc)


def sof_section(studies: pd.DataFrame, results: list[AnalysisResult], computed=None) -> str:
    """The summary-of-findings table (evsynth.present.sof) with its rules in one sentence; binary outcomes get
    the absolute effect per 1000 at the median control-group risk of their studies."""
    if not results:
        return ""
    table, error = computed if computed is not None else sof_table(studies, results)
    if table is None:  # e.g. MD without an imprecision threshold
        return f'<h2 id="sof">Summary of findings</h2><p>Not rated: {_e(error)}</p>'
    table = table.copy()
    reasons = table.pop("reasons")
    labels = {r.label: found[0] for r in results if (found := _i2(r)) is not None}
    return "\n".join([
        '<h2 id="sof">Summary of findings (GRADE-style)</h2>',
        '<p class="note">Effect: posterior median and 95% CrI (ratios back-transformed); per 1000: at the median '
        "control-group risk of the studies. Certainty starts high and drops one level per serious, two per very "
        "serious rating, by the documented rules of evsynth.present.sof (risk of bias by weight at high risk, "
        "inconsistency by posterior I² and prediction interval, indirectness by uncontrolled pre/post rows, "
        "imprecision by CrI width, publication bias by Egger's test with 10 or more studies).</p>",
        _table(_sof_view(table), index=False),
        "<ul>" + "".join(f"<li>{_e(k)}: {_e(_label_i2(v, labels.get(k)))}</li>" for k, v in reasons.items())
        + "</ul>"])


def _label_i2(reason: str, label: str | None) -> str:
    """The SoF reason with its I² labelled as in the answer box ("I² (total: studies + techniques)")."""
    if not label:
        return reason
    return reason.replace("posterior median I² ", f"posterior median {label.removesuffix('; posterior)') + ')'} ")


def _sof_view(table: pd.DataFrame) -> pd.DataFrame:
    """The table as a reader sees a SoF table: effect and absolute effect as text with their intervals."""
    def effect(row):
        return f"{row['measure']} {row['effect']:.3g} ({row['effect_low']:.3g} to {row['effect_high']:.3g})"

    def absolute(row):
        if "per_1000" not in row or pd.isna(row.get("per_1000")):
            return ""
        text = f"{row['per_1000']:+.1f} ({row['per_1000_low']:+.1f} to {row['per_1000_high']:+.1f})"
        # a risk difference is the same at every baseline risk; a ratio's absolute effect is not
        return text if row["measure"] == "RD" else f"{text} at a risk of {1000 * row['baseline_risk']:.1f} per 1000"

    domains = ["risk_of_bias", "inconsistency", "indirectness", "imprecision", "publication_bias"]
    view = pd.DataFrame({"Outcome": table.index, "Studies": table["studies"].to_numpy(),
                         "Participants": table["participants"].to_numpy(),
                         "Effect (95% CrI)": [effect(r) for _, r in table.iterrows()],
                         "Per 1000 (95% CrI)": [absolute(r) for _, r in table.iterrows()]})
    for d in domains:
        view[d.replace("_", " ").capitalize()] = table[d].to_numpy()
    view["Certainty"] = table["certainty"].str.upper().to_numpy()
    return view


def classical_section(studies: pd.DataFrame, result: AnalysisResult) -> str:
    """Classical checks of one outcome (evsynth.methods.classical): every tau² estimator, Q-profile
    intervals, Mantel-Haenszel/Peto for 2x2 counts, influence with the Baujat plot, the cumulative
    meta-analysis (classical and exact Bayesian) and trim-and-fill with its funnel."""
    from ..methods.classical import classical, trimfill_table
    from .classical_plots import baujat_plot, cumulative_forest, filled_funnel

    anchor = "classical-" + _anchor(result.label)
    head = f'<h2 id="{anchor}">Classical checks: {_e(result.label)}</h2>'
    try:
        res = classical(result.effects, studies, label=result.label)
    except ValueError as exc:
        return head + f'<p class="note">Not computed: {_e(exc)}</p>'
    ratio = res.measure in RATIO_MEASURES
    scale = np.exp if ratio else (lambda v: v)

    def shown(frame, columns):
        out = frame.copy()
        for c in columns:
            if c in out.columns:
                out[c] = scale(out[c].astype(float))
        return out

    effect = ["estimate", "ci_low", "ci_high", "pi_low", "pi_high"]
    parts = [head, f'<p class="note">Frequentist counterparts of the Bayesian fit above (k = {res.k}); '
             f"{'ratios back-transformed; ' if ratio else ''}95% intervals. The common-effect (FE) row has no "
             "prediction interval: it assumes no between-study spread.</p>",
             "<h3>Every tau² estimator</h3>", _table(shown(res.estimators.drop(columns=["se", "tau2_se"]), effect)),
             f"<h3>Heterogeneity: {res.method} estimate with Q-profile 95% CI</h3>", _table(res.heterogeneity)]
    if res.bayes_intervals is not None:
        b = res.bayes_intervals
        parts += ["<h3>Exact Bayesian intervals: equal-tailed and shortest (HPD)</h3>",
                  f'<p class="note">Exact posterior of the random-effects model ({_e(b.attrs["tau_prior"])} on tau, '
                  f"{_e(b.attrs['mu_prior'])} on mu; analysis scale). I² and H² come from tau's exact quantiles "
                  "(they increase with tau), with no Monte Carlo error.</p>", _table(b)]
    if res.predictive is not None:
        parts += ["<h3>Leave-one-out posterior predictive p-values (exact engine)</h3>",
                  '<p class="note">P(a new study like this one lies above its estimate), from the posterior '
                  "without it; a two-sided p below 0.05 marks a study the others do not predict.</p>",
                  _table(res.predictive.rename(columns=EFFECT_LABELS).rename_axis(index=lambda n: EFFECT_LABELS.get(n, n)))]
    if res.binary is not None:
        binary = res.binary.copy()
        rows = [i for i in binary.index if not i.endswith("RD")]
        for c in ("estimate", "ci_low", "ci_high"):
            binary.loc[rows, c] = np.exp(binary.loc[rows, c].astype(float))
        parts += ["<h3>Mantel-Haenszel and Peto (from the 2x2 counts)</h3>",
                  '<p class="note">Common-effect methods that use the counts without continuity corrections; '
                  "RR and OR rows back-transformed, RD on the risk scale.</p>", _table(binary.drop(columns=["se"]))]
    infl = res.influence
    flagged = infl.index[infl["influential"]].astype(str).tolist()
    parts += [f"<h3>Influence ({res.method})</h3>",
              f'<p class="note">Influential by metafor\'s rules: {_e(", ".join(flagged) or "none")}.</p>',
              _table(infl.drop(columns=[c for c in infl.columns if c.startswith("dfbs_")])),
              _png(baujat_plot(res.baujat))]
    if res.cumulative is not None:
        parts += [f"<h3>Cumulative meta-analysis by {_e(res.order_by)}</h3>",
                  _png(cumulative_forest(res.cumulative, res.measure, bayesian=res.bayesian_cumulative))]
    tf = trimfill_table(res)
    parts += ["<h3>Trim-and-fill</h3>",
              '<p class="note">A sensitivity analysis, not a correction: the filled studies are imputations that '
              "assume suppressed studies cause the funnel's asymmetry.</p>",
              _table(shown(tf, ["estimate", "ci_low", "ci_high"])), _png(filled_funnel(res.trimfill["L0"], res.measure))]
    parts += [f'<p class="note">{_e(n)}</p>' for n in res.notes]
    return "\n".join(parts)


def write_report(studies: pd.DataFrame, effects: pd.DataFrame, results: list[AnalysisResult], skipped: dict,
                 out, settings: dict, threshold: float | None = None, mods=None) -> Path:
    """Write `<out>/report.html` and return its path.

    The page opens with the answer (a box per outcome: effect, interval, certainty, bias-adjusted
    figure, I², what it rests on) and a table of contents; the analyses follow, and the input tables
    (effect sizes, rows that entered no model) come last. mods: moderators (evsynth.model.moderators)
    for a meta-regression section per outcome.

    Example:
        >>> import evsynth as es
        >>> studies = es.load_studies("studies/bcg.csv", extra_columns=["ablat", "alloc"])
        >>> effects = es.compute_effects(studies, measure="RR")
        >>> import tempfile
        >>> result = es.run_analysis("tuberculosis", effects, engine="exact", draws=500, chains=2)
        >>> page = write_report(studies, effects, [result], skipped={}, out=tempfile.mkdtemp(), settings={})
        >>> page.name, "tuberculosis" in page.read_text(encoding="utf-8")
        ('report.html', True)
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    failed = [r.label for r in results if not r.diagnostics.ok]
    body = [f"<h1>evsynth report: {_e(settings.get('studies', ''))}</h1>",
            f'<p class="note">evsynth {__version__}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC</p>']
    if effects["synthetic"].any():
        body.append('<div class="banner synthetic">SYNTHETIC DATA in this analysis: not evidence</div>')
    if failed:
        body.append(f'<div class="banner fail">DIAGNOSTICS FAILED for: {_e(", ".join(failed))}</div>')
    sof = sof_table(studies, results) if results else (None, "")
    if results:
        body += ['<h2 id="answer">The answer, per outcome</h2>'] + [answer_box(r, sof[0]) for r in results]
    else:
        body.append("<p>No outcome has enough usable studies to fit a model.</p>")
    notes = caveats(studies, effects)
    toc = [("answer", "The answer, per outcome")] if results else []
    toc += [("care", "Read with care")] if notes else []
    toc += [(_anchor(r.label), f"Outcome: {r.label}") for r in results]
    toc += [("classical-" + _anchor(r.label), f"Classical checks: {r.label}") for r in results]
    toc += [("sof", "Summary of findings")] if results else []
    toc += [("settings", "Settings"), ("effects", "Input: effect sizes"), ("excluded", "Input: rows in no model")]
    toc += [("not-analysed", "Outcomes not analysed")] if skipped else []
    toc += [("references", "References")]
    body += ['<h2 id="contents">Contents</h2>',
             '<ol class="toc">' + "".join(f'<li><a href="#{a}">{_e(t)}</a></li>' for a, t in toc) + "</ol>"]
    if notes:
        body += ['<h2 id="care">Read with care</h2>', "<ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>"]
    body += [_analysis_section(r, threshold, mods, studies) for r in results]
    body += [classical_section(studies, r) for r in results]
    body.append(sof_section(studies, results, computed=sof if results else None))
    body += ['<h2 id="settings">Settings</h2>',
             _table(pd.Series(settings, name="value").rename_axis("setting").to_frame())]
    entered = in_model(results)
    body += [f'<h2 id="effects">Input: effect sizes ({_e(effects.attrs.get("measure", ""))})</h2>',
             '<p class="note">"Effect size computed": the row gives an effect and its SE. "Entered a model": the '
             "row was in one of the models fitted above (head-to-head rows need the network model; an outcome "
             "with fewer than two studies is not analysed).</p>",
             _table(effect_table(studies, effects, entered), index=False), se_route_legend(effects)]
    excluded = rows_not_in_model(effects, skipped, entered)
    body += ['<h2 id="excluded">Input: rows that entered no model, and why</h2>',
             _table(excluded, index=False) if not excluded.empty else "<p>Every row entered a model.</p>"]
    if skipped:
        by_outcome = dict(iter(effects.groupby("outcome", sort=False)))  # one split, not a filter per outcome

        def techniques(label):
            rows = by_outcome.get(label)
            return ", ".join(technique_coverage(rows, not_analysed=skipped[label])["technique"]) if rows is not None else ""

        body += ['<h2 id="not-analysed">Outcomes not analysed</h2>',
                 "<ul>" + "".join(f"<li>{_e(k)}: {_e(v)} (techniques: {_e(techniques(k))})</li>"
                                  for k, v in skipped.items()) + "</ul>"]
    body.append(references_section(studies))
    page = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>evsynth report</title>"
            f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
