"""Start-up: parsing the command line (and --help) loads no PyMC, ArviZ or matplotlib (nor pandas,
scipy, pydantic: a command imports what it runs). Checked in a fresh interpreter."""

import json
import os
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
HEAVY = ("pymc", "pytensor", "arviz", "arviz_base", "arviz_stats", "matplotlib", "xarray", "pandas", "scipy")


def fresh_python(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_importing_the_cli_and_parsing_arguments_loads_no_heavy_library():
    code = ("import json, sys, evsynth.cli.main as cli\n"
            "parser = cli.build_parser()\n"
            "for argv in (['fit'], ['network', '--engine', 'exact'], ['report'], ['sensitivity', 'x.toml']):\n"
            "    parser.parse_args(argv)\n"
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))")
    done = fresh_python(code)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_help_lists_every_command_without_loading_them():
    done = fresh_python("import sys\nfrom evsynth.cli.main import main\n"
                        "try:\n    main(['--help'])\nexcept SystemExit as exit:\n    code = exit.code\n"
                        "print('pymc' in sys.modules, 'arviz' in sys.modules, code)")
    assert done.returncode == 0, done.stderr
    for command in ("fit", "report", "sensitivity", "network"):
        assert command in done.stdout
    assert done.stdout.strip().endswith("False False 0")


def test_the_cli_vocabulary_is_the_registries():
    from evsynth.data import vocabulary
    from evsynth.engines.builders import BUILDERS
    from evsynth.effects import MEASURES, P_BOUND_MODES

    assert set(vocabulary.MODELS) == set(BUILDERS)
    assert vocabulary.MEASURES == MEASURES and vocabulary.P_BOUND_MODES == P_BOUND_MODES


def test_the_command_is_run_and_passes_main_s_exit_status_on(tmp_path):
    """`evsynth` (pyproject's script) is cli.run: main's status reaches the shell, the output is flushed."""
    import tomllib

    scripts = tomllib.loads((Path(SRC).parent / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"evsynth": "evsynth.cli.main:run"}
    empty = tmp_path / "empty.csv"
    empty.write_text("study_id,citation,source_level,design,technique,outcome\n")
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-m", "evsynth.cli.main", "fit", str(empty), "--out", str(tmp_path / "o"),
                           "--quiet"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 4 and "nothing analysed" in done.stderr + done.stdout, done.stderr


def test_options_are_never_abbreviated(capsys):
    """`--out` on a command without --out is refused, not read as `--outcome` (argparse's prefix
    matching would turn the folder into an outcome filter)."""
    from evsynth.cli.main import build_parser

    parser = build_parser()
    for argv in (["multilevel", "--out", "x"], ["fit", "--outc", "milk volume"], ["report", "--draw", "10"]):
        try:
            parser.parse_args(argv)
        except SystemExit as exit:
            assert exit.code == 2, argv
        else:
            raise AssertionError(f"{argv} was accepted")
        assert "unrecognized arguments" in capsys.readouterr().err, argv
    assert parser.parse_args(["fit", "--outcome", "milk volume"]).outcome == ["milk volume"]


def test_the_command_loads_no_dask_and_its_results_still_load(tmp_path):
    """The `evsynth` process hides dask (cli.main.UNUSED_BY_THE_COMMAND): xarray would import dask,
    dask.array and dask.distributed (~0.8 s) though no command uses them. The exact fit still writes
    every file, and its netCDF loads in a process that has dask."""
    code = ("import sys, runpy\n"
            f"sys.argv = ['evsynth', 'fit', {str(Path(SRC).parent / 'studies' / 'massage.csv')!r}, '--engine', 'exact',"
            f" '--draws', '200', '--chains', '2', '--out', {str(tmp_path / 'o')!r}, '--quiet']\n"
            "try:\n    runpy.run_module('evsynth.cli.main', run_name='__main__')\n"
            "except SystemExit as exit:\n    code = exit.code\n"
            "print(code, sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')"
            " and sys.modules[m] is not None), file=sys.stderr)")
    done = fresh_python(code)
    assert done.stderr.strip().splitlines()[-1] in ("0 []", "3 []"), done.stderr[-2000:]
    from evsynth.present.results import load_result

    tree = load_result(tmp_path / "o" / "milk_volume.nc")
    assert tree.attrs["engine"] == "exact" and tree["posterior"]["mu"].size == 400


def test_the_exact_fit_and_the_sweep_cli_import_no_scipy_stats_or_optimize(tmp_path):
    """The commands that need no PyMC run without scipy.stats, scipy.optimize, scipy.integrate and
    scipy.interpolate (~0.45 s of CPU together; nutpie and ArviZ import them for the sampled fits);
    the whole run, output written (issue 26)."""
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    root = Path(SRC).parent
    code = ("import json, sys\nfrom evsynth.cli.main import main\nstatus = main(sys.argv[1:])\n"
            "print(json.dumps([status, sorted(m for m in sys.modules if m.startswith(('scipy.stats', 'scipy.optimize', 'scipy.integrate', 'scipy.interpolate')))]))")
    for argv in (["fit", str(root / "studies" / "massage.csv"), "--engine", "exact", "--out", str(tmp_path / "f"),
                  "--quiet"],
                 ["sensitivity", str(root / "models" / "synthetic_demo_sensitivity.toml"), "--engine", "exact",
                  "--out", str(tmp_path / "s")]):
        done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env,
                              timeout=300, cwd=root)
        assert done.returncode == 0, done.stderr[-2000:]
        assert json.loads(done.stdout.strip().splitlines()[-1]) == [0, []], argv[0]


def test_the_command_freezes_what_survives_a_full_collection_and_main_does_not():
    """run() (the `evsynth` command) freezes the survivors of each full collection, so later ones do
    not walk the imported libraries again (issue 26); main() called from Python leaves gc alone."""
    code = ("import contextlib, gc, io, sys\nfrom evsynth.cli import main as cli\n"
            "start = gc.get_freeze_count()\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n        cli.main(['--version'])\n    except SystemExit:\n        pass\n"
            "gc.collect()\nprint(cli._freeze_survivors in gc.callbacks, gc.get_freeze_count() == start)\n"
            "sys.argv = ['evsynth', '--version']\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n        cli.run()\n    except SystemExit:\n        pass\n"
            "before = gc.get_freeze_count()\nkept = [[] for _ in range(1000)]\ngc.collect(1)\n"
            "print(cli._freeze_survivors in gc.callbacks, gc.get_freeze_count() == before)\n"
            "gc.collect()\nprint(gc.get_freeze_count() > before)")
    done = fresh_python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True", "True", "True", "True"], done.stdout


def test_the_command_hides_coverage_from_numba_unless_a_coverage_run_loaded_it():
    """numba imports coverage when installed (mutmut brings it); the command hides it, but a process
    that imported it first (a `coverage run`) keeps it. The loaded module is a stand-in, so the
    test needs no coverage installed (a fresh clone's CI has none)."""
    run = ("import contextlib, io, sys\nfrom evsynth.cli import main as cli\nsys.argv = ['evsynth', '--version']\n"
           "with contextlib.redirect_stdout(io.StringIO()):\n    try:\n        cli.run()\n    except SystemExit:\n"
           "        pass\nprint('coverage' in sys.modules and sys.modules['coverage'] is None)")  # hidden: a None entry
    loaded = "import sys, types\nsys.modules['coverage'] = types.ModuleType('coverage')\n"
    for first, hidden in (("", "True"), (loaded, "False")):
        done = fresh_python(first + run)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == [hidden], (first, done.stdout)
