"""The architecture is visible in the folders and the imports: each layer folder imports only the
layers below it (import-linter's layers contract in pyproject.toml, imports inside functions
included), and no module imports (directly or through others) a module that imports it back."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "evsynth"


def import_graph() -> dict[str, set[str]]:
    """evsynth module -> the evsynth modules it imports anywhere in its source."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = module if parts[-1] == "__init__" else module.rsplit(".", 1)[0]
        edges = graph.setdefault(module, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.ImportFrom) and node.level):
                continue
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:  # `from . import plots` imports the module evsynth.present.plots
                candidate = f"{target}.{alias.name}"
                if (PACKAGE.parent / (candidate.replace(".", "/") + ".py")).exists():
                    edges.add(candidate)
                elif target != module:
                    edges.add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_among_the_modules():
    graph = import_graph()
    graph.pop("evsynth", None)  # the package's lazy exports name every module; nothing imports it back
    assert {"evsynth.model.description", "evsynth.engines.exact", "evsynth.engines.pymc", "evsynth.engines.fit"} <= set(graph)
    assert cycles(graph) == []


def test_the_description_and_the_exact_engine_need_neither_pymc_nor_arviz():
    for module in ("model/description.py", "engines/exact.py", "data/vocabulary.py"):
        tree = ast.parse((PACKAGE / module).read_text())
        top = {a.name.split(".")[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
        top |= {n.module.split(".")[0] for n in tree.body if isinstance(n, ast.ImportFrom) and n.module and not n.level}
        assert not top & {"pymc", "pytensor", "arviz", "arviz_stats", "matplotlib"}, module


LAYERS = ["data", "effects", "model", "engines", "methods", "present", "cli"]


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """import-linter on the package under `root` (its src folder), with the project's contract."""
    config = Path(__file__).resolve().parents[1] / "pyproject.toml"
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(lint), "--config", str(config), "--no-cache"], capture_output=True, text=True,
                          cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


def test_the_folders_are_the_layers_and_every_module_sits_in_one():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(LAYERS)
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == ["__init__.py"]
    for layer in LAYERS:
        assert ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text())), layer


def test_imports_only_go_down_the_layers():
    done = lint_imports(PACKAGE.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


def test_the_layer_contract_fails_on_a_planted_upward_import(tmp_path):
    shutil.copytree(PACKAGE, tmp_path / "evsynth", ignore=shutil.ignore_patterns("__pycache__"))
    planted = tmp_path / "evsynth" / "model" / "priors.py"
    planted.write_text(planted.read_text() + "\n\ndef _upward():\n    from ..present import plots  # noqa: F401\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0
    assert "0 kept, 1 broken" in done.stdout
    assert "evsynth.model.priors -> evsynth.present.plots" in done.stdout
