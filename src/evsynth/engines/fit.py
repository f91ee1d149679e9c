"""Sample a model and return an ArviZ 1 result (xarray DataTree) that carries the settings that produced it."""

from __future__ import annotations

import pandas as pd
import xarray as xr

from .. import __version__
from .builders import build_model
from .pymc_layout import Layout, layout, model_layout
from ..model.description import GaussianModel

SAMPLERS = ("auto", "pymc", "nutpie")
NUTPIE_MISSING = "sampler='nutpie' needs the optional extra: pip install 'evsynth[fast]'"


def nutpie_available() -> bool:
    try:
        import nutpie  # noqa: F401
    except ImportError:
        return False
    return True


def fit(model, kind: str = "by_technique", priors: dict | None = None, *, draws: int = 2000,
        tune: int = 1000, chains: int = 4, seed: int = 2026, sampler: str = "auto",
        target_accept: float = 0.99, progressbar: bool = False, cores: int | None = None,
        compiled=None, log_likelihood: bool = True, mods=None, engine: str = "auto") -> xr.DataTree:
    """Fit a pm.Model (from a builder in evsynth.engines.builders), a GaussianModel (evsynth.model.description) or
    an effect table (described as `kind`).

    engine: "exact" fits a GaussianModel or an effect table on the exact engine (independent draws
    from the posterior by quadrature, `draws` x `chains`, no sampler: evsynth.engines.exact.fit_exact);
    "pymc" and "auto" sample the PyMC model. (`evsynth fit` and run_analysis(engine="auto") also
    check the sampled fit against the exact posterior.)

    Seeded: the same inputs and seed give the same draws. The posterior, log-likelihood and data
    are returned together; `idata.attrs` records model, priors, measure, data hash and sampler.
    sampler "auto" uses nutpie when installed (its mass-matrix adaptation gave no divergences
    where PyMC's NUTS gave occasional ones on the by-technique model), else PyMC's NUTS.

    cores: nutpie's sampler threads (None: all), PyMC's processes (None: up to 2).
    compiled: a nutpie compiled model of a graph with `model`'s structure (evsynth.methods.sensitivity
    compiles once per sweep); it is sampled with `model`'s data, so no compiling happens here.
    Its chains start where the graph it was compiled from starts (models built with
    prior_data=True start at fixed values, so that does not depend on the graph).
    log_likelihood=False skips the pointwise log-likelihood (needed only for LOO and comparisons).
    mods: moderators of a meta-regression (metafor's name: a formula "~ ablat + C(alloc)" or a list
    of effect-table columns); given with an effect table it fits kind "meta_regression". Its
    summary with the REML fit beside it: evsynth.fit_meta_regression(..., engine="pymc").

    Example:
        >>> import evsynth as es
        >>> studies = es.load_studies("studies/bcg.csv", extra_columns=["ablat", "alloc"])
        >>> effects = es.compute_effects(studies, measure="RR")
        >>> idata = fit(effects, kind="random_effects", engine="exact", draws=500, chains=2)
        >>> mu = idata.exact_summary["mean"].sel(quantity="mu")     # by quadrature, log RR
        >>> idata.posterior["mu"].shape, round(float(mu), 3)
        ((2, 500), -0.688)
    """
    from ..data.vocabulary import ENGINES

    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r} unknown; choose one of {', '.join(ENGINES)}")
    if isinstance(model, pd.DataFrame) and engine == "exact":
        from ..model.description import describe

        if mods is not None and kind not in ("by_technique", "meta_regression"):
            raise ValueError(f"mods= fits a meta-regression; kind {kind!r} takes no moderators")
        kind = "meta_regression" if mods is not None else kind
        model = describe(kind, model, priors, **({"mods": mods} if mods is not None else {}))
        mods = None
    description = None
    if isinstance(model, GaussianModel):
        if engine == "exact":
            from .exact import fit_exact

            return fit_exact(model, draws=draws, chains=chains, seed=seed)
        description, model = model, None  # built below unless its compiled model is in the cache
    elif engine == "exact":
        raise ValueError("engine 'exact' fits a model description (evsynth.model.description) or an effect table, "
                         "not a built PyMC model")
    if mods is not None:
        if not isinstance(model, pd.DataFrame):
            raise ValueError("mods= needs an effect table (a built model has its moderators already)")
        if kind not in ("by_technique", "meta_regression"):  # by_technique: the default, not a choice
            raise ValueError(f"mods= fits a meta-regression; kind {kind!r} takes no moderators")
        model = build_model("meta_regression", model, priors, mods=mods)
    if isinstance(model, pd.DataFrame):
        model = build_model(kind, model, priors)
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler {sampler!r} unknown; choose one of {SAMPLERS}")
    if sampler == "auto":
        sampler = "nutpie" if nutpie_available() or compiled is not None else "pymc"
    if compiled is not None and sampler != "nutpie":
        raise ValueError("a compiled model is a nutpie model: use sampler 'nutpie' (or 'auto')")
    if sampler == "nutpie" and compiled is None and not nutpie_available():
        raise ImportError(NUTPIE_MISSING)
    from .nutpie_cache import check_cache_permissions

    check_cache_permissions()  # PyTensor and numba load compiled code from there: it must be private
    given = compiled
    if description is not None and sampler == "nutpie" and given is None:
        # A described model whose compiled form is in the cache (a warm `evsynth fit`) is sampled
        # without a pm.Model: what the result needs of it is known from the description (layout),
        # so PyMC is not even imported (~0.25 s).
        from .nutpie_cache import cached_model, compile_nutpie_cached

        compiled = cached_model(description)
        if compiled is None:  # no entry to be had (its compiling child failed, another nutpie)
            model = _build(description)
            compiled = compile_nutpie_cached(model, description, look_up=False)
    elif description is not None:
        model = _build(description)
    if given is not None:  # the caller's, of a graph with this structure: sampled with this model's data
        compiled = _with_data(given, model)
    elif sampler == "nutpie" and description is None:
        compiled = compile_nutpie(model, reusable=False)
    shape = layout(description) if model is None else model_layout(model)
    if sampler == "nutpie":
        idata = _sample_nutpie(compiled, draws, tune, chains, seed, target_accept, progressbar, cores,
                               description, shape)
    else:
        import pymc as pm

        with model:
            # nuts_sampler="pymc": PyMC 6 would otherwise hand over to nutpie when it is installed.
            idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=cores or min(chains, 2),
                              random_seed=seed, target_accept=target_accept, progressbar=progressbar,
                              compute_convergence_checks=False, nuts_sampler="pymc")
    _complete_constant_data(idata, shape)
    if log_likelihood and shape.observed and "log_likelihood" not in idata:
        _add_log_likelihood(idata, model, description)
    idata.attrs.update({k: str(v) for k, v in shape.settings.items()})
    idata.attrs.update(sampler=sampler, seed=str(seed), draws=str(draws), tune=str(tune),
                       chains=str(chains), target_accept=str(target_accept), evsynth_version=__version__)
    return idata


def compile_nutpie(model, *, reusable: bool = True, description: GaussianModel | None = None):
    """nutpie's compiled model of `model` (seconds: numba compiles the log-density).

    reusable=True: nutpie's own compile, whose result takes other data of the same shapes
    (`with_data`, as evsynth.methods.sensitivity does). reusable=False: the data frozen in and the compiled
    callbacks cached on disk (evsynth.engines.nutpie_cache), so the next process fitting the same
    model loads them instead of compiling (`evsynth fit`: 1 s warm instead of 8). description: the
    GaussianModel `model` was built from; with it (and reusable=False) a second process also skips
    PyTensor's graph rewriting (0.1 s instead of 1 s).
    """
    try:
        import nutpie
    except ImportError as exc:  # optional extra
        raise ImportError(NUTPIE_MISSING) from exc
    if reusable:
        return nutpie.compile_pymc_model(model)
    from .nutpie_cache import compile_nutpie_cached

    return compile_nutpie_cached(model, description)


def _build(description: GaussianModel):
    from .pymc import build

    return build(description)


def _add_log_likelihood(idata: xr.DataTree, model, description: GaussianModel | None) -> None:
    """The pointwise log-likelihood `y`. A model fit built from `description` with build's defaults
    has y_i | theta_i, taken from engines.exact.pointwise_loglik (no function to compile); any other
    model (a pm.Model) gets PyMC's."""
    if description is None:
        import pymc as pm

        with model:
            pm.compute_log_likelihood(idata, progressbar=False)
        return
    from .exact import pointwise_loglik

    theta = idata["posterior"]["theta"].transpose("chain", "draw", "study")
    idata["log_likelihood"] = xr.Dataset({"y": theta.copy(data=pointwise_loglik(description, theta.to_numpy()))})


def _data_dataset(shape: Layout) -> xr.Dataset:
    return xr.Dataset({name: (list(shape.dims.get(name, ())), values) for name, values in shape.data.items()},
                      coords={k: list(v) for k, v in shape.coords.items()})


def _complete_constant_data(idata: xr.DataTree, shape: Layout) -> None:
    """Every pm.Data (yi and sei included: PyMC files observed data elsewhere) in constant_data,
    so a saved result holds the data it was fitted to."""
    data = _data_dataset(shape)
    if "constant_data" in idata:
        present = idata["constant_data"].to_dataset()
        missing = [name for name in data.data_vars if name not in present]
        idata["constant_data"] = present.assign({name: data[name] for name in missing})
    else:
        idata["constant_data"] = data
    if "observed_data" not in idata:
        idata["observed_data"] = xr.Dataset({"y": data["yi"]})


def _with_data(compiled, model):
    """A caller's compiled model (of a graph with `model`'s structure) with `model`'s data."""
    if not getattr(compiled, "shared_data", True) and model.data_vars:
        raise ValueError("this compiled model has its data frozen in (compile_nutpie(..., reusable=False)): "
                         "it cannot take another model's data; compile with reusable=True")
    return compiled.with_data(**{v.name: v.get_value() for v in model.data_vars})


def _sample_nutpie(compiled, draws, tune, chains, seed, target_accept, progressbar, cores, description,
                   shape: Layout):
    """Sample `compiled` (the fit's model, or the description's whose Layout is `shape`)."""
    import nutpie

    # nutpie returns the posterior and sampler statistics; fit adds the rest.
    idata = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=seed, target_accept=target_accept,
                          progress_bar=progressbar, cores=cores, save_warmup=False)
    if getattr(compiled, "evsynth_posterior", None):  # it stored the free variables only
        idata["posterior"] = expanded_posterior(idata["posterior"].to_dataset(), shape, description, compiled)
    # Text-valued statistics (divergence messages, None when there was none) cannot go to netCDF.
    stats = idata["sample_stats"].to_dataset()
    idata["sample_stats"] = stats.drop_vars([n for n, v in stats.data_vars.items() if v.dtype == object])
    return idata


def expanded_posterior(free: xr.Dataset, shape: Layout, description: GaussianModel, compiled) -> xr.Dataset:
    """The posterior of build(description) (whose Layout is `shape`) from the draws of its free
    variables, as nutpie stores them for a model compiled with its description
    (evsynth.engines.nutpie_cache: no expand function compiled): every variable in nutpie's order
    (`compiled.evsynth_posterior`), with its dims and coordinates, the values by
    evsynth.engines.pymc_layout.expand."""
    from .pymc_layout import expand

    names = compiled.evsynth_posterior
    chains, draws = free.sizes["chain"], free.sizes["draw"]
    flat = {name: v.to_numpy().reshape(chains * draws, *v.shape[2:]) for name, v in free.data_vars.items()}
    values = expand(description, flat)
    if set(values) != set(names):
        raise RuntimeError(f"the expanded posterior has {sorted(values)}, the model {sorted(names)}")
    dims = shape.dims
    coords = {"chain": free["chain"], "draw": free["draw"]}
    data = {}
    for name in names:
        var_dims = tuple(dims.get(name, ()))
        coords.update({d: compiled.coords[d] for d in var_dims if d not in coords})
        data[name] = (("chain", "draw", *var_dims), values[name].reshape(chains, draws, *values[name].shape[1:]))
    return xr.Dataset(data, coords=coords, attrs=free.attrs)
