"""Coverage of the multivariate model's 95% credible intervals (evsynth.engines.multivariate) over
simulated datasets with known parameters: 12 trials x 2 outcomes, beta = (0.3, -0.2), between-trial
SDs tau = (0.3, 0.2), correlation rho = 0.5, sampling variances U(0.01, 0.05) with within-trial
sampling correlation 0.4 (V known, as vcalc builds it). nutpie through evsynth.fit, 4 chains x 1000
draws (1000 tune), target_accept 0.99; compiled once, the data swapped by pm.set_data + with_data.
Prints each parameter's coverage, how many fits pass the diagnostics (R-hat < 1.01, bulk and
tail ESS >= 400, no divergence: evsynth.diagnose's rules), the worst R-hat and the divergences,
and the coverage over the passing fits alone.

    python benchmarks/multivariate_coverage.py [n_sims]
"""

import sys
import time

import numpy as np
import pandas as pd
import pymc as pm

from evsynth.engines.multivariate import multivariate

BETA, TAU, RHO, R_WITHIN, TRIALS = np.array([0.3, -0.2]), np.array([0.3, 0.2]), 0.5, 0.4, 12


def dataset(rng):
    Sigma = np.diag(TAU) @ np.array([[1, RHO], [RHO, 1]]) @ np.diag(TAU)
    u = rng.multivariate_normal(np.zeros(2), Sigma, TRIALS)
    vi = rng.uniform(0.01, 0.05, (TRIALS, 2))
    rows, V = [], np.zeros((2 * TRIALS, 2 * TRIALS))
    for t in range(TRIALS):
        S = np.array([[vi[t, 0], R_WITHIN * np.sqrt(vi[t].prod())], [R_WITHIN * np.sqrt(vi[t].prod()), vi[t, 1]]])
        e = rng.multivariate_normal(np.zeros(2), S)
        V[2 * t:2 * t + 2, 2 * t:2 * t + 2] = S
        for k, name in enumerate(["A", "B"]):
            rows.append({"trial": f"t{t}", "outcome": name, "yi": BETA[k] + u[t, k] + e[k], "vi": vi[t, k]})
    return pd.DataFrame(rows), V


def main(n_sims: int = 40):
    from evsynth.engines.fit import compile_nutpie, fit
    from evsynth.methods.diagnostics import diagnose

    rng = np.random.default_rng(2026)
    table, V = dataset(rng)
    model = multivariate(table, V=V)
    compiled = compile_nutpie(model, reusable=True)
    truth = {"mu[A]": BETA[0], "mu[B]": BETA[1], "tau[A]": TAU[0], "tau[B]": TAU[1], "rho": RHO}
    hits = {k: 0 for k in truth}
    hits_ok = {k: 0 for k in truth}
    worst_rhat, divergences, passed, start = 1.0, 0, 0, time.time()
    for sim in range(n_sims):
        if sim:
            table, V = dataset(rng)
            with model:
                pm.set_data({"yi": table["yi"].to_numpy(), "V": V})
        idata = fit(model, compiled=compiled, sampler="nutpie", draws=1000, tune=1000, chains=4, cores=1, seed=sim,
                    target_accept=0.99, log_likelihood=False)
        post = idata.posterior
        draws = {"mu[A]": post["mu"].sel(outcome="A"), "mu[B]": post["mu"].sel(outcome="B"),
                 "tau[A]": post["tau"].sel(outcome="A"), "tau[B]": post["tau"].sel(outcome="B"),
                 "rho": post["rho"].sel(outcome="A", outcome_="B")}
        verdict = diagnose(idata)  # mu and tau; rho's R-hat in worst_rhat below
        passed += verdict.ok
        for k, d in draws.items():
            lo, hi = np.quantile(d.values.ravel(), [0.025, 0.975])
            hits[k] += lo <= truth[k] <= hi
            hits_ok[k] += verdict.ok and lo <= truth[k] <= hi
        from arviz_stats import rhat

        worst_rhat = max(worst_rhat, max(float(np.asarray(rhat(d))) for d in draws.values()))
        divergences += int(idata.sample_stats["diverging"].sum())
        print(f"sim {sim + 1}/{n_sims}: {time.time() - start:.0f} s, diagnostics {'ok' if verdict.ok else verdict}",
              flush=True)
    print(f"coverage of 95% CrIs over {n_sims} simulated datasets (over the {passed} fits that pass the diagnostics):")
    for k in truth:
        print(f"  {k:<7} true {truth[k]:+.2f}: {hits[k]}/{n_sims} = {hits[k] / n_sims:.0%}  "
              f"({hits_ok[k]}/{passed})")
    print(f"{passed}/{n_sims} fits pass the diagnostics; worst R-hat {worst_rhat:.3f}; divergences {divergences} "
          f"in {n_sims * 4000} draws; {time.time() - start:.0f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)
