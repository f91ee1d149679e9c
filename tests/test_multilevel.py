"""evsynth.methods.multilevel (metafor's rma.mv) and evsynth.effects.covariance against metafor 3.8.

Reference figures: tests/data/reference/multilevel.json, made by tests/data/reference/multilevel.R
(the datasets konstantopoulos2011.csv, assink2016.csv, berkey1998.csv are metadat 1.2.0's
dat.konstantopoulos2011, dat.assink2016 and dat.berkey1998, written by that script). metafor's
likelihood surface is flat at the optimum, so the script keeps the best of three optimizers; our
Newton iterations reach a log-likelihood at least as high, and the estimates agree within 1e-6
(relative) except berkey1998 ML, where metafor's best optimizer stops 1e-5 short (logLik 1e-11 lower).
"""

import json

import numpy as np
import pandas as pd
import pytest

from evsynth.effects.covariance import CovarianceError, check_covariance, impute_covariance, \
    shared_control_covariance
from evsynth.methods.frequentist import tau2_reml
from evsynth.methods.multilevel import MultilevelError, multilevel, parse_random

from conftest import reference_file

REF = json.loads(reference_file("reference/multilevel.json").read_text())
TOL = 1e-6


def rel(a, b):
    a, b = np.atleast_1d(np.asarray(a, float)), np.atleast_1d(np.asarray(b, float))
    return float(np.max(np.abs(a - b) / np.abs(b)))


@pytest.fixture(scope="module")
def konst():
    return pd.read_csv(reference_file("konstantopoulos2011.csv"))


@pytest.fixture(scope="module")
def assink():
    return pd.read_csv(reference_file("assink2016.csv"))


@pytest.fixture(scope="module")
def berkey():
    return pd.read_csv(reference_file("berkey1998.csv"))


def check(fit, ref, tol=TOL):
    assert rel(fit.coefficients["estimate"], ref["beta"]) < tol
    assert rel(fit.coefficients["se"], ref["se"]) < tol
    assert fit.loglik >= ref["logLik"] - 1e-9  # at least as high as metafor's optimum


@pytest.mark.parametrize("method", ["REML", "ML"])
def test_konstantopoulos_three_level(konst, method):
    ref = REF[f"konstantopoulos2011_{method}"]
    fit = multilevel(konst, "~ 1 | district/school", method=method)
    assert list(fit.components.index) == ["district", "district/school"]
    assert list(fit.components["levels"]) == [11, 56]
    assert rel(fit.sigma2, ref["sigma2"]) < TOL
    check(fit, ref)
    assert rel(fit.QE, ref["QE"]) < 1e-9


def test_konstantopoulos_with_moderator(konst):
    table = konst.assign(year_c=konst["year"] - konst["year"].mean())
    fit = multilevel(table, ["district", "district/school"], mods="~ year_c")
    ref = REF["konstantopoulos2011_REML_year"]
    assert rel(fit.sigma2, ref["sigma2"]) < TOL
    check(fit, ref)


@pytest.mark.parametrize("mods,key", [(None, "assink2016_REML"), ("~ C(deltype)", "assink2016_REML_deltype")])
def test_assink_three_level(assink, mods, key):
    fit = multilevel(assink, "~ 1 | study/esid", mods=mods)
    assert rel(fit.sigma2, REF[key]["sigma2"]) < TOL
    check(fit, REF[key])


@pytest.mark.parametrize("random,key", [("~ 1 | study", "assink2016_CE_r06"),
                                        ("~ 1 | study/esid", "assink2016_CHE_r06")])
def test_assink_imputed_correlation(assink, random, key):
    """V from r = 0.6 within studies (clubSandwich::impute_covariance_matrix = metafor::vcalc)."""
    V = impute_covariance(assink["vi"], assink["study"], 0.6)
    fit = multilevel(assink, random, V=V)
    assert rel(fit.sigma2, REF[key]["sigma2"]) < TOL
    check(fit, REF[key])


@pytest.mark.parametrize("method,tol", [("REML", TOL), ("ML", 2e-5)])
def test_berkey_bivariate_unstructured(berkey, method, tol):
    ref = REF[f"berkey1998_UN_{method}"]
    fit = multilevel(berkey, "~ outcome | trial", V=np.array(REF["berkey1998_V"]), mods="~ 0 + C(outcome)",
                     method=method)
    assert [n.replace("C(outcome)[", "outcome").rstrip("]") for n in fit.coefficients.index] == ref["coef_names"]
    assert rel(fit.sigma2[:2], ref["tau2"]) < tol
    assert rel(fit.rho.loc["AL", "PD"], ref["rho"]) < tol
    check(fit, ref, tol)


def test_berkey_V_from_reported_covariances(berkey):
    """vcalc(vi = 1, cluster, rvars = c(v1i, v2i)): each trial's 2 x 2 block as printed."""
    V = np.zeros((len(berkey), len(berkey)))
    for _, rows in berkey.groupby("trial").groups.items():
        rows = list(rows)
        V[np.ix_(rows, rows)] = berkey.loc[rows, ["v1i", "v2i"]].to_numpy()
    np.testing.assert_allclose(check_covariance(V, len(berkey)), np.array(REF["berkey1998_V"]), rtol=0, atol=1e-15)


def test_one_level_equals_univariate_reml(konst):
    """Every row its own group: rma.mv reduces to rma's REML tau^2 (evsynth.methods.frequentist)."""
    fit = multilevel(konst.assign(row=np.arange(len(konst))), "~ 1 | row")
    assert fit.sigma2[0] == pytest.approx(tau2_reml(konst["yi"], konst["vi"]), rel=1e-8)


def test_boundary_component_is_zero():
    """Identical study means: no variance between studies, so that sigma^2 lands exactly on 0
    (held at the boundary, not negative) while the effect-level one stays positive."""
    pattern = np.array([0.5, -0.5, 0.3, -0.3])
    table = pd.DataFrame({"yi": 0.3 + np.tile(pattern, 10), "vi": 0.05, "study": np.repeat(np.arange(10), 4),
                          "es": np.arange(40)})
    fit = multilevel(table, "~ 1 | study/es")
    assert fit.sigma2[0] == 0.0
    assert fit.sigma2[1] > 0.05
    assert fit.coefficients.loc["intrcpt", "estimate"] == pytest.approx(0.3)


def test_impute_covariance_blocks():
    V = impute_covariance([0.04, 0.09, 0.01], ["a", "a", "b"], 0.6)
    np.testing.assert_allclose(V, [[0.04, 0.036, 0], [0.036, 0.09, 0], [0, 0, 0.01]])


@pytest.mark.parametrize("rho", [1.0, -1.0, 1.5, np.nan])
def test_impute_covariance_refuses_impossible_rho(rho):
    with pytest.raises(CovarianceError, match="rho"):
        impute_covariance([0.04, 0.09], ["a", "a"], rho)


def test_impute_covariance_accepts_rho_just_inside():
    V = impute_covariance([0.04, 0.09], ["a", "a"], 0.999)
    assert V[0, 1] == pytest.approx(0.999 * 0.06)


def test_shared_control_md_and_smd():
    V = shared_control_covariance([0.5, 0.6, 0.3], ["t1", "t1", "t2"], n_control=[20, 20, 15],
                                  sd_control=[2.0, 2.0, 1.0])
    assert V[0, 1] == pytest.approx(4.0 / 20) and V[0, 2] == 0 and V[1, 1] == 0.6
    V = shared_control_covariance([0.12, 0.13], ["t1", "t1"], n_control=[20, 20], yi=[0.4, 0.6],
                                  n_total=[60, 60], measure="SMD")
    assert V[0, 1] == pytest.approx(1 / 20 + 0.4 * 0.6 / 120)
    with pytest.raises(CovarianceError, match="n_control differs"):
        shared_control_covariance([0.5, 0.6], ["t1", "t1"], n_control=[20, 21], sd_control=[2, 2])


def test_user_V_checked():
    with pytest.raises(CovarianceError, match="shape"):
        check_covariance(np.eye(2), 3)
    with pytest.raises(CovarianceError, match="symmetric"):
        check_covariance([[1, 0.2], [0.1, 1]], 2)
    with pytest.raises(CovarianceError, match="positive definite"):
        check_covariance([[1, 1], [1, 1]], 2)


def test_parse_random_spellings():
    assert parse_random("~ 1 | a/b/c").levels == (("a",), ("a", "b"), ("a", "b", "c"))
    assert parse_random(["study", "study/effect"]).levels == (("study",), ("study", "effect"))
    spec = parse_random("~ outcome | trial")
    assert (spec.inner, spec.outer) == ("outcome", "trial")
    for bad in ["~ 1 |", "study/effect", "~ outcome | a/b", 3, ["study", "study"]]:
        with pytest.raises(MultilevelError):
            parse_random(bad)
    with pytest.raises(MultilevelError, match="struct"):
        parse_random("~ outcome | trial", struct="CS")


def test_bad_tables_name_the_field(assink):
    with pytest.raises(MultilevelError, match="'school'"):
        multilevel(assink, "~ 1 | study/school")
    holes = assink.assign(esid=assink["esid"].astype(float))
    holes.loc[3, "esid"] = np.nan
    with pytest.raises(MultilevelError, match="'esid' is empty in row"):
        multilevel(holes, "~ 1 | study/esid")
    with pytest.raises(MultilevelError, match="REML"):
        multilevel(assink, "~ 1 | study/esid", method="DL")


def test_lines_fit_terminal(assink):
    lines = multilevel(assink, "~ 1 | study/esid", mods="~ C(deltype)").lines()
    assert all(len(line) <= 100 for line in lines)
    assert any("study/esid" in line for line in lines)
