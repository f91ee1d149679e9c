"""Summary-of-findings table (evsynth.present.sof) on simulated data with known truth: each certainty domain
is rated by its documented rule, overrides need a reason, and the absolute effect per 1000 of a
binary outcome follows from the pooled ratio at the stated baseline risk (BCG trials, metadat)."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import evsynth as es
from evsynth.model import description
from evsynth.engines import exact as engine
from evsynth.present.sof import median_control_risk, per_1000, summary_of_findings

DATA = Path(__file__).parent / "data"


def simulated(k=12, mu=0.4, tau=0.0, se=(0.06, 0.1), rob="low", design="two_group", seed=5, small_study=0.0):
    """k SMDs around mu (between-study SD tau) with per-study n; `small_study` adds that times sei to yi."""
    rng = np.random.default_rng(seed)
    sei = rng.uniform(*se, k)
    yi = mu + rng.normal(0, tau, k) + rng.normal(0, sei) + small_study * sei
    table = pd.DataFrame({
        "study_id": [f"s{i:02d}" for i in range(k)], "technique": "t", "comparator": "control", "outcome": "o",
        "unit": "", "design": design, "measure": "SMD", "yi": yi, "sei": sei, "vi": sei**2,
        "n_total": np.round(4 / sei**2).astype(int), "censored": False, "head_to_head": False, "used": True,
        "why_not": "", "synthetic": True, "rob": rob, "randomised": "yes"})
    table.attrs["measure"] = "SMD"
    return table


def sof(table, **options):
    tree = engine.fit_exact(description.random_effects(table), draws=1000, chains=2, seed=1)
    return summary_of_findings({"o": (table, tree)}, **options).loc["o"]


def test_low_risk_precise_consistent_evidence_is_high_certainty():
    row = sof(simulated())
    assert row["studies"] == 12 and row["participants"] == simulated()["n_total"].sum()
    assert row[["risk_of_bias", "inconsistency", "indirectness", "imprecision", "publication_bias"]].tolist() == \
        ["not serious"] * 5
    assert row["certainty"] == "high"
    assert row["effect_low"] < 0.4 < row["effect_high"]


@pytest.mark.slow  # 20 fits, each with the 16-model bias ensemble
def test_certainty_is_usually_high_when_nothing_is_wrong():
    """No heterogeneity, low risk of bias, no small-study effect: only chance (a heterogeneous-looking
    or asymmetric sample: I² >= 50% or BF_bias >= 3 in the bias ensemble) can downgrade; that is rare."""
    rows = [sof(simulated(seed=seed)) for seed in range(20)]
    ratings = [row["certainty"] for row in rows]
    print("certainty with nothing wrong:", pd.Series(ratings).value_counts().to_dict())
    assert ratings.count("high") >= 13 and "low" not in ratings and "very low" not in ratings
    # every rating agrees with the figures its reason prints (the rules' boundaries themselves are
    # pinned in test_verdicts_sof.py)
    for row in rows:
        reasons = dict(part.split(": ", 1) for part in row["reasons"].split("; "))
        i2 = float(re.search(r"I² (\d+)%", reasons["inconsistency"]).group(1))
        bf = float(re.search(r"BF_bias ([\d.e+-]+)", reasons["publication bias"]).group(1))
        assert row["inconsistency"] == ("serious" if i2 >= 50 or "includes no effect" in reasons["inconsistency"]
                                        else "not serious"), reasons["inconsistency"]
        assert row["publication_bias"] == ("serious" if bf >= 3 else "not serious"), reasons["publication bias"]
        down = (row["inconsistency"] == "serious") + (row["publication_bias"] == "serious")
        assert row["certainty"] == ["high", "moderate", "low"][down]


@pytest.mark.slow  # each row fits the 16-model bias ensemble (methods.robma)
def test_high_risk_of_bias_downgrades():
    # 8 studies of equal weight (Egger's test not assessed below 10 studies)
    row = sof(simulated(k=8, rob=["high"] * 5 + ["low"] * 3, se=(0.08, 0.08)))  # 5/8 = 62% at high risk
    assert row["risk_of_bias"] == "very serious" and row["certainty"] == "low"
    row = sof(simulated(k=8, rob=["high"] * 3 + ["low"] * 5, se=(0.08, 0.08)))  # 38%
    assert row["risk_of_bias"] == "serious" and row["certainty"] == "moderate"
    row = sof(simulated(rob=[None] * 12))  # no judgements: counted as some concerns
    assert row["risk_of_bias"] == "serious" and "12 of 12 studies without a judgement" in row["reasons"]


def test_heterogeneity_downgrades_inconsistency():
    # tau 0.5 against SEs of 0.06-0.1: I² about 97%, and mu 0.2 +- 2 tau includes 0
    row = sof(simulated(tau=0.5, mu=0.2))
    assert row["inconsistency"] == "very serious"
    assert re.search(r"inconsistency: posterior median I² 9\d%, 95% prediction interval -\d\.\d\d to \d\.\d\d "
                     "includes no effect", row["reasons"]), row["reasons"]
    # the same spread around a larger effect: the prediction interval excludes 0, so serious only
    row = sof(simulated(tau=0.5, mu=2.5))
    assert row["inconsistency"] == "serious" and "excludes no effect" in row["reasons"]


@pytest.mark.slow  # each row fits the 16-model bias ensemble (methods.robma)
def test_uncontrolled_pre_post_downgrades_indirectness():
    row = sof(simulated(design="pre_post"))
    # pre/post rows are never randomised: start low, then two levels down for the missing comparator
    assert row["start"] == "low" and row["indirectness"] == "very serious" and row["certainty"] == "very low"
    mixed = simulated(design=["pre_post"] * 2 + ["two_group"] * 10)
    row = sof(mixed)
    assert row["indirectness"] == "serious" and row["start"] == "low" and "2 non-randomised" in row["reasons"]


@pytest.mark.slow  # each row fits the 16-model bias ensemble (methods.robma)
def test_wide_credible_interval_downgrades_imprecision():
    row = sof(simulated(k=3, se=(0.3, 0.4)))
    assert row["imprecision"] == "very serious"  # a CrI wider than 1 SMD
    # 3 studies: the bias ensemble runs (its minimum); unbiased data give no evidence of bias
    assert row["publication_bias"] == "not serious" and "RoBMA-PSMA" in row["reasons"]
    assert sof(simulated(k=2, se=(0.3, 0.4)))["publication_bias"] == "not assessed"  # below the minimum
    from evsynth.methods.robma import bias_adjusted

    table = simulated()
    tree = engine.fit_exact(description.random_effects(table), draws=1000, chains=2, seed=1)
    adjusted = {"o": bias_adjusted(table)}  # fitted once, shared by the four rows below
    row = summary_of_findings({"o": (table, tree)}, adjusted=adjusted).loc["o"]
    width = row["effect_high"] - row["effect_low"]
    for threshold, rating in ((1.2 * width, "not serious"), (0.8 * width, "serious"), (0.4 * width, "very serious")):
        row = summary_of_findings({"o": (table, tree)}, imprecision_width=threshold, adjusted=adjusted).loc["o"]
        assert row["imprecision"] == rating  # the user's threshold


def test_small_study_effect_downgrades_publication_bias():
    table = simulated(k=20, se=(0.05, 0.45), small_study=2.5, seed=3)
    row = sof(table)
    assert row["publication_bias"] == "serious" and "RoBMA-PSMA" in row["reasons"]
    # without the ensemble (e.g. a fit whose bias ensemble was not run) Egger's test rates it
    from evsynth.methods.certainty import rate_publication_bias

    rating, why = rate_publication_bias(table)
    assert rating == "serious" and "Egger" in why


@pytest.mark.slow  # each row fits the 16-model bias ensemble (methods.robma)
def test_overrides_need_a_reason_and_change_the_rating():
    table = simulated(design="pre_post")
    tree = engine.fit_exact(description.random_effects(table), draws=300, chains=1)
    row = summary_of_findings({"o": (table, tree)},
                              overrides={"o": {"indirectness": ("not serious", "pre/post is the question")}}).loc["o"]
    assert row["indirectness"] == "not serious" and row["certainty"] == "low"  # starts low: not randomised
    assert "overridden by the user: pre/post is the question" in row["reasons"]
    with pytest.raises(ValueError, match="reason"):
        summary_of_findings({"o": (table, tree)}, overrides={"o": {"indirectness": "not serious"}})
    with pytest.raises(ValueError, match="domain"):
        summary_of_findings({"o": (table, tree)}, overrides={"o": {"bias": ("serious", "x")}})
    with pytest.raises(ValueError, match="outcomes"):
        summary_of_findings({"o": (table, tree)}, overrides={"other": {"imprecision": ("serious", "x")}})


def bcg_studies() -> pd.DataFrame:
    b = pd.read_csv(DATA / "bcg.csv")
    return es.load_studies(pd.DataFrame(dict(
        study_id=b.trial.astype(str), citation=b.author, year=b.year, source_level="secondary",
        design="two_group", technique="BCG", outcome="tuberculosis", events_treat=b.tpos,
        n_treat=b.tpos + b.tneg, events_ctrl=b.cpos, n_ctrl=b.cpos + b.cneg)))


@pytest.mark.parametrize("measure", ["RR", "OR", "RD"])
def test_binary_absolute_effect_per_1000(measure):
    studies = bcg_studies()
    effects = es.compute_effects(studies, measure=measure)
    baseline = median_control_risk(studies, effects)
    b = pd.read_csv(DATA / "bcg.csv")
    assert baseline == pytest.approx(np.median(b.cpos / (b.cpos + b.cneg)))
    tree = engine.fit_exact(description.random_effects(effects), draws=1000, chains=2)
    row = summary_of_findings({"tb": (effects, tree)}, baseline_risk=baseline).loc["tb"]
    assert row["participants"] == (b.tpos + b.tneg + b.cpos + b.cneg).sum()
    mu = np.median(tree["posterior"]["mu"].to_numpy())
    if measure == "RD":
        expected = 1000 * mu
        assert row["effect"] == pytest.approx(mu)
    else:  # the table shows the ratio, back-transformed
        assert row["effect"] == pytest.approx(np.exp(mu))
        p1 = baseline * np.exp(mu) if measure == "RR" else 1 / (1 + (1 - baseline) / (baseline * np.exp(mu)))
        expected = 1000 * (p1 - baseline)
    assert row["per_1000"] == pytest.approx(expected, rel=1e-3)  # a monotone map of the median
    assert row["per_1000_low"] < row["per_1000"] < row["per_1000_high"] < 0  # the vaccine prevents TB
    assert row["inconsistency"] != "not serious"  # BCG: I² ~ 92% (metafor)


def test_per_1000_rejects_continuous_measures():
    with pytest.raises(ValueError, match="binary"):
        per_1000(np.zeros(3), "SMD", 0.1)


def test_report_section_shows_the_table_and_the_reasons():
    from types import SimpleNamespace

    from evsynth.present.report import sof_section

    studies = bcg_studies()
    effects = es.compute_effects(studies, measure="RR")
    tree = engine.fit_exact(description.random_effects(effects), draws=300, chains=1)
    page = sof_section(studies, [SimpleNamespace(label="tuberculosis", effects=effects, idata=tree)])
    assert "Summary of findings" in page and "tuberculosis" in page and "per 1000" in page and "RR 0.5" in page
    assert "posterior median I²" in page and "Egger" in page  # 13 studies: publication bias assessed
    assert sof_section(studies, []) == ""
