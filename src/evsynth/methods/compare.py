"""Model comparison: Bayes factors, robust Bayesian model averaging, and PSIS-LOO.

- `model_average`: the eight models {mu = 0, mu ~ prior} x {tau = 0, tau ~ prior} x {no selection,
  step-function selection}, weighted by their marginal likelihoods (`evsynth.engines.marginal`, by
  quadrature), in the spirit of RoBMA (Maier, Bartos & Wagenmakers 2022). Reports posterior model
  probabilities, inclusion Bayes factors and the model-averaged effect.
- `bayes_factors`: BF10 for mu != 0 and for tau > 0 within the model without selection, from the
  same marginal likelihoods (exact up to the quadrature error).
- `savage_dickey`: the same Bayes factors from MCMC draws, as the ratio of posterior to prior
  density at the point null. Valid here because each null is a point inside (or, for tau = 0, on
  the edge of) a continuous prior, and the priors on the other parameters are independent of it, so
  p(other | null) under the alternative equals the null model's prior (Verdinelli & Wasserman 1995).
  The posterior density comes from a kernel density estimate, so it is noisier than the quadrature.
- `loo_compare` / `pareto_k_table`: PSIS-LOO with ArviZ (`az.compare`) and the per-study Pareto k
  influence flags, by default on the study-level likelihood with the study effects integrated out.
  Given model descriptions (`evsynth.model.description`) instead of fits, `loo_compare` is exact
  leave-one-out (`engines.exact.loo_compare`: no MCMC, no importance sampling, so no Pareto k).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special

from ..model.description import GaussianModel
from ..engines import exact as exact_engine
from ..engines.marginal import ModelSpec, MuMixture, evidence_data, log_evidence
from ..model.priors import parse_prior
from ..engines.selection import DEFAULT_CUTPOINTS

COMPONENTS = ("effect", "heterogeneity", "bias")
QUANTILES = (0.025, 0.5, 0.975)


# --------------------------------------------------------------------------- model averaging


@dataclass
class ModelAverage:
    models: pd.DataFrame  # one row per model: prior/posterior probability, log ML (+ error), means
    inclusion: pd.DataFrame  # per component: prior/posterior inclusion probability, BF_incl
    mu: pd.Series  # model-averaged mu over all models (the no-effect models put mass at mu = 0)
    evidences: list  # the Evidence objects, in the order of `models`
    bias_families: pd.DataFrame | None = None  # per bias family ("none", "selection", "PET", "PEESE"): prior/post prob

    @property
    def mu_conditional(self) -> pd.Series:
        """mu averaged over the effect models only (computed when asked: its quantiles cost as much as mu's)."""
        on = self.models["effect"].to_numpy()
        return _summary([e for e, effect in zip(self.evidences, on) if effect], self.models["post_prob"].to_numpy()[on])

    def __str__(self) -> str:
        inc = "; ".join(f"{c}: P = {r.post_prob:.3f}, BF_incl = {r.BF_incl:.3g}"
                        for c, r in self.inclusion.iterrows())
        m = self.mu
        return (f"model-averaged mu {m['mean']:.3f} (95% CrI {m['q2.5']:.3f} to {m['q97.5']:.3f}); "
                f"{inc}")


def _summary(evidences, probs) -> pd.Series:
    probs = np.asarray(probs, float) / np.sum(probs)
    mean = sum(p * e.means.get("mu", 0.0) for e, p in zip(evidences, probs))
    second = sum(p * (e.sds.get("mu", 0.0) ** 2 + e.means.get("mu", 0.0) ** 2) for e, p in zip(evidences, probs))
    mixture = MuMixture(evidences, probs)  # one vectorised CDF for every model
    q = mixture.quantile(QUANTILES)
    p_pos = 1 - float(mixture.around_zero[1])
    return pd.Series({"mean": mean, "sd": math.sqrt(max(second - mean**2, 0.0)),
                      **{f"q{100 * a:g}": v for a, v in zip(QUANTILES, q)}, "P(>0)": p_pos})


class BiasFamilies(tuple):
    """Bias families that model_average can average over: the step-function selection model, PET
    and PEESE. PSMA (all three) gives RoBMA-PSMA's ensemble (Bartos et al. 2023), 16 models.

    Example:
        >>> import evsynth as es
        >>> studies = es.load_studies("studies/bcg.csv", extra_columns=["ablat", "alloc"])
        >>> effects = es.compute_effects(studies, measure="RR")
        >>> es.PSMA, len(es.model_average(effects, bias_families=es.PSMA, direction="negative").models)
        (('selection', 'PET', 'PEESE'), 16)
    """

    __slots__ = ()


BIAS_FAMILIES = BiasFamilies(("selection", "PET", "PEESE"))
PSMA = BIAS_FAMILIES  # RoBMA-PSMA (Bartos et al. 2023): selection and PET-PEESE


def family_prior(bias_families) -> dict[str, float]:
    """Prior probability of each bias family within an (effect, heterogeneity) cell, as RoBMA-PSMA:
    no bias 1/2; the other 1/2 split equally between the selection models and PET-PEESE (present
    ones), and equally within each (PET 1/8, PEESE 1/8, selection 1/4 with all three)."""
    groups = [g for g in (("selection",), ("PET", "PEESE")) if set(g) & set(bias_families)]
    out = {"none": 0.5}
    for group in groups:
        present = [f for f in group if f in bias_families]
        for f in present:
            out[f] = 0.5 / len(groups) / len(present)
    return out


def inclusion_bf(log_bf: float) -> float:
    """exp(log BF), infinite where it would overflow a float (300+ studies: log BF > 709)."""
    if not np.isfinite(log_bf):  # as before: an undefined inclusion (prior 0 or 1) stays NaN
        return float("nan")
    return math.exp(log_bf) if log_bf < 709.0 else math.inf


def model_average(effects: pd.DataFrame, priors: dict | None = None, cutpoints=DEFAULT_CUTPOINTS,
                  direction: str = "positive", prior_probs: dict | None = None,
                  bias_families=("selection",)) -> ModelAverage:
    """Robust Bayesian model averaging over {mu = 0, mu ~ prior} x {tau = 0, tau ~ prior} x {no
    bias, each of `bias_families`}.

    bias_families: ("selection",) (default: the eight-model family of RoBMA 2022) or any of
    "selection" (the step-function selection model, engines.selection), "PET" (y_i ~ N(mu + b
    se_i, se_i^2 + tau^2)) and "PEESE" (mu + b se_i^2), b >= 0 in the expected direction with
    RoBMA's half-Cauchy priors (engines.marginal.slope_prior). PSMA = all three: RoBMA-PSMA's
    ensemble with its one selection model (16 models).
    prior_probs: {ModelSpec: prior probability}; default: 1/4 for each (effect, heterogeneity)
    cell, within it family_prior(bias_families) (1/8 each for the eight-model family, i.e. prior
    inclusion probability 1/2 for an effect, for heterogeneity and for bias).

    Example: es.model_average(effects, bias_families=es.PSMA).mu["mean"]
    """
    unknown = sorted(set(bias_families) - set(BIAS_FAMILIES))
    if unknown or not bias_families:
        raise ValueError(f"bias_families {unknown or '()'}: choose from {', '.join(BIAS_FAMILIES)}")
    within = family_prior(bias_families)
    as_spec = {"none": False, "selection": True}  # the eight-model family's spelling
    specs = [ModelSpec(e, h, as_spec.get(b, b)) for e in (False, True) for h in (False, True)
             for b in ("none", *[f for f in BIAS_FAMILIES if f in bias_families])]
    default = {s: within[s.family] / 4 for s in specs}
    if prior_probs:  # the user's keys may spell the same model differently (True / "selection")
        given = {(k.effect, k.heterogeneity, k.family): v for k, v in prior_probs.items()}
        prior = np.array([given.get((s.effect, s.heterogeneity, s.family), 1.0) for s in specs], float)
    else:
        prior = np.array([default[s] for s in specs], float)
    if np.any(prior < 0) or prior.sum() <= 0:
        raise ValueError("prior model probabilities must be >= 0 and not all zero")
    prior /= prior.sum()
    data = evidence_data(effects, priors)  # the table read once for the 16 models
    evidences = [log_evidence(effects, s, priors, cutpoints, direction, data=data) for s in specs]
    log_ml = np.array([e.log_ml for e in evidences])
    log_post = np.where(prior > 0, np.log(np.where(prior > 0, prior, 1.0)) + log_ml, -np.inf)
    post = np.exp(log_post - log_post.max())
    post /= post.sum()
    models = pd.DataFrame({
        "model": [s.name for s in specs], "effect": [s.effect for s in specs],
        "heterogeneity": [s.heterogeneity for s in specs], "bias": [s.family != "none" for s in specs],
        "bias_family": [s.family for s in specs],
        "prior_prob": prior, "log_ml": log_ml, "log_ml_error": [e.log_ml_error for e in evidences],
        "post_prob": post, "mu_mean": [e.means.get("mu", 0.0) for e in evidences],
        "tau_mean": [e.means.get("tau", 0.0) for e in evidences], "b_mean": [e.means.get("b", 0.0) for e in evidences],
    })
    rows = {}
    for comp in COMPONENTS:
        on = models[comp].to_numpy()
        pi, pp = prior[on].sum(), post[on].sum()
        # inclusion BF = posterior odds / prior odds, computed from log ML to avoid 1 - p rounding
        log_num = _logsumexp(log_post[on]) - _logsumexp(log_post[~on])
        log_bf = log_num - (math.log(pi) - math.log(1 - pi)) if 0 < pi < 1 else np.nan
        rows[comp] = {"prior_prob": pi, "post_prob": pp, "BF_incl": inclusion_bf(log_bf),
                      "log_BF_incl": log_bf}
    inclusion = pd.DataFrame.from_dict(rows, orient="index")
    families = models.groupby("bias_family", sort=False)[["prior_prob", "post_prob"]].sum()
    return ModelAverage(models, inclusion, _summary(evidences, post), evidences, families)


def _logsumexp(x) -> float:
    x = np.asarray(x, float)
    if x.size == 0 or not np.isfinite(x).any():
        return -np.inf
    top = x[np.isfinite(x)].max()
    return float(top + np.log(np.sum(np.exp(x - top))))


# --------------------------------------------------------------------------- Bayes factors


def bayes_factors(effects: pd.DataFrame, priors: dict | None = None) -> pd.DataFrame:
    """BF10 for mu != 0 and for tau > 0 in the normal random-effects model (no selection), from
    marginal likelihoods by quadrature. Row `mu != 0`: random-effects vs mu = 0 (tau free);
    row `tau > 0`: random-effects vs common-effect (mu free).

    Example:
        >>> import evsynth as es
        >>> studies = es.load_studies("studies/bcg.csv", extra_columns=["ablat", "alloc"])
        >>> bf = bayes_factors(es.compute_effects(studies, measure="RR"))
        >>> round(float(bf.loc["mu != 0", "BF10"]), 1), bool(bf.loc["tau > 0", "BF10"] > 1e20)
        (65.7, True)
    """
    full = log_evidence(effects, ModelSpec(True, True, False), priors)
    no_mu = log_evidence(effects, ModelSpec(False, True, False), priors)
    no_tau = log_evidence(effects, ModelSpec(True, False, False), priors)
    rows = []
    for label, null in (("mu != 0", no_mu), ("tau > 0", no_tau)):
        log_bf = full.log_ml - null.log_ml
        rows.append({"hypothesis": label, "BF10": math.exp(log_bf), "log_BF10": log_bf,
                     "log_BF10_error": full.log_ml_error + null.log_ml_error, "method": "marginal likelihood (quadrature)"})
    return pd.DataFrame(rows).set_index("hypothesis")


SD_MIN_TAIL = 0.01  # below this share of draws beyond the null, the KDE there is mostly bandwidth


def savage_dickey(idata: xr.DataTree, var: str = "mu", null: float = 0.0, prior: str | None = None,
                  effects: pd.DataFrame | None = None) -> dict:
    """BF10 = p(var = null) / p(var = null | y) from MCMC draws (Savage-Dickey density ratio).

    Where the model allows, the quadrature Bayes factor is preferred: with `effects` (the table the
    model was fitted on), a random-effects fit and null 0 for mu or tau, the result is
    bayes_factors(effects, the fit's priors) (method "marginal likelihood (quadrature)").
    Otherwise the prior defaults to the one recorded in idata.attrs (`prior_mu` / `prior_tau`); for
    a scale parameter at its boundary (tau = 0) the KDE is reflected at 0 so it is not halved there.
    A null outside the sampled range is refused (a density estimate there is meaningless: BF10 of
    1e44 where quadrature gives 3e4), and one with fewer than 1% of the draws beyond it warns.
    Returns BF10, log_BF10, the two densities, the number of draws and the method.

    Example:
        >>> import evsynth as es
        >>> studies = es.load_studies("studies/bcg.csv", extra_columns=["ablat", "alloc"])
        >>> effects = es.compute_effects(studies, measure="RR")
        >>> idata = es.fit(effects, kind="random_effects", engine="exact", draws=500, chains=2)
        >>> bf = savage_dickey(idata, "mu", effects=effects)     # random effects, null 0: by quadrature
        >>> round(bf["BF10"], 1), bf["method"]
        (65.7, 'marginal likelihood (quadrature)')
    """
    if var not in idata.posterior:
        raise ValueError(f"{var!r} is not in the posterior")
    if effects is not None and null == 0.0 and var in ("mu", "tau") and idata.attrs.get("model") == "random_effects":
        priors = {k: idata.attrs[f"prior_{k}"] for k in ("mu", "tau") if idata.attrs.get(f"prior_{k}")}
        row = bayes_factors(effects, priors).loc["mu != 0" if var == "mu" else "tau > 0"]
        return {"BF10": float(row["BF10"]), "log_BF10": float(row["log_BF10"]), "prior_density": np.nan,
                "posterior_density": np.nan, "draws": 0, "method": row["method"]}
    text = prior or idata.attrs.get(f"prior_{var}")
    if text is None:
        raise ValueError(f"no prior for {var!r}: pass prior='...' (the fit's attrs have none)")
    prior_obj = parse_prior(text)
    draws = idata.posterior[var].to_numpy().ravel()
    positive = prior_obj.support == "positive"
    if positive and null < 0:
        raise ValueError(f"{var} = {null} lies outside the prior's support")
    boundary = positive and null == 0.0
    if not boundary:
        beyond = min(int((draws <= null).sum()), int((draws >= null).sum()))
        if beyond == 0:
            raise ValueError(f"{var} = {null:g} lies outside the sampled range [{draws.min():.3g}, {draws.max():.3g}]: "
                             "the posterior density there cannot be estimated from draws; use "
                             "compare.bayes_factors(effects) (marginal likelihoods by quadrature), or pass "
                             "effects= for a random-effects fit")
        if beyond < SD_MIN_TAIL * draws.size:
            warnings.warn(f"savage_dickey: only {beyond} of {draws.size} draws of {var} lie beyond {null:g}; the "
                          "density estimate in that tail is unreliable (prefer compare.bayes_factors)", stacklevel=2)
    from scipy import stats  # the kernel density of the draws (Savage-Dickey only)

    if boundary:
        kde = stats.gaussian_kde(np.concatenate([draws, -draws]))
        post_density = 2 * float(kde(0.0)[0])
    else:
        post_density = float(stats.gaussian_kde(draws)(null)[0])
    prior_density = float(np.exp(prior_obj.logpdf(null)))
    log_bf = math.log(prior_density) - math.log(post_density)
    return {"BF10": math.exp(log_bf), "log_BF10": log_bf, "prior_density": prior_density,
            "posterior_density": post_density, "draws": draws.size, "method": "Savage-Dickey (KDE of draws)"}


# --------------------------------------------------------------------------- PSIS-LOO

# Study effects integrated out: y_i ~ N(centre_i, sqrt(se_i^2 + tau^2)). Leaving study i out then
# asks how well the model predicts a new study's observed effect. The conditional likelihood
# p(y_i | theta_i) would make nearly every Pareto k exceed 0.7 (theta_i is informed mainly by its
# own study, so dropping it moves the posterior too far for importance sampling).
_INTEGRABLE = ("random_effects", "by_technique", "common_effect")


def study_loglik(idata: xr.DataTree) -> xr.DataTree:
    """A copy of idata whose log_likelihood `y` has the study effects integrated out (for models in
    random_effects / by_technique / common_effect; other models already use a marginal likelihood
    and are returned as they are). Censored rows get the censored normal terms, as in the model."""
    kind = idata.attrs.get("model")
    if kind not in _INTEGRABLE:
        return idata
    post, data = idata.posterior, idata.constant_data
    yi, sei = data["yi"], data["sei"]
    if kind == "by_technique":
        centre = post["technique_effect"].isel(technique=data["technique_idx"])
    else:
        centre = post["mu"]
    tau2 = post["tau"] ** 2 if kind != "common_effect" else 0.0
    sd = np.sqrt(sei**2 + tau2)
    z = (yi - centre) / sd
    loglik = -0.5 * z**2 - 0.5 * np.log(2 * np.pi) - np.log(sd)
    if "upper_bound" in data:  # censored rows: the statistic is only known to lie beyond yi
        above = yi >= data["upper_bound"]
        below = yi <= data["lower_bound"]
        log_sf, log_cdf = xr.apply_ufunc(special.log_ndtr, -z), xr.apply_ufunc(special.log_ndtr, z)
        loglik = loglik.where(~above, log_sf).where(~below, log_cdf)
    out = idata.copy()
    out["log_likelihood"] = loglik.transpose("chain", "draw", "study").rename("y").to_dataset()
    return out


def _check_loglik(name: str, idata: xr.DataTree):
    if "log_likelihood" not in idata.children or "y" not in idata["log_likelihood"]:
        raise ValueError(f"model {name!r}: no pointwise log-likelihood 'y' (fit with evsynth.engines.fit)")


def loo_compare(idatas: dict, integrate_theta: bool = True, **kwargs) -> pd.DataFrame:
    """Models ranked by their expected log predictive density for a left-out study.

    {name: DataTree of an MCMC fit}: az.compare by PSIS-LOO (elpd, differences, stacking weights;
    kwargs go to az.compare). {name: GaussianModel} (evsynth.model.description, e.g.
    description.random_effects(effects)): exact leave-one-out, log p(y_i | y_-i) by quadrature
    (engines.exact.loo_compare), in the same columns where they apply (no p, no Pareto k
    diagnostics). Column `method` says which: "PSIS-LOO" or "exact LOO". The two kinds cannot be
    mixed in one call (their estimates differ by PSIS's Monte Carlo error).

    All models must describe the same studies, in the same order. With integrate_theta (default)
    each study's log-likelihood has its study effect integrated out (`study_loglik`), so every
    model is scored on predicting a left-out study's observed effect; exact LOO always does so.

    Example:
        >>> import evsynth as es
        >>> studies = es.load_studies("studies/bcg.csv", extra_columns=["ablat", "alloc"])
        >>> effects = es.compute_effects(studies, measure="RR")
        >>> from evsynth.model import description
        >>> table = loo_compare({"random effects": description.random_effects(effects),
        ...                      "common effect": description.common_effect(effects)})
        >>> table.index.tolist(), table["method"].iloc[0]
        (['random effects', 'common effect'], 'exact LOO')
    """
    if len(idatas) < 2:
        raise ValueError("need at least two models to compare")
    kinds = {}
    for name, entry in idatas.items():
        if isinstance(entry, GaussianModel):
            kinds[name] = "a model description (exact LOO)"
        elif isinstance(entry, xr.DataTree):
            kinds[name] = "a fit's DataTree (PSIS-LOO)"
        else:
            raise ValueError(f"model {name!r} is a {type(entry).__name__}: pass the DataTree of a fit (PSIS-LOO) "
                             "or a model description from evsynth.model.description (exact LOO)")
    first = next(iter(kinds))
    for name, kind in kinds.items():
        if kind != kinds[first]:
            raise ValueError(f"model {name!r} is {kind} but {first!r} is {kinds[first]}: compare descriptions "
                             "with descriptions and fits with fits")
    if isinstance(idatas[first], GaussianModel):
        if not integrate_theta:
            raise ValueError("integrate_theta=False applies to MCMC fits: exact LOO scores a left-out study's "
                             "observed effect with its study effect integrated out")
        if kwargs:
            raise ValueError(f"{', '.join(sorted(kwargs))}: options of az.compare (PSIS-LOO); exact LOO takes none")
        return exact_engine.loo_compare(idatas)
    studies, prepared = None, {}
    for name, idata in idatas.items():
        _check_loglik(name, idata)
        ids = list(idata.log_likelihood["y"].coords["study"].to_numpy())
        if studies is None:
            studies = ids
        elif ids != studies:
            raise ValueError(f"model {name!r} was fitted to different studies than the others")
        prepared[name] = study_loglik(idata) if integrate_theta else idata
    # round_to="none": the table keeps the figures, printing decides the digits.
    import arviz as az  # here: model averaging by quadrature (robma, fit's bias check) needs none of it

    table = az.compare(prepared, var_name="y", round_to="none", **kwargs)
    table["method"] = "PSIS-LOO"
    table.attrs["method"] = "PSIS-LOO (ArviZ; Pareto k in column diag_elpd)"
    return table


def pareto_k_table(idata: xr.DataTree, integrate_theta: bool = True) -> pd.DataFrame:
    """One row per study: the PSIS Pareto k of its leave-one-out weights and a flag.

    flag: "ok" (k <= the sample-size threshold min(1 - 1/log10(S), 0.7)), "high" (the LOO estimate
    for this study is unreliable: an influential study; refit without it to check), "very high"
    (k > 1). In study order.

    Example:
        >>> import evsynth as es
        >>> studies = es.load_studies("studies/bcg.csv", extra_columns=["ablat", "alloc"])
        >>> effects = es.compute_effects(studies, measure="RR")
        >>> idata = es.fit(effects, kind="random_effects", engine="exact", draws=500, chains=2)
        >>> table = pareto_k_table(idata)
        >>> table.columns.tolist(), len(table), table["flag"].unique().tolist()
        (['study_id', 'pareto_k', 'flag'], 13, ['ok'])
    """
    if isinstance(idata, GaussianModel):
        raise ValueError("a model description has no Pareto k: its leave-one-out is exact (no importance "
                         "sampling); engines.exact.loo(model) gives each study's term")
    _check_loglik("idata", idata)
    if integrate_theta:
        idata = study_loglik(idata)
    import arviz as az

    loo = az.loo(idata, pointwise=True, var_name="y")
    k = np.asarray(loo.pareto_k).ravel()
    good = float(loo.good_k)
    flag = np.where(k <= good, "ok", np.where(k <= 1.0, "high", "very high"))
    return pd.DataFrame({"study_id": idata.log_likelihood["y"].coords["study"].to_numpy().astype(str),
                         "pareto_k": k, "flag": flag})
