"""Time a 100-scenario sensitivity sweep both ways, in one run:

- naive:  build and compile the scenario's model on its reduced table, per scenario, in n_jobs
          worker processes (Sensitivity.run(reuse=False)), and
- reuse:  compile once per graph structure, swap data/prior hyper-parameters/0-1 study weights,
          scenarios in n_jobs threads sharing the compiled models (Sensitivity.run()).

Both fit the same model (the by-technique model with the study effects integrated out, as
sweeps do) with nutpie and the same settings, so the ratio is the gain from not compiling.
Grid on the SYNTHETIC demo (studies/synthetic_demo.csv): 4 tau priors (2 halfnormal + 2
halfcauchy: two graph structures) x 5 pre/post r x 5 exclusions.

    .venv/bin/python benchmarks/bench_sensitivity.py                  # full, both ways (naive takes minutes)
    .venv/bin/python benchmarks/bench_sensitivity.py --naive-limit 10 # naive on 10 scenarios, scaled up (labelled)

Besides the sweep times it prints the median time per scenario inside a worker: their ratio is
the ceiling the sweep ratio approaches as a grid grows (the first compile of each structure is
paid once). Other engineers' jobs may share the machine: the load average is printed too.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from evsynth.methods.sensitivity import Sensitivity
from evsynth.methods.sweep import read_records

ROOT = Path(__file__).resolve().parents[1]
GRID = dict(
    tau_prior=["halfnormal(0.5)", "halfnormal(1)", "halfcauchy(0.5)", "halfcauchy(1)"],
    r_prepost=[0.1, 0.3, 0.5, 0.7, 0.9],
    exclude=[None, "design == 'pre_post'", "n_ctrl < 20 or n < 20", "technique == 'neck'",
             "design == 'two_group' and p > 0.1"],
)


def timed_run(grid: Sensitivity, n_jobs: int, reuse: bool, limit: int | None = None):
    if limit is not None:  # run only the first `limit` scenarios of the same grid
        keep = {s.id for s in grid.scenarios()[:limit]}
        grid.scenarios = lambda full=grid.scenarios: [s for s in full() if s.id in keep]
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "records.jsonl"
        start = time.perf_counter()
        table = grid.run(n_jobs=n_jobs, reuse=reuse, out=out)
        seconds = time.perf_counter() - start
        worker = np.array([r["seconds"] for r in read_records(out).values()])
    print(f"  time inside a worker per scenario: median {np.median(worker):.2f} s, max {worker.max():.1f} s "
          f"(first scenario of a structure in a worker: compile), total {worker.sum():.0f} s")
    table.attrs["median_scenario_seconds"] = float(np.median(worker))
    return seconds, table


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--naive-limit", type=int, default=None,
                        help="time the naive way on this many scenarios only and scale to the grid (labelled)")
    parser.add_argument("--skip-naive", action="store_true")
    args = parser.parse_args()

    def make_grid():
        return Sensitivity(ROOT / "studies" / "synthetic_demo.csv", outcome="milk volume", model="by_technique",
                           draws=args.draws, tune=args.tune, chains=args.chains, sampler="nutpie", **GRID)

    n = len(make_grid().scenarios())
    print(f"grid: {n} scenarios (by_technique on the SYNTHETIC demo), {args.chains} chains x {args.draws} draws "
          f"(+{args.tune} tune), nutpie, n_jobs={args.n_jobs}, {os.cpu_count()} CPUs, "
          f"load average before: {os.getloadavg()[0]:.1f}")

    reuse_seconds, reused = timed_run(make_grid(), args.n_jobs, reuse=True)
    per_reuse = reuse_seconds / n
    print(f"\nreuse (compile once per structure): {reuse_seconds:.1f} s for {n} scenarios "
          f"({per_reuse:.2f} s/scenario), load average {os.getloadavg()[0]:.1f}")
    _verdicts(reused)
    if args.skip_naive:
        return
    limit = args.naive_limit
    naive_seconds, naive = timed_run(make_grid(), args.n_jobs, reuse=False, limit=limit)
    done = naive["scenario"].nunique()
    naive_total = naive_seconds * n / done
    label = "" if done == n else f" (measured on {done} scenarios, scaled to {n})"
    print(f"\nnaive (build + compile per scenario): {naive_seconds:.1f} s for {done} scenarios "
          f"({naive_seconds / done:.2f} s/scenario), load average {os.getloadavg()[0]:.1f}")
    _verdicts(naive)
    print(f"\n{n}-scenario sweep: naive {naive_total:.0f} s{label}, reuse {reuse_seconds:.0f} s, "
          f"speed-up x{naive_total / reuse_seconds:.1f}")
    per_naive, per_reuse = naive.attrs["median_scenario_seconds"], reused.attrs["median_scenario_seconds"]
    print(f"per scenario inside a worker (median): naive {per_naive:.2f} s, reuse {per_reuse:.2f} s, "
          f"x{per_naive / per_reuse:.1f} (the ceiling for large grids: reuse still samples every scenario)")
    _agreement(reused, naive)


def _verdicts(table) -> None:
    per = table.drop_duplicates("scenario")
    fitted = per[~per["problems"].str.startswith("not fitted")]
    print(f"  {int((per['verdict'] == 'PASS').sum())} PASS, {int((fitted['verdict'] != 'PASS').sum())} FAIL "
          f"diagnostics, {len(per) - len(fitted)} not fitted")


def _agreement(reused, naive) -> None:
    """Same scenarios both ways: pooled means should differ by Monte-Carlo error only."""
    key = ["scenario", "parameter"]
    both = reused.merge(naive, on=key, suffixes=("_reuse", "_naive"))
    both = both[both["parameter"] == "pooled (mu)"].dropna(subset=["mean_reuse", "mean_naive"])
    if both.empty:
        return
    z = (both["mean_reuse"] - both["mean_naive"]).abs() / both["sd_reuse"]
    print(f"  pooled (mu) on {len(both)} common scenarios: max |mean difference| = {z.max():.3f} posterior sd "
          f"(median {np.median(z):.3f})")


if __name__ == "__main__":
    main()
