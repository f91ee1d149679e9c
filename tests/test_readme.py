"""Every README command runs as written (issue 27).

- Each `evsynth ...` command quoted in the README runs through the command line and exits 0, with
  two changes for speed and tidiness: the output goes to a temporary folder (`--out`), and fit,
  report and network run on the exact engine (`--engine exact`: no MCMC; the PyMC path has its own
  tests). A placeholder such as `[studies.csv]` is dropped (the default file is used).
- The "From Python" block runs in a fresh interpreter from the repository root, with the sampler
  made small (es.fit and es.Sensitivity get draws/tune/chains through functools.partial; nothing
  else in the block is changed).
- The set-up block (venv + pip install) is what .ci/run does, and the wheel test
  (tests/test_packaging.py) installs into a fresh venv; it is not repeated here.
"""

import re
import shlex
import subprocess
import sys
import textwrap

import pytest

from evsynth.cli.main import main

from conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
# inline code that is a command: `evsynth fit ...`, `evsynth --version` (may wrap over a line end)
COMMANDS = sorted({" ".join(m.split()) for m in re.findall(r"`(evsynth (?:fit|report|network|sensitivity|--)[^`]*)`",
                                                            README)})
SLOW = {"evsynth sensitivity models/massage_sensitivity.toml"}  # 36 scenarios
# Exit statuses the README states for commands quoted by name: `evsynth network` on the bundled data
# analyses nothing (4, said in its bullet); `evsynth sensitivity` alone lacks its spec file (usage, 2).
EXPECTED = {"evsynth network": 4, "evsynth sensitivity": 2}


def _argv(command: str, out) -> list[str]:
    words = [w for w in shlex.split(command)[1:] if not (w.startswith("[") and w.endswith("]"))]
    if "--out" in words:  # the README's own folder becomes the temporary one
        i = words.index("--out")
        del words[i:i + 2]
    if words and words[0] in ("fit", "report", "network", "sensitivity") and "--help" not in words:
        words += ["--out", str(out)]
        if words[0] != "sensitivity" and "--engine" not in words:
            words += ["--engine", "exact"]
        if words[0] == "sensitivity":
            words += ["--quiet"]
    return words


def test_the_readme_quotes_its_commands():
    assert "evsynth fit" in COMMANDS and "evsynth network" in COMMANDS and len(COMMANDS) >= 8, COMMANDS
    assert any(c.startswith("evsynth fit studies/bcg.csv --measure RR --mods ablat") for c in COMMANDS)


@pytest.fixture(scope="module")
def runs() -> dict:
    """(exit status, stderr) of each distinct argument list: two README commands that differ only by a
    placeholder (`evsynth report` and `evsynth report [studies.csv] --out report/`) are one command
    line, run once (a whole report, ~2 s of CPU)."""
    return {}


@pytest.mark.parametrize("command", [pytest.param(c, marks=pytest.mark.slow) if c in SLOW else c
                                     for c in COMMANDS])
def test_every_readme_command_runs(command, runs, tmp_path, capsys):
    key = tuple(_argv(command, "<out>"))
    argv = [str(tmp_path / "out") if word == "<out>" else word for word in key]
    if key not in runs:
        try:
            code = main(argv or ["--help"])
        except SystemExit as exc:  # --help, --version, usage errors
            code = exc.code
        runs[key] = (code, capsys.readouterr().err)
    code, err = runs[key]
    assert code == EXPECTED.get(command, 0), f"{command} -> {argv}: exit {code}\n{err[-3000:]}"
    assert "Traceback" not in err


def _python_block() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks, "the README has no Python block"
    return "\n".join(blocks)


@pytest.mark.slow
def test_readme_python_block_runs(tmp_path):
    prelude = textwrap.dedent("""
        import functools, warnings
        import evsynth as es
        SMALL = dict(draws=200, tune=200, chains=2)
        es.fit = functools.partial(es.fit, **SMALL)
        es.Sensitivity = functools.partial(es.Sensitivity, **SMALL)
        import matplotlib
        matplotlib.use("Agg")
    """)
    script = tmp_path / "readme_block.py"
    script.write_text(prelude + "\n" + _python_block() + "\nprint('README BLOCK DONE')\n", encoding="utf-8")
    run = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0 and "README BLOCK DONE" in run.stdout, run.stderr[-4000:]
