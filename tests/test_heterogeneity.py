"""Bayesian I² and H² (evsynth.methods.heterogeneity): at a fixed tau they equal metafor's formulas; on
simulated data their credible intervals cover the true I² at the nominal rate.

metafor figures: tests/data/metafor_reference.out (tests/data/metafor_reference.R, metafor 3.8-1),
e.g. rma(measure="RR", ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg) prints tau^2 0.3132,
I^2 92.22%, H^2 12.86, and rma(yi, vi, mods = ~ ablat, data = dat, control=list(threshold=1e-12))
prints residual I^2 68.39%, H^2 3.16.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from evsynth.model import description
from evsynth.engines import exact as engine
from evsynth.methods.frequentist import mixed_effects, reml, tau2_reml
from evsynth.methods.heterogeneity import heterogeneity_draws, i2_h2
from evsynth.model.moderators import design_matrix

from conftest import assert_printed, bcg_log_risk_ratios

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def bcg():
    b = pd.read_csv(DATA / "bcg.csv")
    yi, vi = bcg_log_risk_ratios(b)
    return b.assign(study_id=b.trial.astype(str), yi=yi, vi=vi)


def test_fixed_tau_gives_metafor_i2_h2(bcg):
    tau = np.sqrt(tau2_reml(bcg.yi, bcg.vi))
    i2, h2 = i2_h2(tau, bcg.vi)
    assert_printed(i2, "92.22")
    assert_printed(h2, "12.86")
    fit = reml(bcg.yi, bcg.vi)  # the frequentist module's own I², computed separately from Q-free s²
    assert i2 == pytest.approx(fit.I2, rel=1e-12) and h2 == pytest.approx(fit.H2, rel=1e-12)


def test_fixed_tau_residual_i2_of_a_meta_regression(bcg):
    X, names = design_matrix(bcg, "~ ablat")
    fit = mixed_effects(bcg.yi, bcg.vi, X, names)
    i2, h2 = i2_h2(fit.tau, bcg.vi, X)
    assert_printed(i2, "68.39")
    assert_printed(h2, "3.16")


def test_i2_is_monotone_and_bounded():
    vi = np.array([0.04, 0.09, 0.02, 0.16])
    i2, h2 = i2_h2(np.array([0.0, 0.1, 0.3, 1.0, 10.0]), vi)
    assert i2[0] == 0 and h2[0] == 1
    assert np.all(np.diff(i2) > 0) and np.all(i2 < 100)
    np.testing.assert_allclose(h2, 1 / (1 - i2 / 100))  # H² = 1 / (1 - I²)


def effect_table(yi, sei, technique=None, **columns) -> pd.DataFrame:
    n = len(yi)
    table = pd.DataFrame({
        "study_id": [f"s{i}" for i in range(n)], "technique": technique if technique is not None else ["t"] * n,
        "comparator": "control", "outcome": "synthetic", "unit": "", "design": "two_group", "measure": "SMD",
        "yi": yi, "sei": sei, "vi": np.square(sei), "used": True, "head_to_head": False, "why_not": "",
        "censored": False, "synthetic": True, **columns})
    table.attrs["measure"] = "SMD"
    return table


def test_draws_come_from_the_fit_and_match_tau_draws():
    rng = np.random.default_rng(3)
    sei = rng.uniform(0.1, 0.4, 12)
    table = effect_table(0.3 + rng.normal(0, 0.3, 12) + rng.normal(0, sei), sei)
    tree = engine.fit_exact(description.random_effects(table), draws=200, chains=2, seed=1)
    draws = heterogeneity_draws(tree)
    assert set(draws) == {"I² % (between studies)", "H² (between studies)"}
    tau = tree["posterior"]["tau"].to_numpy().ravel()
    np.testing.assert_allclose(draws["I² % (between studies)"], i2_h2(tau, sei**2)[0])
    assert heterogeneity_draws(engine.fit_exact(description.common_effect(table), draws=50, chains=1)) == {}


def test_by_technique_reports_within_and_total_i2():
    rng = np.random.default_rng(4)
    tech = np.repeat(["a", "b", "c"], 5)
    sei = rng.uniform(0.1, 0.3, 15)
    table = effect_table(rng.normal(0, 0.3, 15) + rng.normal(0, sei), sei, technique=tech.tolist())
    tree = engine.fit_exact(description.by_technique(table), draws=200, chains=2, seed=1)
    draws = heterogeneity_draws(tree)
    within, total = draws["I² % (between studies)"], draws["I² % (total: studies + techniques)"]
    assert np.all(total >= within - 1e-12)  # adding tau_technique² can only raise I²
    post = tree["posterior"]
    t = np.hypot(post["tau"].to_numpy().ravel(), post["tau_technique"].to_numpy().ravel())
    np.testing.assert_allclose(total, i2_h2(t, sei**2)[0])


def test_tau_per_technique_gives_one_i2_per_technique():
    """A model with tau[technique] (a DataTree built by hand): each technique's s² from its own studies."""
    vi = np.array([0.04, 0.05, 0.06, 0.01, 0.02])
    idx = np.array([0, 0, 0, 1, 1])
    tau = np.array([[[0.1, 0.3], [0.2, 0.4]]])  # chain x draw x technique
    tree = xr.DataTree.from_dict({
        "posterior": xr.Dataset({"tau": (("chain", "draw", "technique"), tau)}, coords={"technique": ["a", "b"]}),
        "constant_data": xr.Dataset({"sei": ("study", np.sqrt(vi)), "technique_idx": ("study", idx)})})
    draws = heterogeneity_draws(tree)
    np.testing.assert_allclose(draws["I² % (technique: a)"], i2_h2([0.1, 0.2], vi[:3])[0])
    np.testing.assert_allclose(draws["I² % (technique: b)"], i2_h2([0.3, 0.4], vi[3:])[0])


def test_meta_regression_residual_i2_uses_the_design_matrix(bcg):
    table = effect_table(bcg.yi.to_numpy(), np.sqrt(bcg.vi.to_numpy()), ablat=bcg.ablat.to_numpy())
    tree = engine.fit_exact(description.meta_regression(table, "~ ablat"), draws=100, chains=1, seed=1)
    X, _ = design_matrix(table, "~ ablat")
    tau = tree["posterior"]["tau"].to_numpy().ravel()
    draws = heterogeneity_draws(tree, X=X)
    np.testing.assert_allclose(draws["I² % (residual, between studies)"], i2_h2(tau, bcg.vi, X)[0])


def test_credible_interval_of_i2_covers_the_truth():
    """40 simulated meta-analyses (k = 15, tau = 0.25, se 0.1-0.4): the true I² (from the known tau
    and the simulated vi) lies in the 95% CrI of the exact posterior at about the nominal rate, and
    the posterior median is not biased far from it."""
    rng = np.random.default_rng(2026)
    tau_true, hits, errors = 0.25, 0, []
    for _ in range(40):
        sei = rng.uniform(0.1, 0.4, 15)
        table = effect_table(0.2 + rng.normal(0, tau_true, 15) + rng.normal(0, sei), sei)
        model = description.random_effects(table, {"mu": "normal(0, 1)", "tau": "halfnormal(0.5)"})
        i2 = heterogeneity_draws(engine.fit_exact(model, draws=400, chains=1, seed=1))["I² % (between studies)"]
        truth = float(i2_h2(tau_true, sei**2)[0])
        lo, med, hi = np.quantile(i2, [0.025, 0.5, 0.975])
        hits += lo <= truth <= hi
        errors.append(med - truth)
    print(f"I² coverage {hits}/40, mean error of the median {np.mean(errors):.2f} points")
    assert hits >= 34, hits  # P(Binomial(40, 0.95) < 34) = 0.003
    assert abs(np.mean(errors)) < 10, np.mean(errors)  # percentage points


def test_summarize_lists_i2_and_h2():
    from evsynth.methods.summary import summarize

    rng = np.random.default_rng(3)
    sei = rng.uniform(0.1, 0.4, 12)
    table = effect_table(0.3 + rng.normal(0, 0.3, 12) + rng.normal(0, sei), sei)
    tree = engine.fit_exact(description.random_effects(table), draws=500, chains=2, seed=1)
    summary = summarize(tree)
    tau = tree["posterior"]["tau"].to_numpy().ravel()
    row = summary.loc["I² % (between studies)"]
    assert row["q50"] == pytest.approx(np.median(i2_h2(tau, sei**2)[0]))
    assert np.isnan(row["P(>0)"]) and "H² (between studies)" in summary.index
    assert "I² % (between studies)" not in summarize(tree, heterogeneity=False).index
    assert summary.index[-1] == "prediction (new study)"


def test_summarize_of_a_meta_regression_has_slopes_and_no_prediction(bcg):
    from evsynth.methods.summary import summarize

    table = effect_table(bcg.yi.to_numpy(), np.sqrt(bcg.vi.to_numpy()), ablat=bcg.ablat.to_numpy())
    tree = engine.fit_exact(description.meta_regression(table, "~ ablat"), draws=300, chains=1, seed=1)
    summary = summarize(tree)
    assert summary.index[:2].tolist() == ["intercept (mu)", "slope: ablat"]
    assert "prediction (new study)" not in summary.index
    assert summary.loc["slope: ablat", "q97.5"] < 0


def test_studies_with_weight_zero_are_left_out_of_s2():
    vi = np.array([0.04, 0.05, 0.06, 0.5])
    tree = xr.DataTree.from_dict({
        "posterior": xr.Dataset({"tau": (("chain", "draw"), [[0.1, 0.2]])}),
        "constant_data": xr.Dataset({"sei": ("study", np.sqrt(vi)), "weights": ("study", [1.0, 1.0, 1.0, 0.0])})})
    np.testing.assert_allclose(heterogeneity_draws(tree)["I² % (between studies)"], i2_h2([0.1, 0.2], vi[:3])[0])


def test_exact_engine_analysis_lists_i2_before_the_prediction():
    """run_analysis(engine='exact') summarizes by quadrature; the I² rows come from its draws."""
    from evsynth.methods.analysis import run_analysis

    rng = np.random.default_rng(8)
    sei = rng.uniform(0.1, 0.3, 10)
    table = effect_table(0.3 + rng.normal(0, 0.2, 10) + rng.normal(0, sei), sei)
    result = run_analysis("o", table, model="random_effects", engine="exact", draws=500, chains=2)
    index = result.summary.index.tolist()
    assert index.index("I² % (between studies)") < index.index("prediction (new study)")
    tau = result.idata["posterior"]["tau"].to_numpy().ravel()
    assert result.summary.loc["I² % (between studies)", "q50"] == pytest.approx(np.median(i2_h2(tau, sei**2)[0]))
