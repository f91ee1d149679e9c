"""The PyMC models by name, and their registry (so the CLI, spec files and sweeps can name a model
by string). Each Gaussian model is described once (evsynth.model.description) and built by the PyMC
engine (evsynth.engines.pymc); these functions only name them. The selection model (not Gaussian)
lives in evsynth.engines.selection.

Every builder takes the sweep keywords of evsynth.engines.pymc.build: `weights` (study_id ->
weight, multiplying each study's log-likelihood), `prior_data=True` (prior hyper-parameters as
pm.Data) and `study_effects=False` (study effects integrated out analytically). Without them the
graph is exactly the plain model. Censored rows (p printed only as a bound) enter through an
interval-censored likelihood.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from ..model import description
from ..model.description import STANDARD_PRIORS, check_poolable, default_priors, resolve_priors  # noqa: F401
from .selection import selection

if TYPE_CHECKING:  # the builders import PyMC when they build, not at import
    import pymc as pm


def _build(model: description.GaussianModel, weights, prior_data: bool, study_effects: bool):
    from .pymc import build

    return build(model, weights=weights, prior_data=prior_data, study_effects=study_effects)


def common_effect(effects: pd.DataFrame, priors: dict | None = None, *, weights=None,
                  prior_data: bool = False, study_effects: bool = True):
    """Common-effect (fixed-effect) model: y_i ~ N(mu, se_i), i.e. theta_i = mu for every study.

    No tau: the model asserts zero heterogeneity. `theta` is kept (all equal to mu) so the
    result has the same study-level variable as the other models (not with study_effects=False).

    Example:
        >>> import evsynth as es
        >>> studies = es.load_studies("studies/bcg.csv", extra_columns=["ablat", "alloc"])
        >>> effects = es.compute_effects(studies, measure="RR")
        >>> sorted(v.name for v in common_effect(effects).free_RVs)
        ['mu']
    """
    return _build(description.common_effect(effects, priors), weights, prior_data, study_effects)


def random_effects(effects: pd.DataFrame, priors: dict | None = None, *, weights=None,
                   prior_data: bool = False, study_effects: bool = True):
    """Normal-normal random-effects model: y_i ~ N(theta_i, se_i), theta_i ~ N(mu, tau).

    Example:
        >>> import evsynth as es
        >>> studies = es.load_studies("studies/bcg.csv", extra_columns=["ablat", "alloc"])
        >>> effects = es.compute_effects(studies, measure="RR")
        >>> sorted(v.name for v in random_effects(effects).free_RVs)    # z: the standardized theta
        ['mu', 'tau', 'z']
    """
    return _build(description.random_effects(effects, priors), weights, prior_data, study_effects)


def by_technique(effects: pd.DataFrame, priors: dict | None = None, *, weights=None,
                 prior_data: bool = False, study_effects: bool = True):
    """Technique effects partially pooled around a global mean, study effects around their technique.

    technique_effect_k ~ N(mu, tau_technique), theta_i ~ N(technique_effect_k[i], tau).

    Example:
        >>> import evsynth as es
        >>> studies = es.load_studies("studies/bcg.csv", extra_columns=["ablat", "alloc"])
        >>> effects = es.compute_effects(studies, measure="RR")
        >>> sorted(v.name for v in by_technique(effects).free_RVs)
        ['mu', 'tau', 'tau_technique', 'z', 'z_technique']
    """
    return _build(description.by_technique(effects, priors), weights, prior_data, study_effects)


def meta_regression(effects: pd.DataFrame, priors: dict | None = None, *, mods, weights=None,
                    prior_data: bool = False, study_effects: bool = True):
    """Random-effects meta-regression: theta_i ~ N(mu + x_i beta, tau), moderators `mods` (a
    formula '~ ablat + C(alloc)' or a list of columns; evsynth.model.moderators.design_matrix)."""
    return _build(description.meta_regression(effects, mods, priors), weights, prior_data, study_effects)


def network(effects: pd.DataFrame, priors: dict | None = None, reference: str = "control",
            split: tuple[str, str] | None = None, prepost_as_control: bool = False):
    """Random-effects contrast-based NMA as a PyMC model (see evsynth.methods.network); `technique_effect`
    = d vs reference, described by evsynth.model.description.network and built by the PyMC engine.

    priors: "mu" is the prior of each technique effect versus the reference, "tau" the between-
    study SD. split=(a, b): node-splitting model for comparison a-b (adds `direct`, `indirect`,
    `inconsistency`, all on the a - b scale). prepost_as_control: see the module docstring.

    Example:
        >>> import pandas as pd
        >>> import evsynth as es
        >>> rows = [("A", "control", 0.5, 0.15), ("A", "control", 0.4, 0.2), ("B", "control", 0.8, 0.15),
        ...         ("B", "control", 0.9, 0.2), ("B", "A", 0.3, 0.2), ("B", "A", 0.45, 0.2)]    # synthetic
        >>> effects = es.compute_effects(es.load_studies(pd.DataFrame(
        ...     [{"study_id": f"s{i}", "citation": "synthetic", "source_level": "synthetic", "synthetic": True,
        ...       "design": "effect", "technique": t, "comparator": c, "outcome": "synthetic", "yi": y,
        ...       "sei": se, "measure": "SMD"} for i, (t, c, y, se) in enumerate(rows)])))
        >>> model = network(effects)
        >>> sorted(v.name for v in model.free_RVs), list(model.coords["technique"])
        (['tau', 'technique_effect', 'z'], ['A', 'B'])
    """
    model = description.network(effects, priors, reference, split=split, prepost_as_control=prepost_as_control)
    return _build(model, None, False, True)

class Builders(dict):
    """{kind: builder}: the PyMC model builders by the name `kind` that fit, build_model,
    run_analysis and Sensitivity take; each builder takes an effect table and returns a pm.Model.

    Example:
        >>> import evsynth as es
        >>> sorted(es.BUILDERS)
        ['by_technique', 'common_effect', 'meta_regression', 'network', 'random_effects', 'selection']
        >>> effects = es.compute_effects(es.load_studies("studies/synthetic_demo.csv"), measure="SMD")
        >>> sorted(v.name for v in es.BUILDERS["common_effect"](effects).free_RVs)
        ['mu']
    """

    __slots__ = ()


BUILDERS = Builders({
    "random_effects": random_effects,
    "by_technique": by_technique,
    "common_effect": common_effect,
    "selection": selection,
    "network": network,
    "meta_regression": meta_regression,  # needs mods=...
})


def build_model(kind: str, effects: pd.DataFrame, priors: dict | None = None, **options) -> pm.Model:
    """The PyMC model of `kind` (a key of BUILDERS: random_effects, by_technique, common_effect,
    selection, network, meta_regression, ...) for an effect table, with `priors` overriding the
    defaults ({"tau": "halfcauchy(0.5)"}); es.fit samples it.

    Example:
        >>> import evsynth as es
        >>> effects = es.compute_effects(es.load_studies("studies/synthetic_demo.csv"))
        >>> model = es.build_model("random_effects", effects[effects.outcome == "milk volume"])
        >>> sorted(v.name for v in model.free_RVs)[:2]
        ['mu', 'tau']
    """
    if kind not in BUILDERS:
        raise ValueError(f"model {kind!r} unknown; choose one of {sorted(BUILDERS)}")
    return BUILDERS[kind](effects, priors, **options)
