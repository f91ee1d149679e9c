"""Model builders: one function per model, each taking an effect table and returning a pm.Model.

All models are non-centered (theta = centre + tau * z) because with few studies the centered
funnel between tau and the study effects makes NUTS diverge. Observed effects, SEs and indices
are pm.Data so that sensitivity sweeps can swap data without rebuilding the graph.

Rows flagged `censored` (p-value printed only as a bound) enter through an interval-censored
likelihood: the observed statistic is only known to lie beyond the bound stored in `yi`.
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
    return {name: str(parse_prior(chosen[name])) for name in names}


def _likelihood(theta, table: pd.DataFrame):
    """Normal likelihood of yi; censored rows contribute P(statistic beyond their bound)."""
    yi = pm.Data("yi", table["yi"].to_numpy(float), dims="study")
    sei = pm.Data("sei", table["sei"].to_numpy(float), dims="study")
    censored = table["censored"].to_numpy(bool)
    if not censored.any():
        return pm.Normal("y", mu=theta, sigma=sei, observed=yi, dims="study")
    positive = table["yi"].to_numpy(float) > 0
    lower = pm.Data("lower_bound", np.where(censored & ~positive, table["yi"], -np.inf), dims="study")
    upper = pm.Data("upper_bound", np.where(censored & positive, table["yi"], np.inf), dims="study")
    return pm.Censored("y", pm.Normal.dist(mu=theta, sigma=sei), lower=lower, upper=upper,
                       observed=yi, dims="study")


def _prepare(effects: pd.DataFrame) -> pd.DataFrame:
    table = used_effects(effects)
    if table.empty:
        raise ValueError("no usable effect sizes: see evsynth.effects.not_used(effects) for why")
    if table["study_id"].duplicated().any():
        raise ValueError("duplicate study_id in the effect table")
    units = sorted(set(table["unit"].dropna()))
    if effects.attrs.get("measure") == "MD" and len(units) > 1:
        raise ValueError(f"MD pools raw differences, but the units differ ({', '.join(units)}); "
                         "use SMD or ROM, or analyse one unit at a time")
    return table


def _settings(effects: pd.DataFrame, table: pd.DataFrame) -> dict:
    """What produced the data, to travel with the result (InferenceData attrs)."""
    digest = hashlib.sha256(table[["study_id", "yi", "sei", "censored"]].to_csv(index=False).encode())
    settings = {k: str(v) for k, v in effects.attrs.items() if k in ("measure", "r_prepost", "p_bound")}
    return settings | {"outcomes": ", ".join(sorted(table["outcome"].unique())),
                       "data_hash": digest.hexdigest()[:16]}


def common_effect(effects: pd.DataFrame, priors: dict | None = None) -> pm.Model:
    """Common-effect (fixed-effect) model: y_i ~ N(mu, se_i), i.e. theta_i = mu for every study.

    No tau: the model asserts zero heterogeneity. `theta` is kept (all equal to mu) so the
    InferenceData has the same study-level variable as the other models.
    """
    table = _prepare(effects)
    chosen = resolve_priors(effects, priors, ("mu",))
    with pm.Model(coords={"study": table["study_id"].tolist()}) as model:
        mu = parse_prior(chosen["mu"]).to_pymc("mu")
        theta = pm.Deterministic("theta", mu * pm.math.ones(len(table)), dims="study")
        _likelihood(theta, table)
    model.evsynth_settings = _settings(effects, table) | {"model": "common_effect", "prior_mu": chosen["mu"]}
    return model


def random_effects(effects: pd.DataFrame, priors: dict | None = None) -> pm.Model:
    """Normal-normal random-effects model: y_i ~ N(theta_i, se_i), theta_i ~ N(mu, tau)."""
    table = _prepare(effects)
    chosen = resolve_priors(effects, priors)
    with pm.Model(coords={"study": table["study_id"].tolist()}) as model:
        mu = parse_prior(chosen["mu"]).to_pymc("mu")
        tau = parse_prior(chosen["tau"]).to_pymc("tau")
        z = pm.Normal("z", 0, 1, dims="study")
        theta = pm.Deterministic("theta", mu + tau * z, dims="study")
        _likelihood(theta, table)
    model.evsynth_settings = _settings(effects, table) | {"model": "random_effects", "prior_mu": chosen["mu"], "prior_tau": chosen["tau"]}
    return model


def by_technique(effects: pd.DataFrame, priors: dict | None = None) -> pm.Model:
    """Technique effects partially pooled around a global mean, study effects around their technique.

    technique_effect_k ~ N(mu, tau_technique), theta_i ~ N(technique_effect_k[i], tau).
    """
    table = _prepare(effects)
    chosen = resolve_priors(effects, priors, ("mu", "tau", "tau_technique"))
    techniques = sorted(table["technique"].unique())
    index = table["technique"].map({t: k for k, t in enumerate(techniques)}).to_numpy()
    coords = {"study": table["study_id"].tolist(), "technique": techniques}
    with pm.Model(coords=coords) as model:
        technique_idx = pm.Data("technique_idx", index, dims="study")
        mu = parse_prior(chosen["mu"]).to_pymc("mu")
        tau_technique = parse_prior(chosen["tau_technique"]).to_pymc("tau_technique")
        tau = parse_prior(chosen["tau"]).to_pymc("tau")
        z_technique = pm.Normal("z_technique", 0, 1, dims="technique")
        effect = pm.Deterministic("technique_effect", mu + tau_technique * z_technique, dims="technique")
        z = pm.Normal("z", 0, 1, dims="study")
        theta = pm.Deterministic("theta", effect[technique_idx] + tau * z, dims="study")
        _likelihood(theta, table)
    model.evsynth_settings = _settings(effects, table) | {"model": "by_technique", "prior_mu": chosen["mu"], "prior_tau": chosen["tau"],
                              "prior_tau_technique": chosen["tau_technique"]}
    return model
