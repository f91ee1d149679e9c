"""Packaging (issue 27): `python -m build` makes a wheel and an sdist; each installs and runs
`evsynth fit` outside the repository on the data bundled inside the package.

The install goes into a fresh target folder with --no-deps, run by this venv's interpreter with
only that folder ahead of site-packages: the package is the built one (checked by its __file__),
the dependencies are the pinned ones already installed. (.ci/run itself is the fresh-venv install
of the dependencies.)"""

import filecmp
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT

BUNDLED = ROOT / "src" / "evsynth" / "data" / "bundled"
SHIPPED = ["studies/massage.csv", "studies/bcg.csv", "studies/synthetic_demo.csv", "studies/README.md",
           "models/massage_sensitivity.toml", "models/synthetic_demo_sensitivity.toml"]


@pytest.mark.parametrize("relative", SHIPPED)
def test_bundled_copies_are_the_repository_files(relative):
    assert filecmp.cmp(ROOT / relative, BUNDLED / relative, shallow=False), (
        f"src/evsynth/data/bundled/{relative} differs from {relative}: copy it again")


def test_default_studies_outside_the_repository(tmp_path, monkeypatch):
    from evsynth.data.bundle import bundled, default_studies

    monkeypatch.chdir(tmp_path)
    assert default_studies() == bundled("studies/massage.csv")
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "massage.csv").write_text("x")
    assert default_studies() == Path("studies/massage.csv")  # a clone's own table comes first
    with pytest.raises(FileNotFoundError, match="not bundled"):
        bundled("studies/none.csv")


def _run_fit(site: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(site))
    code = ("import evsynth, sys; print('FROM', evsynth.__file__); from evsynth.cli.main import main; "
            "sys.exit(main(['fit', '--engine', 'exact', '--draws', '200', '--quiet', '--out', 'out']))")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_wheel_and_sdist_install_and_run_outside_the_repository(tmp_path):
    dist = tmp_path / "dist"
    build = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(ROOT)],
                           capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stderr[-3000:]
    wheel, = dist.glob("*.whl")
    sdist, = dist.glob("*.tar.gz")
    names = zipfile.ZipFile(wheel).namelist()
    for relative in SHIPPED:
        assert f"evsynth/data/bundled/{relative}" in names
    for kind, artifact in (("wheel", wheel), ("sdist", sdist)):
        site, work = tmp_path / f"site_{kind}", tmp_path / f"work_{kind}"
        work.mkdir()
        install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                                  "--target", str(site), str(artifact)], capture_output=True, text=True, timeout=900)
        assert install.returncode == 0, install.stderr[-3000:]
        run = _run_fit(site, work)
        assert run.returncode == 0, f"{kind}: {run.stderr[-3000:]}"
        assert f"FROM {site}" in run.stdout  # the installed package, not the repository's
        assert "48 rows" in run.stdout or "rows:" in run.stdout
        assert (work / "out" / "milk_volume_forest.png").is_file() and (work / "out" / "effects.csv").is_file()
