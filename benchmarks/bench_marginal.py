"""Time the quadrature marginal likelihoods (evsynth.engines.marginal) and the eight-model average.

Synthetic meta-analyses (fixed seeds) of k studies with publication selection; prints, per k,
the seconds for model_average (all eight models) and for the largest model alone, the grid size
and the estimated error of its log marginal likelihood.

    .venv/bin/python benchmarks/bench_marginal.py
"""

import time

import numpy as np
import pandas as pd
from scipy import stats

from evsynth.methods.compare import model_average
from evsynth.engines.marginal import ModelSpec, log_evidence


def simulate(seed, k, mu=0.2, keep_nonsig=0.1):
    rng = np.random.default_rng(seed)
    n = rng.integers(10, 61, 20000)
    se = 1 / np.sqrt(n)
    y = rng.normal(mu, se)
    idx = np.flatnonzero((y / se > stats.norm.isf(0.025)) | (rng.random(n.size) < keep_nonsig))[:k]
    table = pd.DataFrame({"study_id": [f"s{i}" for i in range(k)], "yi": y[idx], "sei": se[idx]})
    table.attrs["measure"] = "SMD"
    return table


def main():
    print(f"{'k':>4} {'seed':>4} {'average (s)':>12} {'full model (s)':>15} {'nodes':>10} {'log ML error':>13}")
    for k in (5, 10, 20, 40):
        for seed in range(3):
            eff = simulate(seed, k)
            t0 = time.perf_counter()
            model_average(eff)
            t1 = time.perf_counter()
            full = log_evidence(eff, ModelSpec(True, True, True))
            t2 = time.perf_counter()
            print(f"{k:>4} {seed:>4} {t1 - t0:>12.2f} {t2 - t1:>15.2f} {full.n_nodes:>10} {full.log_ml_error:>13.1e}")


if __name__ == "__main__":
    main()
