"""How often the MCMC-vs-exact check (engines.exact.agreement) cries wolf, and how often it catches
a fit of the wrong model: the figures behind its threshold (`evsynth fit` fails a fit whose max |z|
reaches it).

For each outcome of the bundled data (the model `evsynth fit` chooses), the PyMC model is compiled
once and sampled with `--seeds` seeds at evsynth fit's settings (nutpie, 4 chains x 2000 draws after
1000 tuning, target_accept 0.99). Each fit is compared with

    null     its own exact posterior: every flag is a false alarm
    tau x0.9 the exact posterior of the same model with the between-study SD's prior scale 10% smaller
             (halfnormal(0.45) instead of halfnormal(0.5)): every flag is a catch
    tau x0.5 the same with the scale halved (halfnormal(0.25))

and the table gives the quantiles of max |z| (over mean and 2.5/50/97.5% of every reported
quantity) and the share of fits at or above each threshold.

    python benchmarks/agreement_calibration.py              # 100 seeds per outcome (about 10 min)
    python benchmarks/agreement_calibration.py --seeds 20
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
THRESHOLDS = (3.5, 4.0, 4.5, 5.0, 6.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=100)
    args = parser.parse_args()

    import nutpie

    from evsynth.model import description
    from evsynth.methods.analysis import choose_model
    from evsynth.effects import compute_effects, used_effects
    from evsynth.engines.exact import agreement
    from evsynth.engines.nutpie_cache import compile_nutpie_cached
    from evsynth.engines.pymc import build
    from evsynth.data.studies import load_studies

    effects = used_effects(compute_effects(load_studies(ROOT / "studies" / "massage.csv")))
    print(f"{'outcome':14} {'check':8} {'fits':>4} {'max|z| q50':>10} {'q90':>6} {'q99':>6} {'max':>6}  "
          + " ".join(f"{'>=' + format(t, 'g'):>6}" for t in THRESHOLDS))
    for outcome, table in effects.groupby("outcome", sort=False):
        table = table.reset_index(drop=True)
        table.attrs = dict(effects.attrs)
        if len(table) < 2:
            continue
        kind, _ = choose_model(table)
        model = description.describe(kind, table)
        wrong = {"tau x0.9": description.describe(kind, table, {"tau": "halfnormal(0.45)"}),
                 "tau x0.5": description.describe(kind, table, {"tau": "halfnormal(0.25)"})}
        compiled = compile_nutpie_cached(build(model))
        worst = {"null": [], **{name: [] for name in wrong}}
        for seed in range(args.seeds):
            idata = nutpie.sample(compiled, draws=2000, tune=1000, chains=4, seed=seed, target_accept=0.99,
                                  progress_bar=False)
            worst["null"].append(agreement(idata, model).attrs["max_abs_z"])
            for name, other in wrong.items():
                worst[name].append(agreement(idata, other).attrs["max_abs_z"])
        for check, values in worst.items():
            z = np.array(values)
            q = np.quantile(z, [0.5, 0.9, 0.99])
            print(f"{outcome[:14]:14} {check:8} {len(z):4d} {q[0]:10.2f} {q[1]:6.2f} {q[2]:6.2f} {z.max():6.2f}  "
                  + " ".join(f"{np.mean(z >= t):6.0%}" for t in THRESHOLDS))


if __name__ == "__main__":
    main()
