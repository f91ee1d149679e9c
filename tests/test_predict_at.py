"""Bayesian predictions at chosen moderator values (methods.regression.predict_at) on dat.bcg ~ ablat:
the posterior mean of x'beta against the exact engine's coefficient means (a linear identity, up to
Monte Carlo error), and the flat-prior fit against metafor's predict(newmods = c(10, 30, 50))."""

import json

import numpy as np
import pandas as pd
import pytest

import evsynth as es
from evsynth.methods.regression import fit_meta_regression, predict_at
from evsynth.model.moderators import with_study_columns

from conftest import ROOT, reference_file

REF = json.loads(reference_file("reference/staples_metafor.json").read_text())["bcg_metareg"]["REML"]
FLAT = {"mu": "normal(0, 1000)", "beta": "normal(0, 1000)", "tau": "uniform(0, 10)"}  # as test_regression
X_NEW = [[1, 10], [1, 30], [1, 50]]


@pytest.fixture(scope="module")
def result():
    studies = es.load_studies(ROOT / "studies" / "bcg.csv", extra_columns=["ablat", "alloc"])
    effects = with_study_columns(es.compute_effects(studies, measure="RR"), studies)
    return fit_meta_regression(effects, "~ ablat", FLAT, draws=1000, chains=2)


def test_posterior_mean_is_the_linear_combination_of_exact_coefficient_means(result):
    pred = predict_at(result, X_NEW)
    exact = np.asarray(X_NEW) @ result.coefficients["mean"].to_numpy()
    assert np.all(np.abs(pred["mean"] - exact) < 4 * pred["mcse_mean"])
    assert (pred["q2.5"] < pred["q50"]).all() and (pred["pi_low"] < pred["q2.5"]).all()
    assert (pred["pi_high"] > pred["q97.5"]).all()


def test_flat_prior_predictions_sit_near_metafors(result):
    pred = predict_at(result, X_NEW)
    # the posterior averages over tau where REML plugs in its estimate: within a fifth of metafor's SE
    assert np.all(np.abs(pred["q50"] - REF["pred"]) < 0.2 * np.asarray(REF["pred_se"]))


def test_wrong_width_is_refused(result):
    with pytest.raises(ValueError, match="X_new has 3 columns; the model has 2 \\(intrcpt, ablat\\)"):
        predict_at(result, [[1, 10, 0]])


def test_fit_command_prints_predictions_at_moderator_values(tmp_path, capsys):
    from evsynth.cli.main import main

    code = main(["fit", str(ROOT / "studies" / "bcg.csv"), "--measure", "RR", "--extra-column", "alloc",
                 "--mods", "~ ablat", "--predict-at", "10,30,50", "--engine", "exact", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and "predictions at ablat = 10, 30, 50" in out
    saved = pd.read_csv(tmp_path / "tuberculosis_predictions.csv", header=[0, 1], index_col=0)
    np.testing.assert_allclose(saved[("reml_kh", "pred")], REF["pred"], rtol=1e-6)


def test_predict_at_refuses_words(capsys):
    from evsynth.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["fit", "--predict-at", "ten"])
    assert exc.value.code == 2 and "expected numbers separated by commas" in capsys.readouterr().err
