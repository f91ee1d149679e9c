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
at all. Chains start at PyMC's support point plus U(-1, 1) jitter (nutpie's default), drawn with
numpy from nutpie's per-chain seed, the same whether the model was compiled or loaded: a seed gives
the same draws cold and warm. Where nutpie's internals differ from what this module expects (another nutpie version), or
PyTensor gives a function no cache key, it falls back to `nutpie.compile_pymc_model`: the same
sampler, compiled every time.
"""

from __future__ import annotations

import hashlib
import os
import pickle
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
        out[...] = grad
        if not np.all(np.isfinite(out)):
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
        out[...] = values
    except Exception:
        return -2
    return 0
"""
# (nutpie's own wrappers, written out: the return codes are nutpie's.)


def compile_nutpie_cached(model, description=None):
    """A nutpie compiled model of `model` (a pm.Model), its C callbacks cached on disk.

    description: the GaussianModel `model` was built from (engines.pymc.build with its defaults).
    With it, what the sampler needs besides the callbacks (sizes, names, dims, the starting point) is
    cached too, keyed by the description, and a second process skips PyTensor's graph rewriting and
    code generation as well (1 s per model on the bundled data)."""
    import nutpie

    try:
        from nutpie import compile_pymc as internals
        from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS, compile_numba_function_src  # noqa: F401
    except ImportError:
        return nutpie.compile_pymc_model(model)
    if not all(hasattr(internals, name) for name in _NUTPIE_INTERNALS):
        return nutpie.compile_pymc_model(model)
    path = None if description is None else _cache_dir() / f"{_description_key(description)}.pkl"
    if path is not None and path.exists():
        cached = _load(path)
        if cached is not None:
            return cached
    return _compile(model, internals, path)


_NUTPIE_INTERNALS = ("_make_functions", "_prepare_dims_and_coords", "make_user_data", "CompiledPyMCModel")


def _compile(model, internals, path):
    from pymc.initial_point import make_initial_point_fn
    from pymc.model.transform.optimization import freeze_dims_and_data
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS

    frozen = freeze_dims_and_data(model)
    # The starting point: PyMC's support point (unjittered), jittered here by `StartingPoint`.
    support = make_initial_point_fn(model=frozen, default_strategy="support_point", return_transformed=True,
                                    jitter_rvs=set())
    n_dim, n_expanded, logp_fn, expand_fn, flat_support, shape_info, reparameterized = internals._make_functions(
        frozen, mode="NUMBA", compute_grad=True, join_expanded=True, pymc_initial_point_fn=support, var_names=None)
    if logp_fn.get_shared() or expand_fn.get_shared():  # not expected once the data are frozen
        import nutpie

        return nutpie.compile_pymc_model(model)
    keys = {}
    for name, inner in (("logp_numba", logp_fn.vm.jit_fn), ("expand_numba", expand_fn.vm.jit_fn)):
        inner_key = CACHED_SRC_FUNCTIONS.get(inner.py_func)
        keys[name] = None if inner_key is None else _hash(f"{inner_key}|{n_dim}|{n_expanded}|{_versions()}")
    callbacks = _callbacks(n_dim, n_expanded, keys, {"logp_numba": logp_fn.vm.jit_fn,
                                                      "expand_numba": expand_fn.vm.jit_fn})
    dims, coords = internals._prepare_dims_and_coords(frozen, shape_info, reparameterized)
    spec = {"n_dim": n_dim, "n_expanded": n_expanded, "shape_info": shape_info, "dims": dims, "coords": coords,
            "reparameterized": reparameterized, "support": np.asarray(flat_support(0), float), "keys": keys}
    if path is not None and None not in keys.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(pickle.dumps(spec))
        partial.replace(path)  # atomic: a concurrent reader sees the old file or the whole new one
    return _assemble(spec, callbacks, internals)


def _load(path):
    """The compiled model from the cache, or None when any part of it is missing or unreadable."""
    import numba
    from nutpie import compile_pymc as internals

    try:
        spec = pickle.loads(path.read_bytes())
        # The wrapped functions are not needed: numba loads the compiled callbacks from its cache,
        # and fails to type `inner` (None) when they are not there.
        callbacks = _callbacks(spec["n_dim"], spec["n_expanded"], spec["keys"], {"logp_numba": None,
                                                                              "expand_numba": None})
    except (OSError, pickle.UnpicklingError, KeyError, EOFError, numba.core.errors.NumbaError):
        return None
    return _assemble(spec, callbacks, internals)


def _callbacks(n_dim, n_expanded, keys, inners):
    import numba
    from pytensor.link.numba.cache import compile_numba_function_src

    double = numba.types.CPointer(numba.types.double)
    signatures = {
        "logp_numba": numba.types.int64(numba.types.uint64, double, double, double, numba.types.voidptr),
        "expand_numba": numba.types.int64(numba.types.uint64, numba.types.uint64, double, double,
                                          numba.types.voidptr),
    }
    out = {}
    for name, source in (("logp_numba", LOGP_SOURCE), ("expand_numba", EXPAND_SOURCE)):
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
    return internals.CompiledPyMCModel(
        _n_dim=spec["n_dim"], dims=spec["dims"], _coords=spec["coords"],
        _shapes={name: tuple(shape) for name, shape in zip(names, shapes)},
        compiled_logp_func=callbacks["logp_numba"], compiled_expand_func=callbacks["expand_numba"],
        initial_point_func=StartingPoint(spec["support"]), shared_data={}, shared_var_keys={},
        user_data=internals.make_user_data({}, {}), n_expanded=spec["n_expanded"], shape_info=spec["shape_info"],
        logp_func=None, expand_func=None, reparameterized_names=spec["reparameterized"])


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
    from . import pymc as builder
    from ..model import priors

    code = "".join(Path(module.__file__).read_text() for module in (builder, priors, sys.modules[__name__]))
    return _hash(pickle.dumps(description) + code.encode() + _versions().encode())


def _versions() -> str:
    import numba
    import nutpie
    import pymc
    import pytensor

    from .. import __version__

    return (f"evsynth {__version__} pymc {pymc.__version__} pytensor {pytensor.__version__} "
            f"numba {numba.__version__} nutpie {nutpie.__version__}")


def _hash(data) -> str:
    return hashlib.sha256(data if isinstance(data, bytes) else data.encode()).hexdigest()


def _cache_dir() -> Path:
    from pytensor import config

    return Path(config.base_compiledir) / "evsynth_nutpie"
