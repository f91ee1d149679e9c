"""Print the markdown validation table for docs/validation.md.

Reference values are the published numbers quoted in tests/data/reference_figures.md (typed here
with their source); every evsynth value is computed now, by the code under test.
Run: .venv/bin/python benchmarks/validation_table.py
"""

from pathlib import Path

import numpy as np
import pandas as pd

from evsynth.engines.bayesmeta_direct import bayesmeta_direct
from evsynth.engines.normal_normal import exact_posterior
from evsynth.methods.frequentist import dersimonian_laird, leave_one_out, reml

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "data"  # bcg.csv, eight_schools.csv
METAFOR = "metafor docs, `rma(yi, vi)` on dat.bcg"
BAYESMETA = "bayesmeta, Rubin1981"
Y8 = np.array([28.39, 7.94, -2.75, 6.82, -0.64, 0.63, 18.01, 12.16])  # unrounded, as in bayesmeta
S8 = np.array([14.9, 10.2, 16.3, 11.0, 9.4, 11.4, 10.4, 17.6])


def bcg_effects():
    d = pd.read_csv(REFERENCE / "bcg.csv")
    yi = np.log(d.tpos / (d.tpos + d.tneg)) - np.log(d.cpos / (d.cpos + d.cneg))
    vi = 1 / d.tpos - 1 / (d.tpos + d.tneg) + 1 / d.cpos - 1 / (d.cpos + d.cneg)
    return yi.to_numpy(), vi.to_numpy(), d.trial.to_numpy()


def frequentist_rows():
    yi, vi, trial = bcg_effects()
    r, kh, dl = reml(yi, vi), reml(yi, vi, knapp_hartung=True), dersimonian_laird(yi, vi)
    loo = leave_one_out(yi, vi, labels=trial).loc[8]
    return [
        ("BCG REML estimate", "-0.7145", METAFOR, r.mu),
        ("BCG REML SE", "0.1798", METAFOR, r.se),
        ("BCG REML CI lower", "-1.0669", METAFOR, r.ci_low),
        ("BCG REML CI upper", "-0.3622", METAFOR, r.ci_high),
        ("BCG REML z", "-3.9744", METAFOR, r.z),
        ("BCG REML tau^2", "0.3132", METAFOR, r.tau2),
        ("BCG REML SE(tau^2)", "0.1664", METAFOR, r.tau2_se),
        ("BCG REML tau", "0.5597", METAFOR, r.tau),
        ("BCG I^2 (%)", "92.22", METAFOR, r.I2),
        ("BCG H^2", "12.86", METAFOR, r.H2),
        ("BCG Q (df = 12)", "152.2330", METAFOR, r.Q),
        ("BCG 95% PI lower", "-1.87", METAFOR, r.pi_low),
        ("BCG 95% PI upper", "0.44", METAFOR, r.pi_high),
        ("BCG Knapp-Hartung SE", "0.1808", METAFOR + ', test="knha"', kh.se),
        ("BCG Knapp-Hartung t", "-3.9522", METAFOR + ', test="knha"', kh.z),
        ("BCG Knapp-Hartung CI lower", "-1.1084", METAFOR + ', test="knha"', kh.ci_low),
        ("BCG Knapp-Hartung CI upper", "-0.3206", METAFOR + ', test="knha"', kh.ci_high),
        ("BCG DL estimate", "-0.7141", METAFOR + ', method="DL"', dl.mu),
        ("BCG DL CI lower", "-1.0644", METAFOR + ', method="DL"', dl.ci_low),
        ("BCG DL CI upper", "-0.3638", METAFOR + ', method="DL"', dl.ci_high),
        ("BCG DL tau^2", "0.3088", METAFOR + ', method="DL"', dl.tau2),
        ("BCG DL I^2 (%)", "92.1173", METAFOR + ', method="DL"', dl.I2),
        ("BCG leave-one-out (-trial 8) estimate", "-0.7948", "metafor `leave1out`", loo.mu),
        ("BCG leave-one-out (-trial 8) SE", "0.1799", "metafor `leave1out`", loo.se),
        ("BCG leave-one-out (-trial 8) tau^2", "0.2732", "metafor `leave1out`", loo.tau2),
    ]


def bayes_rows():
    hc = exact_posterior(Y8, S8, tau_prior="halfcauchy(25)", mu_prior="normal(0, 50)")
    un = exact_posterior(Y8, S8, tau_prior="uniform", mu_prior=None)
    hc_direct, un_direct = bayesmeta_direct(hc), bayesmeta_direct(un)
    src = BAYESMETA + ", tau ~ HalfCauchy(25), mu ~ N(0, 50)"
    src_u = BAYESMETA + ", uniform tau and mu"
    return [
        ("8 schools tau median", "4.7585", src, hc.tau["50%"]),
        ("8 schools tau mean", "5.8845", src, hc.tau["mean"]),
        ("8 schools mu median (exact)", "7.9630", src, hc.mu["50%"]),
        ("8 schools mu median (DIRECT emulation)", "7.9630", src, hc_direct.ppf(0.5)[0]),
        ("8 schools mu mean (exact)", "7.9857", src, hc.mu["mean"]),
        ("8 schools mu mean (DIRECT emulation)", "7.9857", src, hc_direct.mean),
        ("8 schools mu sd (exact)", "4.9958", src, hc.mu["sd"]),
        ("8 schools mu sd (DIRECT emulation)", "4.9958", src, hc_direct.sd),
        ("8 schools P(mu > 0) (exact)", "0.94875", src, hc.mu["P(mu>0)"]),
        ("8 schools P(mu > 0) (DIRECT emulation)", "0.94875", src, 1 - hc_direct.cdf(0.0)),
        ("8 schools tau median, uniform priors", "5.2277", src_u, un.tau["50%"]),
        ("8 schools mu median, uniform priors (exact)", "8.0559", src_u, un.mu["50%"]),
        ("8 schools mu median, uniform priors (DIRECT emulation)", "8.0559", src_u, un_direct.ppf(0.5)[0]),
    ]


def approximate_rows():
    d = pd.read_csv(REFERENCE / "eight_schools.csv")
    post = exact_posterior(d.y, d.sigma, tau_prior="halfcauchy(5)", mu_prior="normal(0, 5)")
    src = "PyMC/Stan examples (approximate), mu ~ N(0, 5), tau ~ HalfCauchy(5), rounded data"
    return [
        ("8 schools mu mean", "4.4", src, post.mu["mean"]),
        ("8 schools mu sd", "3.3", src, post.mu["sd"]),
        ("8 schools tau mean", "3.6", src, post.tau["mean"]),
    ]


def agrees(value: float, printed: str) -> str:
    """'yes' when the value rounds to the printed reference (within half a unit of its last digit)."""
    decimals = len(printed.split(".")[1])
    return "yes" if abs(value - float(printed)) <= 0.5 * 10.0**-decimals + 1e-12 else "no"


def markdown(rows) -> str:
    lines = ["| quantity | reference | source | evsynth | difference | agrees at printed precision |",
             "|---|---|---|---|---|---|"]
    for name, ref, source, value in rows:
        lines.append(f"| {name} | {ref} | {source} | {value:.6f} | {value - float(ref):+.2e} | "
                     f"{agrees(value, ref)} |")
    return "\n".join(lines)


def main():
    if not REFERENCE.exists():
        raise SystemExit(f"reference data not found at {REFERENCE}")
    print("### Frequentist (evsynth.methods.frequentist vs metafor)\n")
    print(markdown(frequentist_rows()))
    print("\n### Exact Bayesian posterior (evsynth.engines.normal_normal vs bayesmeta)\n")
    print(markdown(bayes_rows()))
    print("\n### Exact posterior vs approximate MCMC figures\n")
    print(markdown(approximate_rows()))


if __name__ == "__main__":
    main()
