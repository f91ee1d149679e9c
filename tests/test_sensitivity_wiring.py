"""The sampled (PyMC) path of a sensitivity sweep (evsynth.methods.sensitivity) with the sampler
replaced by constructed posteriors, so it runs in seconds (the MCMC sweeps themselves are the slow
tests of test_sensitivity.py): what each step passes on and keeps -- the weights of a scenario's
studies, the posterior cut to its studies and techniques, the options of the fit, the record of a
scenario, the compile-once bookkeeping, and how run() picks the sampler, reuse, cores and workers.
Also the tidy table's columns and types, and the grid's refusals word for word."""

from dataclasses import replace
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest

import evsynth as es
from evsynth.methods import sensitivity as sens

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "studies" / "synthetic_demo.csv"


@pytest.fixture(scope="module")
def demo():
    return es.load_studies(DEMO)


@pytest.fixture(scope="module")
def grid(demo):
    return sens.Sensitivity(demo, outcome="milk volume", model="by_technique", priors={"mu": "normal(0, 1)"},
                            engine="pymc", tau_prior=["halfnormal(0.5)", "halfcauchy(0.5)"], r_prepost=[0.3, 0.6],
                            draws=5, chains=2, tune=5, seed=3)


def posterior(studies, techniques, chains=2, draws=5):
    """A sampled fit as engines.fit leaves it: mu, tau, study and technique effects."""
    rng = np.random.default_rng(0)
    return az.from_dict(
        {"posterior": {"mu": rng.normal(size=(chains, draws)), "tau": np.abs(rng.normal(size=(chains, draws))),
                       "theta": rng.normal(size=(chains, draws, len(studies))),
                       "technique_effect": rng.normal(size=(chains, draws, len(techniques)))}},
        dims={"theta": ["study"], "technique_effect": ["technique"]},
        coords={"study": list(studies), "technique": list(techniques)})


# ---- the model and the fit of one scenario ---------------------------------------------------


def test_sweep_model_weights_the_kept_studies_one_and_the_rest_zero(grid, monkeypatch):
    calls = []
    monkeypatch.setattr(sens, "build_model", lambda *args, **kwargs: calls.append((args, kwargs)) or "model")
    scenario = sens.Scenario("halfnormal(0.5)", 0.3)
    effects, kept = sens.scenario_effects(grid.context, scenario)
    used = list(es.used_effects(effects)["study_id"])
    assert sens._sweep_model(grid.context, effects, kept[1:], {"tau": "x"}) == "model"
    (kind, table, priors), options = calls[0]
    assert kind == "by_technique" and table is effects and priors == {"tau": "x"}
    assert options == {"weights": {s: float(s in kept[1:]) for s in used}, "prior_data": True, "study_effects": False}
    assert options["weights"][kept[0]] == 0.0 and sum(options["weights"].values()) == len(kept) - 1


def test_reusing_fit_samples_the_compiled_model_and_cuts_the_posterior_to_the_scenario(grid, monkeypatch):
    import evsynth.engines.fit as fit_module

    scenario = sens.Scenario("halfnormal(0.5)", 0.3)
    effects, kept = sens.scenario_effects(grid.context, scenario)
    used = es.used_effects(effects)
    techniques = sorted(set(used["technique"]))
    gone = used.loc[used["technique"] == techniques[0], "study_id"].tolist()  # a technique left out whole
    kept = [s for s in kept if s not in gone]
    calls = {}
    monkeypatch.setattr(sens, "_sweep_model", lambda *args: calls.setdefault("model", args) and "model")
    monkeypatch.setattr(sens, "compiled_model", lambda model: calls.setdefault("compiled", model) and "compiled")

    def fake_fit(model, **options):
        calls["fit"] = (model, options)
        return posterior(used["study_id"], techniques)

    monkeypatch.setattr(fit_module, "fit", fake_fit)
    idata = sens._fit_reusing(grid.context, effects, kept, {"tau": "p"}, 3)
    assert calls["model"] == (grid.context, effects, kept, {"tau": "p"}) and calls["compiled"] == "model"
    model, options = calls["fit"]
    assert model == "model" and options == {"draws": 5, "tune": 5, "chains": 2, "seed": 3, "target_accept": 0.99,
                                            "sampler": "auto", "cores": 3, "compiled": "compiled",
                                            "log_likelihood": False}
    post = idata["posterior"]
    assert post["study"].to_numpy().tolist() == kept
    assert post["technique"].to_numpy().tolist() == techniques[1:]
    full = posterior(used["study_id"], techniques)["posterior"]
    np.testing.assert_array_equal(post["theta"], full["theta"].sel(study=kept))
    np.testing.assert_array_equal(post["mu"], full["mu"])


def test_reusing_fit_of_a_model_without_study_or_technique_dims(grid, monkeypatch):
    import evsynth.engines.fit as fit_module

    effects, kept = sens.scenario_effects(grid.context, sens.Scenario("halfnormal(0.5)", 0.3))
    monkeypatch.setattr(sens, "_sweep_model", lambda *args: "model")
    monkeypatch.setattr(sens, "compiled_model", lambda model: "compiled")
    plain = az.from_dict({"posterior": {"mu": np.ones((2, 5))}})
    monkeypatch.setattr(fit_module, "fit", lambda model, **options: plain)
    idata = sens._fit_reusing(grid.context, effects, kept[:3], {}, None)
    assert dict(idata["posterior"].sizes) == {"chain": 2, "draw": 5}


def test_rebuilding_fit_builds_the_reduced_table(grid, monkeypatch):
    import evsynth.engines.fit as fit_module

    effects, kept = sens.scenario_effects(grid.context, sens.Scenario("halfnormal(0.5)", 0.3))
    calls = {}
    monkeypatch.setattr(sens, "build_model", lambda kind, table, priors, **options:
                        calls.setdefault("build", (kind, table, priors, options)) and "model")
    monkeypatch.setattr(fit_module, "fit", lambda model, **options: calls.setdefault("fit", (model, options)) and "tree")
    assert sens._fit_rebuilding(grid.context, effects, kept[2:], {"tau": "p"}, 2) == "tree"
    kind, table, priors, options = calls["build"]
    assert kind == "by_technique" and priors == {"tau": "p"} and options == {"study_effects": False}
    pd.testing.assert_frame_equal(table, sens.reduced_effects(effects, kept[2:]))
    assert set(es.used_effects(table)["study_id"]) == set(kept[2:])
    assert calls["fit"] == ("model", {"draws": 5, "tune": 5, "chains": 2, "seed": 3, "target_accept": 0.99,
                                      "sampler": "auto", "cores": 2, "log_likelihood": False})
    # a builder without the sweep keywords gets none
    calls.clear()
    monkeypatch.setattr(sens, "supports_reuse", lambda kind: False)
    sens._fit_rebuilding(grid.context, effects, kept, {}, None)
    assert calls["build"][3] == {}


def test_reduced_effects_keeps_the_kept_studies_and_the_unused_rows(grid):
    effects, kept = sens.scenario_effects(grid.context, sens.Scenario("halfnormal(0.5)", 0.3))
    effects = effects.copy()
    effects.attrs["measure"] = "SMD"
    effects.loc[0, "used"] = False  # an unused row stays, saying why
    reduced = sens.reduced_effects(effects, kept[3:])
    expected = effects[effects["study_id"].isin(kept[3:]) | ~effects["used"]]
    assert reduced["study_id"].tolist() == expected["study_id"].tolist()
    assert reduced.index.tolist() == list(range(len(expected))) and reduced.attrs == effects.attrs
    assert reduced.columns.tolist() == effects.columns.tolist()  # the old index is not kept as a column


def test_builders_taking_the_sweep_keywords_support_reuse(monkeypatch):
    assert sens.supports_reuse("random_effects") and sens.supports_reuse("by_technique")
    monkeypatch.setitem(sens.BUILDERS, "plain", lambda effects, priors, weights=None, prior_data=False: None)
    assert not sens.supports_reuse("plain")  # no study_effects
    monkeypatch.setitem(sens.BUILDERS, "full", lambda effects, priors, weights=None, prior_data=False,
                        study_effects=True: None)
    assert sens.supports_reuse("full")


# ---- one scenario's record on the sampled path ------------------------------------------------


class FakeDiagnostics:
    verdict = "FAIL"
    problems = ["r_hat 1.02 > 1.01", "ess_bulk 80 < 400"]


def test_sampled_scenario_record(grid, monkeypatch):
    import evsynth.methods.diagnostics as diagnostics

    scenario = sens.Scenario("halfnormal(0.5)", 0.3, left_out="")
    effects, kept = sens.scenario_effects(grid.context, scenario)
    used = es.used_effects(effects)
    tree = posterior(used["study_id"], sorted(set(used["technique"])))
    tree.attrs["sampler"] = "nutpie"
    fits = []
    monkeypatch.setattr(sens, "_fit_reusing", lambda *args: fits.append(("reusing", args)) or tree)
    monkeypatch.setattr(sens, "_fit_rebuilding", lambda *args: fits.append(("rebuilding", args)) or tree)
    monkeypatch.setattr(diagnostics, "diagnose", lambda idata: FakeDiagnostics() if idata is tree else None)
    summary = pd.DataFrame({"mean": [0.1], "sd": [0.2], "q2.5": [-0.3], "q50": [0.1], "q97.5": [0.5], "P(>0)": [0.7]},
                           index=["pooled (mu)"])
    monkeypatch.setattr(sens, "summarize", lambda idata, heterogeneity: summary
                        if heterogeneity is False and idata is tree else None)
    job = sens.Job(grid.context, scenario, reuse=True, cores=2)
    record = sens.run_scenario(job)
    kind, (context, table, kept_args, priors, cores) = fits[0]
    assert kind == "reusing" and kept_args == kept and cores == 2 and context is job.context
    pd.testing.assert_frame_equal(table, effects)
    assert priors == {"mu": "normal(0, 1)", "tau": "halfnormal(0.5)"}
    assert record["key"] == scenario.id and record["verdict"] == "FAIL"
    assert record["problems"] == "r_hat 1.02 > 1.01; ess_bulk 80 < 400"
    assert record["sampler"] == "nutpie" and record["reused_compiled_model"] is True
    assert record["rows"] == [{"parameter": "pooled (mu)", "mean": 0.1, "sd": 0.2, "q2.5": -0.3, "q50": 0.1,
                               "q97.5": 0.5, "p_gt_0": 0.7}]
    assert record["settings"] == {"tau_prior": "halfnormal(0.5)", "r_prepost": 0.3, "exclude": "",
                                  "techniques": "as labelled", "left_out": "", "outcome": "milk volume",
                                  "model": "by_technique", "measure": "SMD", "engine": "pymc",
                                  "n_studies": len(kept)}
    assert record["seconds"] >= 0
    record = sens.run_scenario(sens.Job(grid.context, scenario, reuse=False))
    assert fits[1][0] == "rebuilding" and record["reused_compiled_model"] is False
    # a fit cut short is not a record: the interrupt reaches the sweep
    monkeypatch.setattr(sens, "_fit_reusing", lambda *args: posterior(used["study_id"], ["t"], draws=3))
    with pytest.raises(KeyboardInterrupt, match="sampling stopped early"):
        sens.run_scenario(sens.Job(grid.context, scenario))


def test_a_scenario_that_raises_is_not_fitted_or_an_error(grid, monkeypatch):
    scenario = sens.Scenario("halfnormal(0.5)", 0.3)
    monkeypatch.setattr(sens, "_fit_reusing", lambda *args: (_ for _ in ()).throw(ValueError("two few rows")))
    record = sens.run_scenario(sens.Job(grid.context, scenario))
    assert record["verdict"] == "NOT FITTED" and record["problems"] == "not fitted: two few rows"
    assert record["rows"][0]["parameter"] == "pooled (mu)" and np.isnan(record["rows"][0]["mean"])
    assert record["sampler"] == "" and record["reused_compiled_model"] is False
    monkeypatch.setattr(sens, "_fit_reusing", lambda *args: (_ for _ in ()).throw(KeyError("theta")))
    record = sens.run_scenario(sens.Job(grid.context, scenario))
    assert record["verdict"] == "ERROR" and record["problems"] == "error: KeyError: 'theta'"
    assert record["settings"]["n_studies"] > 0  # counted before the fit failed
    # a failure before the studies are counted: 0 studies, the settings kept
    for error, verdict in ((ValueError("bad rule"), "NOT FITTED"), (RuntimeError("boom"), "ERROR")):
        monkeypatch.setattr(sens, "scenario_effects", lambda *args, error=error: (_ for _ in ()).throw(error))
        record = sens.run_scenario(sens.Job(grid.context, scenario))
        assert record["verdict"] == verdict and record["settings"]["n_studies"] == 0
        assert record["settings"]["tau_prior"] == "halfnormal(0.5)" and record["settings"]["engine"] == "pymc"


def test_too_few_studies_are_named_in_the_singular_and_plural(demo):
    grid = sens.Sensitivity(demo, outcome="milk volume", model="random_effects", engine="exact",
                            exclude=[None, "technique != 'oxytocin'"])
    context = grid.context
    effects, kept = sens.scenario_effects(context, sens.Scenario(grid.tau_prior[0], 0.5, grid.exclude[1]))
    assert len(kept) >= 2
    for n in (0, 1, 2):
        drop = kept[n:]
        rule = " or ".join(f"study_id == '{s}'" for s in drop) if drop else ""
        scenario = sens.Scenario(grid.tau_prior[0], 0.5, f"technique != 'oxytocin' or {rule}" if rule else
                                 grid.exclude[1])
        record = sens.run_scenario(sens.Job(context, scenario))
        if n < sens.MIN_STUDIES:
            assert record["problems"] == (f"not fitted: {n} usable stud{'y' if n == 1 else 'ies'} left, need "
                                          f"{sens.MIN_STUDIES}")
            assert record["verdict"] == "NOT FITTED" and record["settings"]["n_studies"] == n
        else:
            assert record["verdict"] == "PASS"


# ---- compile once per structure --------------------------------------------------------------


def test_compiled_model_compiles_each_structure_once(monkeypatch):
    compiled = []
    monkeypatch.setattr(sens, "_COMPILED", {})
    monkeypatch.setattr(sens, "_KEY_LOCKS", {})
    monkeypatch.setattr(sens, "structure_key", lambda model: model["structure"])
    monkeypatch.setattr(sens, "compile_nutpie", lambda model: compiled.append(model["name"]) or f"compiled {model['name']}")
    assert sens.compiled_model({"structure": "a", "name": 1}) == "compiled 1"
    assert sens.compiled_model({"structure": "a", "name": 2}) == "compiled 1"
    assert sens.compiled_model({"structure": "b", "name": 3}) == "compiled 3"
    assert compiled == [1, 3] and set(sens._KEY_LOCKS) == {"a", "b"}


def test_compile_ahead_compiles_the_first_scenario_of_each_prior_and_grouping(grid, monkeypatch):
    seen = []

    def fake_sweep_model(context, effects, kept, priors):
        assert context is grid_context
        if priors["tau"] == "halfcauchy(0.5)":
            raise ValueError("cannot build")  # skipped here: the scenario reports it when it runs
        return (priors["tau"], len(kept), effects["technique"].nunique())

    grid_context = grid.context
    monkeypatch.setattr(sens, "_sweep_model", fake_sweep_model)
    monkeypatch.setattr(sens, "compiled_model", lambda model: seen.append(model))
    scenarios = grid.scenarios()
    more = [replace(scenarios[0], tau_prior="halfnormal(0.9)"), replace(scenarios[0], techniques="by massage component")]
    thread = sens.compile_ahead(grid_context, scenarios + more)
    thread.join(30)
    assert not thread.is_alive() and thread.daemon and thread.name == "evsynth-compile-ahead"
    effects, kept = sens.scenario_effects(grid.context, scenarios[0])
    grouped, _ = sens.scenario_effects(grid.context, more[1])
    assert seen == [("halfnormal(0.5)", len(kept), effects["technique"].nunique()),
                    ("halfnormal(0.9)", len(kept), effects["technique"].nunique()),
                    ("halfnormal(0.5)", len(kept), grouped["technique"].nunique())]


def test_nutpie_and_compile_are_the_fit_modules(monkeypatch):
    import evsynth.engines.fit as fit_module

    monkeypatch.setattr(fit_module, "nutpie_available", lambda: "answer")
    monkeypatch.setattr(fit_module, "compile_nutpie", lambda model: ("compiled", model))
    assert sens.nutpie_available() == "answer" and sens.compile_nutpie("m") == ("compiled", "m")


# ---- run(): sampler, reuse, cores, workers ---------------------------------------------------


@pytest.fixture
def recorded(monkeypatch):
    """run() with run_tasks and compile_ahead recorded (nothing sampled)."""
    calls = {}

    def fake_run_tasks(function, jobs, **options):
        calls["function"], calls["jobs"], calls["options"] = function, jobs, options
        return {key: sens._not_fitted(job.scenario, {"n_studies": 0, "outcome": job.context.outcome}, "recorded", 0.0)
                for key, job in jobs.items()}

    monkeypatch.setattr(sens, "run_tasks", fake_run_tasks)
    monkeypatch.setattr(sens, "compile_ahead", lambda context, scenarios: calls.__setitem__("ahead", (context, scenarios)))
    monkeypatch.setattr(sens, "nutpie_available", lambda: calls.get("nutpie", True))
    monkeypatch.setattr(sens.os, "cpu_count", lambda: 8)
    return calls


def test_run_on_pymc_with_nutpie_reuses_in_threads(grid, recorded):
    table = grid.run(n_jobs=2, progress=False)
    jobs, options = recorded["jobs"], recorded["options"]
    assert list(jobs) == [s.id for s in grid.scenarios()]
    job = next(iter(jobs.values()))
    assert job.reuse is True and job.cores == 4 and job.context.options.sampler == "nutpie"
    assert options["threads"] is True and options["n_jobs"] == 2 and options["executor"] is None
    assert options["out"] is None and options["progress"] is False and options["label"] == "sensitivity"
    assert options["compiles"] is True and options["fingerprint"] == job.context.fingerprint()
    assert recorded["function"] is sens.run_scenario
    assert recorded["ahead"][1] == grid.scenarios()
    ok = {"verdict": "PASS"}
    assert not options["failed"](ok) and options["failed"]({"verdict": "FAIL"}) and options["failed"]({"verdict": "ERROR"})
    assert options["not_fitted"]({"verdict": "NOT FITTED"}) and not options["not_fitted"]({"verdict": "FAIL"})
    assert table["scenario"].tolist() == [s.id for s in grid.scenarios()] and grid.table is table


def test_run_options_change_cores_workers_and_reuse(grid, recorded):
    grid.run(n_jobs=1, progress=False)
    assert next(iter(recorded["jobs"].values())).cores is None
    grid.run(n_jobs=3, progress=False, workers="processes")
    job = next(iter(recorded["jobs"].values()))
    assert job.cores == 2 and recorded["options"]["threads"] is False and job.reuse is True
    grid.run(n_jobs=16, progress=False)
    assert next(iter(recorded["jobs"].values())).cores == 1
    recorded.pop("ahead")
    grid.run(n_jobs=2, progress=False, executor="client")
    job = next(iter(recorded["jobs"].values()))
    assert job.cores == 1 and recorded["options"]["executor"] == "client" and recorded["options"]["n_jobs"] == 2
    assert "ahead" not in recorded  # an external executor's workers compile for themselves
    grid.run(n_jobs=2, progress=False, reuse=False)
    job = next(iter(recorded["jobs"].values()))
    assert job.reuse is False and recorded["options"]["threads"] is False and "ahead" not in recorded
    recorded["nutpie"] = False  # PyMC's own sampler: no compiled model to share
    grid.run(n_jobs=2, progress=False)
    job = next(iter(recorded["jobs"].values()))
    assert job.reuse is False and job.context.options.sampler == "pymc" and recorded["options"]["threads"] is False
    with pytest.raises(ValueError, match=r"^workers 'fibres' unknown; choose 'threads' or 'processes'$"):
        grid.run(progress=False, workers="fibres")


def test_run_skips_compiling_ahead_what_the_results_file_holds(grid, recorded, tmp_path, monkeypatch):
    done = grid.scenarios()[0].id
    monkeypatch.setattr(sens, "read_records", lambda out, fingerprint: {done: {}})
    grid.run(n_jobs=1, progress=False, out=tmp_path / "r.jsonl")
    assert [s.id for s in recorded["ahead"][1]] == [s.id for s in grid.scenarios()[1:]]
    assert recorded["options"]["out"] == tmp_path / "r.jsonl"


def test_run_on_the_exact_engine_runs_here_one_at_a_time(demo, recorded, monkeypatch):
    from importlib import util

    grid = sens.Sensitivity(demo, outcome="milk volume", model="random_effects", engine="exact")
    real = util.find_spec
    monkeypatch.setattr(util, "find_spec", lambda name, *args: None if name == "nutpie" else real(name, *args))
    grid.run(n_jobs=4, progress=False, executor="client")
    options = recorded["options"]
    job = next(iter(recorded["jobs"].values()))
    assert options["n_jobs"] == 1 and options["executor"] is None and options["compiles"] is False
    assert job.reuse is False and job.context.options.sampler == "pymc" and "ahead" not in recorded
    # the sweep's cache starts with its tau priors (each data variant's priors are fitted together)
    assert recorded["function"].func is sens.run_scenario and list(recorded["function"].keywords) == ["cache"]
    cache = recorded["function"].keywords["cache"]
    assert cache["tau_priors"] == tuple(grid.tau_prior)
    # and what __post_init__ computed for the rules' warnings (effects at the default r, the rule's studies)
    ruled = sens.Sensitivity(demo, outcome="milk volume", model="random_effects", engine="exact",
                             exclude=[None, "design == 'pre_post'"])
    ruled.run(progress=False)
    cache = recorded["function"].keywords["cache"]
    assert ("effects", 0.5) in ruled._prepared[1] and ("exclude", "design == 'pre_post'") in ruled._prepared[1]
    assert all(cache[key] is value for key, value in ruled._prepared[1].items())
    ruled.studies = ruled.studies.copy()  # other data: nothing carried over
    ruled.run(progress=False)
    assert set(recorded["function"].keywords["cache"]) == {"tau_priors"}
    monkeypatch.setattr(util, "find_spec", lambda name, *args: object() if name == "nutpie" else real(name, *args))
    grid.run(progress=False)
    assert next(iter(recorded["jobs"].values())).context.options.sampler == "nutpie"
    given = sens.Sensitivity(demo, outcome="milk volume", model="random_effects", engine="exact", sampler="pymc")
    given.run(progress=False)
    assert next(iter(recorded["jobs"].values())).context.options.sampler == "pymc"


# ---- the tidy table ----------------------------------------------------------------------------


def test_records_table_columns_types_and_missing_fields():
    record = {"key": "tau a | r 0.5", "settings": {"tau_prior": "a", "r_prepost": "0.5", "exclude": "", "left_out": "",
                                                   "outcome": "o", "model": "m", "measure": "SMD", "n_studies": 4,
                                                   "engine": "exact"},
              "rows": [{"parameter": "pooled (mu)", "mean": "0.25", "sd": 0.1, "q2.5": 0.0, "q50": 0.25, "q97.5": 0.5,
                        "p_gt_0": None}], "verdict": "PASS", "problems": None}
    table = sens.records_table([record])
    assert table.columns.tolist() == sens.COLUMNS
    row = table.iloc[0]
    assert row["mean"] == 0.25 and row["r_prepost"] == 0.5 and np.isnan(row["p_gt_0"])
    assert table["mean"].dtype == float and table["r_prepost"].dtype == float and table["n_studies"].dtype == int
    assert row["techniques"] == "as labelled"  # a record from before the column
    assert row["problems"] == "" and row["warnings"] == "" and row["scenario"] == "tau a | r 0.5"
    warned = dict(record, settings=dict(record["settings"], warnings="rule leaves out nothing"))
    assert sens.records_table([warned]).loc[0, "warnings"] == "rule leaves out nothing"
    for name in ("scenario", "tau_prior", "exclude", "techniques", "left_out", "outcome", "model", "measure", "engine",
                 "parameter", "verdict", "problems", "warnings"):
        assert isinstance(row[name], str), name


# ---- the grid's refusals ---------------------------------------------------------------------


def test_grid_refusals_word_for_word(demo):
    with pytest.raises(ValueError, match=r"^model 'bogus' unknown; choose one of \["):
        sens.Sensitivity(demo, model="bogus")
    with pytest.raises(ValueError, match=r"^the tau prior is swept: give it as tau_prior=\[\.\.\.\], not in priors$"):
        sens.Sensitivity(demo, outcome="milk volume", priors={"tau": "halfnormal(1)"})
    with pytest.raises(ValueError, match=r"^design 'some' unknown; choose one of all, controlled, randomised$"):
        sens.Sensitivity(demo, outcome="milk volume", design="some")
    with pytest.raises(ValueError, match=r"^outcome 'sleep' is not in the study table \(outcomes: \["):
        sens.Sensitivity(demo, outcome="sleep")
    with pytest.raises(ValueError, match=r"^techniques \['by colour'\]: choose from \['as labelled', "):
        sens.Sensitivity(demo, outcome="milk volume", techniques=["by colour"])
    for r in (1.0, -1.0):
        with pytest.raises(ValueError, match=rf"^r_prepost {r} must lie strictly between -1 and 1$"):
            sens.Sensitivity(demo, outcome="milk volume", r_prepost=[r])
    for r in (np.nextafter(1.0, 0.0), np.nextafter(-1.0, 0.0)):
        assert sens.Sensitivity(demo, outcome="milk volume", r_prepost=[r]).r_prepost == [r]
    for name, values in (("tau_prior", ["halfnormal(0.5)", "halfnormal(0.50)"]), ("r_prepost", [0.5, 0.5]),
                         ("exclude", ["design == 'pre_post'", "design == 'pre_post'"]), ("techniques", [])):
        with pytest.raises(ValueError, match=rf"^{name}: give a non-empty list without repeats, got "):
            sens.Sensitivity(demo, outcome="milk volume", **{name: values})
    n = int(demo["outcome"].eq("milk volume").sum())
    size = 2 * (1 + n)
    with pytest.raises(ValueError, match=rf"^the grid has up to {size:,} scenarios, more than max_scenarios = "
                                         rf"{size - 1:,}; shrink it, or raise the cap \(\[run\] max_scenarios in a "
                                         r"spec, --max-scenarios\)$"):
        sens.Sensitivity(demo, outcome="milk volume", r_prepost=[0.3, 0.5], leave_one_out=True,
                         max_scenarios=size - 1)
    assert len(sens.Sensitivity(demo, outcome="milk volume", r_prepost=[0.3, 0.5], leave_one_out=True,
                                max_scenarios=size).r_prepost) == 2
    with pytest.raises(sens.NothingToAnalyse, match=r"^the study table has no rows: nothing analysed$"):
        sens.Sensitivity(demo.iloc[:0], outcome="milk volume")


def test_sweep_engine_word_for_word():
    assert sens.sweep_engine("auto", "random_effects") == "exact"
    assert sens.sweep_engine("auto", "selection") == "pymc"
    assert sens.sweep_engine("pymc", "random_effects") == "pymc"
    assert sens.sweep_engine("exact", "network") == "exact"
    with pytest.raises(ValueError, match=r"^engine 'quick' unknown; choose one of auto, exact, pymc$"):
        sens.sweep_engine("quick", "random_effects")
    with pytest.raises(ValueError, match=r"^engine 'exact': model 'selection' has no Gaussian description \(the exact "
                                         r"engine fits by_technique, common_effect, meta_regression, multilevel, "
                                         r"network, random_effects\); use engine 'pymc'$"):
        sens.sweep_engine("exact", "selection")


def test_the_outcome_is_found_when_only_one_can_be_analysed(demo):
    assert sens.Sensitivity(demo, model="random_effects").outcome == "milk volume"
    two = demo.assign(outcome=["milk volume"] * 9 + ["pain"] * (len(demo) - 9))
    with pytest.raises(ValueError, match=r"^several outcomes can be analysed \(milk volume, pain\); choose one with "
                                         r"outcome=\.\.\.$"):
        sens.Sensitivity(two, model="random_effects")
    lone = two.iloc[:10]  # pain keeps one study: only milk volume can be analysed
    assert sens.Sensitivity(lone, model="random_effects").outcome == "milk volume"
    with pytest.raises(ValueError, match=r"^no outcome has 2 usable studies: \{'milk volume': '1 usable study; "
                                         r"need 2'\}$"):
        sens.Sensitivity(demo.iloc[:1], model="random_effects")


def test_run_defaults_and_repeated_scenarios(grid, recorded):
    grid.run()
    options = recorded["options"]
    job = next(iter(recorded["jobs"].values()))
    assert options["n_jobs"] == 1 and options["progress"] is True and options["out"] is None
    assert options["executor"] is None and options["threads"] is True and job.reuse is True and job.cores is None
    repeated = sens.Sensitivity(grid.studies, outcome="milk volume", model="by_technique", engine="pymc")
    repeated.r_prepost = [0.5, 0.5]  # changed after the checks of construction
    with pytest.raises(ValueError, match=r"^two scenarios share an id; check the grid for repeated settings$"):
        repeated.run(progress=False)


def test_not_fitted_record(monkeypatch):
    monkeypatch.setattr(sens.time, "monotonic", lambda: 10.0)
    record = sens._not_fitted(sens.Scenario("halfnormal(1)", 0.5), {"n_studies": 1}, "not fitted: why", 8.7654321)
    assert record["seconds"] == 1.235 and record["key"] == "tau halfnormal(1) | r 0.5"
    assert record["verdict"] == "NOT FITTED" and record["problems"] == "not fitted: why"
    assert record["settings"] == {"n_studies": 1} and record["sampler"] == ""
    assert record["reused_compiled_model"] is False
    (row,) = record["rows"]
    assert row["parameter"] == "pooled (mu)" and set(row) == {"parameter", *sens.ESTIMATES}
    assert all(np.isnan(row[name]) for name in sens.ESTIMATES)
    assert sens._not_fitted(sens.Scenario("a", 0.1), {}, "x", 9.0, verdict="ERROR")["verdict"] == "ERROR"


class _Var:
    def __init__(self, name, op=None, value=None):
        self.name, self.owner, self.value = name, type("Apply", (), {"op": op})(), value

    def get_value(self):
        return self.value


def test_structure_key_holds_every_part_of_the_graph():
    Normal, HalfNormal = type("NormalRV", (), {}), type("HalfNormalRV", (), {})
    model = type("Model", (), {})()
    model.free_RVs = [_Var("mu", Normal()), _Var("tau", HalfNormal())]
    model.observed_RVs = [_Var("y", Normal())]
    model.coords = {"study": ["a", "b"], "technique": ("t",)}
    model.data_vars = [_Var("sei", value=np.ones(2)), _Var("weights", value=np.ones((2, 1)))]
    model.potentials = [_Var("prior_term")]
    model.deterministics = [_Var("theta")]
    assert sens.structure_key(model) == (
        (("mu", "NormalRV"), ("tau", "HalfNormalRV"), ("y", "NormalRV")),
        (("study", ("a", "b")), ("technique", ("t",))),
        (("sei", (2,)), ("weights", (2, 1))),
        ("prior_term", "theta"))


def test_fingerprint_is_the_documented_hash_of_its_fields(demo):
    """The results file's fingerprint: the first 16 hex digits of sha256 over the sorted JSON of the
    sweep's fields (studies as CSV without index), written out here; design only when not 'all', so
    files written before the design option keep theirs."""
    import hashlib
    import json

    from evsynth import __version__

    options = sens.FitOptions(draws=10, tune=20, chains=2, seed=5, target_accept=0.9, sampler="pymc")
    studies = demo.iloc[:3]
    context = sens.Context(studies, "milk volume", "SMD", "auto", "random_effects", {"mu": "normal(0, 1)"}, options,
                           engine="exact")
    payload = {"engine": "exact", "evsynth": __version__, "measure": "SMD", "model": "random_effects",
               "options": {"chains": 2, "draws": 10, "sampler": "pymc", "seed": 5, "target_accept": 0.9, "tune": 20},
               "outcome": "milk volume", "p_bound": "auto", "priors": {"mu": "normal(0, 1)"},
               "studies": studies.to_csv(index=False)}

    def digest(payload):
        text = json.dumps(dict(sorted(payload.items())), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    assert context.fingerprint() == digest(payload)
    assert replace(context, design="controlled").fingerprint() == digest(payload | {"design": "controlled"})
    nested = replace(context, random="~ 1 | sample_id/study_id", rho=0.5)  # only then: older files keep theirs
    assert nested.fingerprint() == digest(payload | {"random": "~ 1 | sample_id/study_id", "rho": 0.5})
    assert replace(context, priors={"mu": "normal(0, 1)", "b": 2}).fingerprint() == \
        replace(context, priors={"b": 2, "mu": "normal(0, 1)"}).fingerprint()  # key order does not count
    from pathlib import PurePosixPath

    odd = replace(context, p_bound=PurePosixPath("a"))  # not JSON: written as its text
    assert odd.fingerprint() == digest(payload | {"p_bound": "a"})


def test_scenarios_carry_their_grouping_of_techniques(demo):
    grid = sens.Sensitivity(demo, outcome="milk volume", model="by_technique", engine="exact",
                            techniques=["as labelled", "by massage component"])
    assert [s.techniques for s in grid.scenarios()] == ["as labelled", "by massage component"]


def test_run_compiles_ahead_only_in_this_process_and_says_so(grid, recorded, monkeypatch, tmp_path):
    import contextlib

    shown = []

    @contextlib.contextmanager
    def fake_spinner(message, enabled=True):
        shown.append((message, enabled))
        yield

    reads = []
    monkeypatch.setattr(sens, "spinner", fake_spinner)
    monkeypatch.setattr(sens, "read_records", lambda out, fingerprint: reads.append((out, fingerprint)) or {})
    grid.run(n_jobs=1, workers="processes", progress=False, out=tmp_path / "a.jsonl")
    context = recorded["ahead"][0]
    assert context is next(iter(recorded["jobs"].values())).context
    assert shown == [("sensitivity: compiling the model once per graph structure", False)]
    assert reads == [(tmp_path / "a.jsonl", context.fingerprint())]
    grid.run(n_jobs=1, progress=True)
    assert shown[-1] == ("sensitivity: compiling the model once per graph structure", True) and len(reads) == 1
    for kwargs in ({"n_jobs": 2, "workers": "processes"}, {"n_jobs": 1, "reuse": False}):
        recorded.pop("ahead", None)
        grid.run(progress=False, **kwargs)
        assert "ahead" not in recorded, kwargs


def test_records_table_orders_columns_and_makes_numbers_float():
    record = {"key": "k", "settings": {"tau_prior": "a", "r_prepost": 0, "n_studies": 3, "exclude": "", "left_out": "",
                                       "outcome": "o", "model": "m", "measure": "SMD", "engine": "exact"},
              "rows": [{"mean": 1, "parameter": "pooled (mu)", "sd": 2, "q2.5": 0, "q50": 1, "q97.5": 2,
                        "p_gt_0": "not a number"}], "verdict": "PASS", "problems": ""}
    table = sens.records_table([record])
    assert table.columns.tolist() == sens.COLUMNS
    for name in sens.ESTIMATES + ["r_prepost"]:
        assert table[name].dtype == np.float64, name
    assert table.loc[0, "mean"] == 1.0 and np.isnan(table.loc[0, "p_gt_0"])


def test_exact_record_whole(demo, monkeypatch):
    from evsynth.engines.exact import report_label, summary_rows
    from evsynth.model.description import describe

    grid = sens.Sensitivity(demo, outcome="milk volume", model="random_effects", engine="exact",
                            priors={"mu": "normal(0, 1)"})
    scenario = sens.Scenario(grid.tau_prior[0], 0.5, left_out="")
    clock = iter([100.0, 101.23456])
    monkeypatch.setattr(sens.time, "monotonic", lambda: next(clock))
    cache = {}
    record = sens.run_scenario(sens.Job(grid.context, scenario), cache)
    effects, kept = sens.scenario_effects(grid.context, scenario)
    model = describe("random_effects", effects, sens.scenario_priors(grid.context, scenario))
    rows = summary_rows(model.subset(np.isin(model.study_id, kept)))
    assert record["rows"] == [{"parameter": report_label(*k), "mean": r["mean"], "sd": r["sd"], "q2.5": r["q2.5"],
                               "q50": r["q50"], "q97.5": r["q97.5"], "p_gt_0": r["P(>0)"]} for k, r in rows.items()]
    assert {k: v for k, v in record.items() if k not in ("rows", "settings")} == {
        "key": scenario.id, "verdict": "PASS", "problems": "", "sampler": "exact", "reused_compiled_model": False,
        "seconds": 1.235}
    # the sweep's cache: effects, used studies and the described model per (r, tau prior, grouping)
    assert ("model", 0.5, grid.tau_prior[0], "as labelled") in cache
    assert {key[0] for key in cache} == {"effects", "used", "model"}


def test_run_scenario_fills_the_sweeps_cache_and_flags_a_rule_that_excludes_nothing(demo):
    with pytest.warns(UserWarning, match="leaves out no usable study"):
        grid = sens.Sensitivity(demo, outcome="milk volume", model="random_effects", engine="exact",
                                exclude=[None, "design == 'cross_over'"])
    cache = {}
    record = sens.run_scenario(sens.Job(grid.context, sens.Scenario(grid.tau_prior[0], 0.3, grid.exclude[1])), cache)
    assert record["settings"]["warnings"] == ("exclusion rule leaves out no usable study: same studies as the "
                                              "baseline")
    # the rule's check (at the default r, 0.5) and the scenario (r 0.3) both filled the cache passed
    assert {("effects", 0.3), ("effects", 0.5), ("exclude", grid.exclude[1]), ("used", 0.3), ("used", 0.5)} <= set(cache)
    record = sens.run_scenario(sens.Job(grid.context, sens.Scenario(grid.tau_prior[0], 0.3)), {})
    assert "warnings" not in record["settings"]


def test_a_rule_that_excludes_nothing_warns_at_the_callers_line(demo):
    with pytest.warns(UserWarning) as caught:
        grid = sens.Sensitivity(demo, outcome="milk volume", model="random_effects", engine="exact",
                                exclude=[None, "design == 'cross_over'"])
    text = ("exclusion rule \"design == 'cross_over'\" leaves out no usable study of 'milk volume': its scenarios "
            "repeat the baseline (check the rule for a typo)")
    assert grid.rule_warnings == [text] and [str(w.message) for w in caught] == [text]
    # not the dataclass's generated __init__ ('<string>'); under mutmut its trampoline adds a frame
    assert caught[0].filename == __file__ or caught[0].filename.endswith("mutmut/mutation/trampoline.py")


@pytest.mark.parametrize("none", [None, "", "none"])
def test_no_exclusion_spelt_three_ways(demo, none):
    assert sens.Sensitivity(demo, outcome="milk volume", model="random_effects", exclude=[none]).exclude == [""]


def test_the_default_tau_prior_follows_the_measure(demo):
    """The model's default tau prior is read from the outcome's effects in the sweep's measure (MD: on
    the outcome's scale)."""
    from evsynth.engines.builders import default_priors

    effects = es.compute_effects(demo, measure="MD")
    expected = default_priors(effects[effects["outcome"] == "milk volume"])["tau"]
    assert expected != "halfnormal(0.5)"
    grid = sens.Sensitivity(demo, outcome="milk volume", model="random_effects", measure="MD")
    assert grid.tau_prior == [expected]


def test_rule_warning_alone(demo):
    grid = sens.Sensitivity(demo, outcome="milk volume", model="random_effects", engine="exact")
    assert sens.rule_warning(grid.context, "") == ""  # no rule: nothing to check
    assert sens.rule_warning(grid.context, "design == 'pre_post'") == ""  # it leaves studies out
    assert sens.rule_warning(grid.context, "design == 'cross_over'").startswith(  # no cache given: its own
        "exclusion rule \"design == 'cross_over'\" leaves out no usable study of 'milk volume'")


def test_tau_prior_texts_checked_as_taus_and_kept_as_written(demo):
    with pytest.raises(ValueError, match=r"^prior normal\(0, 1\) for tau: tau is a standard deviation"):
        sens.Sensitivity(demo, outcome="milk volume", model="random_effects", tau_prior=["normal(0, 1)"])
    grid = sens.Sensitivity(demo, outcome="milk volume", model="random_effects", tau_prior=["halfnormal(  0.5   )"])
    assert grid.tau_prior == ["halfnormal( 0.5 )"]  # white space collapsed, digits as given


def test_single_values_are_lists_of_one(demo):
    grid = sens.Sensitivity(demo, outcome="milk volume", model="random_effects", tau_prior="halfcauchy(1)",
                            r_prepost=0.4, exclude="design == 'pre_post'", techniques="as labelled")
    assert (grid.tau_prior, grid.r_prepost, grid.exclude, grid.techniques) == (
        ["halfcauchy(1)"], [0.4], ["design == 'pre_post'"], ["as labelled"])


def test_the_default_tau_prior_reads_the_chosen_outcome_only(demo):
    from evsynth.engines.builders import default_priors

    two = demo.assign(outcome=["milk volume"] * 9 + ["pain"] * (len(demo) - 9))
    effects = es.compute_effects(two, measure="MD")
    mine = default_priors(effects[effects["outcome"] == "milk volume"])["tau"]
    assert mine != default_priors(effects[effects["outcome"] == "pain"])["tau"]
    grid = sens.Sensitivity(two, outcome="milk volume", model="random_effects", measure="MD")
    assert grid.tau_prior == [mine]


def test_scenario_effects_follow_the_sweeps_measure_p_bound_design_and_grouping(demo):
    """The scenario's table is compute_effects with the sweep's measure and p_bound, restricted to its
    design and the outcome, with a clean index; grouping by massage component moves the combined rows."""
    from evsynth.effects.techniques import COMPONENT_SEPARATOR

    md = sens.Sensitivity(demo, outcome="milk volume", model="random_effects", measure="MD", engine="exact")
    effects, kept = sens.scenario_effects(md.context, sens.Scenario(md.tau_prior[0], 0.5))
    reference = es.compute_effects(demo, measure="MD")
    assert set(effects["measure"]) == {"MD"} and effects.columns.tolist() == reference.columns.tolist()
    assert effects.index.tolist() == list(range(len(effects)))
    assert effects["yi"].tolist() == reference["yi"].tolist()  # one outcome, one row per sample already
    controlled = sens.Sensitivity(demo, outcome="milk volume", model="random_effects", design="controlled")
    effects, kept = sens.scenario_effects(controlled.context, sens.Scenario(controlled.tau_prior[0], 0.5))
    assert set(es.used_effects(effects)["design"]) == {"two_group"} and len(kept) == 10
    massage = es.load_studies(Path(__file__).resolve().parents[1] / "studies" / "massage.csv")
    counts = {}
    for p_bound in ("auto", "exclude"):
        grid = sens.Sensitivity(massage, outcome="milk volume", model="random_effects", p_bound=p_bound)
        counts[p_bound] = len(sens.scenario_effects(grid.context, sens.Scenario(grid.tau_prior[0], 0.5))[1])
    expected = {}
    for p_bound in ("auto", "exclude"):
        table = es.compute_effects(massage, p_bound=p_bound)
        expected[p_bound] = es.used_effects(table[table["outcome"] == "milk volume"])["study_id"].nunique()
    assert counts == expected and counts["auto"] > counts["exclude"]  # rows known only by a p bound
    grouped = demo.copy()
    grouped.loc[grouped["technique"] == "combined", "components"] = COMPONENT_SEPARATOR.join(["breast care", "oxytocin"])
    grid = sens.Sensitivity(grouped, outcome="milk volume", model="by_technique", engine="exact")
    labelled, _ = sens.scenario_effects(grid.context, sens.Scenario(grid.tau_prior[0], 0.5))
    by_component, _ = sens.scenario_effects(grid.context, sens.Scenario(grid.tau_prior[0], 0.5,
                                                                        techniques="by massage component"))
    assert "combined" in set(labelled["technique"]) and "combined" not in set(by_component["technique"])
    assert (by_component["technique"] == "oxytocin").sum() == (labelled["technique"] == "oxytocin").sum() + 5


def test_nested_model_options_refusals_settings_and_record(demo):
    """model 'multilevel' with random= (and rho=): the refusals word for word at both sides of rho's
    bounds, the options describe() gets, and the settings each record carries."""
    base = dict(outcome="milk volume", model="random_effects")
    nested = dict(outcome="milk volume", model="multilevel", random="~ 1 | study_id/technique")
    together = (r"^model 'multilevel' and random= go together: random gives its levels, e\.g\. "
                r"random='~ 1 \| sample/study_id'$")
    with pytest.raises(ValueError, match=together):
        sens.Sensitivity(demo, outcome="milk volume", model="multilevel")
    with pytest.raises(ValueError, match=together):
        sens.Sensitivity(demo, random="~ 1 | study_id/technique", **base)
    for rho in (1.0, -1.0):
        with pytest.raises(ValueError, match=rf"^rho {rho!r}: needs random= and must lie strictly between -1 and 1$"):
            sens.Sensitivity(demo, rho=rho, **nested)
    with pytest.raises(ValueError, match=r"^rho 0\.5: needs random= and must lie strictly between -1 and 1$"):
        sens.Sensitivity(demo, rho=0.5, **base)
    with pytest.raises(ValueError, match=r"^a sweep of the nested model \(random=\) runs on the exact engine: "
                                         r"engine 'auto' or 'exact'$"):
        sens.Sensitivity(demo, engine="pymc", **nested)
    for rho in (np.nextafter(1.0, 0.0), np.nextafter(-1.0, 0.0)):
        assert sens.Sensitivity(demo, rho=rho, **nested).context.rho == rho
    grid = sens.Sensitivity(demo, rho=0.5, **nested)
    context = grid.context
    assert (context.random, context.rho) == ("~ 1 | study_id/technique", 0.5)
    assert context.model_options() == {"random": "~ 1 | study_id/technique", "rho": 0.5, "cluster": "study_id"}
    assert sens.Sensitivity(demo, **base).context.model_options() == {}
    record = sens.run_scenario(sens.Job(context, grid.scenarios()[0]))
    assert record["settings"]["random"] == "~ 1 | study_id/technique" and record["settings"]["rho"] == 0.5
    independent = sens.run_scenario(sens.Job(sens.Sensitivity(demo, **nested).context, grid.scenarios()[0]))
    assert independent["settings"]["rho"] == "none (independent)"
    assert "random" not in sens.run_scenario(sens.Job(sens.Sensitivity(demo, **base).context,
                                                      grid.scenarios()[0]))["settings"]
