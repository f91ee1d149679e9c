"""Whole commands a user waits for, as ratios to a yardstick timed in the same run (issue 26).

B = the whole process `python -c "import pandas, scipy.stats, matplotlib.pyplot"`: the imports any
plotting command pays. Each command and B run alternately (B right before each command run), as
whole processes timed from outside; the figures are medians over the repeats, with the ratio of
the command's median to B's median and the load average of the run.

    python benchmarks/bench_commands.py                       # every command, 3 repeats
    python benchmarks/bench_commands.py --only fit-exact --repeats 5
    python benchmarks/bench_commands.py --profile fit-exact   # and where the time of one run goes

Targets (issue 26), whole processes against B's wall time: fit --engine exact <= 1.5 B, fit warm
<= 2.5 B, fit with a fresh compile directory <= 6 B (one run: it compiles), report warm <= 3 B, the
sensitivity CLI on the demo <= 1.5 B, the 100-scenario sweep's CLI <= 1.5 B, fit --engine exact on
1,000 synthetic studies <= 3 B. CPU time of one step in a process that has imported what it needs
(median over repeats), against the same B: the 100-scenario exact sweep < 0.25 B (its first run in
the process, and a second), the exact normal-normal posterior with every summary at k = 50 < 0.001 B
and k = 10,000 < 0.025 B, the network command with its 20 node splits < 0.5 B. The sweep and the
network are judged on their first run in a process (a user runs them once); the exact posterior
steps as the issue measured them (its "now" figure, 9.5 ms at k = 50, is benchmarks/bench_exact.py's:
one warm-up call, then the median of later calls), with the first call in a fresh process printed
beside. --profile (and any missed target) prints the largest cumulative entries of a CPU-time
cProfile run (imports included for whole commands), to say where the time goes; an exact-k50 first
call over the line also prints its steps (posterior, summary(), theta) beside a later call's, with
the page faults of each (bench_exact.steps).

    python benchmarks/bench_commands.py --only exact-k50 --only network-splits   # some targets
    python benchmarks/bench_commands.py --skip fit-cold                          # all but the compile

Every command runs once untimed before its timed runs (a user's second run: Python's bytecode of
evsynth cached in src/evsynth/__pycache__, files in the OS cache), and the children run with
Python's bytecode cache on even when PYTHONDONTWRITEBYTECODE is set in the calling environment
(as in the agents' sandbox): otherwise every run compiles evsynth's ~80 modules again (~0.1 s of
CPU), which an installed or an editable evsynth does not.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = [sys.executable, "-c", "import pandas, scipy.stats, matplotlib.pyplot"]
TARGETS = {"fit-exact": 1.5, "fit": 2.5, "fit-cold": 6.0, "report": 3.0, "sensitivity-exact": 1.5,
           "sweep-100-cli": 1.5, "fit-k1000": 3.0}
# CPU targets: (set-up code, the timed statement, target in B); run in a child that imported first
BENCH = str(ROOT / "benchmarks")
CPU_TARGETS = {
    "sweep-100": (f"import sys; sys.path.insert(0, {BENCH!r}); from bench_engines import make_grid",
                  "make_grid('exact').run(progress=False)", 0.25),
    "exact-k50": (f"import sys; sys.path.insert(0, {BENCH!r}); from bench_exact import run_once, synthetic_studies; "
                  "yi, sei = synthetic_studies(50)", "run_once(yi, sei, 'halfnormal(0.5)', None)", 0.001),
    "exact-k10000": (f"import sys; sys.path.insert(0, {BENCH!r}); from bench_exact import run_once, synthetic_studies; "
                     "yi, sei = synthetic_studies(10000)", "run_once(yi, sei, 'halfnormal(0.5)', None)", 0.025),
    # the `evsynth` process hides dask and distributed (cli.main.run, UNUSED_BY_THE_COMMAND); main() called
    # from Python does not, and xarray then imports them in the first run (~0.5 s CPU the command never pays)
    "network-splits": (f"import sys, tempfile, pathlib, io, contextlib; sys.path.insert(0, {BENCH!r}); "
                       "[sys.modules.setdefault(name, None) for name in ('dask', 'distributed')]; "
                       "import matplotlib.pyplot, xarray, evsynth.engines.exact, evsynth.methods.network; "
                       "from bench_network import simulate; from evsynth.cli.main import main as cli; "
                       "d = pathlib.Path(tempfile.mkdtemp()); simulate().to_csv(d / 'net.csv', index=False)",
                       "with contextlib.redirect_stdout(io.StringIO()): cli(['network', str(d / 'net.csv'), "
                       "'--out', str(d / 'o'), '--engine', 'exact'])", 0.5),
}
CPU_REPEATS = {"sweep-100": 2, "exact-k50": 30, "exact-k10000": 5, "network-splits": 3}
AFTER_WARM_UP = {"exact-k50", "exact-k10000"}  # judged on the later calls' median (the docstring says why)


def synthetic_inputs(out: str) -> dict[str, str]:
    """The 100-scenario spec (bench_sensitivity's grid on the SYNTHETIC demo) and 1,000 SYNTHETIC
    studies (one technique, yi/sei given; seeded), written to `out`."""
    import json

    import numpy as np
    import pandas as pd

    sys.path.insert(0, BENCH)
    from bench_sensitivity import GRID

    grid = dict(GRID, exclude=["" if e is None else e for e in GRID["exclude"]])
    spec = Path(out) / "sweep100.toml"
    spec.write_text(f"""title = "SYNTHETIC demo, 100 scenarios (benchmarks/bench_commands.py)"
[data]
studies = {json.dumps(str(ROOT / "studies" / "synthetic_demo.csv"))}
outcome = "milk volume"
[model]
name = "by_technique"
priors = {{ mu = "normal(0, 1)", tau_technique = "halfnormal(0.5)" }}
[grid]
{chr(10).join(f"{k} = {json.dumps(v)}" for k, v in grid.items())}
""")
    rng = np.random.default_rng(1000)
    sei = rng.uniform(0.1, 0.5, 1000)
    table = pd.DataFrame({"study_id": [f"sim{i:04d}" for i in range(1000)],
                          "citation": "SYNTHETIC, benchmarks/bench_commands.py", "source_level": "synthetic",
                          "design": "effect", "technique": "T", "comparator": "control", "outcome": "synthetic outcome",
                          "yi": np.round(rng.normal(0.3, np.sqrt(0.2**2 + sei**2)), 4), "sei": np.round(sei, 4),
                          "measure": "SMD", "synthetic": "true"})
    studies = Path(out) / "k1000.csv"
    table.to_csv(studies, index=False)
    return {"spec": str(spec), "k1000": str(studies)}


def commands(out: str) -> dict[str, list[str]]:
    evsynth = [sys.executable, "-m", "evsynth.cli.main"]
    data = str(ROOT / "studies" / "massage.csv")
    made = synthetic_inputs(out)
    return {
        "fit-exact": evsynth + ["fit", data, "--engine", "exact", "--out", f"{out}/exact", "--quiet"],
        "fit": evsynth + ["fit", data, "--out", f"{out}/fit", "--quiet"],
        "fit-cold": evsynth + ["fit", data, "--out", f"{out}/fitcold", "--quiet"],
        "report": evsynth + ["report", data, "--out", f"{out}/report"],
        "sensitivity-exact": evsynth + ["sensitivity", str(ROOT / "models" / "synthetic_demo_sensitivity.toml"),
                                        "--engine", "exact", "--out", f"{out}/sens"],
        "sweep-100-cli": evsynth + ["sensitivity", made["spec"], "--engine", "exact", "--out", f"{out}/sweep100"],
        "fit-k1000": evsynth + ["fit", made["k1000"], "--engine", "exact", "--out", f"{out}/k1000", "--quiet"],
    }


def user_env(env: dict | None = None) -> dict:
    """The environment of a user's shell: Python's bytecode cache on (PYTHONDONTWRITEBYTECODE unset)."""
    env = dict(os.environ if env is None else env)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def wall(argv: list[str], env: dict | None = None, cpu: list | None = None) -> float:
    """The process's wall time; its CPU time (user + system) is appended to `cpu` when given."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=user_env(env))
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if cpu is not None:
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
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
        subprocess.run(child, capture_output=True, text=True, cwd=ROOT, env=user_env())
        text = io.StringIO()
        pstats.Stats(f.name, stream=text).sort_stats("cumulative").print_stats(r"evsynth/|importlib", top)
    lines = [line for line in text.getvalue().splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if "cumtime" in line)
    return "\n".join(line[:150] for line in lines[start:start + top + 1])


CPU_CHILD = """
import cProfile, io, json, pstats, statistics, sys, time
setup, statement, repeats, profile = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
exec(setup)
seconds = []
for _ in range(repeats):
    start = time.process_time()
    exec(statement)
    seconds.append(time.process_time() - start)
where = ""
if profile:
    p = cProfile.Profile(time.process_time)
    p.enable(); exec(statement); p.disable()
    text = io.StringIO()
    pstats.Stats(p, stream=text).sort_stats("cumulative").print_stats(r"evsynth/", 20)
    where = text.getvalue()
print(json.dumps({"first": seconds[0], "rest": statistics.median(seconds[1:] or seconds), "where": where}))
"""


def cpu_seconds(name: str, profile: bool = False) -> dict:
    """CPU time of one CPU target's statement in a child that ran its set-up first: the first run,
    the median of the others, and (profile) where a further run's time goes."""
    import json

    setup, statement, _ = CPU_TARGETS[name]
    done = subprocess.run([sys.executable, "-c", CPU_CHILD, setup, statement, str(CPU_REPEATS[name]),
                           "1" if profile else "0"], capture_output=True, text=True, cwd=ROOT, env=user_env())
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


COLD_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
from bench_exact import run_once, steps, synthetic_studies
yi, sei = synthetic_studies(50)
first = steps(yi, sei)
for _ in range(10):
    run_once(yi, sei, 'halfnormal(0.5)', None)
print(json.dumps({"first": first, "later": steps(yi, sei)}))
"""


def cold_steps() -> str:
    """exact-k50's first call in a fresh process step by step beside a later call's (CPU time, minor
    page faults: fresh memory from the kernel), medians of 5 processes: where a first call's extra goes."""
    import json

    runs = []
    for _ in range(5):
        done = subprocess.run([sys.executable, "-c", COLD_CHILD, BENCH], capture_output=True, text=True, cwd=ROOT,
                              env=user_env())
        if done.returncode != 0:
            raise SystemExit(f"exact-k50 steps failed:\n{done.stderr[-2000:]}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    parts = []
    for step in runs[0]["first"]:
        first, later = (statistics.median(r[when][step][0] for r in runs) for when in ("first", "later"))
        faults = statistics.median(r["first"][step][1] for r in runs)
        parts.append(f"{step} {first * 1e6:.0f} us ({faults:.0f} page faults; a later call {later * 1e6:.0f} us)")
    return "by step: " + "; ".join(parts)


def _where(text: str, top: int = 20) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if "cumtime" in line), 0)
    return "\n".join(line[:150] for line in lines[start:start + top + 1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    every = list(TARGETS) + list(CPU_TARGETS)
    parser.add_argument("--only", action="append", choices=every)
    parser.add_argument("--skip", action="append", choices=every, default=[])
    parser.add_argument("--profile", action="append", choices=every, default=[])
    args = parser.parse_args()
    env_cache = tempfile.mkdtemp(prefix="evsynth_bench_cache_")
    os.environ["PYTENSOR_FLAGS"] = f"base_compiledir={env_cache}"  # one cache for every run: warm after the first
    print(f"{os.cpu_count()} CPUs; B = {' '.join(BASELINE[1:])!r}; medians of {args.repeats} whole-process runs "
          "after one untimed run, bytecode cache on")
    names = [n for n in (args.only or every) if n not in args.skip]
    with tempfile.TemporaryDirectory() as out:
        argvs = commands(out)
        if "fit" in names or "report" in names:
            wall(argvs["fit"])  # warm the compile cache (not timed)
        for name in names:
            base, base_cpu, runs, cpu, loads = [], [], [], [], []
            cold = name == "fit-cold"  # a fresh compile directory each run
            if not cold and name not in CPU_TARGETS:
                wall(argvs[name])  # untimed: a user's second run (bytecode and files cached)
            for _ in range(args.repeats):
                loads.append(os.getloadavg()[0])
                base.append(wall(BASELINE, cpu=base_cpu))
                if name in CPU_TARGETS:
                    runs.append(cpu_seconds(name))
                    continue
                env = None
                if cold:
                    env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={tempfile.mkdtemp(prefix='evsynth_cold_')}")
                runs.append(wall(argvs[name], env, cpu=cpu))
            b = statistics.median(base)
            load = f"load {min(loads):.1f}-{max(loads):.1f}"
            if name in CPU_TARGETS:
                target = CPU_TARGETS[name][2]
                first, rest = statistics.median(r["first"] for r in runs), statistics.median(r["rest"] for r in runs)
                # against B's CPU time too: under load B's wall time grows, a CPU time much less
                bc = statistics.median(base_cpu)
                judged = rest if name in AFTER_WARM_UP else first
                verdict = "meets" if max(judged / b, judged / bc) < target else "MISSES"
                on = "after a warm-up call" if name in AFTER_WARM_UP else "first run"
                print(f"{name:18} CPU {first * 1e3:8.1f} ms = {first / b:.3g} B ({first / bc:.3g} B's CPU) first run in "
                      f"the process; after: {rest * 1e3:.1f} ms = {rest / b:.3g} B ({rest / bc:.3g} B's CPU) "
                      f"(B {b:.2f} s wall, {bc:.2f} s CPU; target < {target:g} B, {on}: {verdict}; {load})")
                if name == "exact-k50" and first / min(b, bc) >= target:  # the first call is over the line: its cold costs
                    print(f"  the first call in a fresh process is over {target:g} B: " + cold_steps())
                if verdict == "MISSES" or name in args.profile:
                    print(f"  where the CPU time of one {name} run goes (cProfile, cumulative):")
                    print("  " + _where(cpu_seconds(name, profile=True)["where"]).replace("\n", "\n  "))
                continue
            t = statistics.median(runs)
            verdict = "meets" if t / b <= TARGETS[name] else "MISSES"
            # the CPU-time ratio beside: wall times under load swing by seconds, CPU times much less
            c, bc = statistics.median(cpu), statistics.median(base_cpu)
            print(f"{name:18} {t:6.2f} s = {t / b:4.2f} B (B {b:.2f} s; target <= {TARGETS[name]:g} B: {verdict}; "
                  f"{load}); CPU {c:.2f} s = {c / bc:.2f} B's CPU ({bc:.2f} s)")
            if (verdict == "MISSES" or name in args.profile) and not cold:
                print(f"  where the CPU time of one {name} run goes (cProfile, cumulative, imports included):")
                print("  " + profile(argvs[name]).replace("\n", "\n  "))
            elif cold and verdict == "MISSES":
                print("  (numba compiles one model per outcome, in one child process: README 'The first "
                      "run: the compile'; benchmarks/bench_fit.py times one model's phases)")


if __name__ == "__main__":
    main()
