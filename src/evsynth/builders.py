"""The registry of model builders, so the CLI, spec files and sweeps can name a model by string.

Each builder lives in the module of its model family; add one line here for a new one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from .models import by_technique, common_effect, meta_regression, network, random_effects
from .selection import selection

if TYPE_CHECKING:  # the builders import PyMC when they build, not at import
    import pymc as pm

BUILDERS = {
    "random_effects": random_effects,
    "by_technique": by_technique,
    "common_effect": common_effect,
    "selection": selection,
    "network": network,
    "meta_regression": meta_regression,  # needs mods=...
}


def build_model(kind: str, effects: pd.DataFrame, priors: dict | None = None, **options) -> pm.Model:
    if kind not in BUILDERS:
        raise ValueError(f"model {kind!r} unknown; choose one of {sorted(BUILDERS)}")
    return BUILDERS[kind](effects, priors, **options)
