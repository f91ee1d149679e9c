"""Time evsynth.exact.exact_posterior for 50 studies (target: under 50 ms).

Run: .venv/bin/python benchmarks/bench_exact.py
The timed call builds the posterior and computes every summary (mu, tau, predictive, theta).
"""

import time

import numpy as np

from evsynth.exact import exact_posterior


def synthetic_studies(k: int, seed: int = 20240601):
    rng = np.random.default_rng(seed)
    sei = rng.uniform(0.1, 0.5, k)
    yi = rng.normal(0.3, np.sqrt(0.2**2 + sei**2))
    return yi, sei


def run_once(yi, sei, tau_prior, mu_prior):
    post = exact_posterior(yi, sei, tau_prior=tau_prior, mu_prior=mu_prior)
    post.summary()
    post.theta
    return post


def main(k: int = 50, repeats: int = 30):
    yi, sei = synthetic_studies(k)
    for tau_prior, mu_prior in [("halfnormal(0.5)", None), ("halfcauchy(0.5)", "normal(0, 5)"), ("uniform", None)]:
        run_once(yi, sei, tau_prior, mu_prior)  # warm-up (imports, first-call caches)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            post = run_once(yi, sei, tau_prior, mu_prior)
            times.append(time.perf_counter() - t0)
        ms = 1e3 * np.array(times)
        print(f"k={k} tau~{tau_prior:<16} mu~{str(mu_prior or 'flat'):<12} grid={post.tau_grid.size:4d}  "
              f"median {np.median(ms):6.1f} ms  min {ms.min():6.1f} ms  max {ms.max():6.1f} ms")


if __name__ == "__main__":
    main()
