"""The compile cache cannot run code (issue 25): an evsynth entry is JSON checked field by field (a
malformed or wrongly shaped entry is a miss, compiled again, never a traceback), and a compile
directory, cache folder or entry that another user could write is refused, naming the path."""

import json
import os
import shutil

import numpy as np
import pytest

from evsynth.engines import nutpie_cache
from evsynth.engines.fit import fit
from evsynth.engines.pymc import build
from evsynth.model import description

from conftest import censored_milk_effects

pytest.importorskip("nutpie")
SETTINGS = dict(draws=100, tune=100, chains=2, seed=7)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    folder = tmp_path / "evsynth_nutpie"
    folder.mkdir(mode=0o700)
    monkeypatch.setattr(nutpie_cache, "_cache_dir", lambda: folder)
    return folder


@pytest.fixture(scope="module")
def model():
    effects = censored_milk_effects()
    return description.random_effects(effects[effects["used"]].reset_index(drop=True))


@pytest.mark.slow
def test_an_entry_is_json_that_round_trips(model, cache_dir, milk_cache_entry):
    shutil.copy2(milk_cache_entry, cache_dir)  # as the first fit writes it
    fit(model, **SETTINGS)
    (entry,) = cache_dir.glob("*.json")
    spec = nutpie_cache._decode(entry.read_text())
    assert json.loads(nutpie_cache._encode(spec)) == json.loads(entry.read_text())
    assert not list(cache_dir.glob("*.pkl"))


def shaped_wrong(raw: dict) -> list[dict]:
    out = []
    for key, value in [("n_dim", "5"), ("n_dim", -1), ("support", [0.0]), ("support", "x"), ("keys", {"a": "b"}),
                       ("keys", {"logp_numba": "0" * 63, "expand_numba": "0" * 64}), ("shape_info", [1, 2]),
                       ("coords", {"study": [[1]]}), ("format", 1), ("format", 3), ("dims", {"z": "study"}),
                       ("posterior", [1]), ("posterior", "theta")]:
        out.append(dict(raw, **{key: value}))
    out.append({k: v for k, v in raw.items() if k != "keys"})
    out.append(dict(raw, shape_info=dict(raw["shape_info"], slices=[[0, 10**9]] * len(raw["shape_info"]["slices"]))))
    return out


@pytest.mark.slow
def test_malformed_or_wrongly_shaped_entries_are_misses(model, cache_dir, milk_cache_entry):
    shutil.copy2(milk_cache_entry, cache_dir)  # the first fit loads it
    first = fit(model, **SETTINGS)
    (entry,) = cache_dir.glob("*.json")
    raw = json.loads(entry.read_text())
    pickled = b"\x80\x04cos\nsystem\n(S'touch " + str(cache_dir / "owned").encode() + b"'\ntR."
    for bad in [b"", b"\x00\xff", b"[]", b"NaN", pickled, b'{"format": 1}'] + [
            json.dumps(r).encode() for r in shaped_wrong(raw)]:
        entry.write_bytes(bad)
        assert nutpie_cache._load(entry) is None, bad
    assert not (cache_dir / "owned").exists()
    # well formed, but naming other variables than the model's posterior: a miss too
    entry.write_text(json.dumps(dict(raw, posterior=["mu", "tau", "theta", "other"])))
    assert nutpie_cache._load(entry) is not None
    assert nutpie_cache.compile_nutpie_cached(build(model), model).evsynth_posterior == tuple(raw["posterior"])
    assert json.loads(entry.read_text())["posterior"] == raw["posterior"]  # compiled again, rewritten
    entry.write_bytes(pickled)
    again = fit(model, **SETTINGS)  # a miss: compiled again, the same draws
    np.testing.assert_array_equal(first["posterior"]["mu"], again["posterior"]["mu"])
    assert nutpie_cache._load(entry) is not None  # rewritten as a good entry


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.slow
def test_a_cache_others_can_write_is_refused_by_path(model, cache_dir, milk_cache_entry):
    cache_dir.chmod(0o777)
    with pytest.raises(nutpie_cache.CacheSecurityError, match=rf"{cache_dir}.*writable by other users"):
        fit(model, **SETTINGS)
    cache_dir.chmod(0o700)
    shutil.copy2(milk_cache_entry, cache_dir)  # instead of compiling it again
    fit(model, **SETTINGS)
    (entry,) = cache_dir.glob("*.json")
    entry.chmod(0o666)
    with pytest.raises(nutpie_cache.CacheSecurityError, match=rf"{entry}"):
        fit(model, **SETTINGS)
    entry.chmod(0o600)
    fit(model, **SETTINGS)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.slow
def test_a_shared_compile_directory_is_refused_from_the_cli(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={shared}")
    run = subprocess.run([sys.executable, "-m", "evsynth.cli.main", "fit", str(ROOT / "studies" / "massage.csv"),
                          "--out", str(tmp_path / "out"), "--engine", "pymc", "--draws", "10", "--tune", "10"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    assert f"compile cache {shared} is writable by other users" in run.stderr and "Traceback" not in run.stderr
