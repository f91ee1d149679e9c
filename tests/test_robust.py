"""evsynth.methods.robust (CR2 + Satterthwaite df) against clubSandwich 0.5.8's
coef_test(fit, vcov = "CR2") on metafor fits of dat.assink2016 (figures and R script:
tests/data/reference/multilevel.json / multilevel.R): the three-level model, with a moderator,
and the correlated-effects (CE) and correlated-hierarchical (CHE) working models with r = 0.6."""

import json

import numpy as np
import pandas as pd
import pytest

from evsynth.effects.covariance import impute_covariance
from evsynth.methods.multilevel import multilevel
from evsynth.methods.robust import cr2, robust

from conftest import reference_file

REF = json.loads(reference_file("reference/multilevel.json").read_text())


@pytest.fixture(scope="module")
def assink():
    return pd.read_csv(reference_file("assink2016.csv"))


def rel(a, b):
    a, b = np.atleast_1d(np.asarray(a, float)), np.atleast_1d(np.asarray(b, float))
    return float(np.max(np.abs(a - b) / np.abs(b)))


CASES = {"assink2016_REML": ("~ 1 | study/esid", None, None),
         "assink2016_REML_deltype": ("~ 1 | study/esid", "~ C(deltype)", None),
         "assink2016_CE_r06": ("~ 1 | study", None, 0.6),
         "assink2016_CHE_r06": ("~ 1 | study/esid", None, 0.6)}


@pytest.mark.parametrize("key", CASES)
def test_cr2_equals_clubsandwich(assink, key):
    random, mods, r = CASES[key]
    V = None if r is None else impute_covariance(assink["vi"], assink["study"], r)
    result = robust(multilevel(assink, random, V=V, mods=mods))
    ref = REF[key + "_CR2"]
    assert result.clusters == 17
    assert rel(result.coefficients["estimate"], ref["beta"]) < 1e-6
    assert rel(result.coefficients["se"], ref["se"]) < 1e-6
    assert rel(result.coefficients["df"], ref["df"]) < 1e-6
    assert rel(result.coefficients["pval"], ref["p"]) < 1e-6


def test_cr2_differs_from_model_based_se(assink):
    """The sandwich is not the model's SE: for the moderator model they differ by a factor > 3."""
    fit = multilevel(assink, "~ 1 | study/esid", mods="~ C(deltype)")
    ratio = fit.coefficients["se"] / robust(fit).coefficients["se"]
    assert ratio.max() > 3


def test_cr2_closed_form_for_a_mean():
    """One row per cluster, equal variances: CR2 is the textbook SE of a mean, sd(y) / sqrt(k),
    with k - 1 df (Bell & McCaffrey 2002); unequal variances: df near (sum w)^2 / sum w^2 - 1."""
    rng = np.random.default_rng(11)
    k = 40
    yi = 0.2 + rng.normal(0, 0.3, k)
    res = cr2(yi, np.ones((k, 1)), np.diag(np.full(k, 0.09)), np.arange(k)).coefficients.iloc[0]
    assert res["se"] == pytest.approx(np.std(yi, ddof=1) / np.sqrt(k), rel=1e-12)
    assert res["df"] == pytest.approx(k - 1, rel=1e-12)
    vi = rng.uniform(0.02, 0.2, 400)
    w = 1 / vi
    res = cr2(0.2 + rng.normal(0, np.sqrt(vi)), np.ones((400, 1)), np.diag(vi), np.arange(400))
    assert res.coefficients["df"].iloc[0] == pytest.approx(w.sum() ** 2 / (w**2).sum() - 1, rel=0.01)


def test_low_df_flagged_both_sides(assink):
    lines = robust(multilevel(assink, "~ 1 | study/esid", mods="~ C(deltype)")).lines()
    flagged = [line for line in lines if "unreliable" in line]
    assert len(flagged) == 2  # df 2.3 and 2.0
    assert not any("unreliable" in line and "intrcpt" in line for line in lines)  # df 6.8
    assert all(len(line) <= 100 for line in lines)


def test_cluster_must_contain_the_random_effects(assink):
    fit = multilevel(assink, "~ 1 | study/esid")
    with pytest.raises(ValueError, match="links rows of different clusters"):
        robust(fit, cluster=assink["esid"])
    with pytest.raises(ValueError, match="at least 2 clusters"):
        robust(fit, cluster=np.zeros(len(assink)))
