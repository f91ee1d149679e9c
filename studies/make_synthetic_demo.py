"""Generate studies/synthetic_demo.csv: a SYNTHETIC demonstration study table. It is not evidence.

Every row is marked `synthetic = true` and `source_level = synthetic`; nothing in it comes from a
real study. Its purpose is to exercise the toolkit (all designs and standard-error routes) on data
whose true effects are known, so that a fitted model can be checked against them.

The simulated world (all effects on the standardized mean difference scale, SMD):

    technique   true mean effect   studies
    oxytocin    0.6                5
    neck        0.4                4
    marmet      0.5                4
    combined    0.8                5
    between-study SD (tau) = 0.2 for every technique

For each study: theta_i ~ Normal(technique effect, tau). Individual milk volumes (mL) are drawn with
a study-specific baseline mean MU_i ~ Uniform(20, 60) mL and SD SIGMA_i ~ Uniform(8, 20) mL:

- two_group: control ~ Normal(MU_i, SIGMA_i), treated ~ Normal(MU_i + theta_i * SIGMA_i, SIGMA_i),
  n per group ~ Uniform{12..40}; p from an equal-variance t-test (scipy.stats.ttest_ind).
- pre_post: pre ~ Normal(MU_i, SIGMA_i); post = MU_i + theta_i * SIGMA_i + RHO * (pre - MU_i)
  + sqrt(1 - RHO^2) * Normal(0, SIGMA_i), so corr(pre, post) = RHO and the true change is
  theta_i * SIGMA_i (theta_i on the raw-score scale, as the toolkit's pre/post SMD); n ~ Uniform{12..40};
  p from a paired t-test (scipy.stats.ttest_rel). There is no time trend: in this synthetic world
  a pre/post change is entirely the technique's effect, which real before/after studies cannot promise.
  RHO = 0.5, equal to the toolkit's default r_prepost; r_prepost is left empty, as papers leave it.

Each study is then summarised as a paper would print it: means and SDs rounded to 2 decimals, n, and a
p-value rounded to 3 decimals. A rounded p >= 0.001 is kept as the exact `p`; a smaller one is
printed "p < 0.001" and stored as `p_upper = 0.001`. Four reporting styles rotate through the studies:

    two_group_sd   group means, SDs and p      (the SE comes from the SDs)
    two_group_p    group means and p only      (the SE comes from the p-value or its bound)
    pre_post_p     pre/post means and p only   (the SE comes from the p-value or its bound)
    pre_post_sd    pre/post means, sd_pre and sd_post (the change SD needs the assumed r_prepost)

The true study effect theta_i is written into each row's note, for checking recovery.
The output is deterministic: one seeded numpy Generator, fixed study order, fixed formatting.
Run:  python studies/make_synthetic_demo.py
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from scipy import stats

SEED = 20240601
TRUE_EFFECTS = {"oxytocin": 0.6, "neck": 0.4, "marmet": 0.5, "combined": 0.8}  # SMD
N_STUDIES = {"oxytocin": 5, "neck": 4, "marmet": 4, "combined": 5}
TAU = 0.2  # between-study SD of theta_i, SMD scale
RHO = 0.5  # pre/post correlation of the individual-level data
STYLES = ("two_group_sd", "two_group_p", "pre_post_p", "pre_post_sd")
OUTPUT = Path(__file__).resolve().parent / "synthetic_demo.csv"

COLUMNS = [
    "study_id", "citation", "source", "source_level", "year", "design", "technique", "comparator",
    "outcome", "unit", "n", "mean_pre", "mean_post", "sd_pre", "sd_post", "sd_change", "r_prepost",
    "n_treat", "n_ctrl", "mean_treat", "mean_ctrl", "sd_treat", "sd_ctrl", "p", "p_upper", "t",
    "ci_low", "ci_high", "yi", "sei", "measure", "synthetic", "note",
]


def _fmt(x: float) -> str:
    """Two decimals, as a paper prints a mean or an SD."""
    return f"{x:.2f}"


def _printed_p(p: float) -> dict:
    """p as a paper prints it: three decimals, or 'p < 0.001' (stored as p_upper = 0.001)."""
    rounded = round(float(p), 3)
    if rounded >= 0.001:
        return {"p": f"{rounded:.3f}"}
    return {"p_upper": "0.001"}


def _two_group(rng, theta, mu, sigma, with_sd):
    n1, n2 = int(rng.integers(12, 41)), int(rng.integers(12, 41))
    ctrl = rng.normal(mu, sigma, n2)
    treat = rng.normal(mu + theta * sigma, sigma, n1)
    p = stats.ttest_ind(treat, ctrl).pvalue
    row = {"design": "two_group", "comparator": "control", "n_treat": str(n1), "n_ctrl": str(n2),
           "mean_treat": _fmt(treat.mean()), "mean_ctrl": _fmt(ctrl.mean()), **_printed_p(p)}
    if with_sd:
        row.update(sd_treat=_fmt(treat.std(ddof=1)), sd_ctrl=_fmt(ctrl.std(ddof=1)))
    return row


def _pre_post(rng, theta, mu, sigma, with_sd):
    n = int(rng.integers(12, 41))
    pre = rng.normal(mu, sigma, n)
    post = mu + theta * sigma + RHO * (pre - mu) + np.sqrt(1 - RHO**2) * rng.normal(0, sigma, n)
    p = stats.ttest_rel(post, pre).pvalue
    row = {"design": "pre_post", "comparator": "baseline", "n": str(n),
           "mean_pre": _fmt(pre.mean()), "mean_post": _fmt(post.mean())}
    if with_sd:
        row.update(sd_pre=_fmt(pre.std(ddof=1)), sd_post=_fmt(post.std(ddof=1)))
    else:
        row.update(_printed_p(p))
    return row


def generate(seed: int = SEED) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows, k = [], 0
    for technique, effect in TRUE_EFFECTS.items():
        for j in range(N_STUDIES[technique]):
            style = STYLES[k % len(STYLES)]
            k += 1
            theta = rng.normal(effect, TAU)
            mu, sigma = rng.uniform(20, 60), rng.uniform(8, 20)
            maker = _two_group if style.startswith("two_group") else _pre_post
            row = maker(rng, theta, mu, sigma, with_sd=style.endswith("_sd"))
            row.update(
                study_id=f"syn_{technique}_{j + 1}",
                citation=f"synthetic demo row generated by studies/make_synthetic_demo.py (seed {seed})",
                source_level="synthetic", technique=technique, outcome="milk volume", unit="mL",
                synthetic="true",
                note=(f"SYNTHETIC, not evidence. Reporting style {style}. True study effect theta = {theta:.3f} SMD "
                      f"(technique mean {effect}, tau {TAU}); simulated baseline mean {mu:.1f} mL, SD {sigma:.1f} mL"
                      + (f", pre/post correlation {RHO}" if maker is _pre_post else "") + "."),
            )
            rows.append(row)
    return rows


def main() -> None:
    rows = generate()
    with OUTPUT.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in COLUMNS})
    print(f"wrote {len(rows)} synthetic rows to {OUTPUT}")


if __name__ == "__main__":
    main()
