"""The MCMC-vs-exact agreement verdict (engines.exact.agreement): exact-engine draws (independent,
from the right posterior) pass; the same draws shifted up or down, or with a wrong spread, fail at
the statistic that moved, with z of the right sign; and PASS/FAIL flips exactly at the threshold."""

import arviz as az
import numpy as np
import pandas as pd
import pytest

from evsynth.engines import exact as engine
from evsynth.model import description


def effects(k=8, seed=3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sei = rng.uniform(0.1, 0.3, k)
    yi = 0.4 + rng.normal(0, 0.2, k) + rng.normal(0, sei)
    out = pd.DataFrame({"study_id": [f"s{i}" for i in range(k)], "technique": "t", "comparator": "control",
                        "outcome": "o", "unit": "", "design": "two_group", "measure": "SMD", "yi": yi, "sei": sei,
                        "vi": sei**2, "used": True, "head_to_head": False, "why_not": "", "censored": False,
                        "synthetic": True})
    out.attrs["measure"] = "SMD"
    return out


@pytest.fixture(scope="module")
def case():
    model = description.random_effects(effects())
    tree = engine.fit_exact(model, draws=1000, chains=4, seed=5)
    post = tree["posterior"]
    draws = {"mu": post["mu"].to_numpy(), "tau": post["tau"].to_numpy()}
    return model, draws, engine.posterior_grid(model)


def judged(case, mu=None, tau=None, threshold=5.0):
    model, draws, grid = case
    posterior = {"mu": draws["mu"] if mu is None else mu, "tau": draws["tau"] if tau is None else tau}
    return engine.agreement(az.from_dict({"posterior": posterior}), model, threshold=threshold, grid=grid)


def mu_rows(table):
    return table[table["quantity"] == table["quantity"].iloc[0]].set_index("statistic")


def test_draws_from_the_exact_posterior_agree(case):
    table = judged(case)
    assert table.attrs["ok"] and table.attrs["max_abs_z"] < 4
    assert len(table) == 8 and set(table["statistic"]) == {"mean", "q2.5", "q50", "q97.5"}
    assert engine.agreement_line(table).startswith("agrees with the exact posterior: max |z| ")
    # the z column is (mcmc - exact) / mcse, the exact values the engine's own summary
    rows = engine.summary_rows(case[0], case[2])
    mu = mu_rows(table)
    assert mu.loc["q50", "exact"] == rows[("mu", "mu")]["q50"]
    assert mu.loc["mean", "mcmc"] == pytest.approx(case[1]["mu"].mean(), rel=1e-12)
    assert np.allclose(table["z"], (table["mcmc"] - table["exact"]) / table["mcse"])


@pytest.mark.parametrize("direction", [+1, -1])
def test_shifted_draws_fail_with_z_of_the_shift_s_sign(case, direction):
    base = mu_rows(judged(case))
    shift = direction * 8 * base["mcse"].max()  # 8 MCSEs of the widest statistic: every z moves >= 8
    table = judged(case, mu=case[1]["mu"] + shift)
    mu = mu_rows(table)
    # a shift moves every statistic by exactly the shift and leaves the MCSEs alone
    assert np.allclose(mu["mcmc"] - base["mcmc"], shift, rtol=0, atol=1e-12)
    assert np.allclose(mu["mcse"], base["mcse"], rtol=1e-9)
    assert (np.sign(mu["z"]) == direction).all() and (mu["z"].abs() >= 8 - base["z"].abs().max()).all()
    assert not table.attrs["ok"] and table.attrs["max_abs_z"] == mu["z"].abs().max()
    assert table.attrs["worst"] == f"{table['quantity'].iloc[0]} {mu['z'].abs().idxmax()}"
    line = engine.agreement_line(table)
    assert line.startswith("!! DISAGREES WITH THE EXACT POSTERIOR: |z| ") and ">= 5 MCSE at" in line


def test_a_small_shift_still_agrees(case):
    base = mu_rows(judged(case))
    table = judged(case, mu=case[1]["mu"] + 0.5 * base["mcse"].min())
    assert table.attrs["ok"]


@pytest.mark.parametrize("factor", [1.3, 0.7])
def test_a_wrong_spread_fails_in_the_tails_not_at_the_mean(case, factor):
    mu = case[1]["mu"]
    centre = mu.mean()
    table = judged(case, mu=centre + factor * (mu - centre))
    rows = mu_rows(table)
    assert not table.attrs["ok"]
    wider = factor > 1
    assert rows.loc["q2.5", "z"] < -5 if wider else rows.loc["q2.5", "z"] > 5
    assert rows.loc["q97.5", "z"] > 5 if wider else rows.loc["q97.5", "z"] < -5
    assert abs(rows.loc["mean", "z"]) < 4  # the mean did not move
    assert table.attrs["worst"].split()[-1] in ("q2.5", "q97.5")


def test_wrong_between_study_sd_is_caught_too(case):
    table = judged(case, tau=case[1]["tau"] * 1.5)
    assert not table.attrs["ok"]
    assert table.attrs["worst"].startswith(table["quantity"].iloc[-1])  # a tau row


def test_pass_and_fail_flip_exactly_at_the_threshold(case):
    z = judged(case).attrs["max_abs_z"]
    at = judged(case, threshold=z)
    assert not at.attrs["ok"] and at.attrs["threshold"] == z  # max |z| < threshold: equal fails
    assert judged(case, threshold=np.nextafter(z, np.inf)).attrs["ok"]


def test_exact_engine_verdict_always_passes_and_says_why():
    verdict = engine.ExactVerdict()
    assert verdict.ok and verdict.verdict == "PASS" and verdict.problems == [] and verdict.divergences == 0
    assert list(verdict.table.columns) == ["r_hat", "ess_bulk", "ess_tail"] and verdict.table.empty
    assert str(verdict).startswith("diagnostics: none needed (exact engine")


def test_the_grid_given_is_the_one_judged_against(case):
    """agreement(grid=...) reuses the analysis' grid: the exact column comes from it (a coarse grid
    gives other exact values than the default, and those are the ones shown)."""
    model, draws, _ = case
    coarse = engine.posterior_grid(model, 9)
    table = engine.agreement(az.from_dict({"posterior": draws}), model, grid=coarse)
    rows = engine.summary_rows(model, coarse)
    default = engine.summary_rows(model)
    mu = mu_rows(table)
    assert mu.loc["q97.5", "exact"] == rows[("mu", "mu")]["q97.5"] != default[("mu", "mu")]["q97.5"]


def test_a_posterior_given_as_a_plain_dataset_is_read_too(case):
    """An object whose posterior is an xarray Dataset (no DataTree node): read as it is."""
    model, draws, grid = case

    class Fit:
        def __init__(self, posterior):
            self.posterior = posterior

        def __getitem__(self, key):
            return getattr(self, key)

    tree = az.from_dict({"posterior": draws})
    plain = Fit(tree["posterior"].to_dataset())
    pd.testing.assert_frame_equal(engine.agreement(plain, model, grid=grid), engine.agreement(tree, model, grid=grid))
