"""What evsynth.engines.pymc.build(description) makes, known without building it (no PyMC import):
its coordinates, each variable's dims, its data, the posterior's variable names (`layout`), and the
posterior's values from the sampler's draws of the free variables (`expand`), in numpy.

A warm `evsynth fit` samples a model loaded from the compile cache (engines.nutpie_cache); with
these it needs no pm.Model at all: PyMC's import and the graph's construction (~0.25 s) are skipped.
tests/test_engine_pymc_expand.py holds both against the pm.Model that build makes, for every kind.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.description import GaussianModel
from ..model.priors import parse_prior


@dataclass(frozen=True)
class Layout:
    """A model's parts that a fit's result is built from, whether read from a pm.Model
    (`model_layout`) or known from the description it was built from (`layout`)."""

    coords: dict  # dim -> labels
    dims: dict  # variable name -> its dims (variables with dims only, as pm.Model.named_vars_to_dims)
    data: dict  # pm.Data name -> values, in the model's order
    posterior: frozenset  # the posterior's variables: the free ones and the Deterministics
    observed: bool  # an observed y (whose pointwise log-likelihood a fit adds)
    settings: dict  # strings that travel with the result (idata.attrs)


def layout(model: GaussianModel) -> Layout:
    """The Layout of build(model) with build's defaults (no weights, no prior data, study effects
    kept), in the order build creates them."""
    coords = {"study": list(model.study_id)}
    for block in model.fixed:
        if block.dim is not None:
            coords[block.dim] = list(block.labels)
    for part in model.parts:
        coords[part.dim] = list(part.labels)
    for rep in model.reported:
        if rep.dim is not None:
            coords.setdefault(rep.dim, list(rep.labels))
    dims, data, posterior = {}, {}, set()
    for name, values in model.data.items():
        data[name] = np.asarray(values)
        if data[name].dtype.kind in "iu":  # pm.Data stores integers as PyMC's intX: int32 beside float64
            data[name] = data[name].astype(np.int32)
        dims[name] = _data_dims(name, data[name], coords)

    def variable(name, dim=None, prior=None):
        names = [f"log_{name}", name] if prior is not None and parse_prior(prior).family == "logstudent_t" else [name]
        posterior.update(names)
        if dim is not None:
            dims.update({n: (dim,) for n in names})

    for block in model.fixed:
        variable(block.name, block.dim, block.prior)
    for part in model.parts:
        variable(part.tau, prior=part.prior)
        variable(f"z_{part.dim}", part.dim)
    for rep in model.reported:
        variable(rep.name, rep.dim)
    if model.study_prior:
        variable("tau", prior=model.study_prior)
        variable("z", "study")
    variable("theta", "study")
    data.update(yi=np.asarray(model.yi, float), sei=np.asarray(model.sei, float))
    if model.censored.any():
        data["lower_bound"], data["upper_bound"] = censoring_bounds(model)
    dims.update({name: ("study",) for name in ("yi", "sei", "lower_bound", "upper_bound") if name in data}, y=("study",))
    return Layout(coords, dims, data, frozenset(posterior), True, dict(model.settings))


def censoring_bounds(model: GaussianModel) -> tuple[np.ndarray, np.ndarray]:
    """The censoring points of pm.Censored, row by row: a censored row's yi (its effect at the printed
    p bound) is the `lower` point when negative (the statistic at or below it), the `upper` point when
    positive (at or above it); -inf / inf elsewhere."""
    positive = model.yi > 0
    return (np.where(model.censored & ~positive, model.yi, -np.inf),
            np.where(model.censored & positive, model.yi, np.inf))


def _data_dims(name: str, values: np.ndarray, coords: dict) -> tuple:
    """The dims of a description's data array `name`: ("study",), or for a moderator matrix
    ("study", its columns' coordinate), which is added to `coords` when new (its labels 0, 1, ...)."""
    if values.ndim != 2:
        return ("study",)
    column = "moderator" if len(coords.get("moderator", ())) == values.shape[1] else f"{name}_column"
    coords.setdefault(column, list(range(values.shape[1])))
    return ("study", column)


def model_layout(pymc_model) -> Layout:
    """The Layout of a built pm.Model (read from its attributes: no PyMC import)."""
    return Layout(coords={k: list(v) for k, v in pymc_model.coords.items()},
                  dims={k: tuple(v) for k, v in pymc_model.named_vars_to_dims.items()},
                  data={v.name: v.get_value() for v in pymc_model.data_vars},
                  posterior=frozenset(rv.name for rv in [*pymc_model.free_RVs, *pymc_model.deterministics]),
                  observed=bool(pymc_model.observed_RVs), settings=dict(getattr(pymc_model, "evsynth_settings", {})))


def one_hot(matrix: np.ndarray):
    """The column of the 1 in each row when every row is one 1 among 0s (a technique or treatment
    design), else None."""
    if matrix.shape[1] and ((matrix == 0) | (matrix == 1)).all() and (matrix.sum(axis=1) == 1).all():
        return np.argmax(matrix, axis=1)
    return None


def np_product(matrix, vectors: np.ndarray) -> np.ndarray:
    """engines.pymc._product over draws in numpy (the same arithmetic): vectors (draws, p) -> (draws, rows)."""
    matrix = np.asarray(matrix, dtype=float)
    if matrix.shape[1] == 1:
        return matrix[:, 0] * vectors[:, :1]
    index = one_hot(matrix)
    if index is not None:
        return vectors[:, index]
    return (matrix * vectors[:, None, :]).sum(axis=-1)


def expand(model: GaussianModel, draws: dict) -> dict:
    """The posterior's variables of build(model) (its defaults) from the draws of its free variables
    on the sampler's unconstrained space, in numpy: each prior's variable on its own scale (tau from
    tau_log__, ...) and the Deterministics (reported quantities, theta), by the graph's arithmetic.

    draws: value-variable name -> array (draws, *shape), as nutpie stores them; returns variable
    name -> array for every variable the posterior holds (the unconstrained ones not among them).
    evsynth.engines.fit has nutpie store only the free variables of a described model and calls
    this, so numba compiles no expand function (~1 s of a cold fit); the values equal PyMC's to
    ~1e-15 (tests/test_engine_pymc_expand.py)."""
    from scipy.special import expit

    out = {}

    def prior_variable(text, name):
        prior = parse_prior(text)
        if prior.family == "logstudent_t":  # tau = exp(log_tau), log_tau ~ Student-t (no transform)
            out[f"log_{name}"] = draws[f"log_{name}"]
            out[name] = np.exp(out[f"log_{name}"])
        elif prior.family == "uniform":  # PyMC's interval transform
            lower, upper = prior.params
            out[name] = expit(draws[f"{name}_interval__"]) * (upper - lower) + lower
        elif prior.support == "positive":  # PyMC's log transform
            out[name] = np.exp(draws[f"{name}_log__"])
        else:
            out[name] = draws[name]
        return out[name]

    def standard_normal(name, correlation):
        out[name] = u = draws[name]
        return u if correlation is None else np_product(np.linalg.cholesky(correlation), u)

    n_draws = len(next(iter(draws.values())))
    pieces = [prior_variable(block.prior, block.name) for block in model.fixed]
    pieces = [v[:, None] if block.dim is None else v for block, v in zip(model.fixed, pieces)]
    beta = np.concatenate(pieces, axis=1) if pieces else np.zeros((n_draws, 0))
    taus, z = {}, {}
    for part in model.parts:
        taus[part.tau] = prior_variable(part.prior, part.tau)
        z[part.tau] = standard_normal(f"z_{part.dim}", part.correlation)
    centre = np_product(model.X, beta) if model.X.shape[1] else np.zeros((n_draws, model.n))
    for part in model.parts:
        centre = centre + taus[part.tau][:, None] * np_product(part.design, z[part.tau])
    for rep in model.reported:
        value = np_product(rep.fixed, beta)
        for tau_name, matrix in rep.random.items():
            value = value + taus[tau_name][:, None] * np_product(matrix, z[tau_name])
        out[rep.name] = value if rep.dim is not None else value[:, 0]
    if model.study_prior:
        tau = prior_variable(model.study_prior, "tau")
        out["theta"] = centre + tau[:, None] * standard_normal("z", model.study_correlation)
    else:
        out["theta"] = centre
    return out
