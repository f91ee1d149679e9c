"""One analysis = the verbs in order (effects -> model -> fit -> diagnose -> summarize) for one
outcome. Outcomes are analysed separately by default; pooling them is an explicit choice."""

from __future__ import annotations

import re
from dataclasses import dataclass

import arviz as az
import pandas as pd

from .diagnostics import Diagnostics, diagnose
from .effects import used_effects
from .fit import fit
from .builders import build_model
from .summary import summarize

MIN_STUDIES = 2  # a pooled estimate needs at least two studies


@dataclass
class AnalysisResult:
    label: str
    effects: pd.DataFrame  # the effect rows this analysis was given (used and unused)
    idata: az.InferenceData
    diagnostics: Diagnostics
    summary: pd.DataFrame


def slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_") or "analysis"


def split_by_outcome(effects: pd.DataFrame, pool_outcomes: bool = False) -> tuple[dict, dict]:
    """({label: effect table} to analyse, {label: reason} for outcomes that cannot be analysed)."""
    if pool_outcomes:
        if effects.attrs.get("measure") not in ("SMD", "SMCC"):
            raise ValueError("pooling different outcomes needs a standardized measure (SMD or SMCC)")
        groups = {"all outcomes (SMD)": effects}
    else:
        groups = {outcome: effects[effects["outcome"] == outcome] for outcome in effects["outcome"].unique()}
    runnable, skipped = {}, {}
    for label, table in groups.items():
        table = table.copy()
        table.attrs = dict(effects.attrs)
        n_used = len(used_effects(table))
        if n_used < MIN_STUDIES:
            skipped[label] = f"{n_used} usable stud{'y' if n_used == 1 else 'ies'}; need {MIN_STUDIES}"
        else:
            runnable[label] = table
    return runnable, skipped


def run_analysis(label: str, effects: pd.DataFrame, model: str = "by_technique", priors: dict | None = None,
                 thresholds: dict | None = None, **fit_options) -> AnalysisResult:
    idata = fit(build_model(model, effects, priors), **fit_options)
    idata.attrs["analysis"] = label
    return AnalysisResult(label, effects, idata, diagnose(idata, thresholds), summarize(idata))
