"""Cache misses of the exact k = 50 posterior's first call in a process against a later call, by
valgrind's cache simulation: counts that do not move with the machine's load, where the CPU times of
a ~1.5 ms call on this shared VM move by a third from minute to minute (issue 26).

    python benchmarks/first_call_misses.py            # needs valgrind; ~1.5 minutes

Two runs of callgrind (each: import, then one or two calls of bench_exact.run_once wrapped in
operator.call, the only events collected), an L1i of 64 kB and an L2 of 1 MB as on this machine.
The first call's figures are the one-call run's; a later call's are the two-call run's minus them.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = f"""
import operator, sys
sys.path.insert(0, {str(ROOT / "benchmarks")!r})
from bench_exact import run_once, synthetic_studies
yi, sei = synthetic_studies(50)
for _ in range(int(sys.argv[1])):
    operator.call(run_once, yi, sei, "halfnormal(0.5)", None)
"""
EVENTS = ("Ir", "Dr", "Dw", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw")


def collected(calls: int) -> dict[str, int]:
    with tempfile.NamedTemporaryFile(suffix=".callgrind") as out:
        subprocess.run(["valgrind", "--tool=callgrind", "--cache-sim=yes", "--I1=65536,8,64", "--LL=1048576,16,64",
                        "--collect-atstart=no", "--toggle-collect=_operator_call*", f"--callgrind-out-file={out.name}",
                        sys.executable, "-c", CHILD, str(calls)],
                       check=True, capture_output=True, env=dict(os.environ, PYTHONHASHSEED="0"))
        summary = next(line for line in Path(out.name).read_text().splitlines() if line.startswith("summary:"))
    return dict(zip(EVENTS, map(int, summary.split()[1:])))


def main():
    one, two = collected(1), collected(2)
    later = {k: two[k] - one[k] for k in EVENTS}
    for name, c in (("first call", one), ("a later call", later)):
        l2 = c["ILmr"] + c["DLmr"] + c["DLmw"]
        print(f"{name:13} {c['Ir'] / 1e6:5.2f} M instructions; L1i misses {c['I1mr']:7,}; L2 misses {l2:6,} "
              f"(code {c['ILmr']:,}, data read {c['DLmr']:,}, data written {c['DLmw']:,})")


if __name__ == "__main__":
    main()
