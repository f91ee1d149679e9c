"""Where the time of `evsynth fit` goes, cold (first process) and warm (second process).

End to end: `evsynth fit` on the bundled data (studies/massage.csv: two outcomes, their tables,
exact-engine checks, forest plots and saved results), twice in a row with one fresh PyTensor cache
directory (PYTENSOR_FLAGS=base_compiledir=<temporary>, where PyTensor's and evsynth's compiled
numba code is cached): the first run is cold, the second warm. Also `--engine exact` and `--help`.

Phases, timed inside a child process, for the milk-volume fit (the model `evsynth fit` chooses):

    import       evsynth's fit path with PyMC (the CLI itself imports none of it: see --help)
    build        effect sizes, the model description and its PyMC graph
    compile      nutpie: evsynth.engines.fit.compile_nutpie as a fit calls it (callbacks cached on
                 disk, engines/nutpie_cache.py; cold: one child process compiles this model, while
                 `evsynth fit` first compiles all its outcomes' models in one child);
                 pymc: the NUTS step's logp/dlogp function
                 (PyTensor's C backend, whose compiled modules are cached on disk)
    sample       4 chains x 2000 draws after 1000 tuning (evsynth fit's defaults)
    post         the posterior's other variables from the free ones (nutpie stores only those for a
                 described model: engines.pymc_layout.expand), pointwise log-likelihood, diagnostics,
                 summary table, exact-engine check

    python benchmarks/bench_fit.py                  # end to end, and the phases with both samplers
    python benchmarks/bench_fit.py --sampler nutpie # phases with one

The load average is printed with every figure: other jobs on the machine slow all of them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = r"""
import json, sys, time
sampler = sys.argv[1]
t = {}
start = time.perf_counter()
import pymc as pm
import evsynth
from evsynth.model import description
from evsynth.methods.analysis import choose_model
from evsynth.engines.pymc import build
from evsynth.effects import compute_effects
from evsynth.engines.fit import compile_nutpie
from evsynth.data.studies import load_studies
t["import"] = time.perf_counter() - start

start = time.perf_counter()
effects = compute_effects(load_studies(sys.argv[2]))
table = effects[effects["outcome"] == "milk volume"].reset_index(drop=True)
table.attrs = dict(effects.attrs)
kind, _ = choose_model(table)
gaussian = description.describe(kind, table)
model = build(gaussian)
t["build"] = time.perf_counter() - start

start = time.perf_counter()
if sampler == "nutpie":
    compiled = compile_nutpie(model, reusable=False, description=gaussian)
elif sampler == "nutpie-jax":  # needs `pip install jax`; JAX's on-disk compilation cache in compiledir
    import jax
    import nutpie
    jax.config.update("jax_compilation_cache_dir", sys.argv[3])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    compiled = nutpie.compile_pymc_model(model, backend="jax", gradient_backend="jax")
else:
    with model:
        step = pm.NUTS(target_accept=0.99)
t["compile"] = time.perf_counter() - start

start = time.perf_counter()
if sampler.startswith("nutpie"):
    import nutpie
    idata = nutpie.sample(compiled, draws=2000, tune=1000, chains=4, seed=2026, target_accept=0.99,
                          progress_bar=False)
else:
    with model:
        idata = pm.sample(draws=2000, tune=1000, chains=4, cores=2, step=step, random_seed=2026,
                          progressbar=False, compute_convergence_checks=False)
t["sample"] = time.perf_counter() - start

start = time.perf_counter()
from evsynth.methods.diagnostics import diagnose
from evsynth.engines.exact import agreement
from evsynth.engines.fit import _add_log_likelihood, _complete_constant_data, expanded_posterior
from evsynth.engines.pymc_layout import model_layout
from evsynth.methods.summary import summarize
shape = model_layout(model)
if getattr(compiled, "evsynth_posterior", None):  # nutpie stored the free variables: the rest in numpy
    idata["posterior"] = expanded_posterior(idata["posterior"].to_dataset(), shape, gaussian, compiled)
_complete_constant_data(idata, shape)
_add_log_likelihood(idata, model, gaussian)
verdict = diagnose(idata)
summarize(idata)
check = agreement(idata, gaussian)
t["post"] = time.perf_counter() - start
worst = verdict.table
t["checks"] = (f"max R-hat {worst['r_hat'].max():.3f}, min ESS {worst['ess_bulk'].min():.0f}, "
               f"exact check max |z| {check.attrs['max_abs_z']:.1f}")
print(json.dumps(t))
"""


def run_child(sampler: str, compiledir: str) -> dict:
    env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={compiledir}")
    done = subprocess.run([sys.executable, "-c", CHILD, sampler, str(ROOT / "studies" / "massage.csv"), compiledir],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{sampler} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def timed_command(argv: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    if done.returncode not in (0, 3):
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sampler", choices=("nutpie", "pymc", "nutpie-jax"), action="append",
                        help="nutpie-jax needs `pip install jax` (not a dependency of evsynth)")
    args = parser.parse_args()
    samplers = args.sampler or ["nutpie", "pymc"]
    evsynth = [sys.executable, "-m", "evsynth.cli.main"]
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
    print(f"evsynth --help: {timed_command(evsynth + ['--help']):.2f} s (fresh process)")
    data = str(ROOT / "studies" / "massage.csv")
    with tempfile.TemporaryDirectory() as out, tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={cache}")
        for run in ("cold", "warm"):
            seconds = timed_command(evsynth + ["fit", data, "--out", out, "--quiet"], env)
            print(f"evsynth fit (bundled data: 2 outcomes, nutpie, checks, forest plots), {run}: {seconds:.1f} s "
                  f"end to end (load average {os.getloadavg()[0]:.1f})")
        seconds = timed_command(evsynth + ["fit", data, "--engine", "exact", "--out", out, "--quiet"], env)
    print(f"evsynth fit --engine exact (same, no MCMC): {seconds:.1f} s end to end "
          f"(load average {os.getloadavg()[0]:.1f})")
    phases = ("import", "build", "compile", "sample", "post")
    print(f"\n{'sampler':10} {'run':5} " + " ".join(f"{p:>8}" for p in phases) + f" {'total':>8}  checks")
    for sampler in samplers:
        with tempfile.TemporaryDirectory() as compiledir:
            for run in ("cold", "warm"):
                t = run_child(sampler, compiledir)
                total = sum(t[p] for p in phases)
                print(f"{sampler:10} {run:5} " + " ".join(f"{t[p]:8.2f}" for p in phases) + f" {total:8.2f}  "
                      f"{t['checks']} (load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
