"""Secondary figures against independent values, not windows (issue 28), on metadat's BCG trials
(log risk ratios):

- subgroup estimates by risk-of-bias judgement and the test for subgroup differences, with and
  without Knapp-Hartung, and the prediction intervals of the REML and DL models (with and without
  Knapp-Hartung): metafor 3.8.1, tests/data/reference/verdicts_metafor.R -> verdicts_metafor.json;
- the Bayesian R² of a meta-regression (posterior means of tau² with and without the moderator) and
  the Bayesian 95% prediction interval of a new study: one-dimensional scipy quad over tau of the
  closed-form marginal likelihood (mu and slopes integrated out analytically), written here from
  the model's definition, not from the engine's code.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize, stats

import evsynth as es
from evsynth.engines import exact as engine
from evsynth.methods.frequentist import dersimonian_laird, reml
from evsynth.methods.regression import fit_meta_regression
from evsynth.methods.riskofbias import rob_subgroups
from evsynth.methods.summary import predictive_draws
from evsynth.model import description

from quad_reference import QUAD, bayesian_r2, tau_posterior

DATA = Path(__file__).parent / "data"
REF = json.loads((DATA / "reference" / "verdicts_metafor.json").read_text())
ROB = {"random": "low", "alternate": "some concerns", "systematic": "high"}  # the R script's construction
PRIORS = {"mu": "normal(0, 10)", "tau": "halfnormal(1)", "beta": "normal(0, 1)"}


@pytest.fixture(scope="module")
def bcg():
    b = pd.read_csv(DATA / "bcg.csv")
    studies = es.load_studies(pd.DataFrame(dict(
        study_id=b.trial.astype(str), citation=b.author, year=b.year, source_level="secondary",
        design="two_group", technique="BCG", outcome="tuberculosis", events_treat=b.tpos,
        n_treat=b.tpos + b.tneg, events_ctrl=b.cpos, n_ctrl=b.cpos + b.cneg, ablat=b.ablat,
        rob=b.alloc.map(ROB))), extra_columns=["ablat"])
    effects = es.compute_effects(studies, measure="RR")
    return effects.assign(ablat=effects["study_id"].map(dict(zip(b.trial.astype(str), b.ablat))).astype(float))


# --------------------------------------------------------------------------- metafor


@pytest.mark.parametrize("test", ["z", "knha"])
def test_rob_subgroups_and_the_subgroup_test_match_metafor(bcg, test):
    groups = rob_subgroups(bcg, knapp_hartung=test == "knha")
    assert groups.index.tolist() == ["low", "some concerns", "high"]
    for level, ref in REF["subgroups"][test].items():
        row = groups.loc[level]
        assert row["k"] == ref["k"]
        for column in ("estimate", "ci_low", "ci_high", "tau2"):
            assert row[column] == pytest.approx(ref[column], rel=1e-6, abs=1e-8), (level, column)
    qm = REF["qm"][test]
    assert groups.attrs["QM"] == pytest.approx(qm["QM"], rel=1e-6)
    assert groups.attrs["QM_p"] == pytest.approx(qm["QM_p"], rel=1e-6)
    assert groups.attrs["QM_df"] == qm["QM_df"]


@pytest.mark.parametrize("method, fit", [("REML", reml), ("DL", dersimonian_laird)])
@pytest.mark.parametrize("test", ["z", "knha"])
def test_frequentist_prediction_intervals_match_metafor(bcg, method, fit, test):
    used = es.used_effects(bcg)
    result = fit(used["yi"], used["vi"], knapp_hartung=test == "knha")
    ref = REF["pi"][f"{method} {test}"]
    assert result.mu == pytest.approx(ref["mu"], rel=1e-7)
    assert result.pi_low == pytest.approx(ref["pi_low"], rel=1e-6)
    assert result.pi_high == pytest.approx(ref["pi_high"], rel=1e-6)


# --------------------------------------------------------------------------- scipy quad


def test_bayesian_r2_matches_quadrature(bcg):
    used = es.used_effects(bcg)
    y, v = used["yi"].to_numpy(), used["vi"].to_numpy()
    expected = bayesian_r2(y, v, used["ablat"], intercept_var=100.0, slope_var=1.0, prior_sd=1.0)
    result = fit_meta_regression(bcg, "~ ablat", PRIORS, draws=100, chains=1)
    print(f"Bayesian R²: {result.R2:.6f}%, quadrature {expected:.6f}%")
    assert result.R2 == pytest.approx(expected, abs=1e-3)
    # the frequentist R² beside it is metafor's (tests/test_metaregression.py): 75.63%
    assert result.frequentist.R2 == pytest.approx(75.6266218, abs=1e-5)


def predictive_cdf(y, v, prior_var=100.0, prior_sd=1.0):
    """x -> P(theta_new <= x | y): given tau, mu | y, tau is normal (m, s²) and theta_new ~ N(m, s² + tau²)."""
    one = np.ones((len(y), 1))
    density = tau_posterior(y, v, one, np.array([prior_var]), prior_sd)
    opts = QUAD | dict(epsrel=1e-11)
    mass = integrate.quad(density, 0, 8, **opts)[0]

    def conditional(t, x):
        w = 1 / (v + t**2)
        s2 = 1 / (w.sum() + 1 / prior_var)
        m = s2 * (w @ y)
        return stats.norm.cdf((x - m) / np.sqrt(s2 + t**2))

    return lambda x: integrate.quad(lambda t: density(t) * conditional(t, x), 0, 8, **opts)[0] / mass


def test_bayesian_prediction_interval_matches_quadrature(bcg):
    used = es.used_effects(bcg)
    y, v = used["yi"].to_numpy(), used["vi"].to_numpy()
    cdf = predictive_cdf(y, v)
    low = optimize.brentq(lambda x: cdf(x) - 0.025, -5, 0, xtol=1e-9)
    high = optimize.brentq(lambda x: cdf(x) - 0.975, -2, 3, xtol=1e-9)
    model = description.random_effects(bcg, {"mu": PRIORS["mu"], "tau": PRIORS["tau"]})
    row = engine.exact_summary(model).loc[("prediction", "new study")]
    print(f"prediction interval: exact engine {row['q2.5']:.6f} to {row['q97.5']:.6f}, quad {low:.6f} to {high:.6f}")
    assert row["q2.5"] == pytest.approx(low, abs=1e-4)
    assert row["q97.5"] == pytest.approx(high, abs=1e-4)
    # summarize's row comes from predictive draws: within Monte-Carlo error of the same values
    tree = engine.fit_exact(model, draws=5000, chains=4, seed=3)
    draws = predictive_draws(tree)
    for q, ref in ((0.025, low), (0.975, high)):
        # sd of a sample quantile: sqrt(q (1 - q) / n) / density at the quantile (numerical derivative)
        f = (cdf(ref + 1e-4) - cdf(ref - 1e-4)) / 2e-4
        se = np.sqrt(q * (1 - q) / draws.size) / f
        assert abs(np.quantile(draws, q) - ref) < 4 * se, (q, np.quantile(draws, q), ref, se)
