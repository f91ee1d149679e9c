"""The on-disk cache of nutpie's compiled callbacks (engines/nutpie_cache.py) and the numpy pointwise
log-likelihood: a fit loaded from the cache draws exactly what the freshly compiled one drew, a
damaged cache entry is recompiled, the key follows the data, and log p(y_i | theta_i) equals what
PyMC computes (censored rows included)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pymc as pm
import pytest

from evsynth.model import description
from evsynth.engines import nutpie_cache
from evsynth.engines.pymc import build
from evsynth.engines.fit import fit

from conftest import censored_milk_effects

pytest.importorskip("nutpie")
SETTINGS = dict(draws=200, tune=200, chains=2, seed=5)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(nutpie_cache, "_cache_dir", lambda: tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def model():
    effects = censored_milk_effects()
    return description.random_effects(effects[effects["used"]].reset_index(drop=True))


def draws(idata):
    return idata["posterior"]["mu"].to_numpy()


def test_a_cached_model_draws_what_the_compiled_one_drew(model, cache_dir, monkeypatch):
    first = fit(model, **SETTINGS)
    assert len(list(cache_dir.glob("*.json"))) == 1
    compiled = []
    monkeypatch.setattr(nutpie_cache, "_compile", lambda *a: compiled.append(a) or pytest.fail("recompiled"))
    second = fit(model, **SETTINGS)
    assert not compiled
    np.testing.assert_array_equal(draws(first), draws(second))
    assert float(second["posterior"]["tau"].std()) > 0  # it sampled


def test_a_damaged_cache_entry_is_compiled_again(model, cache_dir, milk_cache_entry):
    shutil.copy2(milk_cache_entry, cache_dir)  # a good entry, as the first fit writes it
    first = fit(model, **SETTINGS)
    (entry,) = cache_dir.glob("*.json")
    entry.write_bytes(b"not a pickle")
    again = fit(model, **SETTINGS)
    np.testing.assert_array_equal(draws(first), draws(again))
    # callbacks missing from numba's cache (their key unknown): compiled again, not loaded as None
    spec = json.loads(entry.read_text())
    spec["keys"] = {name: key[::-1] for name, key in spec["keys"].items()}
    entry.write_text(json.dumps(spec))
    assert nutpie_cache._load(entry) is None
    np.testing.assert_array_equal(draws(first), draws(fit(model, **SETTINGS)))


def test_a_cached_model_is_sampled_without_a_pymc_model(model, cache_dir, milk_cache_entry, monkeypatch):
    """A cache hit builds no pm.Model: the result's data, dims, coordinates and settings come from the
    description (pymc_layout.layout), and equal, group by group, the result made from the pm.Model's
    own (model_layout of build): the same draws, every other group and attribute identical."""
    from evsynth.engines import fit as fit_module, pymc as pymc_engine
    from evsynth.engines.pymc_layout import model_layout

    shutil.copy2(milk_cache_entry, cache_dir)
    monkeypatch.setattr(pymc_engine, "build", lambda *a, **k: pytest.fail("a pm.Model was built"))
    known = fit(model, **SETTINGS)
    monkeypatch.undo()
    monkeypatch.setattr(nutpie_cache, "_cache_dir", lambda: cache_dir)
    monkeypatch.setattr(fit_module, "layout", lambda description: model_layout(build(description)))
    built = fit(model, **SETTINGS)
    assert list(known.children) == list(built.children)
    for group in built.children:
        a, b = known[group].to_dataset(), built[group].to_dataset()
        a.attrs.pop("created_at", None), b.attrs.pop("created_at", None)
        assert a.identical(b), group
    assert known.attrs == built.attrs


def test_a_compile_child_that_fails_is_not_started_twice(model, cache_dir, monkeypatch):
    """A fit whose compiling child leaves no entry compiles once in its own process (and writes the
    entry: the next fit loads it), instead of starting a second child that would fail the same way."""
    children = []
    monkeypatch.setattr(nutpie_cache, "_compile_in_child", lambda work, *a: children.append(work))
    first = fit(model, **SETTINGS)
    assert len(children) == 1 and len(list(cache_dir.glob("*.json"))) == 1
    monkeypatch.setattr(nutpie_cache, "_compile", lambda *a: pytest.fail("compiled again"))
    assert float(fit(model, **SETTINGS)["posterior"]["tau"].std()) > 0 and len(children) == 1
    assert float(first["posterior"]["tau"].std()) > 0


def test_a_warm_fit_does_not_import_pymc(model, cache_dir, milk_cache_entry):
    """The process of a warm `evsynth fit` (its models in the cache) never imports PyMC (~0.25 s)."""
    import subprocess
    import sys

    shutil.copy2(milk_cache_entry, cache_dir)
    code = f"""
import sys
from pathlib import Path
sys.path.insert(0, {str(Path(__file__).parent)!r})
from evsynth.engines import nutpie_cache
from evsynth.engines.fit import fit
from evsynth.model import description
from conftest import censored_milk_effects
nutpie_cache._cache_dir = lambda: Path({str(cache_dir)!r})
effects = censored_milk_effects()
idata = fit(description.random_effects(effects[effects["used"]].reset_index(drop=True)), **{SETTINGS!r})
print(sorted(name for name in ("pymc", "pymc.model") if name in sys.modules), float(idata["posterior"]["mu"].std()) > 0)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["[]", "True"]


def test_the_key_follows_the_data_and_the_priors(model):
    key = nutpie_cache._description_key(model)
    assert nutpie_cache._description_key(model) == key
    shifted = description.random_effects(
        censored_milk_effects().query("used").reset_index(drop=True).assign(yi=lambda t: t.yi + 0.01))
    assert nutpie_cache._description_key(shifted) != key
    prior = description.random_effects(censored_milk_effects().query("used").reset_index(drop=True),
                                       {"tau": "halfnormal(0.6)"})
    assert nutpie_cache._description_key(prior) != key


def test_numpy_log_likelihood_equals_pymc_with_censored_rows(model):
    assert model.censored.any() and not model.censored.all()
    idata = fit(model, **SETTINGS)  # a description: its log-likelihood by engines.exact.pointwise_loglik
    pymc_model = build(model)
    with pymc_model:
        expected = pm.compute_log_likelihood(idata.copy(), progressbar=False)["log_likelihood"]["y"]
    ours = idata["log_likelihood"]["y"]
    ours, expected = ours.transpose(*expected.dims).to_numpy(), expected.to_numpy()
    censored = model.censored
    np.testing.assert_allclose(ours[..., ~censored], expected[..., ~censored], rtol=1e-12, atol=1e-12)
    # Censored rows: PyMC's normal log-CDF is an approximation good to ~2e-8 (against mpmath at 40
    # digits: 1.4e-8 at z = -3, 1.6e-8 for the upper tail at z = 5); scipy's log_ndtr, used here, to 2e-15.
    np.testing.assert_allclose(ours[..., censored], expected[..., censored], rtol=0, atol=5e-8)
    assert idata["log_likelihood"]["y"].dims == ("chain", "draw", "study")


def test_a_frozen_compiled_model_refuses_other_data(model):
    from evsynth.engines.fit import compile_nutpie

    frozen = compile_nutpie(build(model), reusable=False, description=model)
    with pytest.raises(ValueError, match="data frozen in"):
        fit(model, compiled=frozen, **SETTINGS)


def test_precompile_compiles_each_missing_entry_once(model, cache_dir, monkeypatch):
    other = description.random_effects(censored_milk_effects().query("used").reset_index(drop=True),
                                       {"tau": "halfnormal(0.6)"})
    started = []

    def child(work):  # stands in for a compiling child process
        for _, path in work:
            started.append(path)
            path.write_text("{}")

    monkeypatch.setattr(nutpie_cache, "_compile_in_child", child)
    assert nutpie_cache.uncached([model, other, model]) == [model, other]
    assert nutpie_cache.precompile([model, other, model]) == 2
    keys = {nutpie_cache._description_key(m) for m in (model, other)}
    assert sorted(p.name for p in started) == sorted(f"{k}.json" for k in keys)
    assert nutpie_cache.uncached([model, other]) == [] and nutpie_cache.precompile([model, other]) == 0
    assert len(started) == 2
    (cache_dir / f"{nutpie_cache._description_key(model)}.json").unlink()
    monkeypatch.setenv(nutpie_cache.CHILD, "1")  # a compiling child does not start children
    assert nutpie_cache.uncached([model]) == [] and nutpie_cache.precompile([model]) == 0
    assert len(started) == 2


def test_a_precompiled_model_is_loaded_and_draws_as_a_warm_one(model, cache_dir, monkeypatch, milk_cache_entry):
    compiler = nutpie_cache.start_compiler()  # the cache is empty: a child is started ahead
    assert compiler is not None and compiler.poll() is None
    assert nutpie_cache.precompile([model], compiler) == 1  # that child compiles it
    assert compiler.wait(timeout=600) == 0
    (entry,) = cache_dir.glob("*.json")
    assert entry.name == milk_cache_entry.name and json.loads(entry.read_text()) == json.loads(
        milk_cache_entry.read_text())
    monkeypatch.setattr(nutpie_cache, "_compile", lambda *a: pytest.fail("compiled in this process"))
    monkeypatch.setattr(nutpie_cache, "_compile_in_child", lambda *a: pytest.fail("compiled again"))
    precompiled = fit(model, **SETTINGS)
    shutil.copy2(milk_cache_entry, entry)  # the entry a fit's own compile wrote
    np.testing.assert_array_equal(draws(precompiled), draws(fit(model, **SETTINGS)))


@pytest.mark.parametrize("engine, sampler, expected", [("auto", "auto", 2), ("auto", "nutpie", 2),
                                                       ("pymc", "auto", 0), ("exact", "auto", 0),
                                                       ("auto", "pymc", 0)])
def test_fit_compiles_ahead_the_models_its_fits_sample(monkeypatch, engine, sampler, expected):
    """`evsynth fit` compiles ahead exactly the descriptions its fits are then keyed by (bundled data:
    milk volume by technique, infant weight random effects), and none when nothing is sampled from one."""
    from evsynth.cli import fit as cli_fit
    from evsynth.cli.main import build_parser
    from evsynth.engines import fit as fit_module
    from evsynth.methods.analysis import run_analysis, split_by_outcome
    from evsynth.cli.common import load_effects, sampling_options

    args = build_parser().parse_args(["fit", "--engine", engine, "--sampler", sampler, "--quiet"])
    cli_fit.check_dependence_arguments(args)  # as cmd_fit does first
    _, effects = load_effects(args)
    runnable, _ = split_by_outcome(effects, args.pool_outcomes, args.keep_samples)
    nested = cli_fit.dependence_options(args, runnable)
    ahead = []
    monkeypatch.setattr(nutpie_cache, "uncached", lambda descriptions: list(descriptions))
    monkeypatch.setattr(nutpie_cache, "precompile", lambda descriptions, compiler=None: ahead.extend(descriptions))
    cli_fit.compile_ahead(runnable, nested, args)
    assert len(ahead) == expected
    if not expected:
        return
    fitted = []

    class Stop(Exception):
        pass

    def record(model, **options):
        fitted.append(model)
        raise Stop

    monkeypatch.setattr(fit_module, "fit", record)
    for label, table in runnable.items():
        with pytest.raises(Stop):
            run_analysis(label, table, model=args.model, priors=dict(args.prior), mods=args.mods, **nested[label],
                         **sampling_options(args))
    assert [nutpie_cache._description_key(m) for m in ahead] == [nutpie_cache._description_key(m) for m in fitted]


def test_precompile_compiles_every_missing_model_in_one_child(model, cache_dir, monkeypatch):
    others = [description.random_effects(censored_milk_effects().query("used").reset_index(drop=True),
                                         {"tau": f"halfnormal({s})"}) for s in (0.6, 0.7)]
    children = []
    monkeypatch.setattr(nutpie_cache, "_compile_in_child", lambda work: children.append([p for _, p in work]))
    assert nutpie_cache.precompile([model, *others, model]) == 3
    assert len(children) == 1 and len(set(children[0])) == 3
    assert all(p.parent == cache_dir for p in children[0])


def test_a_compile_child_goes_on_after_a_model_that_fails(model, cache_dir, tmp_path):
    """The child process itself: the first model cannot be built (a correlated sampling error with a
    censored row, which build refuses); the second is compiled and written."""
    import pickle
    import subprocess
    import sys

    bad = description.random_effects(censored_milk_effects().query("used").reset_index(drop=True))
    bad = bad.__class__(**{**bad.__dict__, "sampling_cov": np.eye(bad.n)})
    with pytest.raises(ValueError, match="correlated sampling errors"):
        build(bad)
    paths = [tmp_path / "bad.json", tmp_path / "good.json"]
    env = dict(__import__("os").environ, **{nutpie_cache.CHILD: "1"})
    env["PYTHONPATH"] = __import__("os").pathsep.join(p for p in sys.path if p)
    done = subprocess.run([sys.executable, "-c", "from evsynth.engines.nutpie_cache import _child; _child()"],
                          input=pickle.dumps([(bad, str(paths[0])), (model, str(paths[1]))]), env=env,
                          capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not paths[0].exists() and paths[1].exists()
    assert nutpie_cache._load(paths[1]) is not None


def test_a_compiler_is_started_ahead_only_for_an_empty_cache_and_ends_without_work(model, cache_dir):
    (cache_dir / "entry.json").write_text("{}")
    assert nutpie_cache.start_compiler() is None  # a cache with entries: nothing started
    (cache_dir / "entry.json").unlink()
    compiler = nutpie_cache.start_compiler()
    assert nutpie_cache.precompile([], compiler) == 0  # nothing to compile: stopped
    assert compiler.poll() is not None
    compiler = nutpie_cache.start_compiler()
    compiler.stdin.close()  # its input ends with no work (the command ended early): it ends by itself
    assert compiler.wait(timeout=120) == 0
