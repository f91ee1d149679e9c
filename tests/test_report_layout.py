"""What a reader of the HTML report sees: readable labels, honest counts, a results paragraph made
from the numbers, a reference list, and a page that renders in a real browser (headless Chromium)
with every figure loaded and nothing wider than the window.

Posteriors are built by hand (arviz.from_dict) with known quantiles, so no MCMC runs here.
"""

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest

from evsynth import compute_effects, load_studies
from evsynth.methods.analysis import AnalysisResult, split_by_outcome
from evsynth.methods.diagnostics import THRESHOLDS, Diagnostics
from evsynth.effects import used_effects
from evsynth.present.report import effect_table, in_model, number, references, results_paragraph, rows_not_in_model, write_report
from evsynth.methods.summary import summarize

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
Z975 = 1.959964

# Runs in the page after every image has loaded; its verdict is read back from the dumped DOM.
CHECK_SCRIPT = """
window.addEventListener("load", function () {
  var doc = document.documentElement, images = Array.from(document.images), wide = [];
  document.querySelectorAll("body *").forEach(function (el) {
    var box = el.getBoundingClientRect();
    if (box.right > doc.clientWidth + 1 || box.left < -1) wide.push(el.tagName + ": " + (el.textContent || "").slice(0, 60));
  });
  var answer = document.querySelector(".answer"), box = answer ? answer.getBoundingClientRect() : null;
  var out = {images: images.length, window_height: window.innerHeight,
             answer: box ? {top: box.top + window.scrollY, bottom: box.bottom + window.scrollY,
                            text: answer.textContent} : null,
             loaded: images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length,
             page_wider_than_window: doc.scrollWidth > doc.clientWidth, wide: wide.slice(0, 10)};
  var pre = document.createElement("pre"); pre.id = "evsynth-check"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
"""


def _result(label, table, mu=(0.9, 0.3), tau=(0.4, 0.1), seed=0, chains=2, draws=2000, measure="SMD"):
    """A random-effects-shaped fit of `table`: mu ~ N(mu), tau ~ |N(tau)|."""
    used = used_effects(table)
    rng = np.random.default_rng(1000 + seed)  # not summary.predictive_draws' stream (seed 0)
    m = rng.normal(*mu, (chains, draws))
    t = np.abs(rng.normal(*tau, (chains, draws)))
    theta = m[..., None] + t[..., None] * rng.normal(size=(chains, draws, len(used)))
    idata = az.from_dict({"posterior": {"mu": m, "tau": t, "theta": theta},
                          "constant_data": {"yi": used["yi"].to_numpy(), "sei": used["sei"].to_numpy()}},
                         coords={"study": list(used["study_id"])},
                         dims={"theta": ["study"], "yi": ["study"], "sei": ["study"]})
    idata.attrs.update(measure=measure, model="random_effects", prior_tau="halfnormal(0.5)", analysis=label)
    with np.errstate(invalid="ignore", divide="ignore"):  # a constructed constant tau (sd 0) has R-hat NaN
        table_diag = az.summary(idata, var_names=["mu", "tau", "theta"], kind="diagnostics")[["r_hat", "ess_bulk", "ess_tail"]]
    return AnalysisResult(label, table, idata, Diagnostics(table_diag, 0, [1.0, 1.0], dict(THRESHOLDS)), summarize(idata))


@pytest.fixture(scope="module")
def massage():
    studies = load_studies(ROOT / "studies" / "massage.csv")
    effects = compute_effects(studies)
    runnable, skipped = split_by_outcome(effects)
    results = [_result(label, table, seed=k) for k, (label, table) in enumerate(runnable.items())]
    return studies, effects, results, skipped


@pytest.fixture(scope="module")
def massage_report(massage, tmp_path_factory) -> Path:
    """The report of the massage results, written once (~2 s of CPU) and read by the layout tests."""
    studies, effects, results, skipped = massage
    return write_report(studies, effects, results, skipped, tmp_path_factory.mktemp("report"),
                        {"studies": "massage.csv"})


def test_numbers_as_a_reader_wants_them():
    assert number(2712.0, 0) == "2712" and number(-0.001) == "0.00" and number(-0.004, 2) == "0.00"
    assert number(float("nan")) == "" and number(1.23456, 3) == "1.235"


def test_effect_table_says_computed_and_entered_separately(massage):
    studies, effects, results, skipped = massage
    entered = in_model(results)
    table = effect_table(studies, effects, entered).set_index("Study")
    assert {"Effect size computed", "Entered a model", "How the SE was obtained", "Effect", "SE"} <= set(table.columns)
    assert not {"yi", "sei", "se_route", "why_not", "used"} & set(table.columns)
    # emilda2020 (head-to-head) has an effect size but entered no pairwise model
    assert table.loc["emilda2020", "Effect size computed"] == "yes" and table.loc["emilda2020", "Entered a model"] == "no"
    fitted = {sid for r in results for sid in used_effects(r.effects)["study_id"]}
    assert set(table.index[table["Entered a model"] == "yes"]) == fitted
    # every row either entered a model or is listed with a reason, never both
    excluded = rows_not_in_model(effects, skipped, entered)
    assert set(excluded["Study"]) == set(table.index) - fitted
    assert "emilda2020" in set(excluded["Study"]) and excluded["Reason"].str.len().gt(0).all()


def test_results_paragraph_from_the_numbers(massage):
    studies, effects, results, _ = massage
    milk = next(r for r in results if r.label == "milk volume")
    result = _result("milk volume", milk.effects, mu=(0.5, 0.1), tau=(0.3, 0.0))
    text = results_paragraph(result)
    k = len(used_effects(milk.effects))
    n = used_effects(milk.effects)["n_total"].sum()
    assert text.startswith(f"{k} studies, {n:.0f} participants entered a random-effects model of milk volume (SMD)")
    # mu ~ N(0.5, 0.1): median 0.50, 95% CrI 0.30 to 0.70 (within Monte Carlo error), P(mu > 0) ~ 1
    # led by the effect and its interval; P(> 0) only after, and said to be unadjusted
    pooled = re.search(r"The pooled effect was (\S+) \(95% CrI (\S+) to (\S+)\), not adjusted for publication bias"
                       r".*Without that adjustment, the probability that the effect exceeds 0 is > 0\.99\.", text)
    assert pooled and [float(v) for v in pooled.groups()] == pytest.approx([0.5, 0.5 - Z975 * 0.1, 0.5 + Z975 * 0.1],
                                                                        abs=0.015)
    # tau fixed at 0.3: I² = tau² / (tau² + s²) with metafor's typical within-study variance s²
    vi = used_effects(milk.effects)["sei"].to_numpy() ** 2
    w = 1 / vi
    s2 = (len(w) - 1) * w.sum() / (w.sum() ** 2 - (w**2).sum())
    assert (f"Between-study SD (tau) 0.30 (0.30 to 0.30); I² (between studies; posterior) median "
            f"{100 * 0.09 / (0.09 + s2):.0f}% ") in text
    sd = np.hypot(0.1, 0.3)  # new study: mu + tau z
    pred = re.search(r"would lie between (\S+) and (\S+) \(95% prediction interval\), which includes 0\.", text)
    assert pred and [float(v) for v in pred.groups()] == pytest.approx([0.5 - Z975 * sd, 0.5 + Z975 * sd], abs=0.03)
    used = used_effects(milk.effects)  # counted from the table (the massage data grow)
    pre_post, censored = int((used["design"] == "pre_post").sum()), int(used["censored"].astype(bool).sum())
    assert pre_post and f"{pre_post} of {k} studies are one-group pre/post designs" in text
    if censored:
        assert f"{censored} stud{'y is' if censored == 1 else 'ies are'} known only beyond a p-value bound" in text
    else:
        assert "known only beyond a p-value bound" not in text


def test_results_paragraph_back_transforms_ratios():
    rows = [{"study_id": f"s{k}", "citation": "c", "source_level": "synthetic", "design": "two_group",
             "technique": "t", "outcome": "death", "events_treat": e, "n_treat": 100, "events_ctrl": 20,
             "n_ctrl": 100, "synthetic": "true"} for k, e in enumerate((10, 12, 15, 9, 11))]
    effects = compute_effects(load_studies(pd.DataFrame(rows)), measure="RR")
    text = results_paragraph(_result("death", effects, mu=(np.log(0.5), 0.1), measure="RR"))
    assert "(RR, back-transformed)" in text and "The pooled effect was 0.50 (95% CrI" in text
    assert "the probability that the effect exceeds 1 is < 0.01" in text


def test_reference_list_from_citation_and_source(massage):
    studies = massage[0]
    refs = references(studies)
    assert len(refs) == studies[["citation", "source"]].fillna("").drop_duplicates().shape[0]
    hesti = refs[refs["rows"].map(lambda r: "hesti2017" in r)].iloc[0]
    assert hesti["source"] == "https://doi.org/10.33546/bnj.293" and hesti["citation"].startswith("Hesti KY")


def test_report_tables_readable(massage, massage_report):
    results = massage[2]
    page = massage_report.read_text()
    headers = set(re.findall(r"<th[^>]*>([^<]*)</th>", page))
    assert {"Study", "Effect size computed", "Entered a model", "Bulk ESS", "R-hat", "Median"} <= headers
    assert not {"yi", "sei", "se_route", "why_not", "ess_bulk", "r_hat"} & headers
    ess = re.findall(r'<td class="num">(\d+(?:\.\d+)?)</td>', page.split("Convergence diagnostics")[1].split("</table>")[0])
    assert ess and all("." not in v for v in ess[1::3])  # the Bulk ESS column: whole numbers
    assert "<h2 id=\"references\">References</h2>" in page and 'href="https://doi.org/10.33546/bnj.293"' in page
    assert page.count('<p class="results">') == len(results)


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (.ci/run installs it where apt exists)")
def test_report_renders_in_chromium(massage, massage_report, tmp_path):
    results = massage[2]
    page = massage_report.read_text(encoding="utf-8")
    expected_images = len(re.findall(r"<img ", page))
    checked = tmp_path / "checked.html"
    checked.write_text(page.replace("</body>", f"<script>{CHECK_SCRIPT}</script></body>"), encoding="utf-8")
    with tempfile.TemporaryDirectory() as profile:
        run = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--window-size=1280,900", "--virtual-time-budget=10000",
             "--dump-dom", checked.as_uri()],
            capture_output=True, text=True, timeout=180)
    match = re.search(r'<pre id="evsynth-check">(.*?)</pre>', run.stdout)
    assert match, f"the check script did not run: {run.stderr[-2000:]}"
    verdict = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert verdict["images"] == expected_images >= 3 * len(results)
    assert verdict["loaded"] == verdict["images"], verdict  # every figure decoded (naturalWidth > 0)
    assert not verdict["page_wider_than_window"] and verdict["wide"] == [], verdict
    assert "entered a random-effects model" in run.stdout
    # the answer is above the fold: the first outcome's summary box lies wholly within the first
    # screen of a 1280 x 900 window, before the input tables (effect table, exclusions)
    answer = verdict["answer"]
    assert answer is not None and 0 < answer["top"] < answer["bottom"] <= verdict["window_height"], verdict
    assert "Effect" in answer["text"] and "Certainty" in answer["text"] and "Bias-adjusted" in answer["text"]
    assert page.index('class="answer"') < page.index('id="effects"') < page.index('id="excluded"')


def test_report_opens_with_the_answer(massage, massage_report):
    """Issue 27: a box per outcome at the top (effect, interval, certainty, bias-adjusted figure, one
    labelled I², what it rests on), a table of contents, the input tables at the end."""
    results = massage[2]
    page = massage_report.read_text()
    boxes = re.findall(r'<section class="answer">(.*?)</section>', page)
    assert len(boxes) == len(results)
    first_section = page.index('<h2 id="outcome-')
    assert all(page.index(box) < first_section for box in boxes)
    for box, result in zip(boxes, results):
        med = np.median(result.idata.posterior["mu"].to_numpy())
        assert f"SMD {number(med)} (95% CrI" in box
        assert re.search(r"<th>Certainty</th><td>(HIGH|MODERATE|LOW|VERY LOW)", box)
        assert "<th>Bias-adjusted</th>" in box and "I² (between studies; posterior): median" in box
        assert f"{len(used_effects(result.effects))} studies" in box
    contents = page.index('id="contents"')
    assert contents < first_section < page.index('id="sof"') < page.index('id="effects"') < page.index('id="excluded"')
    for anchor in re.findall(r'<li><a href="#([^"]+)">', page):
        assert f'id="{anchor}"' in page
    # one I² per outcome, labelled, in the text, the box and the SoF reasons alike
    unlabelled = re.findall(r"I² (?!\((between|total|residual)[^)]*\))\d", page)
    assert not unlabelled


def _synthetic_risk_ratios():
    """Five synthetic two-arm trials analysed as RR, with a constructed posterior of median RR 0.5."""
    rows = [{"study_id": f"s{k}", "citation": "c", "source_level": "synthetic", "design": "two_group",
             "technique": "t", "outcome": "death", "events_treat": e, "n_treat": 100, "events_ctrl": 20,
             "n_ctrl": 100, "synthetic": "true"} for k, e in enumerate((10, 12, 15, 9, 11))]
    studies = load_studies(pd.DataFrame(rows))
    effects = compute_effects(studies, measure="RR")
    return studies, effects, _result("death", effects, mu=(np.log(0.5), 0.1), measure="RR")


def test_report_box_back_transforms_ratios(tmp_path):
    studies, effects, result = _synthetic_risk_ratios()
    page = write_report(studies, effects, [result], {}, tmp_path, {"studies": "x"}).read_text()
    box = re.search(r'<section class="answer">(.*?)</section>', page).group(1)
    med = np.exp(np.median(result.idata.posterior["mu"].to_numpy()))
    assert f"RR {number(med)} (95% CrI" in box and "back-transformed from the log scale" in box


def test_report_box_shows_the_bias_adjusted_figure_and_certainty_when_computed(tmp_path):
    """AnalysisResult.bias_adjusted (RoBMA-PSMA) and .certainty, when the analysis computed them,
    fill the box; a ratio's adjusted figure is back-transformed like the effect."""
    from evsynth.methods.robma import BiasAdjusted

    studies, effects, result = _synthetic_risk_ratios()
    result.bias_adjusted = BiasAdjusted(ran=True, k=5, mean=np.log(0.6), sd=0.2, low=np.log(0.4), median=np.log(0.6),
                                        high=np.log(0.9), p_effect=0.9, p_heterogeneity=0.3, p_bias=0.4)
    page = write_report(studies, effects, [result], {}, tmp_path, {"studies": "x"}).read_text()
    box = re.search(r'<section class="answer">(.*?)</section>', page).group(1)
    assert "<th>Bias-adjusted</th><td>RR 0.60 (95% CrI 0.40 to 0.90), RoBMA-PSMA model average" in box
    result.bias_adjusted = BiasAdjusted(ran=False, k=2, reason="fewer than 3 studies")
    page = write_report(studies, effects, [result], {}, tmp_path, {"studies": "x"}).read_text()
    assert "<th>Bias-adjusted</th><td>not computed: fewer than 3 studies" in page
