"""Technique coverage (every technique with its estimate or the reason there is none), the grouping
of combination techniques, and the direction flip of a pooled SMD across outcomes."""

import numpy as np
import pandas as pd
import pytest

import evsynth.cli.main as cli
from evsynth.methods.analysis import align_direction, group_by_outcome
from evsynth.effects import compute_effects
from evsynth.data.studies import load_studies
from evsynth.effects.techniques import format_coverage, group_combinations, technique_coverage

from conftest import ROOT

MASSAGE = ROOT / "studies" / "massage.csv"


@pytest.fixture(scope="module")
def effects():
    return compute_effects(load_studies(MASSAGE))


def _milk(effects):
    milk = effects[effects["outcome"] == "milk volume"].reset_index(drop=True)
    milk.attrs = dict(effects.attrs)
    return milk


def _summary(rows: dict) -> pd.DataFrame:
    """A posterior summary as evsynth.summarize shapes it: 'technique: <label>' rows."""
    return pd.DataFrame({f"technique: {k}": {"q50": v[0], "q2.5": v[1], "q97.5": v[2]} for k, v in rows.items()}).T


def test_every_milk_volume_technique_gets_an_estimate_or_a_reason(effects):
    summary = _summary({"oxytocin": (0.9, 0.5, 1.3), "marmet": (1.0, 0.3, 1.8),
                        "breast massage": (1.1, 0.4, 1.9)})
    table = technique_coverage(_milk(effects), summary).set_index("technique")
    labels = set(_milk(effects)["technique"])
    components = {"breast care", "breast acupressure", "pectoralis major", "manual lymphatic drainage",
                  "thai traditional massage"}
    comparators = {"routine breast-massage advice", "routine education"}  # head-to-head comparators
    assert set(table.index) == labels | components | comparators  # every label, component and comparator
    assert {"oxytocin", "neck", "marmet"} <= set(table.index)
    estimated = table[table["status"] == "estimate"]
    assert set(estimated.index) == {"oxytocin", "marmet", "breast massage"}
    assert table.loc["oxytocin", "studies_used"] == "kundarti2025, pratama2023, langgeng2020, fara2022"
    assert table.loc["oxytocin", "designs"] == "2 controlled, 2 pre/post"
    assert table.loc["marmet", "studies_used"] == "saputri2015_marmet"  # one uncontrolled, p-derived study
    assert table.loc["marmet", "designs"] == "1 pre/post"
    assert table.loc["oxytocin", ["q50", "q2.5", "q97.5"]].tolist() == [0.9, 0.5, 1.3]
    assert "one study" in table.loc["marmet", "reason"]
    # the change-score row is kept apart from final-value SMDs, and says so
    assert "hesti2017: two-group means are change scores" in table.loc["breast care + oxytocin", "reason"]
    # no usable study: each row named with the first clause of its reason
    assert table.loc["neck", "status"] == "no usable study"
    assert table.loc["neck", "reason"] == "medan_neck: head-to-head comparison: needs the network model"
    assert table.loc["oxytocin + marmet", "reason"] == "lubis_gikes: number of mothers not printed"
    assert table.loc["breast care", "status"] == "only in combinations"
    assert "breast care + oxytocin (no usable study)" in table.loc["breast care", "reason"]
    assert np.isnan(table.loc["neck", "q50"])
    assert table.loc["routine education", "status"] == "only as comparator"
    assert table.loc["routine education", "reason"].endswith("(acupressure vs routine education); none of them usable")
    # estimates are listed first
    assert list(technique_coverage(_milk(effects), summary)["status"][:3]) == ["estimate"] * 3
    shown = format_coverage(technique_coverage(_milk(effects), summary)).set_index("technique")
    assert shown.loc["oxytocin", "estimate"] == "0.90 [0.50, 1.30]" and shown.loc["neck", "estimate"] == ""


def test_coverage_without_per_technique_estimates_says_why(effects):
    pooled_only = technique_coverage(_milk(effects), pd.DataFrame({"q50": [1.0]}, index=["pooled (mu)"]))
    by = pooled_only.set_index("technique")
    assert by.loc["oxytocin", "status"] == "pooled only" and "no per-technique effect" in by.loc["oxytocin", "reason"]
    colostrum = effects[effects["outcome"] == "time to colostrum"]
    skipped = technique_coverage(colostrum, not_analysed="1 usable study; need 2").set_index("technique")
    assert set(skipped["status"]) == {"not analysed"}
    assert skipped.loc["marmet + oxytocin", "reason"] == "outcome not analysed: 1 usable study; need 2"
    prolactin = technique_coverage(effects[effects["outcome"] == "prolactin"]).set_index("technique")
    assert prolactin.loc["marmet", "status"] == "only as comparator"
    assert "emilda2020 (oxytocin vs marmet); the network model" in prolactin.loc["marmet", "reason"]


def test_combinations_grouped_by_their_massage_component(effects):
    grouped = group_combinations(effects).set_index("study_id")
    assert grouped.loc["hesti2017", "technique"] == "oxytocin"  # breast care + oxytocin
    assert grouped.loc["hesti2017", "technique_as_labelled"] == "breast care + oxytocin"
    assert grouped.loc["jgrph417", "technique"] == "neck"  # neck + pectoralis major
    assert grouped.loc["nurlaila2019_mb", "technique"] == "marmet"  # marmet + breast care
    # two massage techniques, or none of the three: the label stays
    assert grouped.loc["lubis_gikes", "technique"] == "oxytocin + marmet"
    assert grouped.loc["nurlaila2019_mob", "technique"] == "marmet + oxytocin + breast care"
    assert grouped.loc["dewi2024_weight", "technique"] == "oketani + jasmine oil"
    assert grouped.loc["viswanath2016", "technique"] == "breast massage"
    assert (grouped["technique"] == effects.set_index("study_id")["technique"]).sum() == len(effects) - 10
    coverage = technique_coverage(_milk(group_combinations(effects)), _summary({"oxytocin": (1, 0, 2)}))
    oxytocin = coverage[coverage["technique"].str.startswith("oxytocin (with")].iloc[0]
    assert oxytocin["technique"] == "oxytocin (with breast acupressure + oxytocin, breast care + oxytocin)"
    # hesti2017 (breast care + oxytocin) is a change-score row, kept apart from the SMD analysis
    assert oxytocin["studies_used"] == "kundarti2025, pratama2023, langgeng2020, fara2022"
    assert "breast care + oxytocin" not in set(coverage["technique"])  # no silent fourth technique


def test_pooled_smd_flips_outcomes_where_lower_is_better(effects):
    pooled = group_by_outcome(effects, pool_outcomes=True)["all outcomes (SMD)"]
    by_id, original = pooled.set_index("study_id"), effects.set_index("study_id")
    lower = {"mjm2025_epds", "wulandari2014", "icash_a051", "hadriani2019", "rofiah2016"}
    assert set(by_id.index[by_id["flipped"]]) == lower
    assert by_id.loc["icash_a051", "yi"] == pytest.approx(-original.loc["icash_a051", "yi"]) != 0
    assert by_id.loc["hesti2017", "yi"] == original.loc["hesti2017", "yi"]
    assert "sign flipped on 5 row(s)" in pooled.attrs["direction_note"] and "used: icash_a051" in pooled.attrs[
        "direction_note"]
    # per-outcome analyses keep the sign as printed
    assert "flipped" not in group_by_outcome(effects)["time to colostrum"].columns
    assert "direction_note" not in align_direction(_milk(effects)).attrs


def test_fit_names_the_techniques_of_outcomes_it_cannot_analyse(monkeypatch, capsys, tmp_path):
    from evsynth.methods import analysis

    real_split = analysis.split_by_outcome  # the CLI imports it when a command runs
    monkeypatch.setattr(analysis, "split_by_outcome", lambda effects, *options: ({}, real_split(effects, *options)[1]))
    assert cli.main(["fit", str(MASSAGE), "--out", str(tmp_path)]) == 4  # nothing analysed (split patched)
    out = " ".join(capsys.readouterr().out.split())  # lines are wrapped at 100 columns
    assert ("outcome 'time to colostrum' not analysed: 1 usable study; need 2 "
            "(techniques: early mobilisation, marmet, marmet + oxytocin, oxytocin)") in out
    assert cli.main(["fit", str(MASSAGE), "--out", str(tmp_path), "--pool-outcomes"]) == 4
    assert "all outcomes (SMD): sign flipped on 5 row(s)" in capsys.readouterr().out


def test_design_moderator_matches_weighted_least_squares_when_tau_is_pinned_near_zero(effects):
    from evsynth.methods.designs import design_moderator

    exact_p = compute_effects(load_studies(MASSAGE), p_bound="conservative")  # no censored rows
    milk = _milk(exact_p)
    priors = {"mu": "normal(0, 100)", "beta": "normal(0, 100)", "tau": "halfnormal(0.0001)"}
    table = design_moderator(milk, priors, draws=20000, seed=3)
    used = milk[milk["used"] & ~milk["head_to_head"]]
    x = np.column_stack([np.ones(len(used)), (used["design"] == "pre_post").to_numpy(float)])
    w = np.diag(1 / used["sei"].to_numpy() ** 2)
    cov = np.linalg.inv(x.T @ w @ x)
    coef = cov @ x.T @ w @ used["yi"].to_numpy()
    contrast = {"controlled studies (mu)": [1, 0], "pre/post studies (mu + beta)": [1, 1],
                "pre/post - controlled (beta)": [0, 1]}
    for label, c in contrast.items():
        mean, sd = np.dot(c, coef), np.sqrt(np.dot(c, cov @ c))
        assert table.loc[label, "q50"] == pytest.approx(mean, abs=0.03 * sd), label
        assert table.loc[label, "q97.5"] - table.loc[label, "q2.5"] == pytest.approx(2 * 1.959964 * sd, rel=0.03)
    assert table.loc["controlled studies (mu)", "studies"] == "kundarti2025, langgeng2020, jose_manipal"
    assert table.loc["pre/post studies (mu + beta)", "studies"] == ("pratama2023, viswanath2016, fara2022, "
                                                                   "saputri2015_marmet")
    with pytest.raises(ValueError, match="all 3 used rows are controlled"):
        design_moderator(milk[milk["design"] == "two_group"])


def test_design_moderator_is_the_meta_regression_on_the_pre_post_indicator(effects):
    """The contrast draws only the meta-regression it reports (not fit_meta_regression's no-moderator
    and REML fits beside it): its table is that fit's draws, digit for digit."""
    from evsynth.methods.designs import MODERATOR, design_moderator
    from evsynth.methods.regression import beta_draws, fit_meta_regression
    from evsynth.effects.table import uncontrolled

    milk = _milk(effects)
    priors = {"tau": "halfcauchy(0.3)"}
    table = design_moderator(milk, priors, draws=3000, seed=11)
    indicator = milk.assign(**{MODERATOR: uncontrolled(milk).astype(float)})
    indicator.attrs = dict(milk.attrs)
    mu, beta = beta_draws(fit_meta_regression(indicator, [MODERATOR], priors, draws=3000, chains=1, seed=11)).T
    for label, draws in zip(table.index, (mu, mu + beta, beta)):
        lo, mid, hi = np.quantile(draws, (0.025, 0.5, 0.975))
        assert list(table.loc[label, ["q2.5", "q50", "q97.5"]]) == [lo, mid, hi]
        assert table.loc[label, "P(>0)"] == float((draws > 0).mean())
    assert table.attrs["prior_tau"] == "halfcauchy(0.3)"


def test_evsynth_fit_pools_seven_milk_volume_studies_and_names_every_technique(capsys, tmp_path):
    """The issue's done criterion, end to end (small draws; the exact engine checks the fit)."""
    rc = cli.main(["fit", str(MASSAGE), "--outcome", "milk volume", "--out", str(tmp_path), "--draws", "300",
                   "--tune", "300", "--chains", "2", "--seed", "5", "--accept-failed"])
    assert rc == 0
    out = capsys.readouterr().out
    section = out.split("== milk volume: every technique", 1)[1].split("\n== ", 1)[0]
    lines = [line for line in section.splitlines()[1:] if line and not line.startswith("    ")]
    coverage = technique_coverage(_milk(compute_effects(load_studies(MASSAGE))))
    assert [line.split(": ", 1)[0] for line in lines] == list(coverage["technique"])  # every technique, in order
    estimated = [line for line in lines if " from " in line]
    pooled = [s for line in estimated for s in line.split(" from ", 1)[1].split(" (")[0].split(", ")]
    assert sorted(pooled) == ["fara2022", "jose_manipal", "kundarti2025", "langgeng2020", "pratama2023",
                              "saputri2015_marmet", "viswanath2016"]
    assert "neck: no usable study: medan_neck: head-to-head comparison" in section
    assert "marmet: " in section and " from saputri2015_marmet (1 pre/post" in " ".join(section.split())
    assert "breast care: only in combinations:" in section
    summary = pd.read_csv(tmp_path / "milk_volume_summary.csv", index_col=0)
    assert {"technique: oxytocin", "technique: marmet", "technique: breast massage"} <= set(summary.index)
    assert "milk volume: one-group pre/post rows carry " in out  # the weight share beside the pooled effect
    assert "pre/post - controlled (beta)" in out  # the design contrast is printed too
