"""The PyMC engine: a GaussianModel (evsynth.model.description) as a pm.Model, to be sampled by
evsynth.engines.fit. Every model (common_effect, random_effects, by_technique, network with its node
splits, meta_regression) is built here from its description; evsynth.engines.builders and
evsynth.methods.network only describe and call `build`.

The graph, non-centered (with few studies the centered funnel between an SD and the effects it
scales makes NUTS diverge):

    each fixed block  ~ its normal prior                      (mu, beta[moderator], technique_effect, direct)
    each random part  tau_j ~ its prior, z_j ~ N(0, R_j)      (z_technique: one z per level)
    centre = X beta + sum_j tau_j Z_j z_j
    reported quantities as Deterministics                     (technique_effect = mu + tau_technique z, ...)
    theta  = centre + tau L z, z ~ N(0, 1), L L' = R_study    (theta = centre without tau)
    y ~ N(theta, se), censored rows: P(statistic beyond the bound stored in yi)

Options for sweeps (evsynth.methods.sensitivity), which keep the graph's structure while settings change:
`weights` (study_id -> weight >= 0, a pm.Data multiplying each study's log-likelihood, so
leave-one-out and exclusions need no new graph), `prior_data=True` (prior hyper-parameters as
pm.Data) and `study_effects=False` (the study effects integrated out analytically:
y_i ~ N(centre_i, sqrt(se_i^2 + tau^2)); the same posterior for everything above the studies,
with no `z` and no `theta`). Without them the graph is exactly the plain model.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ..model.description import GaussianModel, data_hash
from ..model.priors import parse_prior
from .pymc_layout import censoring_bounds, layout, one_hot


def build(model: GaussianModel, *, weights=None, prior_data: bool = False, study_effects: bool = True) -> pm.Model:
    w = study_weights(model, weights)
    if not study_effects and model.study_correlation is not None:
        raise ValueError("study_effects=False integrates independent study effects out; this model has "
                         "correlated ones (a multi-arm trial)")
    if model.sampling_cov is not None and (w is not None or not study_effects or model.censored.any()):
        raise ValueError("a model with correlated sampling errors (rows sharing participants) is built here only "
                         "plain: no weights, study effects kept, no censored rows; the exact engine takes it "
                         "with censored rows (--engine exact)")
    shape = layout(model)  # the coordinates and the data's dims (a moderator matrix: its columns' labels)
    with pm.Model(coords=shape.coords) as pymc_model:
        for name in model.data:
            pm.Data(name, shape.data[name], dims=shape.dims[name])
        beta = _fixed(model, prior_data)
        z = {}
        taus = {}
        for part in model.parts:
            taus[part.tau] = parse_prior(part.prior).to_pymc(part.tau, as_data=prior_data)
            z[part.tau] = _standard_normal(f"z_{part.dim}", part.dim, part.correlation)
        centre = _product(model.X, beta) if model.X.shape[1] else pt.as_tensor(np.zeros(model.n))
        for part in model.parts:
            centre = centre + taus[part.tau] * _product(part.design, z[part.tau])
        for rep in model.reported:
            value = _product(rep.fixed, beta)
            for tau_name, matrix in rep.random.items():
                value = value + taus[tau_name] * _product(matrix, z[tau_name])
            pm.Deterministic(rep.name, value if rep.dim is not None else value[0], dims=rep.dim)
        tau = parse_prior(model.study_prior).to_pymc("tau", as_data=prior_data) if model.study_prior else None
        if not study_effects:
            _likelihood(model, centre, w, tau=tau)
        elif tau is None:
            _likelihood(model, pm.Deterministic("theta", centre, dims="study"), w)
        else:
            e = _standard_normal("z", "study", model.study_correlation)
            _likelihood(model, pm.Deterministic("theta", centre + tau * e, dims="study"), w)
    settings = dict(model.settings)
    if w is not None:
        settings["data_hash"] = data_hash(model.study_id, model.yi, model.sei, model.censored, w)
        settings["weights"] = ", ".join(f"{s}={v:g}" for s, v in zip(model.study_id, w) if v != 1)
    if not study_effects:
        settings["study_effects"] = "integrated out"
    pymc_model.evsynth_settings = settings
    return pymc_model


def _product(matrix, vector):
    """matrix @ vector for a small constant matrix (a design, a reported quantity's weights), written
    so that numba compiles no matrix product: a one-column matrix as a multiple of its column, a
    one-hot design as indexing, any other as an elementwise multiply-and-sum. pt.dot had numba
    compile its BLAS wrappers and, in the gradient, an Alloc with a shape-mismatch error message:
    ~3.5 of the milk-volume model's ~6 s of numba compile (README: the first run). The same values
    up to the order of a sum's terms; pymc_layout.np_product is the same arithmetic in numpy."""
    matrix = np.asarray(matrix, dtype=float)
    if matrix.shape[1] == 1:
        return pt.as_tensor(matrix[:, 0]) * vector[0]
    index = one_hot(matrix)
    if index is not None:
        return vector[index]
    return (pt.as_tensor(matrix) * vector[None, :]).sum(axis=1)


def _fixed(model: GaussianModel, prior_data: bool):
    """The fixed blocks as PyMC variables, concatenated into beta (in the description's order)."""
    pieces = []
    for block in model.fixed:
        rv = parse_prior(block.prior).to_pymc(block.name, as_data=prior_data, dims=block.dim)
        pieces.append(pt.atleast_1d(rv) if block.dim is None else rv)
    return pt.concatenate(pieces) if pieces else pt.zeros(0)


def _standard_normal(name: str, dim: str, correlation):
    """z ~ N(0, R) written as L u with u ~ N(0, 1) (L L' = R), or u itself when R is the identity."""
    u = pm.Normal(name, 0, 1, dims=dim)
    return u if correlation is None else _product(np.linalg.cholesky(correlation), u)


def _likelihood(model: GaussianModel, centre, weights: np.ndarray | None = None, tau=None):
    """Normal likelihood of yi around `centre`; censored rows contribute P(statistic beyond their bound).

    tau None: `centre` holds the study effects theta_i, and y_i ~ N(theta_i, se_i). With `tau`
    the study effects are integrated out: y_i ~ N(centre_i, sqrt(se_i^2 + tau^2)), exactly the
    same posterior for everything above the studies (censoring acts on y, so it integrates the
    same way). With `weights` the likelihood is one Potential, sum_i w_i log p(y_i) (w_i = 0
    removes study i); such a model has no observed `y`.
    """
    pymc_model = pm.modelcontext(None)
    yi = pm.Data("yi", model.yi, dims="study")
    sei = pm.Data("sei", model.sei, dims="study")
    sigma = sei if tau is None else pm.math.sqrt(sei**2 + tau**2)
    bounds = {}
    if model.censored.any():
        lower, upper = censoring_bounds(model)
        bounds = {"lower": pm.Data("lower_bound", lower, dims="study"), "upper": pm.Data("upper_bound", upper, dims="study")}

    def distribution(mean, scale):
        normal = pm.Normal.dist(mu=mean, sigma=scale)
        return pm.Censored.dist(normal, **bounds) if bounds else normal

    if model.sampling_cov is not None:  # y ~ N(theta, V): rows sharing participants (build refuses the rest)
        return pm.MvNormal("y", mu=centre, cov=model.sampling_cov, observed=yi, dims="study")
    if weights is None:
        return pymc_model.register_rv(distribution(centre, sigma), "y", observed=yi, dims=("study",))
    w = pm.Data("weights", weights, dims="study")
    # written on the value variables, as PyMC advises for log-densities built from model variables
    mean, scale = pymc_model.replace_rvs_by_values([centre, sigma])
    return pm.Potential("weighted_likelihood", (w * pm.logp(distribution(mean, scale), yi)).sum())


def study_weights(model: GaussianModel, weights) -> np.ndarray | None:
    """Weights aligned with the model's rows: a mapping study_id -> weight; unnamed studies get 1."""
    if weights is None:
        return None
    given = {str(k): v for k, v in dict(weights).items()}
    unknown = sorted(set(given) - set(model.study_id))
    if unknown:
        raise ValueError(f"weights name studies that are not used in this analysis: {unknown}")
    values = np.array([given.get(s, 1.0) for s in model.study_id], float)
    for study, value in zip(model.study_id, values):
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"study {study!r}, field 'weights': {value!r} must be a finite number >= 0")
    if not (values > 0).any():
        raise ValueError("every study has weight 0: nothing left to analyse")
    return values
