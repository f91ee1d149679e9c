"""Bayesian meta-regression (evsynth.methods.regression, exact engine) against REML (metafor) with flat
priors, and on simulated data with a known slope.

With flat priors on mu and beta, p(y | tau) is the restricted likelihood of REML, so its maximum
is metafor's tau (rma(yi, vi, mods = ~ ablat, data = dat) on dat.bcg: tau^2 0.0763, intercept
0.2515, ablat -0.0291; tests/data/metafor_reference.out)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

import evsynth as es
from evsynth.model import description
from evsynth.engines import exact as engine
from evsynth.methods.frequentist import tau2_reml
from evsynth.model.moderators import design_matrix, with_study_columns
from evsynth.methods.regression import beta_draws, fit_meta_regression

from conftest import assert_printed
from quad_reference import bayesian_r2

DATA = Path(__file__).parent / "data"
FLAT = {"mu": "normal(0, 1000)", "beta": "normal(0, 1000)", "tau": "uniform(0, 10)"}


def bcg_studies() -> pd.DataFrame:
    b = pd.read_csv(DATA / "bcg.csv")
    return es.load_studies(pd.DataFrame(dict(
        study_id=b.trial.astype(str), citation=b.author, year=b.year, ablat=b.ablat, alloc=b.alloc,
        source_level="secondary", design="two_group", technique="BCG", outcome="tuberculosis",
        events_treat=b.tpos, n_treat=b.tpos + b.tneg, events_ctrl=b.cpos, n_ctrl=b.cpos + b.cneg)),
        extra_columns=["ablat", "alloc"])


@pytest.fixture(scope="module")
def bcg():
    studies = bcg_studies()
    return with_study_columns(es.compute_effects(studies, measure="RR"), studies)


def test_study_columns_become_moderators(bcg):
    assert bcg["ablat"].dtype.kind in "if" and bcg["alloc"].dtype.kind not in "if"
    assert bcg.attrs["measure"] == "RR"


def test_flat_prior_marginal_likelihood_peaks_at_the_reml_tau(bcg):
    model = description.meta_regression(bcg, "~ ablat", FLAT)

    def minus_loglik(tau):
        return -engine.conditionals(model, np.array([[tau]])).loglik[0]

    mode = optimize.minimize_scalar(minus_loglik, bounds=(1e-4, 2), method="bounded", options={"xatol": 1e-8}).x
    assert_printed(mode**2, "0.0763")
    X, _ = design_matrix(bcg, "~ ablat")
    assert mode**2 == pytest.approx(tau2_reml(bcg.yi, bcg.vi, X), rel=1e-4)


def test_flat_prior_coefficients_are_close_to_reml(bcg):
    result = fit_meta_regression(bcg, "~ ablat", FLAT, draws=200, chains=1)
    freq = result.frequentist.coefficients
    assert_printed(freq.loc["intrcpt", "estimate"], "0.2515")
    assert_printed(freq.loc["ablat", "estimate"], "-0.0291")
    bayes = result.coefficients
    # the posterior averages over tau, REML plugs in its estimate: medians within a tenth of an SE
    for term in ("intrcpt", "ablat"):
        assert abs(bayes.loc[term, "q50"] - freq.loc[term, "estimate"]) < 0.1 * freq.loc[term, "se"], term
    assert bayes.loc["ablat", "P(>0)"] < 0.01  # higher latitude: stronger protection
    assert result.coefficients.index.tolist() == ["intrcpt", "ablat"]


def test_result_reports_residual_heterogeneity_and_r2(bcg):
    result = fit_meta_regression(bcg, "~ ablat", draws=200, chains=1)
    rows = result.heterogeneity.index.tolist()
    assert rows[:2] == ["tau (residual)", "tau (no moderators)"] and "I² % (residual, between studies)" in rows
    assert result.heterogeneity.loc["tau (residual)", "mean"] < result.heterogeneity.loc["tau (no moderators)", "mean"]
    # default priors (mu normal(0, 1), beta normal(0, 1), tau halfnormal(0.5)): scipy quad over tau
    used = es.used_effects(bcg)
    expected = bayesian_r2(used["yi"].to_numpy(), used["vi"].to_numpy(), used["ablat"], 1.0, 1.0, 0.5)
    assert result.R2 == pytest.approx(expected, abs=1e-3)  # latitude explains most of tau² (REML: 75.63%)
    assert result.idata["constant_data"]["X"].shape == (13, 1)
    assert beta_draws(result).shape == (200, 2)
    assert "REML + Knapp-Hartung" in str(result)


def test_no_intercept_formula_is_refused(bcg):
    with pytest.raises(ValueError, match="intercept"):
        fit_meta_regression(bcg, "~ 0 + ablat", draws=50, chains=1)


def simulated(k, slope, seed, tau=0.15):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, k)
    sei = rng.uniform(0.1, 0.3, k)
    yi = 0.1 + slope * x + rng.normal(0, tau, k) + rng.normal(0, sei)
    table = pd.DataFrame({
        "study_id": [f"s{i}" for i in range(k)], "technique": "t", "comparator": "control", "outcome": "o",
        "unit": "", "design": "two_group", "measure": "SMD", "yi": yi, "sei": sei, "vi": sei**2, "used": True,
        "head_to_head": False, "why_not": "", "censored": False, "synthetic": True, "dose": x,
        "noise": rng.uniform(0, 1, k)})
    table.attrs["measure"] = "SMD"
    return table


def test_known_slope_is_recovered():
    """40 simulated meta-analyses (k = 20, slope 0.5 per unit of dose, tau = 0.15): the 95% CrI of the
    slope covers 0.5 at about the nominal rate and the posterior medians are unbiased."""
    hits, medians = 0, []
    for seed in range(40):
        result = fit_meta_regression(simulated(20, 0.5, seed), "~ dose", draws=100, chains=1)
        row = result.coefficients.loc["dose"]
        hits += row["q2.5"] < 0.5 < row["q97.5"]
        medians.append(row["q50"])
    print(f"slope coverage {hits}/40, mean of medians {np.mean(medians):.3f}")
    assert hits >= 34  # P(Binomial(40, 0.95) < 34) = 0.003
    assert abs(np.mean(medians) - 0.5) < 3 * np.std(medians) / np.sqrt(40)


def test_r2_is_large_for_a_real_moderator_and_small_for_noise():
    table = simulated(30, 1.0, seed=1, tau=0.05)
    real = fit_meta_regression(table, "~ dose", draws=100, chains=1)
    noise = fit_meta_regression(table, "~ noise", draws=100, chains=1)
    print(f"R² dose {real.R2:.1f}%, noise {noise.R2:.1f}%")
    assert real.R2 > 60 and noise.R2 < 20
    y, v = table["yi"].to_numpy(), table["vi"].to_numpy()
    raw = {column: bayesian_r2(y, v, table[column], 1.0, 1.0, 0.5) for column in ("dose", "noise")}
    assert raw["noise"] < 0  # noise raises the posterior mean of tau²: R² is truncated at 0, as metafor's
    for result, column in ((real, "dose"), (noise, "noise")):  # default priors; scipy quad over tau
        assert result.R2 == pytest.approx(max(0.0, raw[column]), abs=1e-3), column


def bcg_csv(tmp_path) -> Path:
    b = pd.read_csv(DATA / "bcg.csv")
    path = tmp_path / "bcg.csv"
    pd.DataFrame(dict(study_id=b.trial.astype(str), citation=b.author, year=b.year, ablat=b.ablat,
                      source_level="secondary", design="two_group", technique="BCG", outcome="tuberculosis",
                      events_treat=b.tpos, n_treat=b.tpos + b.tneg, events_ctrl=b.cpos,
                      n_ctrl=b.cpos + b.cneg)).to_csv(path, index=False)
    return path


def test_cli_mods_prints_bayesian_and_reml_fits_and_draws_the_regplot(tmp_path, capsys):
    """What `evsynth fit --mods` prints per outcome (the part after the model fit, called directly)."""
    import argparse

    from evsynth.cli.fit import _print_regression
    from evsynth.cli.main import build_parser
    from evsynth.cli.common import load_effects

    args = build_parser().parse_args(["fit", str(bcg_csv(tmp_path)), "--measure", "RR", "--mods", "ablat"])
    assert args.mods == ["ablat"]
    _, effects = load_effects(args)
    _print_regression("tuberculosis", effects, args.mods, {}, tmp_path / "tb")
    out = capsys.readouterr().out
    assert "Bayesian meta-regression" in out and "P(beta > 0)" in out and "R² analogue" in out
    assert "Knapp-Hartung t on 11 df (tau² 0.0763" in out and "-0.0291" in out  # metafor's printed figures
    assert (tmp_path / "tb_regplot.png").read_bytes()[:4] == b"\x89PNG"
    table = pd.read_csv(tmp_path / "tb_metareg.csv", header=[0, 1], index_col=0)
    assert_printed(table.loc["ablat", ("reml_kh", "estimate")], "-0.0291")


def test_cli_mods_naming_a_missing_column_exits_2(tmp_path, capsys):
    from evsynth.cli.main import main

    rc = main(["fit", str(bcg_csv(tmp_path)), "--measure", "RR", "--mods", "~ latitude", "--out", str(tmp_path)])
    assert rc == 2 and "latitude" in capsys.readouterr().err


def test_parse_mods_takes_a_formula_or_columns():
    from evsynth.model.moderators import ModeratorError, moderator_columns, parse_mods

    assert parse_mods("~ ablat + C(alloc)") == "~ ablat + C(alloc)"
    assert parse_mods(" ablat, year ") == ["ablat", "year"]
    assert moderator_columns("~ ablat + C(alloc)") == ["ablat", "alloc"]
    with pytest.raises(ModeratorError):
        parse_mods("ablat,,year")


def test_bundled_bcg_table_equals_metadat_and_loads_with_its_columns():
    from argparse import Namespace

    from evsynth.cli.common import load_effects

    from conftest import ROOT

    args = Namespace(studies=str(ROOT / "studies" / "bcg.csv"), measure="RR", r_prepost=0.5, p_bound="auto",
                     outcome=None, extra_column=["alloc"], mods=["ablat"], group_combinations=False)
    studies, effects = load_effects(args)
    b = pd.read_csv(DATA / "bcg.csv")
    assert (studies["events_treat"].to_numpy() == b.tpos).all() and (studies["n_ctrl"].to_numpy() == b.cpos + b.cneg).all()
    assert effects["ablat"].tolist() == b.ablat.tolist() and studies["alloc"].tolist() == b.alloc.tolist()
    fit = es.reml(effects.yi, effects.vi)
    assert_printed(fit.tau2, "0.3132")
    assert_printed(fit.I2, "92.22")


@pytest.mark.slow  # MCMC (a statistical check)
def test_pymc_engine_agrees_with_the_exact_engine_within_mcse(bcg):
    """The same description sampled by PyMC (engine 'pymc') and integrated by quadrature (exact):
    posterior means of intercept and slope within 4 Monte-Carlo SEs (ESS-based)."""
    import arviz as az

    # latitude centred (mean 33.5 degrees): on the raw scale intercept and slope are so correlated
    # that 2 x 1000 NUTS draws gave an ESS of ~170 for mu (R-hat 1.03)
    table = bcg.assign(lat=bcg["ablat"] - bcg["ablat"].mean())
    exact = fit_meta_regression(table, "~ lat", draws=500, chains=2)
    mcmc = fit_meta_regression(table, "~ lat", engine="pymc", draws=1000, chains=4, tune=1000, seed=3)
    assert mcmc.diagnostics.ok, str(mcmc.diagnostics)
    post = mcmc.idata["posterior"]
    for term, draws in (("intrcpt", post["mu"]), ("lat", post["beta"].sel(moderator="lat"))):
        mcse = float(az.mcse(draws.to_dataset(name="x"))["x"])
        gap = abs(mcmc.coefficients.loc[term, "mean"] - exact.coefficients.loc[term, "mean"])
        print(f"{term}: |MCMC - exact| = {gap:.5f}, MCSE {mcse:.5f}")
        assert gap < 4 * mcse, (term, gap, mcse)
    # the R² analogue from two posterior means of tau², each estimated from draws: against the quad
    # value within 4 delta-method MCSEs (the model without moderators taken to mix as the one with)
    used = es.used_effects(table)
    expected = bayesian_r2(used["yi"].to_numpy(), used["vi"].to_numpy(), used["lat"], 1.0, 1.0, 0.5)
    assert exact.R2 == pytest.approx(expected, abs=1e-3)
    tau2 = post["tau"] ** 2
    e1, m1 = float(tau2.mean()), float(az.mcse(tau2.to_dataset(name="x"))["x"])
    h = mcmc.heterogeneity
    e0 = h.loc["tau (no moderators)", "mean"] ** 2 + h.loc["tau (no moderators)", "sd"] ** 2
    m0 = m1 * e0 / e1
    se = 100 * np.hypot(m1 / e0, e1 * m0 / e0**2)
    print(f"R²: MCMC {mcmc.R2:.2f}%, quad {expected:.2f}%, MCSE {se:.2f}")
    assert abs(mcmc.R2 - expected) < 4 * se


def test_fit_takes_mods_and_summarize_reports_the_slope(bcg):
    table = bcg.assign(lat=bcg["ablat"] - bcg["ablat"].mean())
    tree = es.fit(table, mods="~ lat", draws=300, tune=300, chains=2, seed=1)
    assert tree.attrs["model"] == "meta_regression" and "beta" in tree["posterior"]
    summary = es.summarize(tree)
    assert summary.index[:2].tolist() == ["intercept (mu)", "slope: lat"]
    assert "I² % (residual, between studies)" in summary.index  # s² from the stored design matrix
    assert summary.loc["slope: lat", "q97.5"] < 0
    with pytest.raises(ValueError, match="no moderators"):
        es.fit(table, kind="random_effects", mods="~ lat")


def test_cli_meta_regression_model_needs_mods(tmp_path, capsys):
    from evsynth.cli.main import main

    rc = main(["fit", str(bcg_csv(tmp_path)), "--measure", "RR", "--model", "meta_regression",
               "--extra-column", "ablat", "--out", str(tmp_path / "out")])
    assert rc == 2 and "--mods" in capsys.readouterr().err


def test_package_names_stay_functions_after_their_modules_are_imported():
    import importlib

    for name, module in (("fit", "engines.fit"), ("network", "methods.network"), ("selection", "engines.selection")):
        importlib.import_module(f"evsynth.{module}")  # as run_analysis / network_fit do internally
        assert callable(getattr(es, name)), name
    from evsynth.engines.fit import nutpie_available  # the module itself is still importable

    assert callable(nutpie_available)


def test_exact_engine_meta_regression_summary_is_labelled_as_a_regression(bcg):
    from evsynth.methods.analysis import run_analysis

    result = run_analysis("tb", bcg, model="meta_regression", mods="~ ablat", engine="exact", draws=300, chains=2)
    index = result.summary.index.tolist()
    assert index[:2] == ["intercept (mu)", "slope: ablat"] and not any(i.startswith("prediction") for i in index)
    assert_printed(result.summary.loc["slope: ablat", "q50"], "-0.029", tol=0.002)  # REML -0.0291, prior normal(0, 1)
    assert "I² % (residual, between studies)" in index
    with pytest.raises(ValueError, match="needs moderators"):
        run_analysis("tb", bcg, model="meta_regression", engine="exact")
