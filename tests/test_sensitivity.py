"""Sensitivity sweeps: the compile-once path against a rebuild per scenario, leave-one-out,
resume after interruption, spec files, the CLI and a Dask executor.

Cost control: every sampled sweep here uses the same graph structure (random-effects model on
the synthetic demo's 18 milk-volume studies, normal mu prior, halfnormal tau prior), so the test
process compiles it once; only the rebuild comparison compiles per scenario.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import evsynth as es
from evsynth.methods import sensitivity as sens
from evsynth.cli.main import main
from evsynth.data.rules import RuleError
from evsynth.methods.spec import SpecError, load_spec
from evsynth.methods.sweep import SweepFileError, read_records, run_tasks

from conftest import censored_milk_effects

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "studies" / "synthetic_demo.csv"
COMMON = dict(outcome="milk volume", model="random_effects", priors={"mu": "normal(0, 1)"}, seed=7, engine="pymc")
EXACT = COMMON | {"engine": "exact"}
SMALL = dict(chains=2, draws=300, tune=300)


@pytest.fixture(scope="module")
def demo():
    return es.load_studies(DEMO)


# ---- no sampling ---------------------------------------------------------------------------

def test_grid_order_ids_and_leave_one_out_scenarios(demo):
    grid = sens.Sensitivity(demo, tau_prior=["halfnormal(0.5)", "halfcauchy(1)"], r_prepost=[0.3, 0.9],
                            exclude=[None, "design == 'pre_post'"], leave_one_out=True, **COMMON)
    scenarios = grid.scenarios()
    pre_post = set(demo.loc[demo["design"] == "pre_post", "study_id"])
    # 2 x 2 x (1 + 18 left out  +  1 + 10 left out)
    assert len(scenarios) == 2 * 2 * (19 + 11)
    assert len({s.id for s in scenarios}) == len(scenarios)
    excl = [s for s in scenarios if s.exclude and s.left_out]
    assert {s.left_out for s in excl} == set(demo["study_id"]) - pre_post
    assert scenarios[0].id == "tau halfnormal(0.5) | r 0.3"
    assert sens.Scenario("halfnormal(1)", 0.5, "synthetic", "syn_neck_1").id == \
        "tau halfnormal(1) | r 0.5 | excl synthetic | drop syn_neck_1"


@pytest.mark.slow  # MCMC sweeps: 20-80 s on the shared machine
def test_weights_zero_equals_dropping_the_study_and_two_counts_it_twice():
    """The mask enters the log-density exactly: checked on the real data's censored row."""
    effects = censored_milk_effects()
    used = es.used_effects(effects)
    point = {"mu": 0.3, "tau_log__": np.log(0.4), "z": np.linspace(0.5, -0.2, len(used))}
    plain = es.random_effects(effects).compile_logp()(point)
    for k, study in enumerate(used["study_id"]):
        rest = effects[effects["study_id"] != study].reset_index(drop=True)
        rest.attrs = effects.attrs
        without = es.random_effects(rest).compile_logp()(dict(point, z=np.delete(point["z"], k)))
        without += stats.norm.logpdf(point["z"][k])  # the left-out study's z keeps its N(0, 1) prior
        for w in (0.0, 2.0):
            weighted = es.random_effects(effects, weights={study: w}, prior_data=True).compile_logp()(point)
            assert weighted == pytest.approx(without + w * (plain - without), abs=1e-8)


def test_prior_data_holds_the_hyper_parameters(demo):
    effects = es.compute_effects(demo)
    model = es.random_effects(effects, {"tau": "halfcauchy(0.7)"}, prior_data=True)
    data = {v.name: float(v.get_value()) for v in model.data_vars if v.ndim == 0}
    assert data == {"mu_prior_mu": 0.0, "mu_prior_sigma": 1.0, "tau_prior_beta": 0.7}
    other = es.random_effects(effects, {"tau": "halfcauchy(3)"}, prior_data=True)
    assert sens.structure_key(model) == sens.structure_key(other)
    assert sens.structure_key(model) != sens.structure_key(
        es.random_effects(effects, {"tau": "halfnormal(0.7)"}, prior_data=True))


def test_bad_settings_refused(demo):
    with pytest.raises(RuleError, match="'__import__' is not a column"):
        sens.Sensitivity(demo, exclude=["__import__('os').system('x')"], **COMMON)
    with pytest.raises(ValueError, match="prior"):
        sens.Sensitivity(demo, tau_prior=["halfnormal(-1)"], **COMMON)
    with pytest.raises(ValueError, match="between -1 and 1"):
        sens.Sensitivity(demo, r_prepost=[1.0], **COMMON)
    with pytest.raises(ValueError, match="swept"):
        sens.Sensitivity(demo, **(COMMON | {"priors": {"tau": "halfnormal(1)"}}))
    with pytest.raises(ValueError, match="not in the study table"):
        sens.Sensitivity(demo, **(COMMON | {"outcome": "prolactin"}))


# ---- the sweep machinery, without models ---------------------------------------------------

def test_run_tasks_in_local_processes_writes_every_record(tmp_path):
    tasks = {f"k{i}": {"key": f"k{i}", "value": i} for i in range(5)}
    out = tmp_path / "records.jsonl"
    records = run_tasks(dict, tasks, out=out, fingerprint="f", n_jobs=2, progress=False)  # dict(task) = task
    assert {k: r["value"] for k, r in records.items()} == {f"k{i}": i for i in range(5)}
    assert len(out.read_text().splitlines()) == 5
    assert read_records(out, "f").keys() == tasks.keys()
    with pytest.raises(SweepFileError, match="other settings"):
        read_records(out, "another sweep")


def test_interrupted_sweep_keeps_finished_records_and_resumes(tmp_path):
    tasks = {f"k{i}": {"key": f"k{i}", "value": i} for i in range(4)}
    out = tmp_path / "records.jsonl"
    calls = []

    def flaky(task):
        calls.append(task["key"])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return dict(task)

    with pytest.raises(KeyboardInterrupt):
        run_tasks(flaky, tasks, out=out, fingerprint="f", progress=False)
    assert set(read_records(out, "f")) == {"k0", "k1"}
    with out.open("a") as handle:
        handle.write('{"key": "k2", "fing')  # a record torn by a hard kill
    calls.clear()
    records = run_tasks(flaky, tasks, out=out, fingerprint="f", progress=False)
    assert calls == ["k2", "k3"] and set(records) == set(tasks)
    assert set(read_records(out, "f")) == set(tasks)


def test_progress_line_counts_and_estimates(capsys):
    from evsynth.methods.sweep import Progress

    now = [0.0]
    meter = Progress(total=5, resumed=1, label="sensitivity", enabled=False, clock=lambda: now[0])
    now[0] = 22.0  # the first scenario compiles for 22 s, then 2 s each
    meter.update(failed=True)
    text = meter.text()
    assert text.startswith("sensitivity: 2/5 scenarios done (1 resumed from file), 1 FAIL")
    assert "estimating the time left" in text  # one scenario (with the compile) says nothing of the pace
    now[0] = 24.0
    meter.update(not_fitted=True)
    assert meter.text() == ("sensitivity: 3/5 scenarios done (1 resumed from file), 1 FAIL, 1 not fitted, "
                            "24 s elapsed, ~4 s left")  # 2 left at 2 s each, not 2 x 12 s


def test_progress_rewrites_one_line_on_a_terminal():
    import io

    from evsynth.methods.sweep import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    meter = Progress(total=3, resumed=0, label="sensitivity", stream=stream)
    meter.update(failed=True)
    meter.update()
    meter.show(final=True)
    raw = stream.getvalue()
    frames = _plain(raw).split("\r")
    assert len(frames) == 3 and frames[-1].endswith("\n") and "\n" not in "".join(frames[:-1])
    assert raw.count("\r\x1b[2K") == 2  # each rewrite erases the line (no end of a longer one left)
    assert frames[0].startswith("sensitivity: 1/3 scenarios done, 1 FAIL")


def _plain(text: str) -> str:
    """`text` without terminal control sequences (rich's erase-line, cursor hide/show)."""
    import re

    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def test_progress_lines_fit_100_columns_on_a_terminal_and_in_a_log():
    import io

    from evsynth.methods.sweep import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for stream in (Terminal(), io.StringIO()):
        meter = Progress(total=3, resumed=1, label="a very long label " * 5, stream=stream)
        assert len(meter.text()) > 100
        meter.update(failed=True)
        meter.show(final=True)
        lines = [line for line in _plain(stream.getvalue()).replace("\r", "\n").splitlines() if line]
        assert lines and all(len(line) <= 100 for line in lines), lines
        assert all(line.endswith("…") and line.startswith("a very long label") for line in lines)


def test_a_fit_cut_short_by_ctrl_c_is_never_recorded():
    """nutpie returns the draws so far on Ctrl-C; such a fit must stop the sweep, not become a row."""
    import arviz as az

    options = sens.FitOptions(chains=2, draws=100)
    full = az.from_dict({"posterior": {"mu": np.zeros((2, 100))}})
    sens._check_complete(full, options)
    with pytest.raises(KeyboardInterrupt):
        sens._check_complete(az.from_dict({"posterior": {"mu": np.zeros((2, 37))}}), options)


# ---- sampled sweeps ------------------------------------------------------------------------

needs_nutpie = pytest.mark.skipif(not sens.nutpie_available(), reason="the compile-once path needs nutpie")


@pytest.mark.slow  # MCMC sweeps: 20-80 s on the shared machine
@needs_nutpie
def test_reuse_equals_rebuild_within_monte_carlo_error(demo):
    """Compile once + swap data/priors/mask == build and compile the reduced model per scenario.

    The grid's corners differ in every setting at once (tau prior scale, r, exclusion), so a
    scenario that kept the compiled model's first data, prior or mask would be far off."""
    grid = sens.Sensitivity(demo, tau_prior=["halfnormal(0.05)", "halfnormal(2)"], r_prepost=[0.2, 0.9],
                            exclude=[None, "technique in ('combined', 'oxytocin')"], chains=4, draws=1000,
                            tune=500, **COMMON)
    reused = grid.run(progress=False).set_index(["scenario", "parameter"])
    first, last = grid.scenarios()[0], grid.scenarios()[-1]
    context = grid.context
    for scenario in (first, last):
        record = sens.run_scenario(sens.Job(context, scenario, reuse=False))
        assert record["sampler"] == "nutpie" and not record["reused_compiled_model"]
        rebuilt = pd.DataFrame(record["rows"]).set_index("parameter")
        for parameter in ("pooled (mu)", "tau (between studies)"):
            a, b = reused.loc[(scenario.id, parameter)], rebuilt.loc[parameter]
            # MC standard error of a mean with ESS >= 250 per fit, 4.5 combined SEs
            tolerance = 4.5 * np.hypot(a["sd"], b["sd"]) / np.sqrt(250)
            for column in ("mean", "q50"):
                assert abs(a[column] - b[column]) < tolerance, (scenario.id, parameter, column)
    # the corners really differ (so the comparison above could fail)
    mu_first, mu_last = reused.loc[(first.id, "pooled (mu)")], reused.loc[(last.id, "pooled (mu)")]
    tau_first, tau_last = (reused.loc[(s.id, "tau (between studies)"), "mean"] for s in (first, last))
    assert tau_last > 4 * tau_first
    assert abs(mu_first["mean"] - mu_last["mean"]) > 0.1
    assert set(reused.reset_index()["n_studies"]) == {18, 8}


@pytest.mark.slow  # MCMC against quadrature (a statistical check)
@needs_nutpie
def test_reuse_agrees_with_exact_quadrature(demo):
    """An independent reference: the random-effects posterior by quadrature over tau
    (evsynth.engines.normal_normal), on a scenario that changes prior scale, r and the study mask."""
    settings = dict(tau_prior=["halfnormal(0.2)", "halfnormal(2)"], r_prepost=[0.9],
                    exclude=["technique in ('combined', 'oxytocin')"], leave_one_out=True, **COMMON)
    mcmc = sens.Sensitivity(demo, chains=4, draws=1000, tune=500, **settings)
    scenarios = mcmc.scenarios()
    chosen = [scenarios[0].id, scenarios[-1].id]  # hn(0.2) all 8 kept; hn(2) with one more left out
    mcmc.scenarios = lambda: [s for s in scenarios if s.id in chosen]
    sampled = mcmc.run(progress=False).set_index(["scenario", "parameter"])
    exact = sens.Sensitivity(demo, **(settings | {"engine": "exact"})).run(progress=False)
    assert set(exact["engine"]) == {"exact"} and set(sampled.reset_index()["engine"]) == {"pymc"}
    assert len(exact) == 3 * len(scenarios) and set(exact["verdict"]) == {"PASS"}
    exact = exact.set_index(["scenario", "parameter"])
    for key in sampled.index:
        a, b = sampled.loc[key], exact.loc[key]
        tolerance = 4.5 * b["sd"] / np.sqrt(250)
        for column in ("mean", "q50"):
            assert abs(a[column] - b[column]) < tolerance, (key, column, a[column], b[column])
        assert abs(a["p_gt_0"] - b["p_gt_0"]) < 0.03 or np.isnan(b["p_gt_0"])
    assert set(sampled.reset_index()["n_studies"]) == {8, 7}


def _check_leave_one_out(table, demo, scenarios):
    """The leave-one-out rows of a sweep: one per left-out study per parameter, 17 of the 18 studies
    fitted, and the left-out study out of the likelihood (the study pulling the pooled mean up
    hardest, precision-weighted, is the one whose removal lowers it; the hardest down raises it)."""
    assert list(table.columns) == sens.COLUMNS
    parameters = ["pooled (mu)", "tau (between studies)", "prediction (new study)"]
    assert sorted(table["parameter"].unique()) == sorted(parameters)
    assert list(table["scenario"].unique()) == [s.id for s in scenarios]
    loo = table[table["left_out"] != ""]
    counts = loo.groupby(["left_out", "parameter"]).size()
    assert (counts == 1).all() and len(counts) == (len(scenarios) - 1) * len(parameters)
    assert set(loo["left_out"]) == {s.left_out for s in scenarios[1:]} and (loo["n_studies"] == 17).all()
    assert (table.loc[table["left_out"] == "", "n_studies"] == 18).all()
    pull = _pull(demo)
    pooled = table[table["parameter"] == "pooled (mu)"].set_index("left_out")["mean"]
    assert pooled[pull.idxmin()] - pooled[pull.idxmax()] > 0.03


def _pull(demo) -> pd.Series:
    """Each used study's precision-weighted pull on the pooled mean, by study_id."""
    effects = es.used_effects(es.compute_effects(demo)).set_index("study_id")
    return (effects["yi"] - effects["yi"].mean()) / effects["sei"] ** 2


def test_leave_one_out_has_one_row_per_study_per_parameter(demo):
    """Every study's leave-one-out scenario, on the exact engine (no sampling)."""
    grid = sens.Sensitivity(demo, tau_prior=["halfnormal(0.5)"], r_prepost=[0.5], leave_one_out=True, **EXACT)
    scenarios = grid.scenarios()
    studies = set(es.used_effects(es.compute_effects(demo))["study_id"])
    assert scenarios[0].left_out == "" and {s.left_out for s in scenarios[1:]} == studies
    table = grid.run(progress=False)
    _check_leave_one_out(table, demo, scenarios)
    assert set(table["verdict"]) == {"PASS"} and set(table["engine"]) == {"exact"}


@needs_nutpie
def test_leave_one_out_on_the_compiled_model_drops_the_study(demo):
    """The compile-once PyMC path leaves a study out by its weight in the compiled model: the
    baseline and the two studies that pull the pooled mean hardest either way (3 of the 19
    scenarios; every study's row is checked on the exact engine above)."""
    grid = sens.Sensitivity(demo, tau_prior=["halfnormal(0.5)"], r_prepost=[0.5], leave_one_out=True,
                            **COMMON, **SMALL)
    scenarios, pull = grid.scenarios(), _pull(demo)
    chosen = [scenarios[0]] + [s for s in scenarios if s.left_out in (pull.idxmin(), pull.idxmax())]
    grid.scenarios = lambda: chosen
    table = grid.run(progress=False)
    _check_leave_one_out(table, demo, chosen)
    assert set(table["engine"]) == {"pymc"} and set(table["verdict"]) <= {"PASS", "FAIL"}
    failed = table[table["verdict"] == "FAIL"]
    assert (failed["problems"] != "").all()  # a FAIL always says why


def test_too_few_studies_is_not_fitted_and_not_a_failure(demo):
    grid = sens.Sensitivity(demo, tau_prior=["halfnormal(0.5)"], exclude=["technique != 'neck' or n_ctrl > 20 or n > 20"],
                            **COMMON, **SMALL)
    table = grid.run(progress=False)  # nothing to sample: no sampler needed
    assert len(table) == 1
    row = table.iloc[0]
    assert row["verdict"] == sens.NOT_FITTED and row["n_studies"] == 1 and np.isnan(row["mean"])
    assert row["problems"].startswith("not fitted: 1 usable study left")


def test_cli_counts_not_fitted_apart_from_failures(tmp_path, capsys):
    spec = write_spec(tmp_path, exclude='["", "technique != \'neck\' or n_ctrl > 20 or n > 20"]')
    assert main(["sensitivity", str(spec), "--out", str(tmp_path / "out"), "--quiet"]) == 0  # not a failure
    captured = capsys.readouterr()
    # exact engine: the fitted scenario is counted as exact (nothing to diagnose), not as a PASS
    assert ("2 scenarios: 1 exact (no MCMC, nothing to diagnose), 0 PASS, 0 FAIL (diagnostics), 0 error, 1 not "
            "fitted") in " ".join(captured.out.split())
    assert "1 scenario(s) not fitted (nothing sampled, so no diagnostic failed)" in captured.err
    assert "DIAGNOSTICS FAILED" not in captured.err


@needs_nutpie
def test_resume_skips_finished_scenarios(demo, tmp_path, monkeypatch):
    out = tmp_path / "sweep.jsonl"
    first = sens.Sensitivity(demo, tau_prior=["halfnormal(0.5)"], r_prepost=[0.5], **COMMON, **SMALL)
    table_one = first.run(out=out, progress=False)
    calls = []
    original = sens.run_scenario
    monkeypatch.setattr(sens, "run_scenario", lambda job: calls.append(job.scenario.id) or original(job))
    bigger = sens.Sensitivity(demo, tau_prior=["halfnormal(0.5)"], r_prepost=[0.5, 0.8], **COMMON, **SMALL)
    table_two = bigger.run(out=out, progress=False)
    assert calls == ["tau halfnormal(0.5) | r 0.8"]
    assert len(out.read_text().splitlines()) == 2
    pd.testing.assert_frame_equal(table_two[table_two["r_prepost"] == 0.5].reset_index(drop=True), table_one)
    with pytest.raises(SweepFileError, match="other settings"):
        sens.Sensitivity(demo, tau_prior=["halfnormal(0.5)"], **COMMON, **(SMALL | {"draws": 301})).run(
            out=out, progress=False)


@needs_nutpie
def test_dask_client_runs_the_same_sweep(demo):
    distributed = pytest.importorskip("distributed")
    grid = sens.Sensitivity(demo, tau_prior=["halfnormal(0.5)", "halfnormal(1)"], **COMMON, **SMALL)
    local = grid.run(progress=False)
    # threads in this process: the worker reuses this process's compiled model, so the test is cheap
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        remote = grid.run(executor=client, progress=False)
    # same compiled model, data and seed: the same draws
    pd.testing.assert_frame_equal(remote, local)


# ---- spec files and the CLI -----------------------------------------------------------------

def test_shipped_spec_files_parse(demo):
    spec = load_spec(ROOT / "models" / "synthetic_demo_sensitivity.toml")
    grid = sens.Sensitivity(**spec.sensitivity)
    assert spec.name == "synthetic_demo_sensitivity" and spec.n_jobs == 2
    assert Path(spec.sensitivity["studies"]).resolve() == DEMO
    assert grid.model == "by_technique" and grid.priors == {"mu": "normal(0, 1)", "tau_technique": "halfnormal(0.5)"}
    assert len(grid.scenarios()) == 3 * 4 * 3
    massage = sens.Sensitivity(**load_spec(ROOT / "models" / "massage_sensitivity.toml").sensitivity)
    assert massage.outcome == "milk volume" and massage.model == "by_technique"
    assert massage.techniques == ["as labelled", "by massage component"]


def test_shipped_massage_spec_has_no_scenario_unfittable_by_construction():
    grid = sens.Sensitivity(**load_spec(ROOT / "models" / "massage_sensitivity.toml").sensitivity)
    scenarios = grid.scenarios()
    assert len(scenarios) == 2 * 3 * 3 * 2
    kept = {}
    for scenario in scenarios:
        effects, ids = sens.scenario_effects(grid.context, scenario)
        assert len(ids) >= 2, scenario.id
        used = effects[effects["study_id"].isin(ids)]
        kept[(scenario.exclude, scenario.techniques)] = (sorted(ids), sorted(set(used["technique"])))
    assert kept[("", "as labelled")] == (["fara2022", "jose_manipal", "kundarti2025", "langgeng2020", "pratama2023",
                                          "saputri2015_marmet", "viswanath2016"],
                                         ["breast massage", "marmet", "oxytocin"])
    # no used row is a combination today (hesti2017, breast care + oxytocin, is a change-score row kept apart)
    assert kept[("", "by massage component")][1] == ["breast massage", "marmet", "oxytocin"]
    assert kept[("design == 'pre_post'", "as labelled")] == (["jose_manipal", "kundarti2025", "langgeng2020"],
                                                             ["breast massage", "oxytocin"])
    assert kept[("design == 'pre_post'", "by massage component")][1] == ["breast massage", "oxytocin"]
    assert len(kept[("source_level == 'secondary'", "as labelled")][0]) == 6
    ids = {s.id for s in scenarios}
    assert "tau halfnormal(0.5) | r 0.3 | techniques by massage component" in ids


SPEC = """
title = "tiny"
[data]
studies = "{studies}"
outcome = "milk volume"
[model]
name = "random_effects"
priors = {{ mu = "normal(0, 1)" }}
[fit]
chains = 2
draws = 300
tune = 300
seed = 7
[grid]
tau_prior = ["halfnormal(0.5)"]
r_prepost = [0.5]
exclude = {exclude}
"""


def write_spec(tmp_path, exclude='["", "design == \'pre_post\'"]', name="tiny.toml", **replace):
    shutil.copy(DEMO, tmp_path / "demo.csv")
    text = SPEC.format(studies="demo.csv", exclude=exclude)
    for old, new in replace.items():
        text = text.replace(old, new)
    (tmp_path / name).write_text(text)
    return tmp_path / name


@pytest.mark.parametrize("change, message", [
    ({"[grid]": "[grid]\nleave_one_ot = true"}, "[grid] leave_one_ot: unknown key"),
    ({"chains = 2": "chains = '2'"}, "[fit] chains: expected int"),
    ({"[fit]": "[fitting]"}, "unknown section or key 'fitting'"),
    ({'studies = "demo.csv"': 'studies = "nowhere.csv"'}, "[data] studies"),
    ({'mu = "normal(0, 1)"': 'mu = "normal(0, 1)", tau = "halfnormal(1)"'}, "swept"),
    ({"r_prepost = [0.5]": "r_prepost = []"}, "at least one value"),
    ({"r_prepost = [0.5]": "r_prepost = [0.5]\ntechniques = ['by component']"}, "[grid] techniques: ['by component']"),
    ({"title": "title = \"x\"\ntitle"}, "not valid TOML"),
])
def test_spec_errors_name_the_section_and_key(tmp_path, change, message):
    with pytest.raises(SpecError) as info:
        load_spec(write_spec(tmp_path, **change))
    assert message in str(info.value) and "tiny.toml" in str(info.value)


@needs_nutpie
def test_cli_runs_a_tiny_grid_and_resumes(tmp_path, capsys):
    spec = write_spec(tmp_path)
    out = tmp_path / "out"
    assert main(["sensitivity", str(spec), "--out", str(out), "--quiet", "--accept-failed"]) == 0
    printed = capsys.readouterr().out
    assert "2 scenarios on 'milk volume' (random_effects, SMD)" in printed
    assert "tau halfnormal(0.5) | r 0.5 | excl design == 'pre_post'" in printed
    table = pd.read_csv(out / "tiny.csv", keep_default_na=False)
    assert list(table.columns) == sens.COLUMNS
    assert table["scenario"].nunique() == 2 and set(table["n_studies"]) == {18, 10}
    assert (out / "tiny_pooled.png").stat().st_size > 0
    records = [json.loads(line) for line in (out / "tiny.jsonl").read_text().splitlines()]
    assert [r["key"] for r in records] == list(table["scenario"].unique())
    # second run: nothing left to fit, same table
    assert main(["sensitivity", str(spec), "--out", str(out), "--quiet", "--accept-failed"]) == 0
    assert len((out / "tiny.jsonl").read_text().splitlines()) == 2
    pd.testing.assert_frame_equal(pd.read_csv(out / "tiny.csv", keep_default_na=False), table)


def test_cli_refuses_a_malicious_rule_before_fitting(tmp_path, capsys):
    spec = write_spec(tmp_path, exclude='["__import__(\'os\').system(\'touch pwned\')"]')
    assert main(["sensitivity", str(spec), "--out", str(tmp_path / "out")]) == 2
    assert "'__import__' is not a column of the study table" in capsys.readouterr().err
    assert not (tmp_path / "out" / "tiny.jsonl").exists() and not Path("pwned").exists()


@pytest.mark.slow  # MCMC sweeps: 20-80 s on the shared machine
@needs_nutpie
def test_threads_compile_each_structure_once_and_match_a_sequential_run(demo, monkeypatch):
    """Two tau families = two graph structures: each compiled once for two threads, and the
    threads' draws are those of running the scenarios one by one (same compiled model, data, seed)."""
    compiles = []
    monkeypatch.setattr(sens, "_COMPILED", {})
    monkeypatch.setattr(sens, "_KEY_LOCKS", {})
    real = sens.compile_nutpie
    monkeypatch.setattr(sens, "compile_nutpie", lambda model: compiles.append(model) or real(model))
    grid = sens.Sensitivity(demo, tau_prior=["halfnormal(0.5)", "halfcauchy(0.5)"], r_prepost=[0.3, 0.8],
                            **COMMON, **SMALL)
    threaded = grid.run(n_jobs=2, progress=False)
    assert len(compiles) == 2
    sequential = grid.run(n_jobs=1, progress=False)
    assert len(compiles) == 2
    pd.testing.assert_frame_equal(threaded, sequential)
    assert threaded["tau_prior"].nunique() == 2 and (threaded["verdict"] != "").all()


@pytest.mark.slow  # MCMC sweeps: 20-80 s on the shared machine
@needs_nutpie
def test_worker_processes_give_the_threads_results(demo):
    """The same sweep in two local worker processes (each compiles for itself) and in threads."""
    grid = sens.Sensitivity(demo, tau_prior=["halfnormal(0.5)"], r_prepost=[0.3, 0.8], **COMMON, **SMALL)
    in_processes = grid.run(n_jobs=2, workers="processes", progress=False)
    pd.testing.assert_frame_equal(in_processes, grid.run(n_jobs=2, workers="threads", progress=False))
    with pytest.raises(ValueError, match="workers"):
        grid.run(workers="fibres", progress=False)


@pytest.mark.slow  # MCMC sweeps: 20-80 s on the shared machine
@needs_nutpie
def test_draws_do_not_depend_on_which_scenario_compiled_the_model(demo, monkeypatch):
    """A compiled model keeps the starting point of the graph it was compiled from: the sweep's
    start must not depend on the swept hyper-parameters, or results would depend on run order."""
    wide = "tau halfnormal(2) | r 0.5"
    monkeypatch.setattr(sens, "_COMPILED", {})
    both = sens.Sensitivity(demo, tau_prior=["halfnormal(0.05)", "halfnormal(2)"], **COMMON, **SMALL)
    after_narrow = both.run(progress=False)  # the structure is compiled from the halfnormal(0.05) graph
    monkeypatch.setattr(sens, "_COMPILED", {})
    alone = sens.Sensitivity(demo, tau_prior=["halfnormal(2)"], **COMMON, **SMALL).run(progress=False)
    pd.testing.assert_frame_equal(after_narrow[after_narrow["scenario"] == wide].reset_index(drop=True), alone)


# ---- the exact engine ------------------------------------------------------------------------

def test_auto_engine_is_exact_where_the_model_is_gaussian(demo):
    assert sens.Sensitivity(demo, **(COMMON | {"engine": "auto"})).engine == "exact"
    assert sens.Sensitivity(demo, **(COMMON | {"engine": "auto", "model": "selection"})).engine == "pymc"
    with pytest.raises(ValueError, match="no Gaussian description"):
        sens.Sensitivity(demo, **(COMMON | {"engine": "exact", "model": "selection"}))
    with pytest.raises(ValueError, match="engine 'nuts' unknown"):
        sens.Sensitivity(demo, **(COMMON | {"engine": "nuts"}))


def test_exact_sweep_rows_are_the_exact_posterior_of_each_reduced_table(demo):
    """by_technique with leave-one-out and an exclusion that removes whole techniques: each row
    is the exact engine's answer on that scenario's own table, techniques out of the scenario
    are not reported, and every row says which engine produced it."""
    from evsynth.model import description
    from evsynth.engines.exact import summary_table

    grid = sens.Sensitivity(demo, tau_prior=["halfcauchy(0.5)"], r_prepost=[0.3],
                            exclude=[None, "technique in ('combined', 'oxytocin')"], leave_one_out=True,
                            **(EXACT | {"model": "by_technique", "priors": {"mu": "normal(0, 1)"}}))
    table = grid.run(progress=False)
    assert list(table.columns) == sens.COLUMNS
    assert set(table["engine"]) == {"exact"} and set(table["verdict"]) == {"PASS"}
    assert table["scenario"].nunique() == 1 + 18 + 1 + 8
    effects = es.compute_effects(demo, r_prepost=0.3)
    effects = effects[effects["outcome"] == "milk volume"]
    used = es.used_effects(effects)
    reduced_techniques = table[table["exclude"] != ""]
    assert not reduced_techniques["parameter"].isin(["technique: combined", "technique: oxytocin"]).any()
    for scenario in (grid.scenarios()[5], grid.scenarios()[-1]):
        keep = used["study_id"] != scenario.left_out
        if scenario.exclude:
            keep &= ~used["technique"].isin(["combined", "oxytocin"])
        reduced = used[keep].reset_index(drop=True)
        reduced.attrs = dict(effects.attrs)
        expected = summary_table(description.by_technique(reduced, {"mu": "normal(0, 1)", "tau": "halfcauchy(0.5)"}))
        got = table[table["scenario"] == scenario.id].set_index("parameter")
        assert list(got.index) == list(expected.index)
        for column, theirs in (("mean", "mean"), ("sd", "sd"), ("q2.5", "q2.5"), ("q97.5", "q97.5"),
                               ("p_gt_0", "P(>0)")):
            np.testing.assert_allclose(got[column], expected[theirs], rtol=1e-9, atol=1e-12)
    # leaving a study out moves the pooled estimate: the scenarios really differ
    pooled = table[(table["parameter"] == "pooled (mu)") & (table["exclude"] == "")]["mean"]
    assert pooled.max() - pooled.min() > 0.02


@pytest.mark.parametrize("kind", sens.SAME_BUT_TAU)
def test_a_sweep_derives_each_tau_priors_description_equal_to_describing_it(demo, kind):
    """The exact sweep describes the model once per r and grouping and swaps the tau prior in
    (_described); that must be the very description describe() gives under that prior (the same
    digest: data, priors, settings), for every prior family the sweeps use, while a model whose
    constructor uses tau otherwise is described afresh."""
    from evsynth.engines.exact import model_digest
    from evsynth.model.description import describe

    effects = es.compute_effects(demo, r_prepost=0.3)
    effects = effects[effects["outcome"] == "milk volume"]
    context = sens.Sensitivity(demo, **(EXACT | {"model": kind})).context
    fixed = {"mu": "normal(0, 1)"} | ({"tau_technique": "halfnormal(0.5)"} if kind == "by_technique" else {})
    first = describe(kind, effects, fixed | {"tau": "halfnormal(0.5)"})
    for tau in ["halfnormal(1)", "halfcauchy(0.5)", "halfstudent_t(3, 0.5)", "exponential(2)", "uniform(0, 2)",
                "rhodes2015()", "lognormal(-2, 1)"]:
        derived = sens._described(context, effects, fixed | {"tau": tau}, first)
        expected = describe(kind, effects, fixed | {"tau": tau})
        assert derived.study_prior == expected.study_prior and derived.settings == expected.settings, tau
        assert model_digest(derived) == model_digest(expected), tau
    common = sens.Sensitivity(demo, **(EXACT | {"model": "common_effect"})).context
    assert sens._described(common, effects, {"mu": "normal(0, 1)"}, first).kind == "common_effect"  # afresh


def test_spec_engine_key_and_cli_option(tmp_path, capsys):
    spec = write_spec(tmp_path, **{"[fit]": "engine = \"pymc\"\n[fit]"})
    assert load_spec(spec).sensitivity["engine"] == "pymc"
    bad = write_spec(tmp_path, name="bad.toml", **{"[fit]": "engine = \"quick\"\n[fit]"})
    with pytest.raises(ValueError, match=r"bad.toml, \[model\] engine: 'quick' unknown"):
        sens.Sensitivity(**load_spec(bad).sensitivity)
    out = tmp_path / "out"
    assert main(["sensitivity", str(spec), "--engine", "exact", "--out", str(out), "--quiet"]) == 0
    assert "exact engine" in capsys.readouterr().out
    table = pd.read_csv(out / "tiny.csv", keep_default_na=False)
    assert set(table["engine"]) == {"exact"} and table["scenario"].nunique() == 2
