"""The 100-scenario demo sweep on the exact engine against the naive PyMC rebuild, in one run.

Grid (as models/synthetic_demo_sensitivity.toml, widened to 100 scenarios): the by-technique
model on the SYNTHETIC demo (studies/synthetic_demo.csv, milk volume), 4 tau priors
(halfnormal 0.5 / 1, halfcauchy 0.5 / 1) x 5 pre/post r x 5 exclusion rules.

- exact: Sensitivity(engine="exact").run(): quadrature over (tau, tau_technique), closed-form
  Gaussian conditionals, scenarios one after another in this process. Timed twice: the first
  run after import (cold: first calls into scipy/numpy code paths) and a second run.
- naive: Sensitivity(engine="pymc").run(reuse=False): each scenario's reduced table built and
  compiled afresh, nutpie, n_jobs worker processes. By default timed on the first 10 scenarios
  and scaled to 100 (the output says so); --naive-limit 0 runs all 100 (minutes).

The exact sweep fits each data variant's tau priors on one shared grid; the same 100 scenarios
are also run each on its own grid (the reference path) and the largest difference printed.

Then, on the scenarios both ran, how far the exact answer is from MCMC: |mean difference| of
each reported quantity in posterior SDs and in Monte-Carlo standard errors (sd / sqrt(ESS),
ESS taken as the 400 ESS the diagnostics demand at least, so the z is an upper bound).

    python benchmarks/bench_engines.py                    # exact twice + naive on 10 scenarios
    python benchmarks/bench_engines.py --skip-naive       # exact only (seconds)

Wall time depends on what else runs on the machine: the load average and the process CPU time
are printed beside every wall time.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_sensitivity import GRID  # the same 100-scenario grid as the MCMC benchmark

ROOT = Path(__file__).resolve().parents[1]
PRIORS = {"mu": "normal(0, 1)", "tau_technique": "halfnormal(0.5)"}
MIN_ESS = 400


def make_grid(engine: str, **fit):
    from evsynth.methods.sensitivity import Sensitivity

    return Sensitivity(ROOT / "studies" / "synthetic_demo.csv", outcome="milk volume", model="by_technique",
                       priors=PRIORS, engine=engine, **GRID, **fit)


def timed(run):
    load = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return result, time.perf_counter() - wall, time.process_time() - cpu, load


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-jobs", type=int, default=2, help="worker processes of the naive rebuild")
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--naive-limit", type=int, default=10,
                        help="time the naive rebuild on this many scenarios and scale to the grid (0: all)")
    parser.add_argument("--skip-naive", action="store_true")
    args = parser.parse_args()

    start = time.perf_counter()
    import evsynth.methods.sensitivity  # noqa: F401  (import time is not part of a sweep)

    print(f"import evsynth.methods.sensitivity: {time.perf_counter() - start:.2f} s; {os.cpu_count()} CPUs")
    grid = make_grid("exact")
    n = len(grid.scenarios())
    print(f"grid: {n} scenarios, by_technique on the SYNTHETIC demo (milk volume)")
    exact, wall, cpu, load = timed(lambda: grid.run(progress=False))
    print(f"exact engine, first run:  {wall:.2f} s wall, {cpu:.2f} s CPU (load average {load:.1f})")
    exact, wall2, cpu2, load2 = timed(lambda: make_grid("exact").run(progress=False))
    print(f"exact engine, second run: {wall2:.2f} s wall, {cpu2:.2f} s CPU (load average {load2:.1f})")
    per = exact.drop_duplicates("scenario")
    print(f"  {len(per)} scenarios, verdicts {dict(per['verdict'].value_counts())}, engine {set(per['engine'])}")
    _against_own_grids(exact)
    if args.skip_naive:
        return

    naive_grid = make_grid("pymc", draws=args.draws, tune=args.tune, chains=args.chains, sampler="nutpie")
    limit = args.naive_limit or n
    chosen = {s.id for s in naive_grid.scenarios()[:limit]}
    full = naive_grid.scenarios
    naive_grid.scenarios = lambda: [s for s in full() if s.id in chosen]
    with tempfile.TemporaryDirectory() as folder:
        naive, naive_wall, _, naive_load = timed(
            lambda: naive_grid.run(n_jobs=args.n_jobs, reuse=False, out=Path(folder) / "naive.jsonl", progress=False))
    done = naive["scenario"].nunique()
    scaled = naive_wall * n / done
    label = "" if done == n else f" (measured on {done} scenarios, scaled x{n / done:g})"
    print(f"naive PyMC rebuild: {naive_wall:.1f} s for {done} scenarios, {args.chains} chains x {args.draws} draws "
          f"(+{args.tune} tune), nutpie, {args.n_jobs} processes (load average {naive_load:.1f})")
    failed = naive.drop_duplicates("scenario")
    print(f"  {int((failed['verdict'] != 'PASS').sum())} of {done} naive scenarios FAIL their diagnostics")
    print(f"\n{n}-scenario sweep: exact {wall:.2f} s (first run; {wall2:.2f} s second), naive {scaled:.0f} s{label}: "
          f"x{scaled / wall:.0f} (x{scaled / wall2:.0f} second run)")
    _agreement(exact, naive)


def _against_own_grids(exact) -> None:
    """The sweep fits each data variant's tau priors on one shared grid (engines.exact.posterior_grids);
    the reference is every scenario on its own grid (run_scenario with a cache that lists no priors)."""
    from evsynth.methods.sensitivity import Job, records_table, run_scenario

    grid = make_grid("exact")
    context, cache = grid.context, {}
    records, wall, cpu, load = timed(lambda: [run_scenario(Job(context, s), cache) for s in grid.scenarios()])
    own = records_table(records)
    both = exact.merge(own, on=["scenario", "parameter"], suffixes=("", "_own"))
    sd_row = both["parameter"].str.startswith("tau")
    worst = {}
    for column in ("mean", "sd", "q2.5", "q50", "q97.5", "p_gt_0"):
        gap = (both[column] - both[f"{column}_own"]).abs() / both["sd_own"]
        worst[column] = (gap[~sd_row].max(), gap[sd_row].max())
    print(f"each scenario on its own grid (the reference path): {wall:.2f} s wall, {cpu:.2f} s CPU (load average "
          f"{load:.1f}); shared grids against it, max |difference| in posterior sds: Gaussian rows "
          f"{max(g for g, _ in worst.values()):.1e}, SD rows {max(t for _, t in worst.values() if t == t):.1e}")


def _agreement(exact, naive) -> None:
    key = ["scenario", "parameter"]
    both = exact.merge(naive, on=key, suffixes=("_exact", "_mcmc")).dropna(subset=["mean_exact", "mean_mcmc"])
    both = both[both["verdict_mcmc"] == "PASS"]
    if both.empty:
        return
    diff = (both["mean_exact"] - both["mean_mcmc"]).abs()
    in_sd = diff / both["sd_exact"]
    z = diff / (both["sd_exact"] / np.sqrt(MIN_ESS))
    worst = both.loc[in_sd.idxmax()]
    print(f"exact vs MCMC on {both['scenario'].nunique()} scenarios x {both['parameter'].nunique()} quantities "
          f"(MCMC fits that PASS): max |mean difference| {in_sd.max():.3f} posterior sd, i.e. {z.max():.2f} MCSE "
          f"at ESS {MIN_ESS} (worst: {worst['parameter']} in '{worst['scenario']}'); median {np.median(in_sd):.3f} sd")


if __name__ == "__main__":
    main()
