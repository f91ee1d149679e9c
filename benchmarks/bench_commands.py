"""Whole commands a user waits for, as ratios to a yardstick timed in the same run (issue 26).

B = the whole process `python -c "import pandas, scipy.stats, matplotlib.pyplot"`: the imports any
plotting command pays. Each command and B run alternately (B right before each command run), as
whole processes timed from outside; the figures are medians over the repeats, with the ratio of
the command's median to B's median and the load average of the run.

    python benchmarks/bench_commands.py                       # every command, 3 repeats
    python benchmarks/bench_commands.py --only fit-exact --repeats 5
    python benchmarks/bench_commands.py --profile fit-exact   # and where the time of one run goes

Targets (issue 26): fit --engine exact <= 1.5 B, fit warm <= 2.5 B, report warm <= 3 B, the
sensitivity CLI on the demo <= 1.5 B. --profile (and any missed target) prints the largest cumulative
entries of a CPU-time cProfile run of the command (imports included), to say where the time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = [sys.executable, "-c", "import pandas, scipy.stats, matplotlib.pyplot"]
TARGETS = {"fit-exact": 1.5, "fit": 2.5, "report": 3.0, "sensitivity-exact": 1.5}


def commands(out: str) -> dict[str, list[str]]:
    evsynth = [sys.executable, "-m", "evsynth.cli.main"]
    data = str(ROOT / "studies" / "massage.csv")
    return {
        "fit-exact": evsynth + ["fit", data, "--engine", "exact", "--out", f"{out}/exact", "--quiet"],
        "fit": evsynth + ["fit", data, "--out", f"{out}/fit", "--quiet"],
        "report": evsynth + ["report", data, "--out", f"{out}/report"],
        "sensitivity-exact": evsynth + ["sensitivity", str(ROOT / "models" / "synthetic_demo_sensitivity.toml"),
                                        "--engine", "exact", "--out", f"{out}/sens"],
    }


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 3):  # 3: a fit whose checks flag something still wrote everything
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return seconds


PROFILED = """
import cProfile, runpy, sys, time
out, sys.argv = sys.argv[1], ["evsynth", *sys.argv[2:]]
profile = cProfile.Profile(time.process_time)  # CPU time: other jobs' load does not count
profile.enable()
try:
    runpy.run_module("evsynth.cli.main", run_name="__main__")
except SystemExit:
    pass
profile.disable()
profile.dump_stats(out)
"""


def profile(argv: list[str], top: int = 25) -> str:
    """cProfile (CPU time) of one run of an evsynth command in a child interpreter: its largest
    cumulative entries among evsynth's functions and the imports. (Under cProfile matplotlib's text
    layout looks seconds long: FreeType reads its font file through Python calls, each profiled; run
    alone, the bundled data's forest plots take ~0.2 s CPU.)"""
    with tempfile.NamedTemporaryFile(suffix=".prof") as f:
        child = [sys.executable, "-c", PROFILED, f.name, *argv[3:]]
        subprocess.run(child, capture_output=True, text=True, cwd=ROOT)
        text = io.StringIO()
        pstats.Stats(f.name, stream=text).sort_stats("cumulative").print_stats(r"evsynth/|importlib", top)
    lines = [line for line in text.getvalue().splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if "cumtime" in line)
    return "\n".join(line[:150] for line in lines[start:start + top + 1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", action="append", choices=list(TARGETS))
    parser.add_argument("--profile", action="append", choices=list(TARGETS), default=[])
    args = parser.parse_args()
    env_cache = tempfile.mkdtemp(prefix="evsynth_bench_cache_")
    os.environ["PYTENSOR_FLAGS"] = f"base_compiledir={env_cache}"  # one cache for every run: warm after the first
    print(f"{os.cpu_count()} CPUs; B = {' '.join(BASELINE[1:])!r}; medians of {args.repeats} whole-process runs")
    with tempfile.TemporaryDirectory() as out:
        argvs = commands(out)
        names = args.only or list(TARGETS)
        if "fit" in names or "report" in names:
            wall(argvs["fit"])  # warm the compile cache (not timed)
        for name in names:
            base, runs, loads = [], [], []
            for _ in range(args.repeats):
                loads.append(os.getloadavg()[0])
                base.append(wall(BASELINE))
                runs.append(wall(argvs[name]))
            b, t = statistics.median(base), statistics.median(runs)
            verdict = "meets" if t / b <= TARGETS[name] else "MISSES"
            print(f"{name:18} {t:6.2f} s = {t / b:4.2f} B (B {b:.2f} s; target <= {TARGETS[name]:g} B: {verdict}; "
                  f"load {min(loads):.1f}-{max(loads):.1f})")
            if verdict == "MISSES" or name in args.profile:
                print(f"  where the CPU time of one {name} run goes (cProfile, cumulative, imports included):")
                print("  " + profile(argvs[name]).replace("\n", "\n  "))


if __name__ == "__main__":
    main()
