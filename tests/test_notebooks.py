"""Every notebook runs top to bottom, with small draws, in a kernel on this venv's interpreter.

Notebooks read EVSYNTH_DRAWS / EVSYNTH_TUNE / EVSYNTH_CHAINS / EVSYNTH_SAMPLER, so the test runs them small; any cell error fails
the test with the cell's traceback. Notebooks are stored without outputs.
"""

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# PyMC, not nutpie: at these sizes compiling dominates, and PyMC's compiled C code is cached on disk
# across processes (nutpie compiles every new model: measured 150 s vs 87 s for the massage notebook).
SMALL = {"EVSYNTH_DRAWS": "100", "EVSYNTH_TUNE": "100", "EVSYNTH_CHAINS": "2", "EVSYNTH_SAMPLER": "pymc"}


def _is_this_python(command: str) -> bool:
    # jupyter_client replaces a bare "python"/"python3"/"python3.11" with the launcher's sys.executable
    bare = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}
    return command in bare or Path(command).resolve() == Path(sys.executable).resolve()


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory):
    """'python3' if it resolves to this interpreter, else a kernelspec installed in a temp prefix."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        if _is_this_python(KernelSpecManager().get_kernel_spec("python3").argv[0]):
            yield "python3"
            return
    except NoSuchKernel:
        pass
    from ipykernel.kernelspec import install

    prefix = tmp_path_factory.mktemp("jupyter")
    install(kernel_name="evsynth-test", prefix=str(prefix))
    spec = prefix / "share" / "jupyter" / "kernels" / "evsynth-test" / "kernel.json"
    assert json.loads(spec.read_text())["argv"][0] == sys.executable
    mp = pytest.MonkeyPatch()
    mp.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    yield "evsynth-test"
    mp.undo()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [k for k, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; strip them before committing"


@pytest.mark.slow  # a kernel per notebook, PyMC fits and plots: 5-25 s of CPU each (run in CI)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, kernel_name, monkeypatch):
    for key, value in SMALL.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
    client = NotebookClient(nb, timeout=600, kernel_name=kernel_name,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError, with the failing cell's traceback
    kernel_python = nb.cells[0].outputs[0]["text"].strip()
    assert Path(kernel_python).resolve() == Path(sys.executable).resolve(), "kernel is not this venv's python"
    images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert images >= 1, f"{path.name} drew no figure"


def test_there_are_notebooks():
    assert {p.name for p in NOTEBOOKS} >= {"massage_meta_analysis.ipynb", "getting_started.ipynb"}
