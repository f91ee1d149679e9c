"""`evsynth report`: the main job written as one self-contained HTML file (tables, verdicts, and
forest/funnel/tau figures as base64 PNG), for readers who do not open notebooks.

It runs the same pipeline as `evsynth fit` (evsynth.analysis.split_by_outcome / run_analysis)
with the same options; only the output differs.
"""

from __future__ import annotations

import base64
import html
import io
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from . import __version__
from .analysis import AnalysisResult, run_analysis, split_by_outcome
from .cli_common import exit_status, load_effects, sampling_options
from .designs import design_moderator
from .effects import not_used, used_effects
from .summary import summarize
from .techniques import format_coverage, technique_coverage

SE_ROUTE_WORDS = {
    "sd": "from the reported SDs",
    "sd_change": "from the reported SD of the change",
    "t_stat": "from the t statistic",
    "ci": "from the 95% CI",
    "p_value": "back-calculated from an exact p-value (as if from a t-test)",
    "p_bound": "back-calculated from a p-value bound (p < ...): an upper bound on the SE",
    "given": "given ready-made in the study table",
}
CENSORED_WORDS = ("censored: p known only as a bound, so yi is the effect at the bound and the true effect "
                  "lies beyond it (censored likelihood)")
EFFECT_COLUMNS = ["study_id", "technique", "comparator", "outcome", "design", "source_level", "measure",
                  "yi", "sei", "se_route", "how the SE was obtained", "rob", "used"]
RANK_TESTS = ("mann-whitney", "wilcoxon")

CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1.5em; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
.banner { padding: 0.6em 1em; margin: 1em 0; border-radius: 4px; font-weight: bold; }
.fail { background: #fde2e2; color: #8a1010; border: 2px solid #c62828; }
.pass { background: #e3f4e1; color: #1b5e20; }
.synthetic { background: #fff3cd; color: #6b4e00; border: 2px solid #d4a106; }
img { max-width: 100%; display: block; margin: 0.5em 0 1.5em; }
.note { color: #555; font-size: 0.9em; }
"""


def register(commands, add_fit_arguments) -> None:
    """Add the `report` subcommand; it takes the same options as `fit`."""
    parser = commands.add_parser("report", help="run the analysis and write a self-contained HTML report")
    add_fit_arguments(parser)
    parser.add_argument("--threshold", type=float, default=None,
                        help="also report P(effect > THRESHOLD), e.g. 0.2 (a small effect on the SMD scale)")
    parser.set_defaults(handler=cmd_report, out="report")


def cmd_report(args) -> int:
    studies, effects = load_effects(args)
    runnable, skipped = split_by_outcome(effects, args.pool_outcomes)
    results = []
    for label, table in runnable.items():
        print(f"fitting {label!r} ({args.model}, {args.sampler}, {args.chains} x {args.draws} draws)")
        results.append(run_analysis(label, table, model=args.model, priors=dict(args.prior), **sampling_options(args)))
    settings = {"studies": str(args.studies), "measure": args.measure, "model": args.model,
                "r_prepost (default)": args.r_prepost, "p_bound": effects.attrs.get("p_bound", args.p_bound),
                "priors given": ", ".join(f"{k}={v}" for k, v in args.prior) or "defaults",
                "sampler": args.sampler, "chains x draws (tune)": f"{args.chains} x {args.draws} ({args.tune})",
                "seed": args.seed}
    path = write_report(studies, effects, results, skipped, args.out, settings, threshold=args.threshold)
    print(f"wrote {path}")
    failed = [r.label for r in results if not r.diagnostics.ok]
    return exit_status(failed, args.accept_failed, " (marked in the report)")


def effect_table(studies: pd.DataFrame, effects: pd.DataFrame) -> pd.DataFrame:
    """The effect sizes with where each came from (source level, SE route in words)."""
    level = studies.set_index("study_id")["source_level"]
    words = effects["se_route"].map(SE_ROUTE_WORDS).fillna("").where(~effects["censored"].astype(bool), CENSORED_WORDS)
    view = effects.assign(source_level=effects["study_id"].map(level), **{"how the SE was obtained": words})
    return view[EFFECT_COLUMNS]


def caveats(studies: pd.DataFrame, effects: pd.DataFrame) -> list[str]:
    """Plain-words warnings that follow from the rows actually used."""
    used = used_effects(effects)
    info = studies.set_index("study_id").loc[used["study_id"]]
    out = []
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
    notes = info.loc[from_p, "note"].fillna("").str.lower()
    rank = notes.index[notes.str.contains("|".join(RANK_TESTS))].tolist()
    if rank:
        out.append(f"SE from a p-value whose note mentions a rank test (Mann-Whitney/Wilcoxon): {', '.join(rank)}. "
                   "The rank-test p-value is treated as a t-test p-value, an approximation.")
    if effects["synthetic"].any():
        out.append("Some rows are SYNTHETIC (generated by code); they are not evidence.")
    return out


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _table(frame: pd.DataFrame, index: bool = True) -> str:
    return frame.to_html(index=index, float_format=lambda x: f"{x:.3f}", na_rep="", border=0)


def _e(text) -> str:
    return html.escape(str(text))


def _design_section(effects: pd.DataFrame) -> list[str]:
    """Controlled and pre/post rows side by side (evsynth.designs), or why they cannot be."""
    try:
        table = design_moderator(effects)
    except ValueError as exc:
        return [f'<p class="note">Design (controlled vs pre/post) not contrasted: {_e(exc)}</p>']
    return ["<h3>Design: controlled vs pre/post studies (meta-regression, exact engine)</h3>",
            '<p class="note">A pre/post change also contains time trends and regression to the mean; only '
            "controlled rows estimate what the technique adds.</p>", _table(table)]


def _analysis_section(result: AnalysisResult, threshold: float | None) -> str:
    from . import plots  # matplotlib only when a figure is drawn

    d = result.diagnostics
    parts = [f"<h2>Outcome: {_e(result.label)}</h2>",
             f'<div class="banner {"pass" if d.ok else "fail"}">Diagnostics {d.verdict}'
             + ("" if d.ok else ": do not trust these numbers until the fit passes") + "</div>"]
    if d.problems:
        parts.append("<ul>" + "".join(f"<li>{_e(p)}</li>" for p in d.problems) + "</ul>")
    parts.append(f'<p class="note">{_e(str(d).splitlines()[0])}</p>')
    summary = result.summary
    if threshold is not None:
        extra = summarize(result.idata, threshold=threshold)
        column = f"P(>{threshold:g})"
        summary = summary.join(extra[[column]]) if column not in summary else summary
    parts += ["<h3>Posterior summary (95% equal-tailed intervals)</h3>", _table(summary)]
    parts += ["<h3>Every technique: its estimate, or why there is none</h3>",
              _table(format_coverage(technique_coverage(result.effects, result.summary)), index=False)]
    parts += _design_section(result.effects)
    post = result.idata.posterior
    center = float(post["mu"].median())
    parts += ["<h3>Forest plot</h3>", _png(plots.forest(result.idata, result.effects))]
    parts += ["<h3>Funnel plot</h3>",
              '<p class="note">Shaded: where a study is significant against zero at p &lt; 0.10, 0.05, 0.01. '
              "Points whose SE was back-calculated from a p-value sit on that p's contour by construction. "
              "With few studies a funnel plot cannot show small-study asymmetry.</p>",
              _png(plots.funnel(result.effects, center=center))]
    if "tau" in post and result.idata.attrs.get("prior_tau"):
        parts += ["<h3>Between-study SD (tau): prior and posterior</h3>",
                  _png(plots.prior_posterior(result.idata, "tau"))]
    parts += ["<h3>Convergence diagnostics per parameter</h3>", _table(d.table)]
    attrs = {k: v for k, v in result.idata.attrs.items()
             if k.startswith("prior_") or k in ("model", "sampler", "data_hash")}
    parts += ["<p class=\"note\">" + _e("; ".join(f"{k}: {v}" for k, v in attrs.items())) + "</p>"]
    return "\n".join(parts)


def sof_section(studies: pd.DataFrame, results: list[AnalysisResult]) -> str:
    """The summary-of-findings table (evsynth.sof) with its rules in one sentence; binary outcomes get
    the absolute effect per 1000 at the median control-group risk of their studies."""
    from .sof import median_control_risk, summary_of_findings

    if not results:
        return ""
    baseline = {r.label: median_control_risk(studies, r.effects) for r in results}
    try:
        table = summary_of_findings(results, baseline_risk=baseline)
    except ValueError as exc:  # e.g. MD without an imprecision threshold
        return f"<h2>Summary of findings</h2><p>Not rated: {_e(exc)}</p>"
    reasons = table.pop("reasons")
    return "\n".join([
        "<h2>Summary of findings (GRADE-style)</h2>",
        '<p class="note">Effect: posterior median and 95% CrI (ratios back-transformed); per 1000: at the median '
        "control-group risk of the studies. Certainty starts high and drops one level per serious, two per very "
        "serious rating, by the documented rules of evsynth.sof (risk of bias by weight at high risk, "
        "inconsistency by posterior I² and prediction interval, indirectness by uncontrolled pre/post rows, "
        "imprecision by CrI width, publication bias by Egger's test with 10 or more studies).</p>",
        _table(table), "<ul>" + "".join(f"<li>{_e(k)}: {_e(v)}</li>" for k, v in reasons.items()) + "</ul>"])


def write_report(studies: pd.DataFrame, effects: pd.DataFrame, results: list[AnalysisResult], skipped: dict,
                 out, settings: dict, threshold: float | None = None) -> Path:
    """Write `<out>/report.html` and return its path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    failed = [r.label for r in results if not r.diagnostics.ok]
    body = [f"<h1>evsynth report: {_e(settings.get('studies', ''))}</h1>",
            f'<p class="note">evsynth {__version__}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC</p>']
    if effects["synthetic"].any():
        body.append('<div class="banner synthetic">SYNTHETIC DATA in this analysis: not evidence</div>')
    if failed:
        body.append(f'<div class="banner fail">DIAGNOSTICS FAILED for: {_e(", ".join(failed))}</div>')
    body += ["<h2>Settings</h2>", _table(pd.Series(settings, name="value").to_frame())]
    notes = caveats(studies, effects)
    if notes:
        body += ["<h2>Read with care</h2>", "<ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>"]
    body += [f"<h2>Effect sizes ({_e(effects.attrs.get('measure', ''))})</h2>",
             _table(effect_table(studies, effects), index=False)]
    excluded = not_used(effects)
    body += ["<h2>Rows not used, and why</h2>",
             _table(excluded, index=False) if not excluded.empty else "<p>All rows used.</p>"]
    if skipped:
        def techniques(label):
            rows = effects[effects["outcome"] == label]
            return ", ".join(technique_coverage(rows, not_analysed=skipped[label])["technique"]) if len(rows) else ""

        body += ["<h2>Outcomes not analysed</h2>",
                 "<ul>" + "".join(f"<li>{_e(k)}: {_e(v)} (techniques: {_e(techniques(k))})</li>"
                                  for k, v in skipped.items()) + "</ul>"]
    if not results:
        body.append("<p>No outcome has enough usable studies to fit a model.</p>")
    body += [_analysis_section(r, threshold) for r in results]
    body.append(sof_section(studies, results))
    page = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>evsynth report</title>"
            f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
