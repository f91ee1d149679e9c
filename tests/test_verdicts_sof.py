"""Every GRADE rule of the summary of findings (evsynth.present.sof) at and on both sides of its
boundary, on constructed tables and constructed posteriors (no sampling): the rating and the
reason the user reads are fixed exactly, so a changed threshold, comparison or weight is caught."""

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from evsynth.methods.heterogeneity import i2_h2
from evsynth.methods.robma import BiasAdjusted
from evsynth.present.sof import (
    rate_imprecision, rate_inconsistency, rate_indirectness, rate_publication_bias, rate_risk_of_bias,
    summary_of_findings,
)


def table(k=4, vi=None, rob="low", design="two_group", yi=None, censored=False, n_total=100):
    vi = np.full(k, 0.04) if vi is None else np.asarray(vi, float)
    yi = np.full(k, 0.3) if yi is None else np.asarray(yi, float)
    out = pd.DataFrame({
        "study_id": [f"s{i:02d}" for i in range(k)], "technique": "t", "comparator": "control", "outcome": "o",
        "unit": "", "design": design, "measure": "SMD", "yi": yi, "sei": np.sqrt(vi), "vi": vi,
        "n_total": n_total, "censored": censored, "head_to_head": False, "used": True, "why_not": "",
        "synthetic": True, "rob": rob, "randomised": "yes"})
    out.attrs["measure"] = "SMD"
    return out


def posterior(mu, tau=None, sei=(0.2, 0.2, 0.2, 0.2), tau_technique=None):
    """A one-chain fit with the given draws (tau None: a common-effect fit)."""
    draws = {"mu": np.asarray(mu, float)[None]}
    if tau is not None:
        draws["tau"] = np.broadcast_to(np.asarray(tau, float), draws["mu"].shape[1:])[None].copy()
    if tau_technique is not None:
        draws["tau_technique"] = np.broadcast_to(np.asarray(tau_technique, float), draws["mu"].shape[1:])[None].copy()
    return az.from_dict({"posterior": draws, "constant_data": {"sei": np.asarray(sei, float)}})


# --------------------------------------------------------------------------- risk of bias


def test_risk_of_bias_half_the_weight_at_high_risk_is_very_serious():
    # equal weights: 2 of 4 at high risk is exactly 50%
    rating, why = rate_risk_of_bias(table(rob=["high", "serious", "low", "low"]))
    assert rating == "very serious"
    assert why == "50% of the weight at high risk of bias, 50% at least some concerns"


def test_risk_of_bias_just_under_half_at_high_risk_is_serious():
    # the two high-risk studies slightly less precise: their weight share just under 50%
    rating, why = rate_risk_of_bias(table(rob=["high", "critical", "low", "low"], vi=[0.0401, 0.0401, 0.04, 0.04]))
    assert rating == "serious" and why.startswith("50% of the weight")  # 49.9% prints as 50%


def test_risk_of_bias_a_quarter_at_high_risk_is_serious_and_just_under_is_not():
    assert rate_risk_of_bias(table(rob=["high", "low", "low", "low"]))[0] == "serious"  # exactly 25%
    rating, why = rate_risk_of_bias(table(rob=["high", "low", "low", "low"], vi=[0.0401, 0.04, 0.04, 0.04]))
    assert rating == "not serious"
    assert why == "25% of the weight at high risk of bias, 25% at least some concerns"


def test_risk_of_bias_half_at_some_concerns_is_serious_and_just_under_is_not():
    assert rate_risk_of_bias(table(rob=["some concerns", "moderate", "low", "low"]))[0] == "serious"
    rating = rate_risk_of_bias(table(rob=["some concerns", "moderate", "low", "low"],
                                     vi=[0.0401, 0.0401, 0.04, 0.04]))[0]
    assert rating == "not serious"
    # concerns count high-risk studies too: 1 high (just under 25%) + 1 some concerns, together over 50%
    rating, why = rate_risk_of_bias(table(rob=["high", "some concerns", "low", "low"], vi=[0.0401, 0.0399, 0.04, 0.04]))
    assert rating == "serious" and why.endswith("50% at least some concerns")


def test_risk_of_bias_unjudged_studies_count_as_some_concerns_and_are_named():
    rating, why = rate_risk_of_bias(table(rob=[None, "no information", "low", "low"]))
    assert rating == "serious"
    assert why == ("0% of the weight at high risk of bias, 50% at least some concerns "
                   "(2 of 4 studies without a judgement counted as some concerns)")
    no_column = table().drop(columns="rob")
    assert rate_risk_of_bias(no_column) == (
        "serious", "0% of the weight at high risk of bias, 100% at least some concerns "
                   "(4 of 4 studies without a judgement counted as some concerns)")
    assert rate_risk_of_bias(table()) == ("not serious", "0% of the weight at high risk of bias, 0% at least "
                                                         "some concerns")


def test_risk_of_bias_weights_are_inverse_variance():
    # weights 1/vi = 8, 4, 2, 2: the high-risk study holds 8/16 = 50% (25% by count)
    vi = [0.125, 0.25, 0.5, 0.5]
    assert rate_risk_of_bias(table(rob=["high", "low", "low", "low"], vi=vi))[0] == "very serious"
    assert rate_risk_of_bias(table(rob=["low", "low", "high", "low"], vi=vi))[0] == "not serious"  # 12.5%


# --------------------------------------------------------------------------- indirectness


def test_indirectness_boundaries():
    assert rate_indirectness(table()) == ("not serious", "all rows compare with a control group")
    rating, why = rate_indirectness(table(design=["pre_post", "pre_post", "two_group", "two_group"]))
    assert rating == "very serious"  # exactly half the weight
    assert why == ("2 uncontrolled pre/post row(s), 50% of the weight: the change from baseline includes time "
                   "trends and regression to the mean")
    just_under = table(design=["pre_post", "pre_post", "two_group", "two_group"], vi=[0.0401, 0.0401, 0.04, 0.04])
    assert rate_indirectness(just_under)[0] == "serious"
    # any pre/post row, however little weight, is serious
    tiny = table(design=["pre_post", "two_group", "two_group", "two_group"], vi=[100.0, 0.04, 0.04, 0.04])
    rating, why = rate_indirectness(tiny)
    assert rating == "serious" and why.startswith("1 uncontrolled pre/post row(s), 0% of the weight")


# --------------------------------------------------------------------------- imprecision


def spread_draws(width: float = 0.4) -> np.ndarray:
    return np.linspace(0.3 - width, 0.3 + width, 4001)


def test_imprecision_at_and_around_the_threshold():
    mu = spread_draws()
    lo, hi = np.quantile(mu, [0.025, 0.975])
    w = hi - lo
    fit = posterior(mu, tau=0.1)
    assert rate_imprecision(fit, "SMD", w)[0] == "not serious"  # equal to the threshold: not wider
    assert rate_imprecision(fit, "SMD", np.nextafter(w, 0))[0] == "serious"
    assert rate_imprecision(fit, "SMD", w / 2)[0] == "serious"  # exactly twice: not wider than twice
    assert rate_imprecision(fit, "SMD", np.nextafter(w / 2, 0))[0] == "very serious"
    assert rate_imprecision(fit, "SMD", 0.5)[1] == f"95% CrI width {w:.3f} vs threshold 0.5 (analysis scale)"


@pytest.mark.parametrize("measure, default", [("SMD", 0.5), ("SMCC", 0.5), ("RD", 0.1), ("RR", 2 * np.log(1.25)),
                                              ("OR", 2 * np.log(1.25)), ("ROM", 2 * np.log(1.25))])
def test_imprecision_default_thresholds(measure, default):
    mu = np.linspace(-1, 1, 4001)
    lo, hi = np.quantile(mu, [0.025, 0.975])
    scaled = (mu * default / (hi - lo))  # a CrI exactly as wide as the default
    assert rate_imprecision(posterior(scaled * (1 - 1e-9)), measure, None)[0] == "not serious"
    assert rate_imprecision(posterior(scaled * (1 + 1e-9)), measure, None)[0] == "serious"
    assert rate_imprecision(posterior(scaled * 2 * (1 + 1e-9)), measure, None)[0] == "very serious"


def test_imprecision_of_a_mean_difference_needs_a_threshold():
    with pytest.raises(ValueError, match="imprecision_width.*'MD'"):
        rate_imprecision(posterior(spread_draws()), "MD", None)
    assert rate_imprecision(posterior(spread_draws()), "MD", 10.0)[0] == "not serious"


# --------------------------------------------------------------------------- inconsistency


def tau_for_i2(target: float, vi: float = 0.04) -> float:
    """The tau whose I², as the rating computes it from a fit (heterogeneity.headline_i2: s² from the
    fit's SEs, 0.2 each), is exactly `target` percent in floating point; starts from the closed form
    tau² = I² / (100 - I²) s², which i2_h2 matches to rounding."""
    from evsynth.methods.heterogeneity import headline_i2

    tau = np.sqrt(target / (100 - target) * vi)
    assert float(i2_h2(tau, [vi] * 4)[0]) == pytest.approx(target, rel=1e-12)
    for _ in range(400):
        got = float(headline_i2(posterior([0.0, 0.0], tau=tau))[1][0])
        if got == target:
            return tau
        tau = np.nextafter(tau, np.inf if got < target else 0)
    raise AssertionError(f"no tau gives I² exactly {target}")


def tau_just_below(tau: float) -> float:
    """The largest tau under `tau` whose I² (as the rating computes it) is below that of `tau`."""
    from evsynth.methods.heterogeneity import headline_i2

    at = float(headline_i2(posterior([0.0, 0.0], tau=tau))[1][0])
    for _ in range(400):
        tau = np.nextafter(tau, 0)
        if float(headline_i2(posterior([0.0, 0.0], tau=tau))[1][0]) < at:
            return tau
    raise AssertionError("no smaller I² found")


def test_inconsistency_very_serious_needs_i2_75_and_a_null_prediction_interval():
    near_zero = np.linspace(0.0, 0.02, 2001)  # the pooled effect's CrI touches 0
    at = tau_for_i2(75.0)
    rating, why = rate_inconsistency(posterior(near_zero, tau=at), table())
    assert rating == "very serious" and why.startswith("posterior median I² 75%, 95% prediction interval ")
    assert why.endswith(" includes no effect")
    below = tau_just_below(at)
    assert rate_inconsistency(posterior(near_zero, tau=below), table())[0] == "serious"  # I² >= 50
    # I² 75% with a prediction interval far from 0: serious only
    far = np.linspace(5.0, 5.02, 2001)
    rating, why = rate_inconsistency(posterior(far, tau=at), table())
    assert rating == "serious" and why.endswith(" excludes no effect")


def test_inconsistency_serious_from_i2_50():
    far = np.linspace(5.0, 5.02, 2001)  # prediction interval excludes 0 throughout
    at = tau_for_i2(50.0)
    assert rate_inconsistency(posterior(far, tau=at), table())[0] == "serious"
    assert rate_inconsistency(posterior(far, tau=tau_just_below(at)), table())[0] == "not serious"


def test_inconsistency_serious_when_only_the_prediction_interval_includes_no_effect():
    mu = np.linspace(0.9, 1.1, 2001)  # CrI excludes 0
    sei = (10.0,) * 4  # large within-study variance: I² small even with a wide tau
    wide = posterior(mu, tau=2.0, sei=sei)  # prediction interval about 1 +- 3.9: includes 0
    rating, why = rate_inconsistency(wide, table(vi=[100.0] * 4))
    assert rating == "serious" and "posterior median I² 4%" in why and why.endswith(" includes no effect")
    narrow = posterior(mu, tau=0.1, sei=sei)
    assert rate_inconsistency(narrow, table(vi=[100.0] * 4))[0] == "not serious"
    # both intervals include 0 and I² small: not serious (the CrI already shows the doubt)
    both = posterior(np.linspace(-0.1, 2.1, 2001), tau=2.0, sei=sei)
    assert rate_inconsistency(both, table(vi=[100.0] * 4))[0] == "not serious"


def test_inconsistency_uses_the_total_i2_when_techniques_are_split():
    far = np.linspace(5.0, 5.02, 2001)
    # between-study tau alone: I² 20%; with tau_technique the total is 60%
    tau = np.sqrt(0.25 * 0.04)
    total = np.sqrt(1.5 * 0.04)
    fit = posterior(far, tau=tau, tau_technique=np.sqrt(total**2 - tau**2))
    rating, why = rate_inconsistency(fit, table())
    assert rating == "serious" and why.startswith("posterior median I² 60%")


def test_inconsistency_not_assessed_without_tau_or_with_one_study():
    assert rate_inconsistency(posterior(spread_draws()), table()) == (
        "not assessed", "common-effect model: heterogeneity not estimated")
    assert rate_inconsistency(posterior(spread_draws(), tau=0.1, sei=(0.2,)), table(k=1)) == (
        "not assessed", "one study")


# --------------------------------------------------------------------------- publication bias


def egger_table(k: int, t_target: float) -> pd.DataFrame:
    """k studies whose classic Egger test (WLS of yi on sei, weights 1/vi) has t statistic t_target:
    fixed residuals orthogonal to the design, plus a slope chosen to give that t."""
    sei = np.linspace(0.1, 0.5, k)
    w = 1 / sei**2
    X = np.column_stack([np.ones(k), sei])
    resid = np.sin(np.arange(k) * 1.7)
    # make the residual w-orthogonal to X
    beta = np.linalg.solve(X.T @ (w[:, None] * X), X.T @ (w * resid))
    resid = resid - X @ beta
    sigma2 = (w @ resid**2) / (k - 2)
    se_slope = np.sqrt(sigma2 * np.linalg.inv(X.T @ (w[:, None] * X))[1, 1])
    yi = 0.2 + t_target * se_slope * sei + resid
    return table(k=k, vi=sei**2, yi=yi)


def test_publication_bias_at_the_egger_threshold():
    crit = stats.t.ppf(1 - 0.10 / 2, 8)  # two-sided p = 0.10 on k - 2 = 8 df
    rating, why = rate_publication_bias(egger_table(10, crit * (1 + 1e-6)))
    assert rating == "serious" and why == "Egger's test p = 0.100"
    assert rate_publication_bias(egger_table(10, crit * (1 - 1e-6)))[0] == "not serious"
    assert rate_publication_bias(egger_table(10, -crit * (1 + 1e-6)))[0] == "serious"  # either direction
    assert rate_publication_bias(egger_table(10, 0.0)) == ("not serious", "Egger's test p = 1.000")


def test_publication_bias_needs_ten_studies_and_no_censored_rows():
    crit = stats.t.ppf(1 - 0.10 / 2, 7)
    assert rate_publication_bias(egger_table(9, 3 * crit)) == (
        "not assessed", "9 studies: small-study tests need >= 10")
    censored = egger_table(10, 10.0)
    censored.loc[3, "censored"] = True
    assert rate_publication_bias(censored) == (
        "not assessed", "censored rows (p printed as a bound) have no point estimate for Egger's test")


# --------------------------------------------------------------------------- certainty


NO_ENSEMBLE = {"o": BiasAdjusted(False, 4, reason="not fitted in this test")}  # publication bias by Egger's rule


@pytest.mark.parametrize("randomised, start, certainty", [
    ("yes", "high", "moderate"), ("no", "low", "very low"), ("unclear", "low", "very low")])
def test_certainty_starts_by_design(randomised, start, certainty):
    fit = posterior(np.linspace(0.25, 0.35, 2001), tau=0.01)
    base = table(k=4).assign(randomised=randomised)
    overrides = {"o": {"imprecision": ("serious", "constructed")}}
    row = summary_of_findings({"o": (base, fit)}, overrides=overrides, adjusted=NO_ENSEMBLE).loc["o"]
    assert row["start"] == start and row["certainty"] == certainty


@pytest.mark.parametrize("ratings, certainty", [
    ({}, "high"),
    ({"imprecision": "serious"}, "moderate"),
    ({"imprecision": "very serious"}, "low"),
    ({"imprecision": "serious", "risk_of_bias": "serious"}, "low"),
    ({"imprecision": "serious", "risk_of_bias": "very serious"}, "very low"),
    ({"imprecision": "very serious", "risk_of_bias": "very serious"}, "very low"),
    ({"imprecision": "not assessed", "publication_bias": "serious"}, "moderate"),
    ({"inconsistency": "serious", "indirectness": "serious", "publication_bias": "serious"}, "very low"),
])
def test_certainty_drops_one_level_per_serious_and_two_per_very_serious(ratings, certainty):
    fit = posterior(np.linspace(0.25, 0.35, 2001), tau=0.01)  # precise, consistent
    base = table(k=4)
    assert summary_of_findings({"o": (base, fit)}, adjusted=NO_ENSEMBLE).loc["o", "certainty"] == "high"
    overrides = {"o": {d: (r, "constructed") for d, r in ratings.items()}}
    row = summary_of_findings({"o": (base, fit)}, overrides=overrides, adjusted=NO_ENSEMBLE).loc["o"]
    assert row["certainty"] == certainty
    for domain, rating in ratings.items():
        assert row[domain] == rating


def test_reasons_list_every_domain_in_order():
    fit = posterior(np.linspace(0.25, 0.35, 2001), tau=0.01)
    row = summary_of_findings({"o": (table(k=4, n_total=[10, 20, np.nan, 30]), fit)}, adjusted=NO_ENSEMBLE).loc["o"]
    assert row["participants"] == 60
    parts = row["reasons"].split("; ")
    assert [p.split(":")[0] for p in parts] == ["design", "risk of bias", "inconsistency", "indirectness", "imprecision",
                                                "publication bias", "participants"]
    assert parts[-1] == "participants: not reported for 1 studies (not counted)"


# --------------------------------------------------------------------------- rate_certainty and its texts


def test_rate_certainty_fields_and_text():
    from evsynth.methods.certainty import rate_certainty

    fit = posterior(np.linspace(0.25, 0.35, 2001), tau=0.01)
    base = table(k=4, rob=["high", "low", "low", "low"])  # 25% at high risk: serious
    c = rate_certainty(base, fit, NO_ENSEMBLE["o"])
    assert (c.rating, c.start, c.downgrades) == ("moderate", "high", 1)
    assert c.start_reason == ("4 randomised, 0 non-randomised, 0 unclear row(s), randomised rows carry 100% of the "
                              "weight: starts high (GRADE: randomised trials)")
    assert c.ratings == {"risk_of_bias": "serious", "inconsistency": "not serious", "indirectness": "not serious",
                         "imprecision": "not serious", "publication_bias": "not assessed"}
    assert c.reasons["publication_bias"] == ("4 studies: small-study tests need >= 10 (bias-adjusted ensemble: "
                                             "not fitted in this test)")
    assert c.text().startswith(f"MODERATE: start high ({c.start_reason}); risk of bias: serious ("
                               "25% of the weight at high risk of bias, 25% at least some concerns); inconsistency: ")
    assert c.text().endswith("publication bias: not assessed (4 studies: small-study tests need >= 10 (bias-adjusted "
                             "ensemble: not fitted in this test))")
    # low start: two levels down before any downgrade, floored at very low
    low = rate_certainty(base.assign(randomised="no"), fit, NO_ENSEMBLE["o"],
                         overrides={"imprecision": ("very serious", "constructed")})
    assert (low.rating, low.start, low.downgrades) == ("very low", "low", 3)
    assert low.reasons["imprecision"] == "overridden by the user: constructed"
    unclear = rate_certainty(base.assign(randomised=["yes", "yes", "unclear", "no"]), fit, NO_ENSEMBLE["o"])
    assert unclear.start_reason == ("2 randomised, 1 non-randomised, 1 unclear row(s), randomised rows carry 50% of the "
                                    "weight: starts low (GRADE: non-randomised or unclear evidence; not ROBINS-I)")
    assert (unclear.rating, unclear.downgrades) == ("very low", 1)


def test_publication_bias_by_the_ensemble_word_for_word():
    from evsynth.methods.certainty import rate_publication_bias

    ran = BiasAdjusted(True, 12, mean=0.2, low=0.05, high=0.6, p_bias=0.75, bf_bias=3.0)
    rating, why = rate_publication_bias(table(k=12), ran, (0.1, 0.5))
    assert rating == "serious"  # BF exactly 3
    assert why == ("RoBMA-PSMA: P(bias) 0.75, BF_bias 3 (>= 3), bias-adjusted 95% CrI 0.05 to 0.60 vs unadjusted "
                   "0.10 to 0.50")
    below = BiasAdjusted(True, 12, mean=0.2, low=-0.05, high=0.6, p_bias=0.7, bf_bias=np.nextafter(3.0, 0))
    rating, why = rate_publication_bias(table(k=12), below, (-0.1, 0.5))
    assert rating == "not serious" and why.endswith("vs unadjusted -0.10 to 0.50")  # both include 0: no flip note
    # the ensemble's figures are used only when it ran and the unadjusted interval is given
    assert rate_publication_bias(table(k=4), ran, None)[0] == "not assessed"


def test_certainty_one_line_summary():
    from evsynth.methods.certainty import rate_certainty

    fit = posterior(np.linspace(0.25, 0.35, 2001), tau=0.01)
    c = rate_certainty(table(k=4, rob=["high", "low", "low", "low"]), fit, NO_ENSEMBLE["o"],
                       overrides={"imprecision": ("very serious", "x")})
    assert str(c) == "VERY LOW (GRADE-style; started high: all randomised; downgraded for risk of bias serious, " \
                     "imprecision very serious)"
    clean = rate_certainty(table(k=4).assign(randomised="no"), fit, NO_ENSEMBLE["o"])
    assert str(clean) == "LOW (GRADE-style; started low: not all randomised)"
    assert clean.text().startswith("LOW: start low (")


def test_rate_certainty_passes_its_options_on():
    from evsynth.methods.certainty import rate_certainty

    fit = posterior(np.linspace(0.25, 0.35, 2001), tau=0.01)
    base = table(k=4)
    assert rate_certainty(base, fit, NO_ENSEMBLE["o"], imprecision_width=0.01).ratings["imprecision"] == "very serious"
    rd = base.copy()
    rd.attrs["measure"] = "RD"  # the table's attrs name the measure before its column
    assert rate_certainty(rd, fit, NO_ENSEMBLE["o"]).reasons["imprecision"].endswith("vs threshold 0.1 (analysis scale)")
    no_attrs = base.assign(measure="RD")
    no_attrs.attrs = {}
    assert rate_certainty(no_attrs, fit, NO_ENSEMBLE["o"]).reasons["imprecision"].endswith("threshold 0.1 (analysis scale)")
    ran = BiasAdjusted(True, 4, mean=0.3, low=0.2, high=0.4, p_bias=0.2, bf_bias=0.25)
    c = rate_certainty(base, fit, ran)
    assert c.ratings["publication_bias"] == "not serious" and c.reasons["publication_bias"].startswith(
        "RoBMA-PSMA: P(bias) 0.20, BF_bias 0.25 (< 3), bias-adjusted 95% CrI 0.20 to 0.40 vs unadjusted 0.25 to 0.35")
    with pytest.raises(ValueError, match=r"^override for 'milk': domain 'bias' unknown; domains: risk_of_bias, "
                                         r"inconsistency, indirectness, imprecision, publication_bias$"):
        rate_certainty(base, fit, NO_ENSEMBLE["o"], overrides={"bias": ("serious", "x")}, label="milk")
    with pytest.raises(ValueError, match=r"^override for '', imprecision: rating 'bad' unknown; ratings: not serious, "
                                         r"serious, very serious, not assessed$"):
        rate_certainty(base, fit, NO_ENSEMBLE["o"], overrides={"imprecision": ("bad", "x")})
    with pytest.raises(ValueError, match=r"^override for '', imprecision: give the reason, e\.g\. \('serious', 'why'\)$"):
        rate_certainty(base, fit, NO_ENSEMBLE["o"], overrides={"imprecision": "serious"})
    with pytest.raises(ValueError, match=r"give the reason"):
        rate_certainty(base, fit, NO_ENSEMBLE["o"], overrides={"imprecision": ("serious", "  ")})


def test_texts_at_full_weight():
    rating, why = rate_risk_of_bias(table(rob="high"))
    assert why == "100% of the weight at high risk of bias, 100% at least some concerns"
    assert rate_indirectness(table(design="pre_post"))[1].startswith("4 uncontrolled pre/post row(s), 100% of the weight")
    with pytest.raises(ValueError, match=r"^imprecision_width: give the CrI width that is too imprecise for measure 'MD' "
                                         r"\(in the outcome's unit\)$"):
        rate_imprecision(posterior(spread_draws()), "MD", None)


def test_an_interval_ending_exactly_at_zero_includes_no_effect():
    from evsynth.methods.summary import predictive_draws

    sei = (10.0,) * 4  # I² small even with a wide tau; the prediction interval includes 0
    vi = table(vi=[100.0] * 4)
    starts = np.arange(-50, 1951) / 1000  # 2.5% point (index 50 of 2001) exactly 0
    assert np.quantile(starts, 0.025) == 0.0
    assert rate_inconsistency(posterior(starts, tau=2.0, sei=sei), vi)[0] == "not serious"  # CrI touches 0
    ends = np.arange(-1950, 51) / 1000  # 97.5% point exactly 0
    assert np.quantile(ends, 0.975) == 0.0
    assert rate_inconsistency(posterior(ends, tau=2.0, sei=sei), vi)[0] == "not serious"
    away = posterior(starts + 0.001, tau=2.0, sei=sei)
    rating, why = rate_inconsistency(away, vi)
    assert rating == "serious"  # the CrI just excludes 0, the prediction interval does not
    pi = np.quantile(predictive_draws(away), [0.025, 0.975])
    assert f"95% prediction interval {pi[0]:.2f} to {pi[1]:.2f} includes no effect" in why


def test_two_studies_are_assessed_for_inconsistency():
    fit = posterior(np.linspace(5.0, 5.02, 2001), tau=0.01, sei=(0.2, 0.2))
    assert rate_inconsistency(fit, table(k=2))[0] == "not serious"
