"""Model builders: one function per model, each taking an effect table and returning a pm.Model.

All models are non-centered (theta = centre + tau * z) because with few studies the centered
funnel between tau and the study effects makes NUTS diverge. Observed effects, SEs and indices
are pm.Data so that sensitivity sweeps can swap data without rebuilding the graph.

Rows flagged `censored` (p-value printed only as a bound) enter through an interval-censored
likelihood: the observed statistic is only known to lie beyond the bound stored in `yi`.

For sweeps (evsynth.sensitivity) every builder takes three optional keywords. Two keep the
graph's structure fixed while settings change: `weights` (study_id -> 0/1 or any weight >= 0, a
pm.Data multiplying each study's log-likelihood, so leave-one-out and exclusions need no new
graph) and `prior_data=True` (prior hyper-parameters as pm.Data, so halfnormal(0.5) ->
halfnormal(1) is a data swap). The third, `study_effects=False`, integrates the study effects
out analytically (y_i ~ N(centre_i, sqrt(se_i^2 + tau^2))): the same posterior for mu, tau and
the technique effects with fewer parameters, at the price of no `theta`, which a sweep does not
report. Without them the graph is exactly the plain model.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pymc as pm

from .effects import used_effects
from .priors import parse_prior

# Defaults on the standardized scale (SMD, SMCC) and the log-ratio scale (ROM): an effect beyond
# +-2 SD is implausible for a massage, and between-study SDs above ~1 likewise.
STANDARD_PRIORS = {"mu": "normal(0, 1)", "tau": "halfnormal(0.5)", "tau_technique": "halfnormal(0.5)"}


def default_priors(effects: pd.DataFrame) -> dict[str, str]:
    """Weakly-informative priors for the table's measure; MD priors are the standardized ones
    rescaled by the median raw-score SD of the studies, so they are in the outcome's unit."""
    measure = effects.attrs.get("measure", "SMD")
    if measure != "MD":
        return dict(STANDARD_PRIORS)
    scale = float(np.nanmedian(effects["sd_scale"])) if effects["sd_scale"].notna().any() else np.nan
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError("MD priors need a raw-score SD from at least one study; pass priors explicitly")
    return {"mu": f"normal(0, {scale:.4g})", "tau": f"halfnormal({0.5 * scale:.4g})",
            "tau_technique": f"halfnormal({0.5 * scale:.4g})"}


def resolve_priors(effects: pd.DataFrame, priors: dict | None, names=("mu", "tau")) -> dict[str, str]:
    """The priors a builder needs: the user's where given, else the documented defaults."""
    given = dict(priors or {})
    unknown = set(given) - set(STANDARD_PRIORS)
    if unknown:
        raise ValueError(f"priors for {sorted(unknown)} unknown; this model takes {list(names)}")
    missing = [n for n in names if n not in given]
    chosen = (default_priors(effects) if missing else {}) | given
    return {name: str(parse_prior(chosen[name], name)) for name in names}


def _likelihood(centre, table: pd.DataFrame, weights: np.ndarray | None = None, tau=None):
    """Normal likelihood of yi around `centre`; censored rows contribute P(statistic beyond their bound).

    tau None: `centre` holds the study effects theta_i, and y_i ~ N(theta_i, se_i). With `tau`
    the study effects are integrated out: y_i ~ N(centre_i, sqrt(se_i^2 + tau^2)), exactly the
    same posterior for everything above the studies (censoring acts on y, so it integrates the
    same way).

    With `weights` (sweeps) the likelihood is one Potential, sum_i w_i log p(y_i), so w_i = 0
    removes study i and w_i = 1 keeps it; such a model has no observed `y` (a sweep needs no
    log-likelihood or predictive draws).
    """
    model = pm.modelcontext(None)
    yi = pm.Data("yi", table["yi"].to_numpy(float), dims="study")
    sei = pm.Data("sei", table["sei"].to_numpy(float), dims="study")
    sigma = sei if tau is None else pm.math.sqrt(sei**2 + tau**2)
    censored = table["censored"].to_numpy(bool)
    bounds = {}
    if censored.any():
        positive = table["yi"].to_numpy(float) > 0
        bounds = {"lower": pm.Data("lower_bound", np.where(censored & ~positive, table["yi"], -np.inf), dims="study"),
                  "upper": pm.Data("upper_bound", np.where(censored & positive, table["yi"], np.inf), dims="study")}

    def distribution(mean, scale):
        normal = pm.Normal.dist(mu=mean, sigma=scale)
        return pm.Censored.dist(normal, **bounds) if bounds else normal

    if weights is None:
        return model.register_rv(distribution(centre, sigma), "y", observed=yi, dims=("study",))
    w = pm.Data("weights", weights, dims="study")
    # written on the value variables, as PyMC advises for log-densities built from model variables
    mean, scale = model.replace_rvs_by_values([centre, sigma])
    return pm.Potential("weighted_likelihood", (w * pm.logp(distribution(mean, scale), yi)).sum())


def _study_level(centre, tau, table: pd.DataFrame, weights, study_effects: bool):
    """theta_i ~ N(centre_i, tau), non-centered, and the likelihood; with study_effects=False the
    theta_i are integrated out instead (no `z`, no `theta`: cheaper, and no funnel to sample)."""
    if not study_effects:
        return _likelihood(centre, table, weights, tau=tau)
    z = pm.Normal("z", 0, 1, dims="study")
    theta = pm.Deterministic("theta", centre + tau * z, dims="study")
    return _likelihood(theta, table, weights)


def _weights(table: pd.DataFrame, weights) -> np.ndarray | None:
    """Weights aligned with the used rows: a mapping study_id -> weight; unnamed studies get 1."""
    if weights is None:
        return None
    given = {str(k): v for k, v in dict(weights).items()}
    unknown = sorted(set(given) - set(table["study_id"]))
    if unknown:
        raise ValueError(f"weights name studies that are not used in this analysis: {unknown}")
    values = table["study_id"].map(lambda s: given.get(s, 1.0)).to_numpy(float)
    for study, value in zip(table["study_id"], values):
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"study {study!r}, field 'weights': {value!r} must be a finite number >= 0")
    if not (values > 0).any():
        raise ValueError("every study has weight 0: nothing left to analyse")
    return values


def _prior(text: str, name: str, as_data: bool):
    return parse_prior(text).to_pymc(name, as_data=as_data)


def _prepare(effects: pd.DataFrame) -> pd.DataFrame:
    return check_poolable(used_effects(effects), effects.attrs.get("measure"))


def check_poolable(table: pd.DataFrame, measure: str | None) -> pd.DataFrame:
    """Refuse a table no model should pool: empty, repeated studies, raw differences in mixed units."""
    if table.empty:
        raise ValueError("no usable effect sizes: see evsynth.effects.not_used(effects) for why")
    if table["study_id"].duplicated().any():
        raise ValueError("duplicate study_id in the effect table")
    units = sorted(set(table["unit"].dropna()))
    if measure == "MD" and len(units) > 1:
        raise ValueError(f"MD pools raw differences, but the units differ ({', '.join(units)}); "
                         "use SMD or ROM, or analyse one unit at a time")
    return table


def _settings(effects: pd.DataFrame, table: pd.DataFrame, weights: np.ndarray | None = None,
              study_effects: bool = True) -> dict:
    """What produced the data, to travel with the result (InferenceData attrs)."""
    hashed = table[["study_id", "yi", "sei", "censored"]]
    if weights is not None:
        hashed = hashed.assign(weight=weights)
    digest = hashlib.sha256(hashed.to_csv(index=False).encode())
    settings = {k: str(v) for k, v in effects.attrs.items() if k in ("measure", "r_prepost", "p_bound")}
    settings |= {"outcomes": ", ".join(sorted(table["outcome"].unique())), "data_hash": digest.hexdigest()[:16]}
    if weights is not None:
        settings["weights"] = ", ".join(f"{s}={w:g}" for s, w in zip(table["study_id"], weights) if w != 1)
    if not study_effects:
        settings["study_effects"] = "integrated out"
    return settings


def common_effect(effects: pd.DataFrame, priors: dict | None = None, *, weights=None,
                  prior_data: bool = False, study_effects: bool = True) -> pm.Model:
    """Common-effect (fixed-effect) model: y_i ~ N(mu, se_i), i.e. theta_i = mu for every study.

    No tau: the model asserts zero heterogeneity. `theta` is kept (all equal to mu) so the
    InferenceData has the same study-level variable as the other models (not with
    study_effects=False, which drops the study level as in the other builders).
    """
    table = _prepare(effects)
    chosen = resolve_priors(effects, priors, ("mu",))
    w = _weights(table, weights)
    with pm.Model(coords={"study": table["study_id"].tolist()}) as model:
        mu = _prior(chosen["mu"], "mu", prior_data)
        if study_effects:
            _likelihood(pm.Deterministic("theta", mu * pm.math.ones(len(table)), dims="study"), table, w)
        else:
            _likelihood(mu, table, w)
    model.evsynth_settings = _settings(effects, table, w, study_effects) | {"model": "common_effect",
                                                                            "prior_mu": chosen["mu"]}
    return model


def random_effects(effects: pd.DataFrame, priors: dict | None = None, *, weights=None,
                   prior_data: bool = False, study_effects: bool = True) -> pm.Model:
    """Normal-normal random-effects model: y_i ~ N(theta_i, se_i), theta_i ~ N(mu, tau)."""
    table = _prepare(effects)
    chosen = resolve_priors(effects, priors)
    w = _weights(table, weights)
    with pm.Model(coords={"study": table["study_id"].tolist()}) as model:
        mu = _prior(chosen["mu"], "mu", prior_data)
        tau = _prior(chosen["tau"], "tau", prior_data)
        _study_level(mu, tau, table, w, study_effects)
    model.evsynth_settings = _settings(effects, table, w, study_effects) | {
        "model": "random_effects", "prior_mu": chosen["mu"], "prior_tau": chosen["tau"]}
    return model


def by_technique(effects: pd.DataFrame, priors: dict | None = None, *, weights=None,
                 prior_data: bool = False, study_effects: bool = True) -> pm.Model:
    """Technique effects partially pooled around a global mean, study effects around their technique.

    technique_effect_k ~ N(mu, tau_technique), theta_i ~ N(technique_effect_k[i], tau).
    """
    table = _prepare(effects)
    chosen = resolve_priors(effects, priors, ("mu", "tau", "tau_technique"))
    w = _weights(table, weights)
    techniques = sorted(table["technique"].unique())
    index = table["technique"].map({t: k for k, t in enumerate(techniques)}).to_numpy()
    coords = {"study": table["study_id"].tolist(), "technique": techniques}
    with pm.Model(coords=coords) as model:
        technique_idx = pm.Data("technique_idx", index, dims="study")
        mu = _prior(chosen["mu"], "mu", prior_data)
        tau_technique = _prior(chosen["tau_technique"], "tau_technique", prior_data)
        tau = _prior(chosen["tau"], "tau", prior_data)
        z_technique = pm.Normal("z_technique", 0, 1, dims="technique")
        effect = pm.Deterministic("technique_effect", mu + tau_technique * z_technique, dims="technique")
        _study_level(effect[technique_idx], tau, table, w, study_effects)
    model.evsynth_settings = _settings(effects, table, w, study_effects) | {
        "model": "by_technique", "prior_mu": chosen["mu"], "prior_tau": chosen["tau"],
        "prior_tau_technique": chosen["tau_technique"]}
    return model
