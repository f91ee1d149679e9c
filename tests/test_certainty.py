"""GRADE-style certainty (evsynth.methods.certainty): the start by design and the publication-bias
rule of the bias ensemble, each checked on both sides of its boundary."""

import numpy as np
import pandas as pd
import pytest

from evsynth.methods.certainty import (BF_BIAS, START, publication_bias_rule, randomised, rate_design,
                                       rate_publication_bias)
from evsynth.methods.robma import BiasAdjusted


def table(designs, randomised_=None):
    k = len(designs)
    out = pd.DataFrame({"study_id": [f"s{i}" for i in range(k)], "design": designs, "vi": np.full(k, 0.04),
                        "yi": np.full(k, 0.3), "sei": np.full(k, 0.2), "censored": False})
    if randomised_ is not None:
        out["randomised"] = randomised_
    return out


def test_design_start_high_only_when_every_row_is_randomised():
    assert rate_design(table(["two_group"] * 3, ["yes"] * 3))[0] == "high"
    start, why = rate_design(table(["two_group"] * 3, ["yes", "yes", "no"]))
    assert start == "low" and "1 non-randomised" in why and "67%" in why
    assert rate_design(table(["two_group"] * 2, ["yes", "unclear"]))[0] == "low"
    assert rate_design(table(["two_group"] * 2))[0] == "low"  # no column: unclear
    assert START["low"] - START["high"] == 2  # GRADE: non-randomised evidence starts two levels down


def test_pre_post_rows_are_never_randomised():
    assert list(randomised(table(["pre_post", "two_group"], ["yes", "yes"]))) == ["no", "yes"]
    assert list(randomised(table(["two_group"] * 3, ["YES", "maybe", np.nan]))) == ["yes", "unclear", "unclear"]


@pytest.mark.parametrize("bf, rating", [(BF_BIAS, "serious"), (BF_BIAS * 0.999, "not serious"),
                                        (100.0, "serious"), (0.2, "not serious")])
def test_publication_bias_rule_boundaries(bf, rating):
    assert publication_bias_rule(bf) == rating


def test_publication_bias_uses_the_ensemble_when_it_ran_and_says_why_not_otherwise():
    t = table(["two_group"] * 5, ["yes"] * 5)
    ran = BiasAdjusted(True, 5, mean=0.2, low=-0.1, high=0.6, p_bias=0.8, bf_bias=4.0)
    rating, why = rate_publication_bias(t, ran, (0.1, 0.5))
    assert rating == "serious" and "P(bias) 0.80" in why and "-0.10 to 0.60" in why
    assert "includes no effect, the unadjusted does not" in why  # reported, but not itself a downgrade
    rating, why = rate_publication_bias(t, BiasAdjusted(True, 5, low=-0.1, high=0.6, p_bias=0.7, bf_bias=2.3),
                                        (0.1, 0.5))
    assert rating == "not serious" and "BF_bias 2.3 (< 3)" in why
    not_run = BiasAdjusted(False, 2, reason="2 studies; the ensemble needs at least 3")
    rating, why = rate_publication_bias(t.iloc[:2], not_run, (0.1, 0.5))
    assert rating == "not assessed" and "needs at least 3" in why


# --------------------------------------------------------------------------- the weights: random effects at tau


def _uneven(designs=("pre_post",) * 3 + ("two_group",) * 2, vi=(0.25, 0.25, 0.25, 0.01, 0.01)):
    out = table(list(designs))
    return out.assign(vi=list(vi), sei=np.sqrt(vi), comparator="control")


@pytest.mark.parametrize("factor, rating", [(0.99, "serious"), (1.01, "very serious")])
def test_indirectness_weights_are_random_effects_weights_at_tau(factor, rating):
    # three pre/post rows (vi 0.25) and two controlled (vi 0.01) carry half the weight when
    # 3 / (0.25 + tau^2) = 2 / (0.01 + tau^2), i.e. tau^2 = 0.47: the rule's 50% boundary in tau
    from evsynth.methods.certainty import rate_indirectness

    tau = np.sqrt(0.47) * factor
    got, why = rate_indirectness(_uneven(), tau)
    share = 3 / (0.25 + tau**2) / (3 / (0.25 + tau**2) + 2 / (0.01 + tau**2))
    assert got == rating and f"{100 * share:.0f}% of the weight" in why
    assert rate_indirectness(_uneven())[0] == "serious"  # 1/vi weights: 12 / 212 = 6%


def test_certainty_takes_tau_from_the_posterior_median_and_equals_the_printed_share():
    import evsynth as es
    from evsynth.methods.certainty import median_tau, rate_certainty

    studies = es.load_studies("studies/massage.csv")
    result = es.run_analysis("milk volume", es.compute_effects(studies).query("outcome == 'milk volume'"),
                             model="random_effects", engine="exact", draws=400, chains=2)
    tau = float(result.summary.loc["tau (between studies)", "q50"])
    share = es.prepost_weight_share(result.effects, tau)
    assert f"{100 * share:.0f}% of the weight" in result.certainty.reasons["indirectness"]
    # without tau given: the median of the draws (within a Monte Carlo error of the exact median)
    default = rate_certainty(result.effects, result.idata, result.bias_adjusted)
    assert median_tau(result.idata) == pytest.approx(float(np.median(result.idata["posterior"]["tau"])))
    assert abs(median_tau(result.idata) - tau) < 0.05 and default.ratings == result.certainty.ratings


def test_certainty_and_sof_quote_the_exact_tables_intervals_not_draws():
    """With the exact engine the summary's intervals are exact and the draws carry Monte Carlo
    error: the certainty reasons and the SoF row must quote the table (infant weight had printed a
    prediction interval -0.91 to 1.46 beside the table's -0.86 to 1.49)."""
    import evsynth as es
    from evsynth.methods.certainty import _draws
    from evsynth.present.sof import summary_of_findings

    studies = es.load_studies("studies/massage.csv")
    result = es.run_analysis("infant weight", es.compute_effects(studies).query("outcome == 'infant weight'"),
                             model="random_effects", engine="exact", draws=400, chains=2)
    mu, pred = result.summary.loc["pooled (mu)"], result.summary.loc["prediction (new study)"]
    reasons = result.certainty.reasons
    assert f"95% prediction interval {pred['q2.5']:.2f} to {pred['q97.5']:.2f}" in reasons["inconsistency"]
    assert f"95% CrI width {mu['q97.5'] - mu['q2.5']:.3f}" in reasons["imprecision"]
    # the draws would print other figures (so the assertions above can fail)
    lo, hi = np.quantile(_draws(result.idata, "mu"), [0.025, 0.975])
    assert f"{hi - lo:.3f}" != f"{mu['q97.5'] - mu['q2.5']:.3f}"
    row = summary_of_findings([result]).loc["infant weight"]
    assert (row["effect"], row["effect_low"], row["effect_high"]) == (mu["q50"], mu["q2.5"], mu["q97.5"])
    assert row["certainty"] == result.certainty.rating
