"""Time evsynth.engines.normal_normal.exact_posterior (the exact engine's one-variance case) for 50 studies.

Run: .venv/bin/python benchmarks/bench_exact.py
The timed call builds the posterior and computes every summary (mu, tau, predictive, theta).
"""

import time

import numpy as np

from evsynth.engines.normal_normal import exact_posterior


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


def steps(yi, sei, tau_prior="halfnormal(0.5)", mu_prior=None) -> dict:
    """run_once step by step: {step: (CPU seconds, minor page faults)} for the posterior (the grid),
    summary() (the mixtures' summaries and the table) and theta (bench_commands.py prints these for a
    process's first call beside a later one's: where a first call's extra time goes)."""
    import resource

    def mark():
        return time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    out, last = {}, mark()

    def done(name):
        nonlocal last
        now = mark()
        out[name] = (now[0] - last[0], now[1] - last[1])
        last = mark()

    post = exact_posterior(yi, sei, tau_prior=tau_prior, mu_prior=mu_prior)
    done("posterior")
    post.summary()
    done("summary()")
    post.theta
    done("theta")
    return out


def main(k: int = 50, repeats: int = 30):
    yi, sei = synthetic_studies(k)
    for tau_prior, mu_prior in [("halfnormal(0.5)", None), ("halfcauchy(0.5)", "normal(0, 5)"), ("uniform", None)]:
        run_once(yi, sei, tau_prior, mu_prior)  # warm-up (imports, first-call caches)
        wall, cpu = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            post = run_once(yi, sei, tau_prior, mu_prior)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        wall, cpu = 1e3 * np.array(wall), 1e3 * np.array(cpu)
        # CPU time is less sensitive than wall time to other jobs sharing the machine
        print(f"k={k} tau~{tau_prior:<16} mu~{str(mu_prior or 'flat'):<12} grid={post.tau_grid.size:4d}  "
              f"wall median {np.median(wall):5.1f} ms (min {wall.min():5.1f}, max {wall.max():5.1f})  "
              f"cpu median {np.median(cpu):5.1f} ms")


if __name__ == "__main__":
    main()
