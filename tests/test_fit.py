"""End-to-end: models fit, diagnostics flag failures, the CLI runs on the bundled data."""

import sys

import arviz as az
import numpy as np
import pandas as pd
import pytest

import evsynth as es
from evsynth.cli.common import EXIT_BAD_INPUT, EXIT_DIAGNOSTICS
from evsynth.cli.main import main
from evsynth.engines.fit import compile_nutpie, nutpie_available

from conftest import ROOT


def eight_schools_effects(reference_dir):
    data = pd.read_csv(reference_dir / "eight_schools.csv")
    rows = [{"study_id": s, "citation": "Rubin (1981)", "source_level": "secondary", "design": "effect",
             "technique": "coaching", "outcome": "SAT", "yi": y, "sei": se, "measure": "MD"}
            for s, y, se in data[["school", "y", "sigma"]].itertuples(index=False)]
    return es.compute_effects(es.load_studies(pd.DataFrame(rows)), measure="MD")


def test_eight_schools_posterior(reference_dir):
    # PyMC/Stan examples: mu ~ N(0, 5), tau ~ HalfCauchy(5), non-centered -> mean mu ~4.4 (sd ~3.3), mean tau ~3.6
    effects = eight_schools_effects(reference_dir)
    model = es.random_effects(effects, priors={"mu": "normal(0, 5)", "tau": "halfcauchy(5)"})
    idata = es.fit(model, draws=1000, tune=1000, chains=4, seed=11)
    summary = az.summary(idata, var_names=["mu", "tau"])
    rounding = 0.05  # the reference values are printed to one decimal
    for param, mean, sd in (("mu", 4.4, 3.3), ("tau", 3.6, None)):
        row = summary.loc[param]
        assert abs(row["mean"] - mean) < 4 * row["mcse_mean"] + rounding, (param, row["mean"])
        if sd is not None:
            assert abs(row["sd"] - sd) < 4 * row["mcse_sd"] + rounding
    assert idata.attrs["prior_tau"] == "halfcauchy(5)" and idata.attrs["model"] == "random_effects"
    assert set(idata.constant_data["yi"].coords["study"].values) == set("ABCDEFGH")
    assert "y" in idata.log_likelihood


def fake_fit(chain_means, diverging=0, energy_noise=1.0, seed=0):
    rng = np.random.default_rng(seed)
    draws = 500
    mu = np.stack([rng.normal(m, 1, draws) for m in chain_means])
    div = np.zeros((len(chain_means), draws), dtype=bool)
    div.flat[:diverging] = True
    energy = rng.normal(0, energy_noise, (len(chain_means), draws)).cumsum(axis=1)
    return az.from_dict({"posterior": {"mu": mu, "tau": np.abs(mu)}, "sample_stats": {"diverging": div, "energy": energy}})


def test_diagnostics_pass_on_well_mixed_chains():
    rng = np.random.default_rng(1)
    idata = az.from_dict({"posterior": {"mu": rng.normal(size=(4, 1000)), "tau": np.abs(rng.normal(size=(4, 1000)))}, "sample_stats": {"diverging": np.zeros((4, 1000), bool), "energy": rng.normal(size=(4, 1000))}})
    report = es.diagnose(idata)
    assert report.ok and report.verdict == "PASS", report.problems


def test_diagnostics_flag_rhat_divergences_and_bfmi():
    report = es.diagnose(fake_fit([0.0, 3.0], diverging=7))
    text = str(report)
    assert not report.ok and "FAIL" in text
    assert any("R-hat" in p for p in report.problems)
    assert any("7 divergent" in p for p in report.problems)
    assert any("E-BFMI" in p for p in report.problems)  # random-walk energy: low BFMI


def test_cli_fit_on_bundled_data(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    small = ["--draws", "150", "--tune", "150", "--chains", "2", "--seed", "5"]
    # Too few draws for ESS >= 400: the verdict must fail loudly and the exit code say so.
    code = main(["fit", "studies/massage.csv", "--out", str(tmp_path / "a"), *small])
    out, err = capsys.readouterr()
    assert code == EXIT_DIAGNOSTICS and "DIAGNOSTICS FAILED" in err
    for section in ("== effect sizes", "rows in no model, and why", "pooled (mu)", "technique: oxytocin",
                    "tau (between studies)", "prediction (new study)", "P(>0)", "diagnostics: FAIL"):
        assert section in out, section
    assert "not analysed" in out  # outcomes with fewer than two usable studies are named, not dropped
    assert (tmp_path / "a" / "milk_volume_forest.png").stat().st_size > 0
    # Same seed, --accept-failed: exit 0, and the draws are identical (seeded, reproducible).
    assert main(["fit", "studies/massage.csv", "--out", str(tmp_path / "b"), "--accept-failed", *small]) == 0
    first, second = (az.from_netcdf(tmp_path / d / "milk_volume.nc") for d in ("a", "b"))
    np.testing.assert_array_equal(first.posterior["mu"].values, second.posterior["mu"].values)
    assert first.attrs["data_hash"] == second.attrs["data_hash"]


def test_cli_bad_input_names_study_and_field(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("study_id,citation,source_level,design,technique,outcome,n,mean_pre,mean_post,p\n"
                   "x1,c,abstract,pre_post,oxytocin,milk,36,24.78,40.36,<0.05\n")
    assert main(["fit", str(bad), "--out", str(tmp_path)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "study 'x1', field 'p'" in err


def test_md_refuses_mixed_units():
    rows = [{"study_id": f"s{i}", "citation": "c", "source_level": "abstract", "design": "two_group",
             "technique": "oxytocin", "outcome": "milk", "unit": unit, "n_treat": 10, "n_ctrl": 10,
             "mean_treat": 5.0, "mean_ctrl": 4.0, "p": 0.04} for i, unit in enumerate(["mL", "cups"])]
    effects = es.compute_effects(es.load_studies(pd.DataFrame(rows)), measure="MD")
    with pytest.raises(ValueError, match="units differ"):
        es.random_effects(effects)


def test_summary_of_common_effect_fit_has_no_tau_and_prediction_equals_mu():
    rng = np.random.default_rng(3)
    idata = az.from_dict({"posterior": {"mu": rng.normal(0.5, 0.1, (2, 500))}})
    table = es.summarize(idata)
    assert not any(label.startswith("tau") for label in table.index)
    pred, mu = table.loc["prediction (new study)"], table.loc["pooled (mu)"]
    assert pred["mean"] == pytest.approx(mu["mean"]) and pred["sd"] == pytest.approx(mu["sd"])
    assert table.loc["pooled (mu)", "P(>0)"] == pytest.approx((idata.posterior["mu"].values > 0).mean())


def test_diagnostics_check_selection_weights_increments():
    rng = np.random.default_rng(4)
    post = {"mu": rng.normal(size=(4, 500)), "eta": np.stack([rng.dirichlet([1, 1, 1], 500)] * 3 + [np.tile([0.9, 0.05, 0.05], (500, 1))])}
    stats = {"diverging": np.zeros((4, 500), bool), "energy": rng.normal(size=(4, 500))}
    report = es.diagnose(az.from_dict({"posterior": post, "sample_stats": stats}))
    assert any(p.startswith("eta") and "R-hat" in p for p in report.problems), report.problems
    assert not any("sampler statistics" in p for p in report.problems)


def test_diagnostics_without_sampler_statistics_say_so():
    rng = np.random.default_rng(5)
    report = es.diagnose(az.from_dict({"posterior": {"mu": rng.normal(size=(4, 1000))}}))
    assert not report.ok and "not checked" in str(report)


@pytest.mark.slow  # two nutpie compiles in this process: 9-11 s of CPU (conftest's list); run in CI
@pytest.mark.skipif(not nutpie_available(), reason="needs nutpie")
def test_a_precompiled_model_is_sampled_with_the_new_models_data():
    """fit(model, compiled=...) swaps in `model`'s data: the same draws as compiling `model`."""
    studies = es.load_studies(ROOT / "studies" / "synthetic_demo.csv")
    tables = [es.compute_effects(studies, r_prepost=r) for r in (0.2, 0.9)]
    first, second = (es.random_effects(t[t["outcome"] == "milk volume"], study_effects=False) for t in tables)
    options = dict(draws=200, tune=200, chains=2, seed=5, sampler="nutpie")
    reused = es.fit(second, compiled=compile_nutpie(first), **options)
    # (fit's own compile freezes the data into the graph, which orders the parameters differently:
    # the same posterior, other draws; so the reference is nutpie's compile of `second` itself)
    fresh = es.fit(second, compiled=compile_nutpie(second), **options)
    assert not np.allclose(first["sei"].get_value(), second["sei"].get_value())  # the data really differ
    np.testing.assert_array_equal(reused.posterior["mu"], fresh.posterior["mu"])
    np.testing.assert_array_equal(reused.constant_data["sei"], second["sei"].get_value())
    with pytest.raises(ValueError, match="nutpie"):
        es.fit(second, compiled=object(), sampler="pymc")


def test_sampler_nutpie_without_nutpie_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "nutpie", None)  # as if the optional extra were not installed
    effects = es.compute_effects(es.load_studies(ROOT / "studies" / "synthetic_demo.csv"))
    model = es.random_effects(effects[effects["outcome"] == "milk volume"])
    with pytest.raises(ImportError, match=r"evsynth\[fast\]"):
        es.fit(model, sampler="nutpie")
    from evsynth.model import description  # a description too (no pm.Model is built before the check)

    with pytest.raises(ImportError, match=r"evsynth\[fast\]"):
        es.fit(description.random_effects(effects[effects["outcome"] == "milk volume"]), sampler="nutpie")
