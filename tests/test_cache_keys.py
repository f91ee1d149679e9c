"""Every cache key changed field by field (issue 28): a sweep's per-scenario cache (effects per r,
grouping, exclusion, the exact engine's model per (r, tau prior, grouping)), the resume keys (a
scenario's id, a sweep's fingerprint), the compile-once key of sampled sweeps (structure_key) and
the on-disk compile cache's key. A key missing a field would serve one scenario another's result:
each test runs scenarios that differ in one field through ONE shared cache and checks each equals
the same scenario run with a fresh cache, and that the field really changes the result."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import evsynth as es
from evsynth.methods import sensitivity as sens

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "studies" / "synthetic_demo.csv"


@pytest.fixture(scope="module")
def grid():
    """The synthetic demo's milk volume, its five 'combined' studies given components breast care and
    oxytocin (so grouping by massage component moves them to oxytocin)."""
    from evsynth.effects.techniques import COMPONENT_SEPARATOR

    studies = es.load_studies(DEMO)
    studies.loc[studies["technique"] == "combined", "components"] = COMPONENT_SEPARATOR.join(["breast care", "oxytocin"])
    return sens.Sensitivity(studies, outcome="milk volume", model="by_technique",
                            priors={"mu": "normal(0, 1)"}, engine="exact", tau_prior=["halfnormal(0.5)"])


def base(grid) -> sens.Scenario:
    return sens.Scenario("halfnormal(0.5)", 0.5)


def variants(grid):
    """The base scenario and one scenario per field changed."""
    b = base(grid)
    _, kept = sens.scenario_effects(grid.context, b)
    return {"base": b, "tau_prior": replace(b, tau_prior="halfcauchy(0.5)"), "r_prepost": replace(b, r_prepost=0.2),
            "exclude": replace(b, exclude="technique == 'oxytocin'"), "left_out": replace(b, left_out=kept[0]),
            "techniques": replace(b, techniques="by massage component"),
            "techniques, r": replace(b, techniques="by massage component", r_prepost=0.2)}


def rows(record) -> pd.DataFrame:
    return pd.DataFrame(record["rows"]).set_index("parameter")[["mean", "sd", "q2.5", "q97.5"]]


def test_scenario_effects_with_a_shared_cache_equal_fresh_ones(grid):
    cache = {}
    seen = {}
    for name, scenario in variants(grid).items():
        shared, kept_shared = sens.scenario_effects(grid.context, scenario, cache)
        fresh, kept_fresh = sens.scenario_effects(grid.context, scenario)
        pd.testing.assert_frame_equal(shared, fresh)
        assert kept_shared == kept_fresh, name
        seen[name] = (shared, kept_fresh)
    b_effects, b_kept = seen["base"]
    # each field changes what the scenario gets (so a key without it would be caught above)
    assert not np.allclose(seen["r_prepost"][0]["sei"], b_effects["sei"])  # pre/post SEs depend on r
    assert set(seen["exclude"][1]) < set(b_kept) and len(seen["left_out"][1]) == len(b_kept) - 1
    assert set(seen["techniques"][0]["technique"]) != set(b_effects["technique"])
    assert not np.allclose(seen["techniques, r"][0]["sei"], seen["techniques"][0]["sei"])


def test_exact_sweep_records_with_a_shared_cache_equal_fresh_ones(grid):
    cache = {}
    got = {}
    for name, scenario in variants(grid).items():
        job = sens.Job(grid.context, scenario)
        shared = rows(sens.run_scenario(job, cache))
        fresh = rows(sens.run_scenario(job, {}))
        pd.testing.assert_frame_equal(shared, fresh, check_exact=True)
        got[name] = shared
    for name, table in got.items():
        if name != "base":
            common = table.index.intersection(got["base"].index)
            assert not np.allclose(table.loc[common, "mean"], got["base"].loc[common, "mean"]), name
    # the same cache run in the reverse order gives the same rows (no order dependence)
    cache = {}
    for name, scenario in reversed(list(variants(grid).items())):
        pd.testing.assert_frame_equal(rows(sens.run_scenario(sens.Job(grid.context, scenario), cache)), got[name])


def test_scenario_id_changes_with_every_field(grid):
    ids = {name: s.id for name, s in variants(grid).items()}
    assert len(set(ids.values())) == len(ids), ids
    assert sens.Scenario("halfnormal(0.5)", 0.5).id == base(grid).id  # equal settings, equal id
    assert sens.Scenario("halfnormal(0.5)", 0.25).id != sens.Scenario("halfnormal(0.5)", 0.2).id  # every digit


def test_fingerprint_changes_with_every_field(grid):
    context = grid.context
    studies = context.studies.copy()
    studies.loc[0, "n_treat"] = studies.loc[0, "n_treat"] + 1 if pd.notna(studies.loc[0, "n_treat"]) else 7
    changed = {
        "studies": replace(context, studies=studies), "outcome": replace(context, outcome="other"),
        "measure": replace(context, measure="MD"), "p_bound": replace(context, p_bound="other"),
        "model": replace(context, model="random_effects"), "priors": replace(context, priors={"mu": "normal(0, 2)"}),
        "engine": replace(context, engine="pymc"), "design": replace(context, design="randomised"),
        "random": replace(context, random="~ 1 | sample_id/study_id"),
        "rho": replace(context, random="~ 1 | sample_id/study_id", rho=0.5)}
    for option, value in (("draws", 100), ("tune", 100), ("chains", 2), ("seed", 1), ("target_accept", 0.9),
                          ("sampler", "pymc")):
        changed[f"options.{option}"] = replace(context, options=replace(context.options, **{option: value}))
    # every field of the context and of its fit options is changed above (a new field needs a line)
    from dataclasses import fields

    assert {f.name for f in fields(sens.Context)} == {name.split(".")[0] for name in changed}
    assert {f.name for f in fields(sens.FitOptions)} == {n.split(".")[1] for n in changed if n.startswith("options.")}
    prints = {name: c.fingerprint() for name, c in changed.items()}
    assert context.fingerprint() == grid.context.fingerprint()
    assert context.fingerprint() not in prints.values()
    assert len(set(prints.values())) == len(prints)


# ---- compile-once key of sampled sweeps (no compile: the compiler is replaced by a counter)


def sweep_model(grid, scenario, kept=None):
    effects, all_kept = sens.scenario_effects(grid.context, scenario)
    priors = sens.scenario_priors(grid.context, scenario)
    return sens.build_model(grid.context.model, effects, priors, weights={
        s: float(s in (kept or all_kept)) for s in es.used_effects(effects)["study_id"]}, **sens.SWEEP_OPTIONS)


def test_structure_key_and_the_compiled_model_it_selects(grid, monkeypatch):
    compiled = []
    monkeypatch.setattr(sens, "compile_nutpie", lambda model: compiled.append(model) or object())
    monkeypatch.setattr(sens, "_COMPILED", {})
    monkeypatch.setattr(sens, "_KEY_LOCKS", {})
    v = variants(grid)
    first = sens.compiled_model(sweep_model(grid, v["base"]))
    # same structure, other data values: weights (exclusion, leave-one-out), r, the prior's scale
    for name in ("r_prepost", "exclude", "left_out"):  # (and "techniques, r" below: the grouping's model)
        assert sens.compiled_model(sweep_model(grid, v[name])) is first, name
    scale = replace(v["base"], tau_prior="halfnormal(0.9)")
    assert sens.compiled_model(sweep_model(grid, scale)) is first
    assert len(compiled) == 1
    # another prior family, another grouping of techniques (coords): another compiled model
    family = sens.compiled_model(sweep_model(grid, v["tau_prior"]))
    grouping = sens.compiled_model(sweep_model(grid, v["techniques"]))
    assert family is not first and grouping is not first and grouping is not family and len(compiled) == 3
    keys = {name: sens.structure_key(sweep_model(grid, v[name])) for name in ("base", "tau_prior", "techniques")}
    assert len(set(keys.values())) == 3


# ---- the on-disk compile cache: its key follows every part of the description


def test_compile_cache_key_follows_every_field_of_the_description():
    pytest.importorskip("nutpie")
    from evsynth.engines import nutpie_cache
    from evsynth.model import description

    n = 6
    table = pd.DataFrame({
        "study_id": [f"s{i}" for i in range(n)], "technique": list("aabbcc"), "comparator": "control",
        "outcome": "o", "unit": "", "design": "two_group", "measure": "SMD", "yi": np.linspace(0.1, 0.6, n),
        "sei": np.linspace(0.1, 0.2, n), "vi": np.linspace(0.1, 0.2, n) ** 2, "used": True, "head_to_head": False,
        "why_not": "", "censored": False, "synthetic": True})
    table.attrs["measure"] = "SMD"
    model = description.random_effects(table)
    key = nutpie_cache._description_key(model)
    assert nutpie_cache._description_key(description.random_effects(table.copy())) == key  # equal: equal key
    censored = table.copy()
    censored.loc[0, "censored"] = True
    others = {
        "yi": description.random_effects(table.assign(yi=table["yi"] + 1e-9)),
        "sei": description.random_effects(table.assign(sei=table["sei"] * 1.001, vi=(table["sei"] * 1.001) ** 2)),
        "censored": description.random_effects(censored),
        "mu prior": description.random_effects(table, {"mu": "normal(0, 2)"}),
        "tau prior": description.random_effects(table, {"tau": "halfcauchy(0.5)"}),
        "kind": description.common_effect(table),
        "parts": description.by_technique(table),
        "study ids": description.random_effects(table.assign(study_id=[f"t{i}" for i in range(n)])),
    }
    got = {name: nutpie_cache._description_key(m) for name, m in others.items()}
    assert key not in got.values() and len(set(got.values())) == len(got), got


# ---- the exact engine's reuse of one quadrature grid within an analysis


def test_one_grid_reused_by_the_draws_and_the_summary_equals_fresh_ones():
    from evsynth.engines import exact
    from evsynth.model import description

    effects = es.compute_effects(es.load_studies(DEMO))
    effects = effects[effects["outcome"] == "milk volume"].reset_index(drop=True)
    model = description.random_effects(effects)
    grid = exact.posterior_grid(model)
    reused = exact.fit_exact(model, grid=grid, draws=200, chains=2, seed=4)
    fresh = exact.fit_exact(model, draws=200, chains=2, seed=4)
    np.testing.assert_array_equal(reused["posterior"]["mu"].to_numpy(), fresh["posterior"]["mu"].to_numpy())
    pd.testing.assert_frame_equal(exact.summary_table(model, grid), exact.summary_table(model))
    # the grid belongs to its model: another prior gives another posterior
    other = description.random_effects(effects, {"tau": "halfcauchy(0.1)"})
    assert not np.isclose(exact.summary_table(other).iloc[0]["mean"], exact.summary_table(model).iloc[0]["mean"])
