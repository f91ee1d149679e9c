"""Risk of bias in the analysis: rule-based exclusion (`rob == 'high'`), subgroups and moderator
analysis by judgement, on simulated data where the high-risk studies carry a known bias."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import evsynth as es
from evsynth.model import description
from evsynth.engines import exact as engine
from evsynth.methods.frequentist import meta_regression
from evsynth.methods.riskofbias import rob_formula, rob_subgroups, severity
from evsynth.data.rules import parse_rule

TRUE_MU, BIAS = 0.2, 0.6


def biased_studies(seed: int = 5, k: int = 24) -> pd.DataFrame:
    """k ready-made SMDs (tau = 0.1): a third at high risk of bias, whose effects are inflated by BIAS."""
    rng = np.random.default_rng(seed)
    rob = np.array(["low", "some concerns", "high"] * (k // 3))
    sei = rng.uniform(0.1, 0.25, k)
    yi = TRUE_MU + rng.normal(0, 0.1, k) + rng.normal(0, sei) + BIAS * (rob == "high")
    return es.load_studies(pd.DataFrame({
        "study_id": [f"s{i:02d}" for i in range(k)], "citation": "simulated", "source_level": "synthetic",
        "design": "effect", "technique": "t", "outcome": "o", "measure": "SMD", "yi": yi, "sei": sei,
        "rob": rob, "synthetic": True}))


def test_rob_is_a_column_of_the_effect_table():
    effects = es.compute_effects(biased_studies())
    assert effects["rob"].tolist() == biased_studies()["rob"].tolist()


def test_exclusion_rule_on_rob_removes_the_bias():
    studies = biased_studies()
    rule = parse_rule("rob == 'high'", studies.columns)
    assert studies.loc[rule.select(studies), "rob"].eq("high").all() and rule.select(studies).sum() == 8
    grid = es.Sensitivity(studies, model="random_effects", engine="exact", exclude=[None, "rob == 'high'"])
    table = grid.run()
    pooled = table[table.parameter == "pooled (mu)"].set_index("exclude")
    assert pooled.loc["rob == 'high'", "n_studies"] == 16
    kept = pooled.loc["rob == 'high'"]
    assert kept["q2.5"] < TRUE_MU < kept["q97.5"]  # the unbiased studies recover the truth
    assert pooled.loc["", "q50"] > TRUE_MU + BIAS / 6  # all studies: pulled up by the biased third


def test_rule_leaves_studies_without_judgement_in():
    studies = biased_studies()
    studies.loc[2, "rob"] = None  # a high-risk study whose judgement is missing
    assert not parse_rule("rob == 'high'", studies.columns).select(studies).iloc[2]


def test_severity_puts_both_tools_on_one_scale():
    s = severity(pd.Series(["low", "moderate", "some concerns", "serious", "high", "critical", "no information", None]))
    assert s.tolist()[:6] == [0, 1, 1, 2, 2, 3] and s.iloc[6:].isna().all()


def test_subgroups_and_moderator_test_find_the_bias():
    effects = es.compute_effects(biased_studies())
    groups = rob_subgroups(effects)
    assert groups.index.tolist() == ["low", "some concerns", "high"]
    assert groups["k"].tolist() == [8, 8, 8]
    assert groups.loc["high", "ci_low"] > groups.loc["low", "ci_high"]
    fit = meta_regression(effects, rob_formula(effects))
    # the subgroup test is the Wald test of the two RoB contrasts: b' V^-1 b on 2 df (closed form
    # from the meta-regression's coefficients; metafor's figures for BCG: test_verdict_references.py)
    b, V = fit.coefficients["estimate"].to_numpy()[1:], fit.cov[1:, 1:]
    wald = float(b @ np.linalg.solve(V, b))
    assert groups.attrs["QM_df"] == 2 and groups.attrs["QM"] == pytest.approx(wald, rel=1e-10)
    assert groups.attrs["QM_p"] == pytest.approx(stats.chi2.sf(wald, 2), rel=1e-10) and groups.attrs["QM_p"] < 0.001
    assert fit.coefficients.index[0] == "intrcpt"  # reference level: low
    high = fit.coefficients.iloc[-1]
    assert fit.coefficients.index[-1].endswith("[T.high]") and high["ci_low"] < BIAS < high["ci_high"]


def test_bayesian_rob_moderator_recovers_the_bias():
    effects = es.compute_effects(biased_studies())
    tree = engine.fit_exact(description.meta_regression(effects, rob_formula(effects)), draws=500, chains=2)
    beta = tree["posterior"]["beta"]
    high = beta.sel(moderator=[m for m in beta["moderator"].to_numpy() if m.endswith("[T.high]")][0]).to_numpy()
    lo, hi = np.quantile(high, [0.025, 0.975])
    assert lo < BIAS < hi and lo > 0


def test_missing_judgement_is_refused_with_the_study_named():
    studies = biased_studies()
    studies.loc[3, "rob"] = None
    with pytest.raises(ValueError, match="s03"):
        rob_subgroups(es.compute_effects(studies))


def test_rob_is_a_column_of_the_report_and_cli_effect_tables():
    from evsynth.cli.fit import EFFECT_VIEW
    from evsynth.present.report import effect_table

    studies = biased_studies()
    effects = es.compute_effects(studies)
    assert effect_table(studies, effects)["Risk of bias"].tolist() == studies["rob"].tolist()
    assert "rob" in EFFECT_VIEW


def judged_table(rob, yi=None, sei=None, used=None) -> pd.DataFrame:
    k = len(rob)
    yi = np.linspace(0.1, 0.5, k) if yi is None else np.asarray(yi, float)
    sei = np.full(k, 0.1) if sei is None else np.asarray(sei, float)
    table = pd.DataFrame({"study_id": [f"s{i}" for i in range(k)], "yi": yi, "sei": sei, "vi": sei**2, "rob": rob})
    if used is not None:
        table["used"] = used
        table["head_to_head"] = False
    return table


def test_severity_of_cells_that_are_not_judgements():
    s = severity(pd.Series([["high"], 2.0, None, np.nan, "unknown", "low"], dtype=object))
    assert s.dtype == float and s.iloc[:5].isna().all() and s.iloc[5] == 0.0


def test_unused_rows_are_not_judged_and_a_table_without_used_is_taken_whole():
    # an unused row without a judgement is not refused; the used rows' levels make the formula
    table = judged_table(["low", None, "high", "low"], used=[True, False, True, True])
    assert rob_formula(table) == "~ C(rob, levels=['low', 'high'])"
    assert rob_subgroups(table)["k"].tolist() == [2, 1]
    plain = judged_table(["low", "high", "low"])  # no `used` column: every row
    assert rob_formula(plain) == "~ C(rob, levels=['low', 'high'])"
    with pytest.raises(ValueError, match=r"^studies without a risk-of-bias judgement \(field 'rob'\): s1, s3; fill them "
                                         r"in \(or 'no information'\) or leave those studies out explicitly$"):
        rob_formula(judged_table(["low", None, "high", "  "]))
    with pytest.raises(ValueError, match=r"^the effect table has no 'rob' column: add risk-of-bias judgements to the "
                                         r"study table$"):
        rob_formula(judged_table(["low", "high"]).drop(columns="rob"))


def test_rob_formula_needs_two_levels():
    assert rob_formula(judged_table(["some concerns", "low"])) == "~ C(rob, levels=['low', 'some concerns'])"
    with pytest.raises(ValueError, match=r"^every used study has risk of bias 'high': there is no RoB contrast"):
        rob_formula(judged_table(["high", "high"]))


def test_a_single_study_level_is_its_own_estimate():
    table = judged_table(["low", "low", "low", "high"], yi=[0.1, 0.3, 0.2, 0.9], sei=[0.1, 0.2, 0.15, 0.25])
    groups = rob_subgroups(table)
    high = groups.loc["high"]
    assert high["k"] == 1 and high["estimate"] == 0.9 and np.isnan(high["tau2"])
    assert high["ci_low"] == pytest.approx(0.9 - stats.norm.ppf(0.975) * 0.25, abs=1e-6)
    assert high["ci_high"] == pytest.approx(0.9 + stats.norm.ppf(0.975) * 0.25, abs=1e-6)
    assert groups.index.tolist() == ["low", "high"] and groups["k"].tolist() == [3, 1]
    assert groups.columns.tolist() == ["k", "estimate", "ci_low", "ci_high", "tau2"]
    assert groups.attrs["QM_df"] == 1  # 2 levels, 4 studies: the test is run


def test_the_subgroup_test_needs_two_levels_and_more_studies_than_levels():
    one_level = rob_subgroups(judged_table(["low", "low", "low"]))
    assert one_level.index.tolist() == ["low"] and "QM" not in one_level.attrs
    one_each = rob_subgroups(judged_table(["low", "high"]))
    assert one_each["k"].tolist() == [1, 1] and "QM" not in one_each.attrs  # no residual df
    three = rob_subgroups(judged_table(["low", "high", "high"]))
    assert three.attrs["QM_df"] == 1 and 0 <= three.attrs["QM_p"] <= 1
