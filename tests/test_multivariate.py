"""The multivariate model on PyMC (evsynth.engines.multivariate: per-outcome means, unstructured
between-trial covariance with an LKJ prior, known V): on dat.berkey1998 (V from vcalc, as metafor's
documentation builds it) it passes the diagnostics, and its posterior medians of the outcome means
sit near metafor's REML estimates (the same model with flat priors; 5 trials, so only a sanity
check: within 0.05). Coverage over 40 simulated datasets: benchmarks/multivariate_coverage.py,
figures in docs/validation.md."""

import json

import numpy as np
import pandas as pd
import pytest

from evsynth.engines.multivariate import multivariate

from conftest import reference_file

REF = json.loads(reference_file("reference/multilevel.json").read_text())


@pytest.fixture(scope="module")
def berkey():
    return pd.read_csv(reference_file("berkey1998.csv"))


@pytest.mark.slow
def test_berkey_fit_passes_diagnostics_and_sits_near_reml(berkey):
    import pymc as pm
    from arviz_stats import rhat

    with multivariate(berkey, V=np.array(REF["berkey1998_V"])):
        idata = pm.sample(draws=1000, tune=1000, chains=2, cores=1, random_seed=4, progressbar=False,
                          target_accept=0.99, nuts_sampler="pymc", compute_convergence_checks=False)
    post = idata.posterior
    assert int(idata.sample_stats["diverging"].sum()) == 0
    for name in ("mu", "tau", "chol"):
        assert float(np.max(np.asarray(rhat(post[name])))) < 1.01
    median = post["mu"].median(("chain", "draw")).sel(outcome=["AL", "PD"]).to_numpy()
    np.testing.assert_allclose(median, REF["berkey1998_UN_REML"]["beta"], atol=0.05)
    rho = post["rho"].sel(outcome="AL", outcome_="PD").to_numpy()
    assert -1 <= rho.min() and rho.max() <= 1


def test_inputs_checked(berkey):
    with pytest.raises(ValueError, match="one outcome"):
        multivariate(berkey[berkey["outcome"] == "PD"])
    with pytest.raises(ValueError, match="'arm'"):
        multivariate(berkey, cluster="arm")
    with pytest.raises(ValueError, match="V has shape"):
        multivariate(berkey, V=np.eye(3))
    with pytest.raises(ValueError, match="normal prior on mu"):
        multivariate(berkey, priors={"mu": "student_t(3, 0, 1)"})
