"""evsynth.methods.dependence.correlation_sensitivity: per assumed r, the REML and CR2 figures equal
metafor / clubSandwich (tests/data/reference/multilevel.json) at r = 0 (three-level model) and r = 0.6
(CHE working model); the Bayesian column is the exact engine's posterior of the same model."""

import json

import numpy as np
import pandas as pd
import pytest

from evsynth.engines import exact
from evsynth.methods.dependence import correlation_sensitivity
from evsynth.model import description

from conftest import reference_file

REF = json.loads(reference_file("reference/multilevel.json").read_text())


def test_frequentist_columns_equal_metafor_and_clubsandwich():
    assink = pd.read_csv(reference_file("assink2016.csv"))
    table = correlation_sensitivity(assink, "~ 1 | study/esid", rhos=(0.0, 0.6), bayes=False)
    for rho, key in [(0.0, "assink2016_REML"), (0.6, "assink2016_CHE_r06")]:
        row = table.loc[rho]
        assert row["estimate"] == pytest.approx(REF[key]["beta"], rel=1e-6)
        assert row["se"] == pytest.approx(REF[key]["se"], rel=1e-6)
        assert row["se_CR2"] == pytest.approx(REF[key + "_CR2"]["se"], rel=1e-6)
        assert row["df_CR2"] == pytest.approx(REF[key + "_CR2"]["df"], rel=1e-6)
        assert [row["sigma2[study]"], row["sigma2[study/esid]"]] == pytest.approx(REF[key]["sigma2"], rel=1e-6)


def test_bayesian_column_is_the_exact_posterior():
    rng = np.random.default_rng(8)
    cluster = np.repeat(np.arange(6), 3)
    vi = rng.uniform(0.02, 0.06, 18)
    table = pd.DataFrame({"yi": 0.3 + rng.normal(0, 0.25, 6)[cluster] + rng.normal(0, np.sqrt(vi)), "vi": vi,
                          "study": cluster, "es": np.arange(18)})
    priors = {"mu": "normal(0, 1)", "tau": "halfnormal(0.5)", "tau_study": "halfnormal(0.5)"}
    out = correlation_sensitivity(table, "~ 1 | study/es", rhos=(0.0, 0.5), priors=priors)
    assert list(out.index) == [0.0, 0.5]
    effects = table.assign(sei=np.sqrt(vi), study_id=[f"row {i + 1}" for i in range(18)], used=True,
                           head_to_head=False, censored=False, unit="", outcome="outcome")
    effects.attrs["measure"] = "SMD"
    model = description.multilevel(effects, priors, random="~ 1 | study/es", rho=0.5)
    expected = exact.summary_table(model).loc["pooled (mu)"]
    assert out.loc[0.5, "mu_mean"] == pytest.approx(expected["mean"], rel=1e-12)
    assert out.loc[0.5, "mu_q97.5"] == pytest.approx(expected["q97.5"], rel=1e-12)
    assert out.loc[0.0, "mu_mean"] != pytest.approx(out.loc[0.5, "mu_mean"], rel=1e-4)
