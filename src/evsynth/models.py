"""The PyMC models by name: each describes its model (evsynth.description) and builds it with the
PyMC engine (evsynth.engines.pymc). There is one model description and one graph builder; these
functions only name them, for the CLI, the builders registry and sweeps.

Every builder takes the sweep keywords of evsynth.engines.pymc.build: `weights` (study_id ->
weight, multiplying each study's log-likelihood), `prior_data=True` (prior hyper-parameters as
pm.Data) and `study_effects=False` (study effects integrated out analytically). Without them the
graph is exactly the plain model. Censored rows (p printed only as a bound) enter through an
interval-censored likelihood.
"""

from __future__ import annotations

import pandas as pd

from . import description
from .description import STANDARD_PRIORS, check_poolable, default_priors, resolve_priors  # noqa: F401
from .description import data_settings as _settings  # noqa: F401  (evsynth.selection's settings)
from .description import prepare as _prepare  # noqa: F401


def _build(model: description.GaussianModel, weights, prior_data: bool, study_effects: bool):
    from .engines.pymc import build

    return build(model, weights=weights, prior_data=prior_data, study_effects=study_effects)


def common_effect(effects: pd.DataFrame, priors: dict | None = None, *, weights=None,
                  prior_data: bool = False, study_effects: bool = True):
    """Common-effect (fixed-effect) model: y_i ~ N(mu, se_i), i.e. theta_i = mu for every study.

    No tau: the model asserts zero heterogeneity. `theta` is kept (all equal to mu) so the
    result has the same study-level variable as the other models (not with study_effects=False).
    """
    return _build(description.common_effect(effects, priors), weights, prior_data, study_effects)


def random_effects(effects: pd.DataFrame, priors: dict | None = None, *, weights=None,
                   prior_data: bool = False, study_effects: bool = True):
    """Normal-normal random-effects model: y_i ~ N(theta_i, se_i), theta_i ~ N(mu, tau)."""
    return _build(description.random_effects(effects, priors), weights, prior_data, study_effects)


def by_technique(effects: pd.DataFrame, priors: dict | None = None, *, weights=None,
                 prior_data: bool = False, study_effects: bool = True):
    """Technique effects partially pooled around a global mean, study effects around their technique.

    technique_effect_k ~ N(mu, tau_technique), theta_i ~ N(technique_effect_k[i], tau).
    """
    return _build(description.by_technique(effects, priors), weights, prior_data, study_effects)


def meta_regression(effects: pd.DataFrame, priors: dict | None = None, *, mods, weights=None,
                    prior_data: bool = False, study_effects: bool = True):
    """Random-effects meta-regression: theta_i ~ N(mu + x_i beta, tau), moderators `mods` (a
    formula '~ ablat + C(alloc)' or a list of columns; evsynth.moderators.design_matrix)."""
    return _build(description.meta_regression(effects, mods, priors), weights, prior_data, study_effects)


def network(effects: pd.DataFrame, priors: dict | None = None, reference: str = "control",
            split: tuple[str, str] | None = None, prepost_as_control: bool = False):
    """Random-effects contrast-based NMA as a PyMC model (see evsynth.network); `technique_effect`
    = d vs reference, described by evsynth.description.network and built by the PyMC engine.

    priors: "mu" is the prior of each technique effect versus the reference, "tau" the between-
    study SD. split=(a, b): node-splitting model for comparison a-b (adds `direct`, `indirect`,
    `inconsistency`, all on the a - b scale). prepost_as_control: see the module docstring.
    """
    model = description.network(effects, priors, reference, split=split, prepost_as_control=prepost_as_control)
    return _build(model, None, False, True)
