"""Models that differ only in the tau prior on one grid (engines.exact.posterior_grids / summaries,
the exact sweep's path): each prior's figures against its own posterior_grid fit (the reference,
kept), the grid resolving each prior, the sweep wiring, and the effect table's row records."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import evsynth as es
from evsynth.engines import exact as ex
from evsynth.effects.table import _records
from evsynth.methods import sensitivity as sens
from evsynth.model.description import describe

ROOT = Path(__file__).resolve().parents[1]
LIGHT = ["halfnormal(0.5)", "halfnormal(1)", "halfcauchy(0.5)", "halfcauchy(1)", "halfstudent_t(3, 0.5)",
         "exponential(2)"]
HEAVY = ["halfcauchy(5)", "halfstudent_t(1.5, 2)"]  # tails that stretch tau's box furthest


@pytest.fixture(scope="module")
def tables():
    demo = es.compute_effects(es.load_studies(ROOT / "studies" / "synthetic_demo.csv"))
    massage = es.compute_effects(es.load_studies(ROOT / "studies" / "massage.csv"))
    bcg = es.compute_effects(es.load_studies(ROOT / "studies" / "bcg.csv", extra_columns=["ablat", "alloc"]),
                             measure="OR")
    return {"demo": demo[demo["outcome"] == "milk volume"], "massage": massage[massage["outcome"] == "milk volume"],
            "bcg": bcg}


def variants(model, priors):
    return [replace(model, study_prior=p, settings=model.settings | {"prior_tau": p}) for p in priors]


def errors(rows, reference, of):
    """Largest |difference| of every estimate, in posterior sds, of the Gaussian rows and the SD rows."""
    out = {"gauss": 0.0, "sd": 0.0}
    for key, ref in reference.items():
        kind = "sd" if key[0].startswith("tau") else "gauss"
        for stat, value in ref.items():
            if not np.isnan(value):
                out[kind] = max(out[kind], abs(rows[key][stat] - value) / of[key]["sd"])
    return out


@pytest.mark.parametrize("data, kind", [("demo", "random_effects"), ("demo", "by_technique"), ("bcg", "random_effects"),
                                        ("massage", "random_effects"), ("massage", "by_technique")])
def test_each_prior_on_the_shared_grid_equals_its_own_fit_up_to_the_quadrature(tables, data, kind):
    """Against each prior's own grid (posterior_grid, the per-scenario path): the shared grid's
    figures differ by far less than the own grid's distance to a grid twice as fine, i.e. they are
    the same posterior to the quadrature's accuracy; and never further from the fine grid."""
    fixed = {"mu": "normal(0, 1)"} | ({"tau_technique": "halfnormal(0.5)"} if kind == "by_technique" else {})
    models = variants(describe(kind, tables[data], fixed | {"tau": "halfnormal(0.5)"}), LIGHT + HEAVY)
    grids = ex.posterior_grids(models)
    # one set of conditionals for all priors even at tau = 0 (the exponential prior's rule has end corrections)
    assert len({id(g.cond) for m, g in zip(models, grids) if not m.study_prior.startswith("exponential")}) == 1
    got = ex.summaries(models, grids)
    for model, grid, rows in zip(models, grids, got):
        own = ex.summary_rows(model)
        assert list(rows) == list(own)
        fine = ex.summary_rows(model, ex.posterior_grid(model, 2 * max(len(n) for n in grid.nodes)))
        apart, own_error, shared_error = errors(rows, own, own), errors(own, fine, own), errors(rows, fine, own)
        assert apart["gauss"] < 1e-8, (model.study_prior, apart)
        assert apart["sd"] < max(1e-8, own_error["sd"]), (model.study_prior, apart, own_error)
        for part in ("gauss", "sd"):  # never coarser than the prior's own grid
            assert shared_error[part] <= 1.5 * own_error[part] + 1e-9, (model.study_prior, part, shared_error, own_error)


def test_the_shared_grid_spans_each_priors_box_at_its_spacing_or_finer(tables):
    models = variants(describe("by_technique", tables["demo"], {"mu": "normal(0, 1)", "tau": "halfnormal(0.5)",
                                                                "tau_technique": "halfnormal(0.5)"}), LIGHT + HEAVY)
    grids = ex.posterior_grids(models)
    for model, grid in zip(models, grids):
        own = ex.posterior_grid(model)
        assert [ax.transform for ax in grid.axes] == [ax.transform for ax in own.axes]
        for shared, mine in zip(grid.nodes, own.nodes):
            assert shared[0] <= mine[0] and shared[-1] >= mine[-1] - 1e-12
            assert shared[1] - shared[0] <= mine[1] - mine[0] + 1e-12
        assert abs(grid.weights.sum() - 1) < 1e-12 and np.isfinite(grid.log_evidence)
        assert abs(grid.log_evidence - own.log_evidence) < 1e-8  # the evidence too, to the quadrature
    # the heavy tails stretch the box: the light priors' own grids are narrower than the shared one
    assert grids[0].nodes[0][-1] > ex.posterior_grid(models[0]).nodes[0][-1]


def test_a_prior_alone_in_its_group_gets_its_own_grid_bit_for_bit(tables):
    """A bounded prior (uniform(0, 2): another support) groups with no other, and a single model
    is its own group: posterior_grid's grid, so the figures are the per-scenario ones exactly."""
    models = variants(describe("random_effects", tables["demo"], {"mu": "normal(0, 1)", "tau": "halfnormal(0.5)"}),
                      ["halfnormal(0.5)", "uniform(0, 2)", "halfcauchy(0.5)"])
    grids = ex.posterior_grids(models)
    assert grids[0].cond is grids[2].cond and grids[1].cond is not grids[0].cond
    assert ex.summaries(models, grids)[1] == ex.summary_rows(models[1])
    (alone,) = ex.posterior_grids(models[:1])
    assert ex.summaries(models[:1], [alone])[0] == ex.summary_rows(models[0])


def test_models_that_differ_in_more_than_the_tau_prior_are_refused(tables):
    model = describe("random_effects", tables["demo"], {"mu": "normal(0, 1)", "tau": "halfnormal(0.5)"})
    other = replace(model, yi=model.yi + 0.1)
    with pytest.raises(ValueError, match="differ only in the study-level SD's prior"):
        ex.posterior_grids([model, other])
    # equal content built separately is accepted (digest), and its grids are shared
    again = describe("random_effects", tables["demo"], {"mu": "normal(0, 1)", "tau": "halfcauchy(0.5)"})
    grids = ex.posterior_grids([model, again])
    assert grids[0].cond is grids[1].cond


def test_censored_rows_keep_each_priors_own_grid():
    """With censored rows the summaries mix latent draws at each node, so another grid would move
    them by Monte Carlo amounts: each prior keeps posterior_grid's grid, figures bit for bit."""
    from conftest import censored_milk_effects

    model = describe("random_effects", censored_milk_effects(), {"mu": "normal(0, 1)", "tau": "halfnormal(0.5)"})
    assert model.censored.any()
    models = variants(model, ["halfnormal(0.5)", "halfcauchy(0.5)"])
    grids = ex.posterior_grids(models)
    assert grids[0].cond is not grids[1].cond
    for m, rows in zip(models, ex.summaries(models, grids)):
        assert rows == ex.summary_rows(m)


def test_the_exact_sweep_fits_each_data_variants_priors_together(monkeypatch):
    """Sensitivity.run: one posterior_grids call per data variant (r x exclusion), every prior's
    rows as its own per-scenario fit gives them (the reference path: summary_rows on the scenario's
    reduced model), to the quadrature."""
    grid = sens.Sensitivity(ROOT / "studies" / "synthetic_demo.csv", outcome="milk volume", model="by_technique",
                            priors={"mu": "normal(0, 1)", "tau_technique": "halfnormal(0.5)"}, engine="exact",
                            tau_prior=["halfnormal(0.5)", "halfcauchy(1)", "halfstudent_t(3, 0.5)"],
                            r_prepost=[0.3, 0.7], exclude=[None, "design == 'pre_post'"])
    calls = []
    real = ex.posterior_grids
    monkeypatch.setattr(ex, "posterior_grids", lambda models: calls.append(len(models)) or real(models))
    table = grid.run(progress=False)
    assert calls == [3, 3, 3, 3]
    context, cache = grid.context, {}
    for scenario in grid.scenarios():
        effects, kept = sens.scenario_effects(context, scenario, cache)
        model = describe("by_technique", effects, sens.scenario_priors(context, scenario))
        own = ex.summary_rows(model.subset(np.isin(model.study_id, kept)))
        got = table[table["scenario"] == scenario.id].set_index("parameter")
        assert list(got.index) == [ex.report_label(*k) for k in own]
        for key, row in own.items():
            line = got.loc[ex.report_label(*key)]
            for stat, column in (("mean", "mean"), ("sd", "sd"), ("q2.5", "q2.5"), ("q50", "q50"),
                                 ("q97.5", "q97.5"), ("P(>0)", "p_gt_0")):
                if np.isnan(row[stat]):
                    assert np.isnan(line[column])
                else:  # SD rows to their 41-node quadrature's accuracy, the rest far closer
                    tol = (1e-4 if key[0].startswith("tau") else 1e-8) * row["sd"]
                    assert abs(line[column] - row[stat]) <= tol, (scenario.id, key, stat)


def test_records_are_the_tables_rows_with_none_where_missing():
    """compute_effects' row records: what astype(object).where(notna, None).to_dict("records")
    gives, value and type, for every column kind a study table can hold."""
    frames = [es.load_studies(ROOT / "studies" / "massage.csv"),
              es.load_studies(ROOT / "studies" / "bcg.csv", extra_columns=["ablat", "alloc"]),
              pd.DataFrame({"a": [1.0, np.nan], "b": pd.array([1, None], dtype="Int64"),
                            "c": pd.array(["x", None], dtype="string"), "d": [None, "y"],
                            "e": pd.to_datetime(["2020-01-01", None]), "f": [True, False], "g": [np.nan, "z"],
                            "h": pd.array([pd.NA, 2.5], dtype="Float64"), "i": [np.int64(3), np.int64(4)]})]
    for frame in frames:
        expected = frame.astype(object).where(frame.notna(), None).to_dict("records")
        got = _records(frame)
        assert len(got) == len(expected)
        for mine, theirs in zip(got, expected):
            assert list(mine) == list(theirs)
            for key in theirs:
                assert (mine[key] is None) == (theirs[key] is None), key
                if theirs[key] is not None:
                    assert mine[key] == theirs[key] and type(mine[key]) is type(theirs[key]), key


def test_a_failing_shared_fit_leaves_each_scenario_to_its_own_fit(monkeypatch):
    """If the variant's shared fit raises (one prior's posterior cannot be integrated), each of its
    scenarios is fitted alone, as before the shared path: the others are not lost with it."""
    grid = sens.Sensitivity(ROOT / "studies" / "synthetic_demo.csv", outcome="milk volume", model="random_effects",
                            priors={"mu": "normal(0, 1)"}, engine="exact", tau_prior=["halfnormal(0.5)", "halfcauchy(1)"],
                            r_prepost=[0.5])

    def broken(models):
        raise FloatingPointError("the posterior of the SDs is zero everywhere on the search box")

    monkeypatch.setattr(ex, "posterior_grids", broken)
    table = grid.run(progress=False)
    assert set(table["verdict"]) == {"PASS"}
    context = grid.context
    for scenario in grid.scenarios():
        effects, kept = sens.scenario_effects(context, scenario)
        model = describe("random_effects", effects, sens.scenario_priors(context, scenario))
        own = ex.summary_rows(model.subset(np.isin(model.study_id, kept)))
        got = table[table["scenario"] == scenario.id].set_index("parameter")
        assert [got.loc[ex.report_label(*k), "mean"] for k in own] == [r["mean"] for r in own.values()]
