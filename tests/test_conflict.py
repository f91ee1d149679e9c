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


def _one_study_at_a_time(fit, effects, level=0.95, seed=0):
    """The predictive check written per study, as it was before it ran in blocks (issue 26): each
    uncensored study's normals drawn in turn from one generator, its interval by np.quantile."""
    from evsynth.effects.table import used_effects

    post = fit.posterior
    tau = post["tau"].to_numpy().ravel()
    rng = np.random.default_rng(seed)
    table = used_effects(effects).reset_index(drop=True)
    rows = []
    for _, row in table.iterrows():
        if row["censored"]:
            continue
        centre = (post["technique_effect"].sel(technique=row["technique"]) if "technique_effect" in post
                  else post["mu"]).to_numpy().ravel()
        scale = np.sqrt(tau**2 + row["sei"] ** 2)
        p = float(np.mean(stats.norm.cdf((row["yi"] - centre) / scale)))
        lower, upper = np.quantile(centre + scale * rng.standard_normal(tau.size), [(1 - level) / 2, (1 + level) / 2])
        rows.append((row["study_id"], lower, upper, p))
    return pd.DataFrame(rows, columns=["study_id", "lower", "upper", "p_predictive"])


@pytest.mark.parametrize("techniques", [None, ["a", "b", "a", "c", "b"] * 60])
def test_blocks_of_studies_give_the_per_study_check(techniques):
    """300 studies (blocks of 4 at 4,000 draws) with two censored rows: the same intervals and
    p-values as the check written one study at a time (scipy's normal CDF; equal to ~1e-15)."""
    rng = np.random.default_rng(26)
    sei = rng.uniform(0.1, 0.4, 300)
    yi = rng.normal(0.3, np.sqrt(0.2**2 + sei**2))
    effects = effects_of(yi, sei, techniques)
    effects.loc[[5, 170], "censored"] = True
    model = (description.by_technique if techniques else description.random_effects)(effects)
    fit = fit_exact(model, draws=1000, chains=4, seed=3)
    check = prior_data_conflict(fit, effects)
    reference = _one_study_at_a_time(fit, effects)
    assert len(check.table) == 298 and list(check.table["study_id"]) == list(reference["study_id"])
    for column in ("lower", "upper", "p_predictive"):
        np.testing.assert_allclose(check.table[column], reference[column], rtol=0, atol=1e-13)
    assert "censored rows not checked (yi is a bound): s5, s170" in str(check)
