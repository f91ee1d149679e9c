"""The summary-of-findings table (evsynth.present.sof) built from constructed effect tables and
constructed posteriors (no sampling, no bias ensemble: the test passes a BiasAdjusted): every column
the reader sees against numpy's quantiles of the given draws or a closed form, the absolute effect
per 1000 by its formula, the baseline risk on both sides of its bounds, and how options reach each
outcome. The GRADE rules themselves are pinned in test_verdicts_sof.py and test_certainty.py; this
file is the fast selection of the mutation run of present.sof (scripts/mutation_test.py)."""

from types import SimpleNamespace

import arviz as az
import numpy as np
import pandas as pd
import pytest

from evsynth.methods.certainty import rate_certainty
from evsynth.methods.robma import BiasAdjusted
from evsynth.present import sof
from evsynth.present.sof import median_control_risk, per_1000, summary_of_findings

MU = np.linspace(-0.2, 0.6, 2001)  # the draws of mu: their quantiles are exact grid points
ENSEMBLE = BiasAdjusted(True, 4, mean=0.2, low=-0.1, high=0.5, p_bias=0.4, bf_bias=0.7)


def table(k=4, measure="SMD", n_total=100, used=True, head_to_head=False, vi=0.04, attrs=True):
    out = pd.DataFrame({
        "study_id": [f"s{i}" for i in range(k)], "technique": "t", "comparator": "control", "outcome": "o",
        "unit": "", "design": "two_group", "measure": measure, "yi": 0.2, "sei": np.sqrt(vi), "vi": vi,
        "n_total": n_total, "censored": False, "head_to_head": head_to_head, "used": used, "why_not": "",
        "synthetic": True, "rob": "low", "randomised": "yes"})
    if attrs:
        out.attrs["measure"] = measure
    return out


def posterior(mu=MU, tau=0.05, **attrs):
    draws = {"mu": np.asarray(mu, float)[None], "tau": np.full((1, np.size(mu)), tau)}
    tree = az.from_dict({"posterior": draws, "constant_data": {"sei": np.full(4, 0.2)}})
    tree.attrs.update(attrs)
    return tree


def row_of(effects, fit=None, adjusted=ENSEMBLE, **options):
    return summary_of_findings({"o": (effects, posterior() if fit is None else fit)}, adjusted={"o": adjusted},
                               **options).loc["o"]


# --------------------------------------------------------------------------- per 1000


def test_per_1000_closed_forms():
    draws = np.log(np.array([0.5, 1.0, 2.0]))
    # RR: 1000 p0 (RR - 1)
    assert per_1000(draws, "RR", 0.2).tolist() == pytest.approx([-100.0, 0.0, 200.0], abs=1e-12)
    # OR: the treated risk from the odds p0 / (1 - p0) OR
    treated = [0.25 * r / (1 + 0.25 * r) for r in (0.5, 1.0, 2.0)]
    assert per_1000(draws, "OR", 0.2).tolist() == pytest.approx([1000 * (p - 0.2) for p in treated], abs=1e-12)
    assert per_1000(np.log(np.array([3.0])), "OR", 0.5)[0] == pytest.approx(250.0)  # odds 3: risk 0.75
    # RD: the difference itself, whatever the baseline
    assert per_1000(np.array([-0.05, 0.12]), "RD", 0.9).tolist() == pytest.approx([-50.0, 120.0], abs=1e-12)
    for measure in ("SMD", "ROM", "rr"):
        with pytest.raises(ValueError, match=rf"^an absolute effect per 1000 needs a binary measure \(RR, OR, RD\), "
                                             rf"not '{measure}'$"):
            per_1000(draws, measure, 0.2)


# --------------------------------------------------------------------------- median control risk


def test_median_control_risk_of_the_used_studies():
    studies = pd.DataFrame({"study_id": ["a", "b", "c", "d", "e"], "events_ctrl": [1, 4, 9, 50, "x"],
                            "n_ctrl": [10, 10, 10, 100, 10]})
    effects = pd.DataFrame({"study_id": ["a", "b", "c", "d", "e"], "used": [True, True, True, False, True],
                            "head_to_head": [False, False, False, False, False]})
    # used: a, b, c, e (e's count is not a number: skipped); median of 0.1, 0.4, 0.9
    assert median_control_risk(studies, effects) == pytest.approx(0.4)
    # an even number: the mean of the middle two (0.1, 0.4, 0.5, 0.9)
    effects.loc[3, "used"] = True
    assert median_control_risk(studies, effects) == pytest.approx(0.45)
    # a head-to-head row is not a control group: not used
    effects.loc[2, "head_to_head"] = True
    assert median_control_risk(studies, effects) == pytest.approx(0.4)
    assert np.isnan(median_control_risk(studies.drop(columns="n_ctrl"), effects))
    assert np.isnan(median_control_risk(studies.drop(columns="events_ctrl"), effects))
    assert np.isnan(median_control_risk(studies.assign(events_ctrl="x"), effects))  # no count at all
    assert np.isnan(median_control_risk(studies.assign(n_ctrl="n/a"), effects))
    assert median_control_risk(studies.assign(n_ctrl=[10, "?", 10, 100, 10]), effects) == pytest.approx(0.3)  # a, d
    assert np.isnan(median_control_risk(studies, effects.assign(used=False)))  # no used study
    assert isinstance(median_control_risk(studies, effects), float)
    # nullable integer counts (as load_studies reads them), all missing: pandas' median is pd.NA, shown as NaN
    nullable = studies.assign(events_ctrl=pd.array([None] * 5, dtype="Int64"), n_ctrl=pd.array([10] * 5, dtype="Int64"))
    assert np.isnan(median_control_risk(nullable, effects))
    counted = studies.assign(events_ctrl=pd.array([1, 4, None, 50, None], dtype="Int64"),
                             n_ctrl=pd.array([10] * 5, dtype="Int64"))
    assert median_control_risk(counted, effects) == pytest.approx(0.4)  # a, b, d counted (0.1, 0.4, 5): 0.4


# --------------------------------------------------------------------------- one row


def test_row_shows_the_pooled_effect_and_its_interval_on_the_reading_scale():
    q = np.quantile(MU, [0.5, 0.025, 0.975])
    row = row_of(table())
    assert [row["effect"], row["effect_low"], row["effect_high"]] == pytest.approx(q, rel=1e-12)
    assert row["measure"] == "SMD" and row["studies"] == 4 and row["participants"] == 400
    assert "baseline_risk" not in row.index and "per_1000" not in row.index
    for measure in ("RR", "OR", "ROM"):  # ratios back-transformed
        row = row_of(table(measure=measure))
        assert [row["effect"], row["effect_low"], row["effect_high"]] == pytest.approx(np.exp(q), rel=1e-12)
    row = row_of(table(measure="RD"), imprecision_width=0.5)
    assert [row["effect"], row["effect_low"], row["effect_high"]] == pytest.approx(q, rel=1e-12)


def test_measure_from_the_tables_attrs_before_its_column():
    effects = table(measure="SMD")
    effects.attrs["measure"] = "RR"
    assert row_of(effects)["measure"] == "RR"
    assert row_of(table(measure="RR", attrs=False))["measure"] == "RR"
    one = row_of(table(k=1, measure="OR", attrs=False), imprecision_width=1.0)  # its first (only) row
    assert one["measure"] == "OR" and one["studies"] == 1


def test_studies_and_participants_count_the_used_rows():
    effects = table(k=5, n_total=[10, 20, 30, 40, 1000], used=[True, True, True, True, False])
    row = row_of(effects)
    assert row["studies"] == 4 and row["participants"] == 100 and isinstance(row["participants"], (int, np.integer))
    assert row_of(table(k=5, head_to_head=[False] * 4 + [True], n_total=[1, 2, 3, 4, 500]))["participants"] == 10
    none = row_of(table(n_total=np.nan))
    assert np.isnan(none["participants"])
    assert none["reasons"].endswith("; participants: not reported for 4 studies (not counted)")
    some = row_of(table(n_total=[5, np.nan, 7, np.nan]))
    assert some["participants"] == 12
    assert some["reasons"].endswith("; participants: not reported for 2 studies (not counted)")
    assert "participants" not in row_of(table())["reasons"]


def test_absolute_effect_per_1000_at_the_baseline_risk():
    mu = np.log(np.linspace(0.4, 1.1, 2001))
    fit = posterior(mu)
    for measure in ("RR", "OR", "RD"):
        row = row_of(table(measure=measure), fit, baseline_risk=0.2, imprecision_width=1.0)
        assert row["baseline_risk"] == 0.2
        expected = np.quantile(per_1000(mu, measure, 0.2), [0.5, 0.025, 0.975])
        assert [row["per_1000"], row["per_1000_low"], row["per_1000_high"]] == pytest.approx(expected, rel=1e-12)
    rr = row_of(table(measure="RR"), fit, baseline_risk=0.2)
    # RR: a monotone map of the draws, so its quantiles are those of mu mapped: 1000 p0 (RR - 1)
    assert rr["per_1000"] == pytest.approx(200 * (np.exp(np.quantile(mu, 0.5)) - 1), rel=1e-12)
    assert rr["per_1000_low"] == pytest.approx(200 * (np.exp(np.quantile(mu, 0.025)) - 1), rel=1e-12)
    # no baseline (or NaN): the column is NaN and no per-1000 figures
    for given in ({}, {"baseline_risk": None}, {"baseline_risk": np.nan}):
        row = row_of(table(measure="RR"), fit, **given)
        assert np.isnan(row["baseline_risk"]) and "per_1000" not in row.index, given
    # a continuous or ROM outcome has no baseline column even when one is given
    assert "baseline_risk" not in row_of(table(measure="ROM"), fit, baseline_risk=0.2).index


@pytest.mark.parametrize("risk", [0.0, 1.0, -0.1, 1.5])
def test_baseline_risk_outside_zero_to_one_is_refused(risk):
    with pytest.raises(ValueError, match=rf"^baseline_risk for 'o': {risk} must lie strictly between 0 and 1$"):
        row_of(table(measure="RR"), baseline_risk=risk)


@pytest.mark.parametrize("risk", [np.nextafter(0.0, 1.0), np.nextafter(1.0, 0.0)])
def test_baseline_risk_just_inside_its_bounds_is_taken(risk):
    row = row_of(table(measure="RR"), baseline_risk=risk)
    assert row["baseline_risk"] == risk and np.isfinite(row["per_1000"])


def test_ratings_and_reasons_are_the_certainty_rules_in_order():
    effects = table(k=4).assign(rob=["high", "low", "low", "low"])
    fit = posterior()
    row = row_of(effects, fit)
    c = rate_certainty(effects, fit, ENSEMBLE)
    for domain, rating in c.ratings.items():
        assert row[domain] == rating
    assert (row["start"], row["certainty"]) == (c.start, c.rating) == ("high", "low")  # rob + imprecision serious
    assert row["reasons"] == "; ".join(
        [f"design: {c.start_reason}", f"risk of bias: {c.reasons['risk_of_bias']}",
         f"inconsistency: {c.reasons['inconsistency']}", f"indirectness: {c.reasons['indirectness']}",
         f"imprecision: {c.reasons['imprecision']}", f"publication bias: {c.reasons['publication_bias']}"])
    assert row["reasons"].startswith("design: 4 randomised, 0 non-randomised")
    assert "publication bias: RoBMA-PSMA: P(bias) 0.40, BF_bias 0.7 (< 3)" in row["reasons"]
    assert row.index.tolist() == ["studies", "participants", "measure", "effect", "effect_low", "effect_high",
                                  "risk_of_bias", "inconsistency", "indirectness", "imprecision",
                                  "publication_bias", "start", "certainty", "reasons"]


def test_options_reach_the_rules():
    wide = row_of(table(), imprecision_width=0.3)  # CrI width 0.76: more than twice 0.3
    assert wide["imprecision"] == "very serious" and "threshold 0.3 " in wide["reasons"]
    assert row_of(table(), imprecision_width=1.0)["imprecision"] == "not serious"
    over = row_of(table(), overrides={"o": {"imprecision": ("not serious", "the question allows it")}})
    assert over["imprecision"] == "not serious"
    assert "imprecision: overridden by the user: the question allows it" in over["reasons"]
    with pytest.raises(ValueError, match=r"^override for 'o', imprecision: give the reason"):
        row_of(table(), overrides={"o": {"imprecision": "serious"}})


def test_without_an_ensemble_it_is_fitted_with_the_fits_priors(monkeypatch):
    from evsynth.methods import robma

    calls = []

    def recorder(effects, priors):
        calls.append((effects, priors))
        return BiasAdjusted(False, len(effects), reason="recorded")

    monkeypatch.setattr(robma, "bias_adjusted", recorder)
    effects = table()
    fit = posterior(prior_mu="normal(0, 2)", prior_tau="halfcauchy(0.3)")
    row = summary_of_findings({"o": (effects, fit)}).loc["o"]
    assert len(calls) == 1 and calls[0][0] is effects
    assert calls[0][1] == {"mu": "normal(0, 2)", "tau": "halfcauchy(0.3)"}
    assert row["reasons"].endswith("(bias-adjusted ensemble: recorded)")
    summary_of_findings({"o": (effects, posterior(prior_mu="", prior_tau="uniform(0, 2)"))})
    assert calls[1][1] == {"tau": "uniform(0, 2)"}  # an empty prior is not passed
    summary_of_findings({"o": (effects, posterior())})
    assert calls[2][1] == {}
    assert sof._fit_priors(posterior(prior_mu="normal(0, 1)", other="x")) == {"mu": "normal(0, 1)"}


# --------------------------------------------------------------------------- the table


def test_table_of_results_takes_each_results_own_ensemble_unless_given():
    a, b = table(), table(k=4, measure="RR")
    fit_a, fit_b = posterior(), posterior(np.log(np.linspace(0.5, 0.9, 2001)))
    serious = BiasAdjusted(True, 4, mean=0.2, low=-0.1, high=0.5, p_bias=0.9, bf_bias=9.0)
    results = [SimpleNamespace(label="first", effects=a, idata=fit_a, bias_adjusted=ENSEMBLE),
               SimpleNamespace(label="second", effects=b, idata=fit_b, bias_adjusted=serious)]
    out = summary_of_findings(results)
    assert out.index.tolist() == ["first", "second"] and out.index.name == "outcome"
    assert out["publication_bias"].tolist() == ["not serious", "serious"]
    assert out.loc["second", "measure"] == "RR"
    # an explicit `adjusted` replaces a result's own
    out = summary_of_findings(results, adjusted={"second": ENSEMBLE})
    assert out["publication_bias"].tolist() == ["not serious", "not serious"]
    assert summary_of_findings(results, adjusted=None)["publication_bias"].tolist() == ["not serious", "serious"]
    # a result without a bias_adjusted field (an older AnalysisResult) takes the one given
    bare = [SimpleNamespace(label="first", effects=a, idata=fit_a)]
    assert summary_of_findings(bare, adjusted={"first": serious}).loc["first", "publication_bias"] == "serious"


def test_per_outcome_options_by_label_or_for_all():
    a, b = table(measure="RR"), table(measure="RR")
    results = {"first": (a, posterior()), "second": (b, posterior())}
    adjusted = {"first": ENSEMBLE, "second": ENSEMBLE}
    out = summary_of_findings(results, baseline_risk={"first": 0.1, "second": 0.3}, adjusted=adjusted,
                              imprecision_width={"first": 0.3, "second": 1.0})
    assert out["baseline_risk"].tolist() == [0.1, 0.3]
    assert out["imprecision"].tolist() == ["very serious", "not serious"]
    out = summary_of_findings(results, baseline_risk=0.2, imprecision_width=1.0, adjusted=adjusted)
    assert out["baseline_risk"].tolist() == [0.2, 0.2] and out["imprecision"].tolist() == ["not serious"] * 2
    out = summary_of_findings(results, baseline_risk={"first": 0.1}, adjusted=adjusted)  # second: none given
    assert out.loc["first", "baseline_risk"] == 0.1 and np.isnan(out.loc["second", "baseline_risk"])
    out = summary_of_findings(results, adjusted=adjusted,
                              overrides={"second": {"imprecision": ("very serious", "constructed")}})
    assert out["imprecision"].tolist() == ["serious", "very serious"]  # the first keeps its rule's rating


def test_overrides_for_an_unknown_outcome_are_refused_word_for_word():
    results = {"first": (table(), posterior()), "second": (table(), posterior())}
    with pytest.raises(ValueError, match=r"^overrides name outcomes not in the table: \['other', 'zz'\] "
                                         r"\(outcomes: \['first', 'second'\]\)$"):
        summary_of_findings(results, overrides={"zz": {}, "other": {}, "first": {}},
                            adjusted={"first": ENSEMBLE, "second": ENSEMBLE})
