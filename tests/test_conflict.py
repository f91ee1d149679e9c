"""Prior-data conflict (issue 15): observed effects against their posterior predictive intervals
and between-study SDs against their prior's tail, on exact-engine fits (no MCMC), checked against
a brute-force (mu, tau) grid and on data simulated from the model itself."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import evsynth as es
from evsynth.model import description
from evsynth.methods.conflict import prior_data_conflict
from evsynth.engines.exact import fit_exact


def effects_of(yi, sei, techniques=None):
    rows = [dict(study_id=f"s{i}", citation="made up for a test", source_level="synthetic", design="effect",
                 technique=techniques[i] if techniques else "x", outcome="o", yi=y, sei=s, measure="SMD",
                 synthetic="true") for i, (y, s) in enumerate(zip(yi, sei))]
    return es.compute_effects(es.load_studies(pd.DataFrame(rows)))


def grid_p_predictive(yi, sei, tau_sd=0.5, mu_sd=1.0):
    """P(y_new <= y_i) under the posterior of (mu, tau) on a fine grid: normal(0, mu_sd) x halfnormal(tau_sd)."""
    mu = np.linspace(-12, 12, 1201)[:, None]
    tau = np.linspace(1e-4, 8, 1600)[None, :]
    log_post = stats.norm.logpdf(mu, 0, mu_sd) + stats.halfnorm.logpdf(tau, 0, tau_sd)
    for y, s in zip(yi, sei):
        log_post = log_post + stats.norm.logpdf(y, mu, np.sqrt(tau**2 + s**2))
    weights = np.exp(log_post - log_post.max())
    weights /= weights.sum()
    return [float(np.sum(weights * stats.norm.cdf((y - mu) / np.sqrt(tau**2 + s**2)))) for y, s in zip(yi, sei)]


def test_two_precise_studies_far_apart_are_flagged_and_match_the_grid():
    yi, sei = [5.0, -5.0], [0.01, 0.01]
    effects = effects_of(yi, sei)
    fit = fit_exact(description.random_effects(effects, {"mu": "normal(0, 1)", "tau": "halfnormal(0.5)"}),
                    draws=2000, chains=2)
    check = prior_data_conflict(fit, effects)
    assert not check.ok and check.table["outside"].all()
    np.testing.assert_allclose(check.table["p_predictive"], grid_p_predictive(yi, sei), atol=0.004)
    assert check.sd_tails["tau"] > 0.999  # tau pulled far into the half-normal(0.5)'s tail
    text = str(check)
    assert "2 of 2 studies lie outside their 95% posterior predictive interval" in text
    assert "tau: posterior median" in text and "halfnormal(0.5)" in text


def test_data_from_the_model_itself_rarely_raise_a_warning():
    rng = np.random.default_rng(3)
    flagged, studies_outside, total = 0, 0, 0
    for _ in range(20):
        k = 8
        sei = rng.uniform(0.1, 0.3, k)
        theta = rng.normal(0.3, 0.2, k)
        yi = rng.normal(theta, sei)
        effects = effects_of(yi, sei)
        check = prior_data_conflict(fit_exact(description.random_effects(effects), draws=500, chains=2), effects)
        flagged += not check.ok
        studies_outside += int(check.table["outside"].sum())
        total += k
    # a posterior predictive check uses the data twice, so it is conservative: well under 5% of studies
    assert studies_outside / total < 0.03 and flagged <= 3, (studies_outside, total, flagged)


def test_per_technique_centres_and_censored_rows():
    effects = effects_of([0.3, 0.1, 0.5, 0.2, 3.0], [0.2, 0.15, 0.25, 0.2, 0.05], techniques=list("aabbb"))
    fit = fit_exact(description.by_technique(effects), draws=1000, chains=2)
    check = prior_data_conflict(fit, effects)
    assert set(check.sd_tails) == {"tau", "tau_technique"}
    assert check.table.set_index("study_id").loc["s4", "outside"]  # 3.0 with SE 0.05 among effects near 0.3
    assert not check.table.set_index("study_id").drop("s4")["outside"].any()


def test_no_tau_is_a_note_not_a_warning():
    effects = effects_of([0.3, 0.1], [0.2, 0.2])
    fit = fit_exact(description.common_effect(effects), draws=200, chains=2)
    check = prior_data_conflict(fit, effects)
    assert check.ok and check.table.empty and "no between-study SD" in str(check)


def test_the_report_lists_the_conflict_among_a_result_s_caveats():
    from types import SimpleNamespace

    from evsynth.present.report import _result_caveats

    effects = effects_of([5.0, -5.0], [0.01, 0.01])
    fit = fit_exact(description.random_effects(effects), draws=500, chains=2)
    result = SimpleNamespace(idata=fit, effects=effects, diagnostics=SimpleNamespace(ok=True))
    caveats = _result_caveats(result, es.used_effects(effects), 2)
    assert any(c.startswith("Prior-data conflict: 2 of 2 studies lie outside") for c in caveats), caveats
