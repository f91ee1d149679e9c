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
        "rob": rob}))


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
