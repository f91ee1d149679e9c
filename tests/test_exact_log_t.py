"""The exact engine under priors on log tau (rhodes2015(): log-t; turner2015(): lognormal), whose
SD axis is u = log tau (stretched by sinh under the log-t: evsynth.engines.sd_axis), against
scipy.integrate.quad in log tau (tests/data/reference/exact_log_t_quad.py, figures in its JSON):
E[tau], SD, 2.5/50/97.5% of tau, mu and a new study's effect, on the synthetic demo (k = 18, 3, 2)
and BCG (k = 13, 3). On the former tau = a sinh(x) axis the demo's E[tau] was 1.3% off and
tau's 2.5% point 55% (0.00473 for 0.00306)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import evsynth as es
from evsynth.engines import exact
from evsynth.engines.leave_one_out import leave_one_out_summaries
from evsynth.engines.marginal import ModelSpec, log_evidence
from evsynth.engines.sd_axis import LogAxis, SinhAxis
from evsynth.model.description import random_effects

REFERENCE = json.loads((Path(__file__).parent / "data/reference/exact_log_t_quad.json").read_text())
CASES = REFERENCE["cases"]
ROWS = {"mu": ("mu", "mu"), "tau": ("tau", "tau"), "prediction": ("prediction", "new study")}


def effects(name: str) -> pd.DataFrame:
    """The effect table the case's rows came from (the bundled studies through compute_effects)."""
    if name.startswith("demo"):
        table = es.compute_effects(es.load_studies("studies/synthetic_demo.csv"))
    else:
        table = es.compute_effects(es.load_studies("studies/bcg.csv", extra_columns=["ablat", "alloc"]), measure="OR")
    rows = {"k18": slice(None), "k13": slice(None), "k3": slice(0, 3), "k2": slice(3, 5)}[name.split("_")[1]]
    table = table.iloc[rows]
    np.testing.assert_array_equal(table["yi"].to_numpy(float), CASES[name]["yi"])
    return table


def posterior(case):
    mu = None if case["mu_prior"] == "flat" else case["mu_prior"]
    return es.exact_posterior(case["yi"], case["sei"], case["tau_prior"], mu)


@pytest.mark.parametrize("name", sorted(CASES))
def test_against_quad(name):
    case = CASES[name]
    post = posterior(case)
    assert isinstance(post.grid.axes[0].transform, LogAxis)
    tables = [exact.summary_rows(post.model, post.grid), exact.summary_rows(post.model, post.grid, floor=1e-18)]
    for rows in tables:
        for quantity, key in ROWS.items():
            for stat, want in case["figures"][quantity].items():
                got = rows[key][stat]
                assert got == pytest.approx(want, rel=2e-7, abs=1e-12), (name, quantity, stat, got, want)
    # the public ways in: ExactPosterior's figures (mu, tau) and the model description's summary_table
    assert post.tau["50%"] == pytest.approx(case["figures"]["tau"]["q50"], rel=2e-7)
    assert post.tau["2.5%"] == pytest.approx(case["figures"]["tau"]["q2.5"], rel=2e-7)
    assert post.mu["mean"] == pytest.approx(case["figures"]["mu"]["mean"], rel=1e-9, abs=1e-12)


def test_summary_table_of_the_description():
    """What a user reads (es.summary_table of the random-effects description, the 'informed tau prior'
    note's path): the demo under rhodes2015(), to the quad figures."""
    case = CASES["demo_k18_rhodes"]
    table = exact.summary_table(random_effects(effects("demo_k18_rhodes"), {"mu": "normal(0, 1)", "tau": "rhodes2015()"}))
    ref = case["figures"]
    assert table.loc["tau (between studies)", "mean"] == pytest.approx(ref["tau"]["mean"], rel=1e-9)
    assert table.loc["tau (between studies)", "q2.5"] == pytest.approx(ref["tau"]["q2.5"], rel=2e-7)
    assert table.loc["pooled (mu)", "q97.5"] == pytest.approx(ref["mu"]["q97.5"], rel=1e-9)
    # the figures main printed before the log axis (tau = a sinh(x)) were off by far more than this
    assert abs(table.loc["tau (between studies)", "mean"] - 0.08906) > 1e-3


def test_the_reference_is_self_consistent():
    """The reference computed its figures in u and in v = asinh((u - m) / s) and stored both's gap."""
    assert all(case["u_vs_v_relative"] < 1e-9 for case in CASES.values())


@pytest.mark.parametrize("name", ["demo_k18_rhodes", "bcg_k13_rhodes", "bcg_k13_turner"])
def test_marginal_engine_agrees(name):
    """engines/marginal.py integrates the same model on its own grid (same transform, own box):
    log evidence, E[tau] and E[mu] agree with the exact engine to its tolerance."""
    case = CASES[name]
    post = posterior(case)
    e = log_evidence(effects(name), ModelSpec(True, True, False), {"mu": "normal(0, 1)", "tau": case["tau_prior"]})
    assert e.log_ml == pytest.approx(post.grid.log_evidence, abs=1e-6)
    assert e.means["tau"] == pytest.approx(case["figures"]["tau"]["mean"], rel=1e-6)
    assert e.means["mu"] == pytest.approx(case["figures"]["mu"]["mean"], rel=1e-6)


def test_leave_one_out_matches_refits_under_log_t():
    """The downdated leave-one-out figures (engines/leave_one_out.py, same transform) equal each
    refit's exact summaries."""
    model = random_effects(effects("demo_k18_rhodes"), {"mu": "normal(0, 1)", "tau": "rhodes2015()"})
    out = leave_one_out_summaries(model)
    assert out["ok"].sum() >= model.n - 2
    for i in np.flatnonzero(out["ok"])[:6]:
        keep = np.ones(model.n, bool)
        keep[i] = False
        rows = exact.summary_rows(model.subset(keep))
        refit_mu = [rows[("mu", "mu")][k] for k in ("q2.5", "q50", "q97.5")]
        np.testing.assert_allclose(out["mu"][i], refit_mu, rtol=1e-8)
        assert out["tau"][i] == pytest.approx(rows[("tau", "tau")]["q50"], rel=1e-7)


def test_draws_follow_the_log_t_posterior():
    """Independent draws of tau (grid node by weight, jittered in its cell of the log axis): mean and
    median within Monte Carlo error of the quad figures, all finite and >= 0."""
    case = CASES["demo_k18_rhodes"]
    post = posterior(case)
    taus = exact.sample_taus(post.grid, 40_000, np.random.default_rng(7))[:, 0]
    assert np.all(np.isfinite(taus)) and np.all(taus >= 0)
    ref = case["figures"]["tau"]
    assert taus.mean() == pytest.approx(ref["mean"], abs=5 * ref["sd"] / np.sqrt(taus.size))
    assert np.mean(taus <= ref["q50"]) == pytest.approx(0.5, abs=5 * 0.5 / np.sqrt(taus.size))


def test_sweep_grids_under_mixed_priors():
    """posterior_grids (the sweep's shared grids) with log-t, lognormal and half-normal priors on one
    data variant: each prior's figures as its own posterior_grid's; the log-t's to the quad figures."""
    case = CASES["demo_k18_rhodes"]
    table = effects("demo_k18_rhodes")
    priors = ["rhodes2015()", "halfnormal(0.5)", "turner2015()", "logstudent_t(5, -1.72, 1.3)", "halfcauchy(0.5)"]
    models = [random_effects(table, {"mu": "normal(0, 1)", "tau": p}) for p in priors]
    grids = exact.posterior_grids(models)
    shared = exact.summaries(models, grids)
    for model, rows in zip(models, shared):
        own = exact.summary_rows(model)
        for key, row in own.items():
            for stat in ("mean", "sd", "q2.5", "q50", "q97.5"):
                assert rows[key][stat] == pytest.approx(row[stat], rel=1e-8, abs=1e-12), (model.study_prior, key, stat)
    assert shared[0][("tau", "tau")]["mean"] == pytest.approx(case["figures"]["tau"]["mean"], rel=1e-9)
    assert isinstance(grids[1].axes[0].transform, SinhAxis)


def test_transforms_invert():
    x = np.linspace(-6, 3, 50)
    for axis in (LogAxis(-1.72, 1.295), LogAxis()):
        np.testing.assert_allclose(axis.x(axis.tau(x)), x, rtol=1e-12, atol=1e-12)
        h = 1e-6  # dtau/dx against a central difference
        np.testing.assert_allclose(axis.dtau_dx(x), (axis.tau(x + h) - axis.tau(x - h)) / (2 * h), rtol=1e-6)
    sinh = SinhAxis(0.2)
    xs = np.linspace(0, 5, 20)
    np.testing.assert_allclose(sinh.x(sinh.tau(xs)), xs, rtol=1e-12, atol=1e-15)


def test_two_sds_one_under_log_t():
    """The demo's by-technique model (tau ~ rhodes2015(), tau_technique ~ halfnormal(0.5)): a log axis
    beside a sinh axis, against nested quad (tests/data/reference/exact_log_t_quad2.py)."""
    from evsynth.model.description import by_technique

    ref = json.loads((Path(__file__).parent / "data/reference/exact_log_t_quad2.json").read_text())
    table = es.compute_effects(es.load_studies("studies/synthetic_demo.csv"))
    np.testing.assert_array_equal(table["yi"].to_numpy(float), ref["yi"])
    model = by_technique(table, ref["priors"])
    grid = exact.posterior_grid(model)
    rows = exact.summary_rows(model, grid)
    f = ref["figures"]
    assert grid.log_evidence == pytest.approx(f["log_evidence"], abs=1e-9)  # measured 4e-15
    assert rows[("mu", "mu")]["mean"] == pytest.approx(f["mu_mean"], rel=1e-9)  # 1e-15
    assert rows[("tau", "tau")]["mean"] == pytest.approx(f["tau_mean"], rel=1e-9)  # the log axis: 2e-14
    assert rows[("tau", "tau")]["sd"] == pytest.approx(f["tau_sd"], rel=1e-9)  # 2e-13
    # tau_technique's half-normal is on the sinh axis as before (41 nodes per axis with 2 SDs): its
    # mean and sd are 1.4e-6 and 6.5e-6 off (1.1e-8 and 2.4e-8 at 161 nodes), the former rule's error
    assert rows[("tau_technique", "tau_technique")]["mean"] == pytest.approx(f["tau_technique_mean"], rel=2e-5)
    assert rows[("tau_technique", "tau_technique")]["sd"] == pytest.approx(f["tau_technique_sd"], rel=2e-5)
