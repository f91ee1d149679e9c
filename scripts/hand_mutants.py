"""The hand-made mutants of issue 17, each applied alone to a scratch copy of src/ and judged by the
test that is meant to catch it (for developers; scripts/mutation_test.py is the systematic run).

    python scripts/hand_mutants.py            # all of them
    python scripts/hand_mutants.py R-hat KH   # those whose label contains a word

Prints KILLED or SURVIVED per mutant; exit status 1 if any survived (or its pattern is gone).
"""

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
MUTANTS = [
 # (label, file, old, new, tests)
 ("pre/post change abs()", "effects.py", 'md, df = row["mean_post"] - row["mean_pre"], n - 1', 'md, df = abs(row["mean_post"] - row["mean_pre"]), n - 1', ["tests/test_effects.py"]),
 ("ROMC sqrt(2(1-r)) dropped", "effects.py", "s_pre = s_post = d.se * math.sqrt(n1) / math.sqrt(2 * (1 - r))", "s_pre = s_post = d.se * math.sqrt(n1)", ["tests/test_effects.py"]),
 ("SMCC vi g^2/n", "effects.py", "return g, 1 / n + g**2 / (2 * n)", "return g, 1 / n + g**2 / n", ["tests/test_effects.py"]),
 ("Gregory upper end not reversed", "exact.py", "w[-4:] = ends[::-1]", "w[-4:] = ends", ["tests/test_exact.py", "-k", "bounded"]),
 ("Gregory upper end plain trapezoid", "exact.py", "w[-4:] = ends[::-1]", "w[-1] = 0.5", ["tests/test_exact.py", "-k", "bounded"]),
 ("KH p on k df", "frequentist.py", "z=float(stat), pval=float(_two_sided_p(stat, df))", "z=float(stat), pval=float(_two_sided_p(stat, df + 1 if np.isfinite(df) else df))", ["tests/test_frequentist.py"]),
 ("FE I2 /df", "frequentist.py", "i2 = max(0.0, 100 * (q - q_df) / q) if q > 0 else 0.0", "i2 = max(0.0, 100 * (q - q_df) / q_df) if q > 0 else 0.0", ["tests/test_frequentist.py"]),
 ("FE H2 q/k", "frequentist.py", "h2 = q / q_df", "h2 = q / (q_df + 1)", ["tests/test_frequentist.py"]),
 ("node-split reversed sign +1", "network.py", "np.where((table[\"treat_node\"] == b) & (table[\"comp_node\"] == a), -1.0, 0.0)", "np.where((table[\"treat_node\"] == b) & (table[\"comp_node\"] == a), 1.0, 0.0)", ["tests/test_network.py", "-k", "reversed"]),
 ("inclusion BF times prior odds", "compare.py", "log_bf = log_num - (math.log(pi) - math.log(1 - pi))", "log_bf = log_num + (math.log(pi) - math.log(1 - pi))", ["tests/test_compare.py", "-k", "unequal"]),
 ("sd_pre Finite", "studies.py", "sd_pre: Optional[Positive] = None", "sd_pre: Optional[Finite] = None", ["tests/test_studies.py"]),
 ("sd_post Finite", "studies.py", "sd_post: Optional[Positive] = None", "sd_post: Optional[Finite] = None", ["tests/test_studies.py"]),
 ("sd_change Finite", "studies.py", "sd_change: Optional[Positive] = None", "sd_change: Optional[Finite] = None", ["tests/test_studies.py"]),
 ("sei Finite", "studies.py", "sei: Optional[Positive] = None", "sei: Optional[Finite] = None", ["tests/test_studies.py"]),
 ("censored LOO: sf and cdf swapped", "compare.py", "loglik.where(~above, log_sf).where(~below, log_cdf)", "loglik.where(~above, log_cdf).where(~below, log_sf)", ["tests/test_compare.py", "-k", "censored_rows"]),
 ("censored LOO: branch removed", "compare.py", 'if "upper_bound" in data:  #', 'if False:  #', ["tests/test_compare.py", "-k", "censored_rows"]),
 ("censored LOO: bound exclusive", "compare.py", 'above = yi >= data["upper_bound"]', 'above = yi > data["upper_bound"]', ["tests/test_compare.py", "-k", "censored_rows"]),
 ("R-hat threshold 1.1", "diagnostics.py", '"r_hat": 1.01', '"r_hat": 1.1', ["tests/test_diagnostics.py"]),
 ("NaN R-hat passes", "diagnostics.py", 'if not row["r_hat"] <= limits["r_hat"]:', 'if row["r_hat"] > limits["r_hat"]:', ["tests/test_diagnostics.py"]),
 ("tail ESS not checked", "diagnostics.py", 'for kind in ("ess_bulk", "ess_tail"):', 'for kind in ("ess_bulk",):', ["tests/test_diagnostics.py"]),
]


def main(only: list[str]) -> int:
    bad = 0
    for label, name, old, new, tests in MUTANTS:
        if only and not any(o in label for o in only):
            continue
        with tempfile.TemporaryDirectory() as scratch:
            shutil.copytree(ROOT / "src", pathlib.Path(scratch) / "src")
            path = pathlib.Path(scratch) / "src" / "evsynth" / name
            text = path.read_text()
            if text.count(old) != 1:
                print(f"{label}: the code to mutate was found {text.count(old)} times (changed?): update the list")
                bad += 1
                continue
            path.write_text(text.replace(old, new))
            env = dict(os.environ, PYTHONPATH=str(pathlib.Path(scratch) / "src"))
            r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:randomly", "-p", "no:cacheprovider",
                                *tests], cwd=ROOT, env=env, capture_output=True, text=True)
        failed = [line.split(" - ")[0].removeprefix("FAILED ") for line in r.stdout.splitlines() if line.startswith("FAILED")]
        verdict = "KILLED" if r.returncode == 1 and failed else f"SURVIVED (pytest exit {r.returncode})"
        bad += not verdict.startswith("KILLED")
        print(f"{label}: {verdict} {failed[:1]}", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
