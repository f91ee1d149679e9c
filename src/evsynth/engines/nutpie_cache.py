"""nutpie's numba compile with its C callbacks cached on disk, so a second process fitting the same
model does not compile again (the warm `evsynth fit`).

nutpie (0.16) compiles a PyMC model in two steps: PyTensor turns the log-density (with gradient) and
the "expand" function (every variable from the unconstrained point) into numba functions, which
PyTensor caches on disk under its own keys; nutpie then wraps each in a numba C callback, which it
compiles in every process (its wrappers are closures, which numba does not cache). That second step
was 6-8 s of the 8 s compile on the bundled data. Here the two wrappers are the same code written as
source text and registered with PyTensor's cache locator, keyed by PyTensor's key of the function
they wrap (plus the shapes and the numba, nutpie and PyTensor versions), so numba loads them from
PyTensor's cache directory once they exist.

The data are frozen into the graph (pymc's freeze_dims_and_data; the same model), so the
callbacks take no shared data and the key changes with the data: a compiled model here cannot be
re-used with other data (`with_data`); evsynth.methods.sensitivity, which does that, uses nutpie's own
compile. Given the GaussianModel the graph was built from, the rest of what nutpie needs (sizes,
names, dims, the support point the chains start from) is cached beside, keyed by the description,
the code that builds the graph and the library versions, so a warm process runs no PyTensor compile
at all, and builds no pm.Model (cached_model; engines.fit takes the rest from the description).
Chains start at PyMC's support point plus U(-1, 1) jitter (nutpie's default), drawn with numpy from
nutpie's per-chain seed, the same whether the model was compiled or loaded: a seed gives the same
draws cold and warm. Where nutpie's internals differ from what this module expects (another nutpie
version), or PyTensor gives a function no cache key, it falls back to `nutpie.compile_pymc_model`:
the same sampler, compiled every time.

Security: an entry here is JSON (numbers, names and hex keys, checked field by field when read), so
reading one cannot run code; a malformed entry is a miss (compiled again). numba's and PyTensor's own
cache files beside it are pickles, which can: the compile directory, its `numba` cache, this
cache's folder and every entry must be owned by the user and writable by no one else, or the fit is
refused (CacheSecurityError) naming the path.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import stat
import sys
from pathlib import Path

import numpy as np

LOGP_SOURCE = """
def logp_numba(dim, x_, out_, logp_, user_data_):
    if dim != N_DIM:
        return -1
    try:
        x = numba.carray(x_, (N_DIM,))
        out = numba.carray(out_, (N_DIM,))
        logp = numba.carray(logp_, ())
        logp_val, grad = inner(x)
        logp[()] = logp_val
        finite = True
        for i in range(N_DIM):
            out[i] = grad[i]
            finite = finite and np.isfinite(grad[i])
        if not finite:
            return 3
        if not np.isfinite(logp_val):
            return 4
    except Exception:
        return 1
    return 0
"""

EXPAND_SOURCE = """
def expand_numba(dim, expanded, x_, out_, user_data_):
    if dim != N_DIM:
        return -1
    if expanded != N_EXPANDED:
        return -1
    try:
        x = numba.carray(x_, (N_DIM,))
        out = numba.carray(out_, (N_EXPANDED,))
        (values,) = inner(x)
        for i in range(N_EXPANDED):
            out[i] = values[i]
    except Exception:
        return -2
    return 0
"""
COPY_SOURCE = """
def expand_numba(dim, expanded, x_, out_, user_data_):
    if dim != N_DIM:
        return -1
    if expanded != N_EXPANDED:
        return -1
    x = numba.carray(x_, (N_DIM,))
    out = numba.carray(out_, (N_EXPANDED,))
    for i in range(N_DIM):
        out[i] = x[i]
    return 0
"""
# (COPY_SOURCE: the expand callback of a model given with its description, whose sampler stores only
# the free variables (N_EXPANDED == N_DIM); evsynth.engines.fit computes the rest in numpy from the
# description, engines.pymc_layout.expand, so numba compiles no expand function: ~1 s CPU of a cold fit.)
# (nutpie's own wrappers, written out: the return codes are nutpie's. The copies are loops, not
# `out[...] = grad`: numba types an array-to-array assignment with its shape-mismatch error message,
# string formatting that took 1.5-2.4 s of CPU to compile in every cold process; the values are the same.)


def compile_nutpie_cached(model, description=None, *, look_up: bool = True):
    """A nutpie compiled model of `model` (a pm.Model), its C callbacks cached on disk.

    description: the GaussianModel `model` was built from (engines.pymc.build with its defaults).
    With it, what the sampler needs besides the callbacks (sizes, names, dims, the starting point) is
    cached too, keyed by the description, and a second process skips PyTensor's graph rewriting and
    code generation as well (1 s per model on the bundled data): see cached_model, which needs no
    pm.Model at all. look_up=False: the caller's cached_model found no entry to be had (its
    compiling child failed): compiled in this process, the entry written, no second child."""
    import nutpie

    internals = _internals()
    if internals is None:
        return nutpie.compile_pymc_model(model)
    if description is not None and look_up:
        cached = cached_model(description)
        if cached is not None:
            return cached
    check_cache_permissions()
    path = None if description is None else _cache_dir() / f"{_description_key(description)}.json"
    return _compile(model, internals, path)


def cached_model(description):
    """The compiled model of build(description) from the cache, without building it: its entry,
    once there (a compiling child may be writing it: waited for; missing: compiled in a child, as
    `evsynth fit` does on a first run), loaded. None when there is none to be had (nutpie's internals
    not as this module expects, a child that failed, an entry naming other variables): the caller
    then builds the pm.Model and compiles it (compile_nutpie_cached)."""
    from .pymc_layout import layout

    if _internals() is None:
        return None
    check_cache_permissions()
    path = _cache_dir() / f"{_description_key(description)}.json"
    if not path.exists() and not os.environ.get(CHILD):
        _wait_for_entry(path)  # a child started by precompile may be compiling it
    if not path.exists() and not os.environ.get(CHILD):
        _compile_in_child([(description, path)])
        _wait_for_entry(path)
    if not path.exists():
        return None
    _check_owned(path)
    cached = _load(path)
    if cached is None or set(cached.evsynth_posterior) != layout(description).posterior:
        return None
    return cached


def _internals():
    """nutpie's compile module when it has what this module uses, else None."""
    try:
        from nutpie import compile_pymc as internals
        from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS, compile_numba_function_src  # noqa: F401
    except ImportError:
        return None
    return internals if all(hasattr(internals, name) for name in _NUTPIE_INTERNALS) else None


CHILD = "EVSYNTH_NUTPIE_COMPILE_CHILD"


def _compile_in_child(work: list, child=None) -> None:
    """Compile `work`, pairs (description, entry path), in one child process (one after the other,
    sharing its imports and numba's compiled helpers), which writes the entries and numba's cache;
    this process then loads them like a warm one. Code numba compiles in a process and code it loads from its cache differ in
    the last digit of the log-density (1 ulp on the bundled data), enough to change every draw: so
    no process samples with code it compiled itself, and a seed gives the same draws cold or warm.
    A child that fails leaves no entry; the caller then compiles here (the draws may then differ
    from a warm run's in the last digits). child: one started ahead (start_compiler), else one
    is started here. Returns once the child holds the lock of every entry (POSIX; elsewhere once it
    has ended): a fit then waits for its own entry (compile_nutpie_cached), so the first outcome's
    fit runs while the child compiles the next."""
    import subprocess
    import threading

    child = child or _start_child()
    payload = pickle.dumps([(d, str(p)) for d, p in work])
    if os.name != "posix":
        try:
            child.communicate(payload, timeout=3600)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        return
    try:
        child.stdin.write(payload)
        child.stdin.close()
        child.stdout.readline()  # "locked", or nothing if it failed before
    except OSError:  # it ended before reading: its entries are missing, each fit compiles its own
        pass
    child.stdout.close()
    threading.Thread(target=_reap, args=(child,), daemon=True).start()


def _reap(child) -> None:
    import subprocess

    try:
        child.wait(timeout=3600)
    except subprocess.TimeoutExpired:  # its entries stay missing: each fit compiles its own
        child.kill()
        child.wait()


def _start_child():
    import subprocess

    env = dict(os.environ, **{CHILD: "1", "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
    # os._exit: the work is written; the interpreter's teardown of numba's and LLVM's objects took ~0.7 s
    code = "import os; from evsynth.engines.nutpie_cache import _child; _child(); os._exit(0)"
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env)


def start_compiler():
    """A compiling child process started before the models are known, when the compile cache holds
    no entry at all (a first run: whatever the data, its fits compile), else None. It imports PyMC,
    nutpie and numba (~1 s of CPU) while this process reads the data and describes the models, then
    takes its work from precompile(..., compiler=): `evsynth fit` starts one before reading the
    study table. Give it to precompile or stop_compiler: a child whose input closes with no work
    ends after its imports."""
    from importlib.util import find_spec

    if os.environ.get(CHILD) or find_spec("nutpie") is None:
        return None
    try:
        check_cache_permissions()  # refused later, by the fit, with its message
    except CacheSecurityError:
        return None
    folder = _cache_dir()
    if folder.exists() and any(folder.glob("*.json")):
        return None
    return _start_child()


def stop_compiler(child) -> None:
    """End a child from start_compiler: one given no work (nothing to compile, or an error) is
    killed, one given its work is waited for (`evsynth fit` calls this after its fits, which
    waited for the child's entries: it has ended or is ending)."""
    if child is None:
        return
    if not child.stdin.closed and child.poll() is None:
        child.kill()
    child.wait()


def _child() -> None:
    """The child of _compile_in_child: the (description, path) pairs (pickled by the parent, over a
    pipe) on stdin. It locks every entry (`<key>.lock`, POSIX), says so on stdout, and releases each
    lock once its entry is written, so the parent's fits each wait for their own model only. One
    that fails leaves its entry missing and the next is compiled."""
    internals = _compile_internals()
    from .pymc import build

    sent = sys.stdin.buffer.read()
    if not sent:  # started ahead (start_compiler), and nothing to compile after all
        return
    work = pickle.loads(sent)
    check_cache_permissions()
    locks = []
    for _, path in work:
        locks.append(_lock(Path(path)))
    sys.stdout.buffer.write(b"locked\n")
    sys.stdout.flush()
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the parent reads no more
    for (description, path), lock in zip(work, locks):
        try:
            _compile(build(description), internals, Path(path))
        except Exception:  # noqa: BLE001  (that fit compiles again, in its process, and reports what fails)
            continue
        finally:
            if lock is not None:
                lock.close()  # releases it


def _lock(path: Path):
    """An exclusive lock on the lock file of entry `path` (an open file; closing it releases the
    lock), taken as soon as no other process holds it; None where there are no such locks (not POSIX)."""
    try:
        import fcntl
    except ImportError:
        return None
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    handle = open(path.with_suffix(".lock"), "a")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def _wait_for_entry(path: Path) -> None:
    """Wait while a compiling child holds the lock of entry `path` (it is compiling that model)."""
    if path.with_suffix(".lock").exists():
        lock = _lock(path)
        if lock is not None:
            lock.close()


def _compile_internals():
    """nutpie's compile module, imported in a compiling child without ArviZ: nutpie imports ArviZ
    (~0.8 s CPU, a third of the child's imports) only to build the result of a sampling, which this
    process never does; a stand-in module takes its name while nutpie is imported (and if nutpie
    ever needs more of it at import, it is imported for real)."""
    import types

    stand_in = types.ModuleType("arviz")
    fresh = "arviz" not in sys.modules
    if fresh:
        sys.modules["arviz"] = stand_in
    try:
        from nutpie import compile_pymc
    except Exception:  # noqa: BLE001  (another nutpie: import it as it is)
        for name in [n for n in sys.modules if n == "nutpie" or n.startswith("nutpie.")]:
            del sys.modules[name]
        sys.modules.pop("arviz", None)
        from nutpie import compile_pymc
    finally:
        if sys.modules.get("arviz") is stand_in:
            del sys.modules["arviz"]
    return compile_pymc


def precompile(descriptions, compiler=None) -> int:
    """Compile the entries of every description whose entry is missing, all in one child process
    (as cached_model does for one), before the first fit; return how many were missing.
    A command fitting several outcomes calls this first, so their models share one child's imports
    and numba's compiled helpers (type inference of error messages, BLAS wrappers: compiled once per
    process), and this process loads nutpie, which the fits need next, while the child compiles
    (not PyMC: the fits load their entries without a pm.Model, engines.fit). Measured on the
    bundled data (CPU of the children, load 5): milk volume alone 14.8 s, infant weight alone
    7.5 s, both in one child 15.2 s; two children side by side wait
    about as long on 2 idle cores and cost 7 s more CPU. The entries and numba's cache are the ones
    each fit would have written, so the fits load them as warm ones do and draw exactly the same.
    Nothing heavy is imported before the child starts (the keys need no PyMC). A model that fails
    in the child leaves its entry missing (its fit compiles as before)."""
    from concurrent.futures import ThreadPoolExecutor

    missing = _missing(descriptions)
    if not missing:
        stop_compiler(compiler)
        return 0
    work = [(description, path) for path, description in missing.items()]
    # a thread waits for the child while this process imports what the fits need next
    with ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(_compile_in_child, work, *([compiler] if compiler is not None else []))
        import nutpie  # noqa: F401  (PyMC is not needed: the fits load their entries, engines.fit)

        waiting.result()
    return len(missing)


def uncached(descriptions) -> list:
    """The descriptions (one of each) whose compiled entry is not in the cache: what precompile would
    compile ([] in a child process, or without nutpie)."""
    return list(_missing(descriptions).values())


def _missing(descriptions) -> dict:
    from importlib.util import find_spec

    if os.environ.get(CHILD) or find_spec("nutpie") is None:
        return {}
    check_cache_permissions()
    missing = {}
    for description in descriptions:
        path = _cache_dir() / f"{_description_key(description)}.json"
        if not path.exists():
            missing.setdefault(path, description)
    return missing


_NUTPIE_INTERNALS = ("_make_functions", "_prepare_dims_and_coords", "make_user_data", "CompiledPyMCModel")


def _compile(model, internals, path):
    from pymc.initial_point import make_initial_point_fn
    from pymc.model.transform.optimization import freeze_dims_and_data
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS

    frozen = freeze_dims_and_data(model)
    # The starting point: PyMC's support point (unjittered), jittered here by `StartingPoint`.
    support = make_initial_point_fn(model=frozen, default_strategy="support_point", return_transformed=True,
                                    jitter_rvs=set())
    # With a description (an entry path) the sampler stores the free variables only, on their
    # unconstrained scale; evsynth.engines.fit computes the posterior's other variables in numpy.
    lean = path is not None
    n_dim, n_expanded, logp_fn, expand_fn, flat_support, shape_info, reparameterized = internals._make_functions(
        frozen, mode="NUMBA", compute_grad=True, join_expanded=True, pymc_initial_point_fn=support,
        var_names=[] if lean else None)
    if logp_fn.get_shared() or expand_fn.get_shared():  # not expected once the data are frozen
        import nutpie

        return nutpie.compile_pymc_model(model)
    keys = {}
    inners = {"logp_numba": logp_fn.vm.jit_fn, "expand_numba": None if lean else expand_fn.vm.jit_fn}
    for name, inner in inners.items():
        inner_key = "copy" if inner is None else CACHED_SRC_FUNCTIONS.get(inner.py_func)
        keys[name] = None if inner_key is None else _hash(f"{inner_key}|{n_dim}|{n_expanded}|{_versions()}")
    callbacks = _callbacks(n_dim, n_expanded, keys, inners, lean)
    dims, coords = internals._prepare_dims_and_coords(frozen, shape_info, reparameterized)
    posterior = None
    if lean:  # the posterior's variables in the order nutpie's own expand function would give them
        transformed = [frozen.rvs_to_transforms.get(rv) is not None for rv in frozen.free_RVs]
        posterior = ([rv.name for rv, t in zip(frozen.free_RVs, transformed) if not t]
                     + [rv.name for rv, t in zip(frozen.free_RVs, transformed) if t]
                     + [d.name for d in frozen.deterministics])
    spec = {"n_dim": n_dim, "n_expanded": n_expanded, "shape_info": shape_info, "dims": dims, "coords": coords,
            "reparameterized": reparameterized, "support": np.asarray(flat_support(0), float), "keys": keys,
            "posterior": posterior}
    if path is not None and None not in keys.values():
        text = _encode(spec)
        if text is not None:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _check_owned(path.parent)
            partial = path.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(text)
            partial.replace(path)  # atomic: a concurrent reader sees the old file or the whole new one
    return _assemble(spec, callbacks, internals)


def _load(path):
    """The compiled model from the cache, or None when any part of it is missing or unreadable."""
    import numba
    from nutpie import compile_pymc as internals

    try:
        spec = _decode(path.read_text())
        # The wrapped functions are not needed: numba loads the compiled callbacks from its cache,
        # and fails to type `inner` (None) when they are not there.
        callbacks = _callbacks(spec["n_dim"], spec["n_expanded"], spec["keys"], {"logp_numba": None,
                                                                              "expand_numba": None},
                               spec["posterior"] is not None)
        return _assemble(spec, callbacks, internals)
    except (OSError, UnicodeError, ValueError, TypeError, KeyError, numba.core.errors.NumbaError):
        return None


class CacheSecurityError(PermissionError):
    """A compile-cache path another user could write: loading from it could run their code."""


def _check_owned(path: Path) -> None:
    """Refuse `path` unless it is the user's own and writable by no one else (POSIX)."""
    if os.name != "posix" or not path.exists():
        return
    info = path.stat()
    if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        who = "owned by another user" if info.st_uid != os.getuid() else "writable by other users"
        raise CacheSecurityError(
            f"compile cache {path} is {who} (mode {stat.filemode(info.st_mode)}): numba and PyTensor load "
            "compiled code from there, so anyone who can write it could run code as you; make it yours "
            "and not group/other writable (chmod go-w), or point PYTENSOR_FLAGS=base_compiledir= at a "
            "private folder")


def check_cache_permissions() -> None:
    """The compile directories loaded from (PyTensor's, its numba cache, this cache's) are private."""
    from pytensor import config

    base = Path(config.base_compiledir)
    for path in (base, base / "numba", Path(config.compiledir), _cache_dir()):
        _check_owned(path)


# The JSON form of an entry: every field checked on the way in; anything else is a miss.
def _encode(spec: dict) -> str | None:
    names, slices, shapes = spec["shape_info"]
    support = [float(v) for v in spec["support"]]
    coords = {str(k): [v.item() if hasattr(v, "item") else v for v in values] for k, values in spec["coords"].items()}
    if not all(math.isfinite(v) for v in support) or not all(
            isinstance(v, (str, int, float)) for values in coords.values() for v in values):
        return None
    posterior = None if spec["posterior"] is None else [str(n) for n in spec["posterior"]]
    return json.dumps({
        "format": 2, "posterior": posterior, "n_dim": int(spec["n_dim"]), "n_expanded": int(spec["n_expanded"]),
        "shape_info": {"names": [str(n) for n in names], "slices": [[int(s.start), int(s.stop)] for s in slices],
                       "shapes": [[int(d) for d in shape] for shape in shapes]},
        "dims": {str(k): [str(d) for d in v] for k, v in spec["dims"].items()}, "coords": coords,
        "reparameterized": [str(n) for n in spec["reparameterized"]], "support": support,
        "keys": {str(k): str(v) for k, v in spec["keys"].items()}}, allow_nan=False)


def _strings(value, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what}: not a list of names")
    return value


def _decode(text: str) -> dict:
    """The entry of `text`, or ValueError/TypeError/KeyError when any field has another shape."""
    import pandas as pd

    raw = json.loads(text, parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))
    if not isinstance(raw, dict) or raw.get("format") != 2:
        raise ValueError("not an entry of format 2")
    n_dim, n_expanded = raw["n_dim"], raw["n_expanded"]
    if not all(type(v) is int and 0 < v < 10**7 for v in (n_dim, n_expanded)):
        raise ValueError("sizes")
    info = raw["shape_info"]
    names = _strings(info["names"], "names")
    slices = [slice(int(a), int(b)) for a, b in info["slices"]]
    shapes = [np.asarray(shape, dtype=np.int64).reshape(-1) for shape in info["shapes"]]
    if not (len(names) == len(slices) == len(shapes)) or any(
            not 0 <= s.start <= s.stop <= n_expanded or s.stop - s.start != int(np.prod(shape))
            for s, shape in zip(slices, shapes)):
        raise ValueError("shape_info")
    dims = {str(k): tuple(_strings(v, "dims")) for k, v in raw["dims"].items()}
    coords = {str(k): pd.Index(v) for k, v in raw["coords"].items()
              if isinstance(v, list) and all(isinstance(x, (str, int, float)) for x in v)}
    if len(coords) != len(raw["coords"]):
        raise ValueError("coords")
    support = np.asarray(raw["support"], dtype=float)
    if support.shape != (n_dim,) or not np.isfinite(support).all():
        raise ValueError("support")
    keys = raw["keys"]
    if set(keys) != {"logp_numba", "expand_numba"} or not all(
            isinstance(v, str) and len(v) == 64 and set(v) <= set("0123456789abcdef") for v in keys.values()):
        raise ValueError("keys")
    return {"n_dim": n_dim, "n_expanded": n_expanded, "shape_info": (names, slices, shapes), "dims": dims,
            "coords": coords, "reparameterized": _strings(raw["reparameterized"], "reparameterized"),
            "support": support, "keys": keys,
            "posterior": _strings(raw["posterior"], "posterior")}


def _callbacks(n_dim, n_expanded, keys, inners, lean: bool = False):
    import numba
    from pytensor.link.numba.cache import compile_numba_function_src

    double = numba.types.CPointer(numba.types.double)
    signatures = {
        "logp_numba": numba.types.int64(numba.types.uint64, double, double, double, numba.types.voidptr),
        "expand_numba": numba.types.int64(numba.types.uint64, numba.types.uint64, double, double,
                                          numba.types.voidptr),
    }
    out = {}
    for name, source in (("logp_numba", LOGP_SOURCE), ("expand_numba", COPY_SOURCE if lean else EXPAND_SOURCE)):
        key = None if keys[name] is None else f"evsynth_{name}_{_hash(keys[name] + source)}"
        # __name__: numba rebuilds a cached function's environment by importing its module
        python = compile_numba_function_src(
            source, name, cache_key=key,
            global_env={"__name__": __name__, "numba": numba, "np": np, "inner": inners[name],
                        "N_DIM": n_dim, "N_EXPANDED": n_expanded})
        out[name] = numba.cfunc(signatures[name], cache=key is not None)(python)
    return out


def _assemble(spec, callbacks, internals):
    names, _, shapes = spec["shape_info"]
    lean = spec["posterior"] is not None
    # lean: nutpie keeps the unconstrained values (tau_log__) in the posterior, for fit's expand
    extra = {"reparameterized_names": [], "evsynth_posterior": tuple(spec["posterior"])} if lean else {
        "reparameterized_names": spec["reparameterized"]}
    return (_free_only_class(internals) if lean else internals.CompiledPyMCModel)(
        _n_dim=spec["n_dim"], dims=spec["dims"], _coords=spec["coords"],
        _shapes={name: tuple(shape) for name, shape in zip(names, shapes)},
        compiled_logp_func=callbacks["logp_numba"], compiled_expand_func=callbacks["expand_numba"],
        initial_point_func=StartingPoint(spec["support"]), shared_data={}, shared_var_keys={},
        user_data=internals.make_user_data({}, {}), n_expanded=spec["n_expanded"], shape_info=spec["shape_info"],
        logp_func=None, expand_func=None, **extra)


def _free_only_class(internals):
    """nutpie's compiled model whose draws hold the free variables only, with the names (in order)
    of the posterior that evsynth.engines.fit computes from them (engines.pymc_layout.expand)."""
    import dataclasses

    return dataclasses.make_dataclass("FreeOnlyCompiledPyMCModel",
                                      [("evsynth_posterior", tuple, dataclasses.field(default=()))],
                                      bases=(internals.CompiledPyMCModel,), frozen=True)


class StartingPoint:
    """nutpie's default start: PyMC's support point on the unconstrained space plus U(-1, 1) jitter
    on every coordinate, drawn from the seed nutpie passes for each chain."""

    def __init__(self, support: np.ndarray):
        self.support = np.ascontiguousarray(support, dtype=float)

    def __call__(self, seed=None) -> np.ndarray:
        jitter = np.random.default_rng(seed).uniform(-1, 1, self.support.shape)
        return np.ascontiguousarray(self.support + jitter)


def _description_key(description) -> str:
    """The cache key of the PyMC model built from `description` by engines.pymc.build: the
    description itself, the code that builds and wraps the graph, and the library versions."""
    from ..model import priors

    # read, not imported: a key costs no PyMC import (precompile starts its children before that)
    files = (Path(__file__).with_name("pymc.py"), Path(__file__).with_name("pymc_layout.py"), Path(priors.__file__),
             Path(__file__))
    code = "".join(path.read_text() for path in files)
    return _hash(pickle.dumps(description) + code.encode() + _versions().encode())


def _versions() -> str:
    """The installed versions (from the packages' metadata: no import needed)."""
    from importlib.metadata import version

    from .. import __version__

    return (f"evsynth {__version__} pymc {version('pymc')} pytensor {version('pytensor')} "
            f"numba {version('numba')} nutpie {version('nutpie')}")


def _hash(data) -> str:
    return hashlib.sha256(data if isinstance(data, bytes) else data.encode()).hexdigest()


def _cache_dir() -> Path:
    from pytensor import config

    return Path(config.base_compiledir) / "evsynth_nutpie"
