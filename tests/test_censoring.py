"""P-values printed only as a bound ("p < 0.001"): the censored likelihood against closed forms and
against simulated data of known truth (synthetic, fixed seed) in which the exact p-values are hidden."""

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from evsynth.effects import compute_effects
from evsynth.engines.fit import fit
from evsynth.engines.builders import random_effects
from evsynth.data.studies import load_studies

BASE = {"citation": "synthetic", "source_level": "synthetic", "technique": "massage", "outcome": "synthetic",
        "synthetic": True}


def test_censored_likelihood_is_normal_tail_beyond_signed_bound():
    # Two rows only known beyond their bound (one positive, one negative effect) and one exact row.
    rows = [dict(BASE, study_id="up", design="two_group", n_treat=20, n_ctrl=22, mean_treat=5.0, mean_ctrl=3.0,
                 p_upper=0.001),
            dict(BASE, study_id="down", design="two_group", n_treat=15, n_ctrl=15, mean_treat=1.0,
                 mean_ctrl=2.0, p_upper=0.0005),
            dict(BASE, study_id="exact", design="two_group", n_treat=30, n_ctrl=30, mean_treat=2.0,
                 mean_ctrl=1.0, p=0.04)]
    effects = compute_effects(load_studies(pd.DataFrame(rows)), p_bound="censor")
    assert list(effects["censored"]) == [True, True, False]
    # The bound on |t| gives the effect at the bound, with the sign of the printed means.
    up, down = effects.iloc[0], effects.iloc[1]
    assert up["yi"] > 0 > down["yi"]
    model = random_effects(effects)
    loglik = model.compile_logp(vars=[model["y"]], sum=False)
    theta = np.array([0.3, -0.2, 0.5])  # with tau = 1 and z = theta - mu, theta_i is set directly
    point = {"mu": 0.0, "tau_log__": 0.0, "z": theta}
    expected = [stats.norm.logsf(up["yi"], theta[0], up["sei"]),      # P(y > positive bound)
                stats.norm.logcdf(down["yi"], theta[1], down["sei"]),  # P(y < negative bound)
                stats.norm.logpdf(effects.iloc[2]["yi"], theta[2], effects.iloc[2]["sei"])]
    assert np.concatenate(loglik(point)) == pytest.approx(expected, rel=1e-7)


def test_effect_bound_sits_where_the_noncentral_t_puts_it():
    # The censored row's P(beyond bound) should match the exact probability that a t-test gives
    # p below the bound, P(t > t_bound | delta) under the noncentral t, for plausible true effects.
    n, bound = 22, 0.0005
    row = dict(BASE, study_id="s", design="two_group", n_treat=n, n_ctrl=n, mean_treat=2.0, mean_ctrl=1.0,
               p_upper=bound)
    eff = compute_effects(load_studies(pd.DataFrame([row])), p_bound="censor").iloc[0]
    df = 2 * n - 2
    t_bound = stats.t.isf(bound / 2, df)
    j = special.gamma(df / 2) / (np.sqrt(df / 2) * special.gamma((df - 1) / 2))  # Hedges (1981) exact J
    assert j == pytest.approx(1 - 3 / (4 * df - 1), abs=1e-4)  # his approximation, as a check on J itself
    # the effect at the bound: d = t * sqrt(1/n1 + 1/n2), times J
    assert eff["yi"] == pytest.approx(j * t_bound * np.sqrt(2 / n), rel=1e-12)
    for delta in (0.8, 1.0, 1.2, 1.5):
        exact = stats.nct.sf(stats.t.isf(bound / 2, 2 * n - 2), 2 * n - 2, delta * np.sqrt(n / 2))
        assert stats.norm.sf(eff["yi"], j * delta, eff["sei"]) == pytest.approx(exact, abs=0.015)


def test_pre_post_smd_with_baseline_sd_is_exact_not_censored():
    # SMD of a pre/post row standardized by its printed baseline SD does not use the statistic, so
    # a p-value bound cannot make yi a bound; SMCC (standardized by the change SD) does use it.
    row = dict(BASE, study_id="s", design="pre_post", n=20, mean_pre=10.0, mean_post=14.0, sd_pre=4.0,
               p_upper=0.001)
    studies = load_studies(pd.DataFrame([row]))
    smd = compute_effects(studies, measure="SMD", p_bound="censor").iloc[0]
    assert not smd["censored"] and smd["se_route"] == "p_bound"
    assert compute_effects(studies, measure="SMCC", p_bound="censor").iloc[0]["censored"]


def simulate_abstracts(seed: int, k: int, mu: float, tau: float, hide_below: float = 0.001) -> pd.DataFrame:
    """k two-group studies (true SMD theta_i ~ N(mu, tau), unit outcome SD) reported as our abstracts
    are: means, group sizes and the t-test p, no SDs. A p below `hide_below` is printed only as a
    bound (p_upper); `p_exact` keeps the hidden value for the oracle."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(k):
        n1, n2 = rng.integers(10, 51, size=2)
        treat, ctrl = rng.normal(rng.normal(mu, tau), 1.0, n1), rng.normal(0.0, 1.0, n2)
        p = stats.ttest_ind(treat, ctrl).pvalue
        printed = {"p_upper": hide_below} if p < hide_below else {"p": p}
        rows.append(dict(BASE, study_id=f"sim{i}", design="two_group", n_treat=n1, n_ctrl=n2,
                         mean_treat=treat.mean(), mean_ctrl=ctrl.mean(), p_exact=p, **printed))
    return pd.DataFrame(rows)


# ArviZ warns that some Pareto k exceed 0.66 for the study-level LOO of these small synthetic fits;
# the test asks only that the censored rows' log-likelihood terms make LOO computable.
@pytest.mark.filterwarnings("ignore:Estimated shape parameter of Pareto distribution:UserWarning")
@pytest.mark.slow  # a simulation with three PyMC fits (~11 s of CPU); run in CI
def test_censoring_recovers_mu_where_the_bound_as_p_is_biased():
    mu, tau = 1.0, 0.15
    reports = simulate_abstracts(seed=11, k=30, mu=mu, tau=tau)
    printed = load_studies(reports.drop(columns="p_exact"))
    oracle = load_studies(reports.drop(columns=["p_exact", "p_upper"]).assign(p=reports["p_exact"]))
    censored = compute_effects(printed, p_bound="censor")
    assert censored["censored"].mean() > 0.4  # the hidden p-values are a large share of the evidence
    options = dict(draws=400, tune=400, chains=2, seed=5, sampler="pymc")
    fits = {"censor": fit(random_effects(censored), **options),
            "conservative": fit(random_effects(compute_effects(printed, p_bound="conservative")), **options),
            "oracle": fit(random_effects(compute_effects(oracle)), **options)}
    draws = {name: idata.posterior["mu"].to_numpy().ravel() for name, idata in fits.items()}
    lo, hi = np.quantile(draws["censor"], [0.025, 0.975])
    assert lo < mu < hi
    assert abs(draws["censor"].mean() - draws["oracle"].mean()) < 0.1
    # Documented bias of the fallback: with the bound used as p, each hidden study counts as
    # exactly at the bound (its smallest possible effect), so mu is pulled down and misses the truth.
    assert draws["conservative"].mean() < draws["censor"].mean() - 0.15
    assert np.quantile(draws["conservative"], 0.975) < mu

    # The log_likelihood group holds, for a censored row, log P(y beyond bound | theta), so LOO works
    # on it (it cannot be compared with LOO of a model that treats the bound as an observation).
    idata = fits["censor"]
    row = censored.iloc[int(np.flatnonzero(censored["censored"])[0])]
    theta = idata.posterior["theta"].sel(study=row["study_id"]).to_numpy()
    loglik = idata.log_likelihood["y"].sel(study=row["study_id"]).to_numpy()
    assert loglik == pytest.approx(stats.norm.logsf(row["yi"], theta, row["sei"]), abs=1e-6)
    assert np.isfinite(az.loo(idata, var_name="y").elpd)


def test_default_censors_standardized_measures_and_keeps_the_bound_for_raw_ones():
    row = dict(BASE, study_id="s", design="two_group", n_treat=22, n_ctrl=22, mean_treat=203.82,
               mean_ctrl=54.90, p_upper=0.0005)
    studies = load_studies(pd.DataFrame([row]))
    for measure, mode in (("SMD", "censor"), ("SMCC", "censor"), ("MD", "conservative"), ("ROM", "conservative")):
        table = compute_effects(studies, measure=measure)
        assert table.attrs["p_bound"] == mode
        assert bool(table["censored"].iloc[0]) == (mode == "censor")
