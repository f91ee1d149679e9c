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
    for name in ("mu", "tau", "corr_cpc"):
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


@pytest.mark.parametrize("d, eta", [(2, 2.0), (3, 2.0), (4, 1.0)])
def test_lkj_correlation_has_the_lkj_marginals_and_matches_pymc(d, eta):
    """Every correlation of LKJ(eta) in d dimensions has (r + 1) / 2 ~ Beta(eta - 1 + d/2, same)
    (Lewandowski et al. 2009); the joint law is checked through det(R) against pm.LKJCorr's draws.
    A wrong Beta parameter of any vine level moves these by far more than 20,000 draws resolve."""
    import pymc as pm
    import pytensor.tensor as pt
    from scipy import stats

    from evsynth.engines.multivariate import lkj_correlation

    with pm.Model():
        corr = lkj_correlation(pm, pt, d, eta)
    ours = pm.draw(corr, draws=20_000, random_seed=1)
    np.testing.assert_allclose(np.diagonal(ours, axis1=1, axis2=2), 1.0, atol=1e-12)
    np.testing.assert_allclose(ours, np.swapaxes(ours, 1, 2), atol=1e-12)
    assert np.linalg.eigvalsh(ours).min() > 0
    marginal = stats.beta(eta - 1 + d / 2, eta - 1 + d / 2)
    for i, j in zip(*np.tril_indices(d, -1)):
        assert stats.kstest((ours[:, i, j] + 1) / 2, marginal.cdf).pvalue > 1e-3, (i, j)
    L = pm.draw(pm.LKJCorr.dist(n=d, eta=eta), draws=20_000, random_seed=2)
    reference = L @ np.swapaxes(L, -1, -2)
    assert stats.ks_2samp(np.linalg.det(ours), np.linalg.det(reference)).pvalue > 1e-3


def test_no_blas_warning_when_the_model_is_compiled():
    """PyTensor warns "could not link to a BLAS installation" once per process, when its C backend
    first compiles a dot; pm.LKJCholeskyCov's initial point did (issue 23). A fresh process builds the
    model, computes its initial point and compiles its log-density and gradient with warnings as errors."""
    import subprocess
    import sys

    code = ("import warnings, numpy as np, pandas as pd\n"
            "warnings.simplefilter('error')\n"
            "from evsynth.engines.multivariate import multivariate\n"
            "t = pd.DataFrame({'trial': list('aabbcc'), 'outcome': list('XYXYXY'), 'yi': [.1, .2, .3, .1, .0, .4],"
            " 'vi': [.02] * 6})\n"
            "m = multivariate(t)\n"
            "point = m.initial_point()\n"
            "m.logp_dlogp_function(ravel_inputs=True)\n"
            "print(float(m.compile_logp()(point)))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "BLAS" not in run.stderr
    assert np.isfinite(float(run.stdout.strip().splitlines()[-1]))
