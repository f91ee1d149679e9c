"""Same seed, same draws, cold or warm compile cache (issue 25). A fit in a process whose compile
directory is empty and one in a process that finds everything cached drew differently before (infant
weight: CrI lower bound -0.335 cold, -0.361 warm): numba's freshly compiled log-density and the one
it loads from its cache differ by an ulp. Each run here is its own process with its own fresh compile
directory where the test says so, as a user's first and second `evsynth fit` are."""

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT

pytest.importorskip("nutpie")

SCRIPT = """
import sys
import numpy as np
from evsynth.data.studies import load_studies
from evsynth.effects.table import compute_effects
from evsynth.engines.fit import fit
from evsynth.methods.analysis import group_by_outcome
from evsynth.model.description import describe

effects = compute_effects(load_studies(sys.argv[1]))
table = group_by_outcome(effects, False)["infant weight"]
model = describe("random_effects", table, {})
runs = [fit(model, draws=150, tune=150, chains=2, seed=11, log_likelihood=False) for _ in range(int(sys.argv[3]))]
np.save(sys.argv[2], np.stack([r["posterior"]["mu"].to_numpy() for r in runs]))
"""


def draws(tmp_path, compile_dir, name, fits=1):
    env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={compile_dir}",
               PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    out = tmp_path / f"{name}.npy"
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT / "studies" / "massage.csv"), str(out), str(fits)],
                         env=env, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr[-3000:]
    return np.load(out)


@pytest.mark.slow  # three processes, one compiling from nothing (~1 min)
def test_cold_and_warm_compile_cache_give_the_same_draws(tmp_path):
    compile_dir = tmp_path / "compiledir"
    cold = draws(tmp_path, compile_dir, "cold", fits=2)  # a fresh directory; then again in the same process
    assert (compile_dir / "evsynth_nutpie").is_dir() and list((compile_dir / "evsynth_nutpie").glob("*.json"))
    warm = draws(tmp_path, compile_dir, "warm")
    np.testing.assert_array_equal(cold[0], cold[1])
    np.testing.assert_array_equal(cold[0], warm[0])
    assert np.std(warm[0]) > 0
