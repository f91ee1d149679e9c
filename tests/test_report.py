"""`evsynth report`: the HTML holds the effect table, the rows not used with reasons, per-outcome
summaries, diagnostics verdicts and embedded PNG figures; failures are loud."""

import base64
import html
import re
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd

from evsynth import compute_effects, load_studies, not_used
from evsynth.methods.analysis import AnalysisResult
from evsynth.cli.main import main
from evsynth.methods.diagnostics import diagnose
from evsynth.present.report import write_report
from evsynth.methods.summary import summarize

ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def _text(page: str) -> str:
    """Visible text, unescaped, whitespace collapsed."""
    page = re.sub(r"<style>.*?</style>", " ", page, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def test_report_on_the_massage_table(tmp_path, capsys):
    """The MCMC report with the default sampler, as a user runs it (nutpie when installed: its compiled
    models are cached on disk, so a second run costs ~2 s of CPU instead of ~5 s with PyMC's NUTS)."""
    out = tmp_path / "report"
    rc = main(["report", str(ROOT / "studies" / "massage.csv"), "--out", str(out), "--draws", "200",
               "--tune", "200", "--chains", "2", "--seed", "3", "--threshold", "0.2"])
    page = (out / "report.html").read_text(encoding="utf-8")
    text = _text(page)
    effects = compute_effects(load_studies(ROOT / "studies" / "massage.csv"))

    # effect table: every row of the study table, used or not, with its SE route in words
    for study in effects["study_id"]:
        assert study in text
    assert "censored: p known only as a bound" in text.replace("censored : ", "censored: ")  # medan_neck, p = 0.000 (default p_bound for SMD)
    assert "back-calculated from an exact p-value" in text  # pratama2023
    # not-used rows with their reasons
    for reason in not_used(effects)["why_not"]:
        assert " ".join(reason.split()) in text
    # analysable outcomes (milk volume: 5 studies); the rest named with the reason
    assert "Outcome: milk volume" in text
    assert "time to colostrum: 1 usable study; need 2" in text
    for label in ("technique: oxytocin", "technique: marmet", "tau (between studies)",
                  "prediction (new study)", "P(>0)", "P(>0.2)", "Bulk ESS", "R-hat"):
        assert label in text
    # every technique of the outcome, with its estimate or why there is none; design side by side
    assert "Every technique: its estimate, or why there is none" in text
    assert "medan_neck: head-to-head comparison" in text and "lubis_gikes: number of mothers not printed" in text
    assert "Design: controlled vs pre/post studies" in text and "pre/post - controlled (beta)" in text
    assert "time to colostrum: 1 usable study; need 2 (techniques: early mobilisation, marmet" in text
    # caveats follow from the rows used
    assert "regression to the mean" in text and "pratama2023" in text
    milk = effects[effects["used"] & ~effects["head_to_head"] & (effects["outcome"] == "milk volume")]
    assert not milk["censored"].any()  # the milk rows' bounds are Wilcoxon bounds: used as the p
    assert "p-values known only as bounds, used as if exact (kundarti2025, fara2022)" in text
    assert "SE from a rank test's p-value (the study table's test: kundarti2025, fara2022)" in text
    # forest, funnel and tau figures, embedded: nothing to fetch
    images = _images(page)
    analysed = page.count('<h2 id="outcome-')  # milk volume and infant weight (ijaph12, dewi2024_weight)
    assert analysed == 2 and "Outcome: infant weight" in text
    # plus each outcome's classical checks (Baujat plot, filled funnel; a cumulative plot when ordered)
    classical = re.findall(r'<h2 id="classical-.*?(?=<h2 )', page, flags=re.S)
    assert len(classical) == analysed and classical[0].count("<img") >= 2  # milk volume: 5 studies
    assert "Not computed: the classical toolkit needs at least 3 studies (2 usable)" in classical[1]
    n_classical = sum(part.count("<img") for part in classical)
    assert len(images) == 3 * analysed + n_classical and all(img.startswith(PNG_SIGNATURE) for img in images)
    assert not re.search(r'src="(?!data:)', page)
    # exit status and banner agree: 3 exactly when the fit failed its diagnostics
    failed = "DIAGNOSTICS FAILED for: milk volume" in text
    assert ("Diagnostics FAIL" in text) == failed and ("Diagnostics PASS" in text) != failed
    assert rc == (3 if failed else 0)
    assert "wrote" in capsys.readouterr().out


def test_report_without_analysable_outcome_and_synthetic_banner(tmp_path, write_csv):
    path = write_csv([{"study_id": "only", "citation": "made up for a test", "source_level": "synthetic",
                       "design": "effect", "technique": "neck", "outcome": "milk volume", "yi": 0.3,
                       "sei": 0.1, "measure": "SMD", "synthetic": "true"}])
    rc = main(["report", str(path), "--out", str(tmp_path / "r")])
    text = _text((tmp_path / "r" / "report.html").read_text(encoding="utf-8"))
    assert rc == 4  # nothing analysed (the report is still written)
    assert "SYNTHETIC DATA" in text and "No outcome has enough usable studies" in text
    assert "milk volume: 1 usable study; need 2" in text


def test_report_bad_input_names_study_and_field(tmp_path, write_csv, capsys):
    path = write_csv([{"study_id": "s1", "citation": "c", "source_level": "abstract", "design": "pre_post",
                       "technique": "neck", "outcome": "milk volume", "n": 10, "mean_pre": 1, "mean_post": 2,
                       "p": "<0.05"}])
    assert main(["report", str(path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "s1" in err and "'p'" in err
    assert not (tmp_path / "r" / "report.html").exists()


def test_failed_fit_is_loud(tmp_path):
    """Two chains stuck in different places: R-hat far above 1.01, so the report must say FAIL."""
    rows = [{"study_id": s, "citation": "c", "source_level": "synthetic", "design": "effect", "technique": t,
             "outcome": "milk volume", "yi": y, "sei": 0.2, "measure": "SMD", "synthetic": "true"}
            for s, t, y in (("a", "neck", 0.2), ("b", "neck", 0.4), ("c", "oxytocin", 0.6))]
    studies = load_studies(pd.DataFrame(rows))
    effects = compute_effects(studies)
    rng = np.random.default_rng(0)
    shift = np.array([0.0, 3.0])[:, None]  # chain 2 sits 3 units away
    n = 300
    idata = az.from_dict({"posterior": {"mu": rng.normal(size=(2, n)) + shift, "tau": np.abs(rng.normal(size=(2, n))),
                   "theta": rng.normal(size=(2, n, 3)) + shift[..., None]}, "sample_stats": {"diverging": np.zeros((2, n), bool), "energy": rng.normal(size=(2, n))}, "constant_data": {"yi": effects["yi"].to_numpy(), "sei": effects["sei"].to_numpy()}}, coords={"study": list(effects["study_id"])}, dims={"theta": ["study"], "yi": ["study"], "sei": ["study"]})
    idata.attrs.update({"measure": "SMD", "prior_tau": "halfnormal(0.5)"})
    diagnostics = diagnose(idata)
    assert not diagnostics.ok
    result = AnalysisResult("milk volume", effects, idata, diagnostics, summarize(idata))
    path = write_report(studies, effects, [result], {}, tmp_path, {"studies": "test"})
    text = _text(path.read_text(encoding="utf-8"))
    assert "DIAGNOSTICS FAILED for: milk volume" in text and "Diagnostics FAIL" in text
    assert "mu: R-hat" in text  # the problem itself, not only the verdict
    assert "Diagnostics PASS" not in text
