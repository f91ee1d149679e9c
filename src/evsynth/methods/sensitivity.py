"""Sensitivity analyses: the same verbs (compute_effects -> builder -> fit -> diagnose ->
summarize) over a grid of settings -- tau prior, pre/post correlation, exclusion rules and
leave-one-out -- giving one tidy table.

    grid = Sensitivity(studies, tau_prior=["halfnormal(0.5)", "halfcauchy(0.5)"],
                       r_prepost=[0.3, 0.5, 0.7], exclude=[None, "design == 'pre_post'"],
                       leave_one_out=True)
    table = grid.run(n_jobs=2, out="output/sweep.jsonl")   # resumable
    es.plots.sensitivity_plot(table)

Speed: with nutpie, a scenario does not compile a model. The builder is still run per scenario
(a graph costs ~30 ms; compiling it 4-10 s), always on every usable study of the outcome, with
`weights` (1 = in, 0 = excluded or left out), `prior_data=True` and the study effects
integrated out (`study_effects=False`: the same posterior for what the table reports, with
fewer parameters). Scenarios whose graphs have the same structure (same prior families, same
studies and techniques) share one compiled nutpie model, and get their data and prior
hyper-parameters through `with_data`; scenarios run in threads of one process, so the sweep
compiles each structure once. Techniques that are out of a scenario are dropped from the
posterior before diagnose/summarize, so a row means exactly what a fit on the reduced table
means (`reuse=False` does that fit, building and compiling per scenario, for checking).

Engines: `engine="auto"` (the default) runs every scenario on the exact engine
(evsynth.engines.exact: quadrature over the variance components, closed-form Gaussian
conditionals, censored rows by orthant probability) whenever the model has a Gaussian
description (evsynth.model.description: common_effect, random_effects, by_technique, network), and on
PyMC otherwise (the selection model). The exact engine has no Monte-Carlo error and needs no
compile: tens of milliseconds per scenario, verdict PASS by construction (there is no sampler
to diagnose); it runs the scenarios one after another in this process. `engine="pymc"` forces
MCMC (the compile-once machinery below), `engine="exact"` refuses a model without a Gaussian
description. Every row records its engine.

Every scenario keeps its settings, estimates and verdict, with the reason in `problems`: PASS,
FAIL (a diagnostic failed), NOT FITTED (the scenario's data cannot make the model, e.g. an
exclusion leaves fewer than two studies: nothing was sampled, so nothing failed) or ERROR (the
fit raised an unexpected error). NOT FITTED is counted apart from FAIL and ERROR.

`techniques = ["as labelled", "by massage component"]` sweeps the grouping of combination
techniques (evsynth.effects.techniques.group_combinations): with a per-technique model it shows what
analysing "breast care + oxytocin" as oxytocin changes.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import itertools
import json
import os
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .. import __version__
from .analysis import MIN_STUDIES, one_row_per_sample, split_by_outcome, with_samples
from .designs import DESIGN_CHOICES, restrict_design
from ..engines.builders import BUILDERS, build_model
from ..effects.table import DEFAULT_R_PREPOST, compute_effects, used_effects
from ..engines.builders import default_priors, resolve_priors
from ..model.priors import number_text, parse_prior
from ..data.rules import parse_rule
from ..data.studies import load_studies
from .summary import summarize
from .sweep import read_records, run_tasks, spinner
from ..effects.techniques import TECHNIQUE_GROUPINGS, group_combinations
from ..data.vocabulary import ENGINES, MAX_SCENARIOS

SETTINGS = ["tau_prior", "r_prepost", "exclude", "techniques", "left_out", "outcome", "model", "measure", "n_studies",
            "engine"]
# Verdicts: PASS / FAIL are the diagnostics'; NOT FITTED and ERROR mean nothing was sampled.
NOT_FITTED, ERROR = "NOT FITTED", "ERROR"
ESTIMATES = ["mean", "sd", "q2.5", "q50", "q97.5", "p_gt_0"]
COLUMNS = ["scenario", *SETTINGS, "parameter", *ESTIMATES, "verdict", "problems", "warnings"]


@dataclass(frozen=True)
class Scenario:
    tau_prior: str
    r_prepost: float
    exclude: str = ""  # exclusion rule text, "" = none
    left_out: str = ""  # study id left out, "" = none
    techniques: str = TECHNIQUE_GROUPINGS[0]  # "as labelled" or "by massage component"

    @property
    def id(self) -> str:
        """Readable and stable: the same settings give the same id (the resume key)."""
        parts = [f"tau {self.tau_prior}", f"r {number_text(self.r_prepost)}"]  # every digit: 0.3 stays 'r 0.3'
        if self.exclude:
            parts.append(f"excl {self.exclude}")
        if self.techniques != TECHNIQUE_GROUPINGS[0]:
            parts.append(f"techniques {self.techniques}")
        if self.left_out:
            parts.append(f"drop {self.left_out}")
        return " | ".join(parts)


@dataclass(frozen=True)
class FitOptions:
    draws: int = 2000
    tune: int = 1000
    chains: int = 4
    seed: int = 2026
    target_accept: float = 0.99
    sampler: str = "auto"  # "auto": nutpie when installed (and then compiled once per structure)


@dataclass(frozen=True)
class Context:
    """What every scenario of one sweep shares (sent to the workers with each scenario)."""

    studies: pd.DataFrame
    outcome: str
    measure: str
    p_bound: str
    model: str
    priors: dict
    options: FitOptions
    engine: str = "pymc"  # the engine the scenarios run on: "exact" or "pymc" (resolved from "auto")
    design: str = "all"  # methods.designs.restrict_design: "all", "controlled" or "randomised" rows
    random: str | None = None  # model "multilevel": its levels; rows sharing a sample are kept
    rho: float | None = None  # its assumed within-sample correlation of sampling errors

    def model_options(self) -> dict:
        """describe()'s keywords of the nested model (empty for the others)."""
        if self.random is None:
            return {}
        from ..model.description import _nesting_paths

        return {"random": self.random, "rho": self.rho, "cluster": _nesting_paths(self.random)[0][-1]}

    def fingerprint(self) -> str:
        """Scenarios of one results file must share all of this, so resumed rows are comparable."""
        payload = {"studies": self.studies.to_csv(index=False), "outcome": self.outcome, "measure": self.measure,
                   "p_bound": self.p_bound, "model": self.model, "priors": self.priors,
                   "options": asdict(self.options), "engine": self.engine, "evsynth": __version__}
        if self.design != "all":  # only then: files written before the design option keep their fingerprint
            payload["design"] = self.design
        if self.random is not None:  # likewise
            payload |= {"random": self.random, "rho": self.rho}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Job:
    context: Context
    scenario: Scenario
    reuse: bool = True
    cores: int | None = None  # sampler threads in this worker


# ---- one scenario --------------------------------------------------------------------------

def scenario_effects(context: Context, scenario: Scenario, cache: dict | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The outcome's effect table at the scenario's r, and the study ids the scenario keeps.
    cache: a dict kept across the scenarios of one sweep (effects per r, studies per rule)."""
    cache = {} if cache is None else cache
    key = ("effects", scenario.r_prepost)
    if key not in cache:
        effects = compute_effects(context.studies, measure=context.measure, r_prepost=scenario.r_prepost,
                                  p_bound=context.p_bound)
        attrs = dict(effects.attrs)
        keep = (effects["outcome"] == context.outcome).to_numpy()
        effects = effects[keep].reset_index(drop=True)
        effects.attrs = attrs
        effects = restrict_design(effects, context.design)  # --design: controlled or randomised rows only
        # a sample counts once, unless the nested model keeps and models its rows
        cache[key] = (with_samples(effects) if context.random else one_row_per_sample(effects, by_outcome=True)), keep
    effects, keep = cache[key]
    if scenario.techniques == "by massage component":
        grouped = ("grouped", scenario.r_prepost)
        if grouped not in cache:
            cache[grouped] = group_combinations(effects)
        effects = cache[grouped]
    excluded = set()
    if scenario.exclude:
        rule_key = ("exclude", scenario.exclude)
        if rule_key not in cache:
            studies = context.studies[keep].reset_index(drop=True)
            cache[rule_key] = set(studies["study_id"][parse_rule(scenario.exclude, studies.columns).select(studies)])
        excluded = set(cache[rule_key])
    excluded.add(scenario.left_out)
    used_key = ("used", scenario.r_prepost)
    if used_key not in cache:
        cache[used_key] = list(used_effects(effects, allow_head_to_head=context.model == "network")["study_id"])
    kept = [s for s in cache[used_key] if s not in excluded]
    return effects, kept


def rule_warning(context: Context, rule: str, cache: dict | None = None) -> str:
    """Why an exclusion rule's scenarios are suspect: it leaves out no usable study of the outcome,
    so they repeat the baseline under an exclusion label (a typo such as 'prepost' does that)."""
    if not rule:
        return ""
    cache = {} if cache is None else cache
    key = ("rule warning", rule)  # asked by every scenario of the rule: answered once per sweep
    if key not in cache:
        _, kept = scenario_effects(context, Scenario("", DEFAULT_R_PREPOST, rule), cache)
        _, baseline = scenario_effects(context, Scenario("", DEFAULT_R_PREPOST), cache)
        cache[key] = (f"exclusion rule {rule!r} leaves out no usable study of {context.outcome!r}: its scenarios "
                      "repeat the baseline (check the rule for a typo)") if set(kept) == set(baseline) - {""} else ""
    return cache[key]


def scenario_priors(context: Context, scenario: Scenario) -> dict:
    """The sweep's fixed priors with the scenario's tau prior."""
    return dict(context.priors) | {"tau": scenario.tau_prior}


def run_scenario(job: Job, cache: dict | None = None) -> dict:
    """Settings, estimates and verdict of one scenario, as a JSON-able record. cache: a dict
    shared by the scenarios of one sweep run in one process (see scenario_effects)."""
    context, scenario = job.context, job.scenario
    cache = {} if cache is None else cache
    start = time.monotonic()
    settings = {"tau_prior": scenario.tau_prior, "r_prepost": scenario.r_prepost, "exclude": scenario.exclude,
                "techniques": scenario.techniques, "left_out": scenario.left_out, "outcome": context.outcome,
                "model": context.model, "measure": context.measure, "engine": context.engine}
    if context.random is not None:
        settings |= {"random": context.random, "rho": "none (independent)" if context.rho is None else context.rho}
    try:
        effects, kept = scenario_effects(context, scenario, cache)
        settings["n_studies"] = len(kept)
        if scenario.exclude and rule_warning(context, scenario.exclude, cache):
            settings["warnings"] = "exclusion rule leaves out no usable study: same studies as the baseline"
        if len(kept) < MIN_STUDIES:
            return _not_fitted(scenario, settings, f"not fitted: {len(kept)} usable stud"
                               f"{'y' if len(kept) == 1 else 'ies'} left, need {MIN_STUDIES}", start)
        priors = scenario_priors(context, scenario)
        if context.engine == "exact":
            return _exact_record(context, scenario, settings, effects, kept, priors, start, cache)
        from .diagnostics import diagnose  # here: ArviZ and PyMC load only for a PyMC sweep

        refit = _fit_reusing if job.reuse else _fit_rebuilding
        idata = refit(context, effects, kept, priors, job.cores)
        _check_complete(idata, context.options)
        diagnostics = diagnose(idata)
        summary = summarize(idata, heterogeneity=False)
    except ValueError as exc:  # the scenario's data cannot make this model (the builders say why)
        settings.setdefault("n_studies", 0)
        return _not_fitted(scenario, settings, f"not fitted: {exc}", start)
    except Exception as exc:  # a scenario that breaks is reported (ERROR, with the error), the sweep goes on
        settings.setdefault("n_studies", 0)
        return _not_fitted(scenario, settings, f"error: {type(exc).__name__}: {exc}", start, verdict=ERROR)
    return {"key": scenario.id, "settings": settings, "rows": _rows(summary), "verdict": diagnostics.verdict,
            "problems": "; ".join(diagnostics.problems), "sampler": idata.attrs.get("sampler", ""),
            "reused_compiled_model": job.reuse, "seconds": round(time.monotonic() - start, 3)}


def _check_complete(idata: xr.DataTree, options: FitOptions) -> None:
    """nutpie answers Ctrl-C by returning the draws so far: such a fit must not become a result."""
    sizes = idata.posterior.sizes
    if sizes.get("chain") != options.chains or sizes.get("draw") != options.draws:
        raise KeyboardInterrupt(f"sampling stopped early ({dict(sizes)}); scenario not recorded")


def reduced_effects(effects: pd.DataFrame, kept: list[str]) -> pd.DataFrame:
    """The scenario's table: the kept studies' rows and the rows not used anyway (they say why)."""
    reduced = effects[effects["study_id"].isin(kept) | ~effects["used"]].reset_index(drop=True)
    reduced.attrs = dict(effects.attrs)
    return reduced


def _exact_record(context, scenario, settings, effects, kept, priors, start, cache) -> dict:
    """The scenario's posterior on the exact engine: no sampling, so nothing to diagnose. The
    model is described once per r on every usable study (each tau prior swapped in: _described)
    and cut to the scenario's studies (GaussianModel.subset: the same model as describing the
    reduced table). When the sweep's cache lists its tau priors ("tau_priors", as Sensitivity.run
    does) and the constructor uses tau only as the study-level prior, the first scenario of each
    data variant (r, grouping, studies kept) computes every tau prior's rows at once on shared
    grids (engines.exact.posterior_grids: one set of conditionals, each prior re-weighting the
    nodes; figures equal to the per-scenario fit's up to the quadrature's error) and the
    variant's other scenarios take theirs from the cache."""
    from ..engines.exact import posterior_grids, report_label, summaries, summary_rows

    key = ("model", scenario.r_prepost, scenario.tau_prior, scenario.techniques)
    if key not in cache:
        cache[key] = _described(context, effects, priors, cache.get(("model", scenario.r_prepost, scenario.techniques)))
        cache.setdefault(("model", scenario.r_prepost, scenario.techniques), cache[key])
    full = cache[key]
    taus = cache.get("tau_priors", ())
    variant = ("rows", scenario.r_prepost, scenario.techniques, tuple(kept))
    rows = None
    if context.model in SAME_BUT_TAU and len(taus) > 1 and scenario.tau_prior in taus:
        if variant not in cache:
            model = full.subset(np.isin(full.study_id, kept))
            models = [_described(context, effects, dict(priors, tau=tau), model) for tau in taus]
            try:
                cache[variant] = dict(zip(taus, summaries(models, posterior_grids(models))))
            except Exception:  # noqa: BLE001 -- one prior's failure: each scenario fits alone and reports its own
                cache[variant] = None
        if cache[variant] is not None:  # None: the shared fit failed; each scenario fits alone
            rows = cache[variant].pop(scenario.tau_prior, None)
            if not cache[variant]:
                del cache[variant]
    if rows is None:
        rows = summary_rows(full.subset(np.isin(full.study_id, kept)))
    summary = [{"parameter": report_label(*k), "mean": r["mean"], "sd": r["sd"], "q2.5": r["q2.5"], "q50": r["q50"],
                "q97.5": r["q97.5"], "p_gt_0": r["P(>0)"]} for k, r in rows.items()]
    return {"key": scenario.id, "settings": settings, "rows": summary, "verdict": "PASS", "problems": "",
            "sampler": "exact", "reused_compiled_model": False, "seconds": round(time.monotonic() - start, 3)}


SAME_BUT_TAU = ("random_effects", "by_technique")  # constructors in which the tau prior is only the study prior


def _described(context: Context, effects: pd.DataFrame, priors: dict, described=None):
    """The scenario's model on every usable study: `described` (the same data and model under
    another tau prior) with this tau prior where the constructor uses it only as the study-level
    prior (GaussianModel.study_prior and settings["prior_tau"]; the same description, see
    tests/test_sensitivity.py), else described afresh."""
    from ..model.description import describe

    if described is None or context.model not in SAME_BUT_TAU:
        return describe(context.model, effects, priors, **context.model_options())
    tau = str(parse_prior(priors["tau"], "tau"))
    return replace(described, study_prior=tau, settings=described.settings | {"prior_tau": tau})


def _rows(summary: pd.DataFrame) -> list[dict]:
    return [{"parameter": label, "mean": row["mean"], "sd": row["sd"], "q2.5": row["q2.5"], "q50": row["q50"],
             "q97.5": row["q97.5"], "p_gt_0": row["P(>0)"]} for label, row in summary.iterrows()]


def _not_fitted(scenario: Scenario, settings: dict, why: str, start: float, verdict: str = NOT_FITTED) -> dict:
    row = {"parameter": "pooled (mu)"} | {name: float("nan") for name in ESTIMATES}
    return {"key": scenario.id, "settings": settings, "rows": [row], "verdict": verdict, "problems": why,
            "sampler": "", "reused_compiled_model": False, "seconds": round(time.monotonic() - start, 3)}


# ---- compile once per structure ----------------------------------------------------------

# What a sweep asks of a builder: study weights, prior hyper-parameters as data, and the study
# effects integrated out (the table reports none of them, and sampling gets cheaper).
SWEEP_OPTIONS = {"prior_data": True, "study_effects": False}

_COMPILED: dict = {}  # structure key -> nutpie compiled model, shared by the threads of a process
_KEY_LOCKS: dict = {}  # structure key -> lock, so one thread compiles while others sample
_CACHE_LOCK = threading.Lock()


def structure_key(model) -> tuple:
    """What a compiled model depends on beyond data values: variables with their distribution
    families, coordinates, and data shapes. Equal keys -> one compiled model serves both."""
    rvs = tuple((rv.name, type(rv.owner.op).__name__) for rv in model.free_RVs + model.observed_RVs)
    coords = tuple((name, tuple(values)) for name, values in model.coords.items())
    data = tuple((v.name, np.shape(v.get_value())) for v in model.data_vars)
    extra = tuple(v.name for v in model.potentials + model.deterministics)
    return rvs, coords, data, extra


def compiled_model(model):
    """The compiled model for `model`'s structure, compiled by the first thread that needs it."""
    key = structure_key(model)
    with _CACHE_LOCK:
        lock = _KEY_LOCKS.setdefault(key, threading.Lock())
    with lock:
        if key not in _COMPILED:
            _COMPILED[key] = compile_nutpie(model)
    return _COMPILED[key]


def compile_nutpie(model):
    """evsynth.engines.fit.compile_nutpie, imported on first use (it loads PyMC; an exact sweep never does)."""
    from ..engines.fit import compile_nutpie as compile_

    return compile_(model)


def nutpie_available() -> bool:
    """evsynth.engines.fit.nutpie_available, imported on first use."""
    from ..engines.fit import nutpie_available as available

    return available()


def _sweep_model(context: Context, effects: pd.DataFrame, kept: list[str], priors: dict):
    """The builder on all usable studies, with weight 1 for the studies in `kept` and 0 for the rest."""
    weights = {s: float(s in kept) for s in used_effects(effects)["study_id"]}
    return build_model(context.model, effects, priors, weights=weights, **SWEEP_OPTIONS)


def compile_ahead(context: Context, scenarios: list[Scenario]) -> threading.Thread:
    """Compile the graph of each tau prior in a background thread, in grid order, so that one
    structure compiles while scenarios of another sample (compiling holds the GIL, sampling
    does not). A scenario whose structure is not ready yet waits for it or compiles it itself;
    one that cannot be built is skipped here and reports its own error when it runs."""
    firsts = {}
    for scenario in scenarios:
        firsts.setdefault((scenario.tau_prior, scenario.techniques), scenario)

    def work():
        for scenario in firsts.values():
            try:
                effects, _ = scenario_effects(context, scenario)
                kept = list(used_effects(effects)["study_id"])
                compiled_model(_sweep_model(context, effects, kept, scenario_priors(context, scenario)))
            except Exception:  # noqa: BLE001 -- the scenario reports it when it runs
                continue

    thread = threading.Thread(target=work, name="evsynth-compile-ahead", daemon=True)
    thread.start()
    return thread


def _fit_reusing(context: Context, effects: pd.DataFrame, kept: list[str], priors: dict, cores) -> xr.DataTree:
    """The sweep model sampled with a cached compiled model; techniques out of the scenario are
    then dropped from the posterior."""
    used = used_effects(effects)
    model = _sweep_model(context, effects, kept, priors)
    from ..engines.fit import fit

    idata = fit(model, **asdict(context.options), cores=cores, compiled=compiled_model(model), log_likelihood=False)
    techniques = sorted(set(used.loc[used["study_id"].isin(kept), "technique"]))
    posterior = idata["posterior"].to_dataset()
    dims = posterior.dims
    selection = ({"study": kept} if "study" in dims else {}) | ({"technique": techniques} if "technique" in dims else {})
    idata["posterior"] = posterior.sel(selection)
    return idata


def _fit_rebuilding(context: Context, effects: pd.DataFrame, kept: list[str], priors: dict, cores) -> xr.DataTree:
    """The reference: the scenario's reduced table, built and compiled afresh."""
    reduced = reduced_effects(effects, kept)
    options = {"study_effects": False} if supports_reuse(context.model) else {}
    model = build_model(context.model, reduced, priors, **options)
    from ..engines.fit import fit

    return fit(model, **asdict(context.options), cores=cores, log_likelihood=False)


def supports_reuse(kind: str) -> bool:
    """Builders registered by other model families may not take the sweep keywords yet."""
    parameters = inspect.signature(BUILDERS[kind]).parameters
    return all(name in parameters for name in ["weights", *SWEEP_OPTIONS])


# ---- the grid ----------------------------------------------------------------------------

class NothingToAnalyse(ValueError):
    """The input is valid but holds nothing a sweep could analyse (CLI exit status 4, not 2)."""


@dataclass
class Sensitivity:
    """A grid of scenarios over one outcome: every combination of the listed tau priors, pre/post
    correlations, exclusion rules and technique groupings (plus leaving each study out), each
    fitted with the same model. `run()` fits them and returns the tidy table (also in `table`): one
    row per scenario x parameter, with the scenario's settings, the posterior (mean, sd, 2.5/50/97.5%,
    P(> 0)), the engine and a verdict (PASS / FAIL from the diagnostics; NOT FITTED when the
    scenario leaves too few studies; exact-engine rows have no sampler to diagnose).

    Fields: studies (a table from load_studies, or a CSV path); tau_prior (prior texts,
    evsynth.model.priors; None: the model's default); r_prepost; exclude (rule texts in the grammar
    of evsynth.data.rules, None: exclude nothing); techniques ("as labelled", "by massage
    component": evsynth.effects.techniques); leave_one_out; outcome (None: the one outcome with
    enough studies); measure, p_bound, design (as compute_effects and restrict_design); model;
    priors (fixed priors of the other parameters); draws, tune, chains, seed, target_accept,
    sampler (for PyMC scenarios); engine ("auto": exact wherever the model is Gaussian);
    max_scenarios (a bigger grid is refused unless raised); random and rho: with model
    "multilevel", the nested model's levels and assumed within-sample correlation (rows sharing a
    sample are kept; exact engine only; spec files: [model] random / rho).

    Example:
        >>> import evsynth as es
        >>> grid = es.Sensitivity("studies/massage.csv", outcome="milk volume", model="random_effects",
        ...                       tau_prior=["halfnormal(0.5)", "halfcauchy(0.5)"], r_prepost=[0.3, 0.7],
        ...                       exclude=[None, "design == 'pre_post'"])
        >>> len(grid.scenarios())
        8
        >>> table = grid.run(progress=False)   # exact engine: no MCMC   # doctest: +SKIP
    """

    studies: pd.DataFrame | str | Path
    tau_prior: list = field(default_factory=lambda: [None])  # None: the model's default tau prior
    r_prepost: list = field(default_factory=lambda: [DEFAULT_R_PREPOST])
    exclude: list = field(default_factory=lambda: [None])  # rule text (evsynth.data.rules) or None
    techniques: list = field(default_factory=lambda: [TECHNIQUE_GROUPINGS[0]])  # see evsynth.effects.techniques
    leave_one_out: bool = False
    outcome: str | None = None  # None: the one outcome with enough studies
    measure: str = "SMD"
    p_bound: str = "auto"  # as evsynth.compute_effects
    design: str = "all"  # "controlled" or "randomised": only those rows (evsynth.restrict_design)
    model: str = "by_technique"
    priors: dict = field(default_factory=dict)  # fixed priors for the other parameters
    draws: int = 2000
    tune: int = 1000
    chains: int = 4
    seed: int = 2026
    target_accept: float = 0.99
    sampler: str = "auto"
    engine: str = "auto"  # "exact" (evsynth.engines.exact), "pymc", or "auto": exact where the model allows
    max_scenarios: int = MAX_SCENARIOS  # refuse a bigger grid (memory, time) unless raised here
    random: str | None = None  # model "multilevel": its levels, e.g. "~ 1 | sample/study_id"
    rho: float | None = None  # model "multilevel": assumed within-sample correlation of sampling errors
    table: pd.DataFrame | None = field(default=None, init=False, repr=False)
    rule_warnings: list = field(default_factory=list, init=False, repr=False)  # e.g. a rule excluding nothing
    # the effect tables and rule selections __post_init__ computed (for the rules' warnings), by what
    # they depend on: run() starts from them
    _prepared: tuple = field(default=(None, {}), init=False, repr=False, compare=False)

    def __post_init__(self):
        if not isinstance(self.studies, pd.DataFrame):
            self.studies = load_studies(self.studies)
        if self.model not in BUILDERS and self.model != "multilevel":
            raise ValueError(f"model {self.model!r} unknown; choose one of {sorted(BUILDERS)}")
        if "tau" in self.priors:
            raise ValueError("the tau prior is swept: give it as tau_prior=[...], not in priors")
        self.engine = sweep_engine(self.engine, self.model)
        if (self.model == "multilevel") != (self.random is not None):
            raise ValueError("model 'multilevel' and random= go together: random gives its levels, e.g. "
                             "random='~ 1 | sample/study_id'")
        if self.rho is not None and not (self.random is not None and -1 < float(self.rho) < 1):
            raise ValueError(f"rho {self.rho!r}: needs random= and must lie strictly between -1 and 1")
        if self.random is not None and self.engine != "exact":
            raise ValueError("a sweep of the nested model (random=) runs on the exact engine: engine 'auto' or 'exact'")
        if self.design not in DESIGN_CHOICES:
            raise ValueError(f"design {self.design!r} unknown; choose one of {', '.join(DESIGN_CHOICES)}")
        if self.studies.empty:  # a header and no rows: valid input, nothing to analyse (as `evsynth fit`)
            raise NothingToAnalyse("the study table has no rows: nothing analysed")
        self.outcome = self.outcome or _only_outcome(self.studies, self.measure, self.p_bound)
        if self.outcome not in set(self.studies["outcome"]):
            raise ValueError(f"outcome {self.outcome!r} is not in the study table "
                             f"(outcomes: {sorted(set(self.studies['outcome']))})")
        size = (len(_as_list(self.tau_prior)) * len(_as_list(self.r_prepost)) * len(_as_list(self.exclude))
                * len(_as_list(self.techniques)))
        if self.leave_one_out:
            size *= 1 + int(self.studies["outcome"].eq(self.outcome).sum())
        if size > self.max_scenarios:
            raise ValueError(f"the grid has up to {size:,} scenarios, more than max_scenarios = {self.max_scenarios:,}; "
                             "shrink it, or raise the cap ([run] max_scenarios in a spec, --max-scenarios)")
        self.tau_prior = [self._tau_text(t) for t in _as_list(self.tau_prior)]
        self.r_prepost = [float(r) for r in _as_list(self.r_prepost)]
        self.exclude = ["" if rule in (None, "", "none") else str(parse_rule(rule, self.studies.columns))
                        for rule in _as_list(self.exclude)]
        self.techniques = [str(t) for t in _as_list(self.techniques)]
        unknown = [t for t in self.techniques if t not in TECHNIQUE_GROUPINGS]
        if unknown:
            raise ValueError(f"techniques {unknown}: choose from {list(TECHNIQUE_GROUPINGS)}")
        for name in ("tau_prior", "r_prepost", "exclude", "techniques"):
            values = getattr(self, name)
            meaning = [str(parse_prior(v)) for v in values] if name == "tau_prior" else values  # 0.5 == 0.50
            if not values or len(set(meaning)) != len(values):
                raise ValueError(f"{name}: give a non-empty list without repeats, got {values}")
        for r in self.r_prepost:
            if not -1 < r < 1:
                raise ValueError(f"r_prepost {r} must lie strictly between -1 and 1")
        context, cache = self.context, {}
        self.rule_warnings = [w for w in (rule_warning(context, rule, cache) for rule in self.exclude) if w]
        self._prepared = (self._data_key(), cache)
        for text in self.rule_warnings:
            warnings.warn(text, stacklevel=3)  # the caller's line: 2 is the dataclass's generated __init__

    def _data_key(self) -> tuple:
        """What scenario_effects' cache entries depend on (the study table by identity)."""
        return (id(self.studies), self.outcome, self.measure, self.p_bound, self.design, self.model, self.random)

    def _tau_text(self, text) -> str:
        """The tau prior as the user wrote it (checked; the scenario id keeps every digit given)."""
        if text is None:
            effects = compute_effects(self.studies, measure=self.measure, p_bound=self.p_bound)
            return default_priors(effects[effects["outcome"] == self.outcome])["tau"]
        parse_prior(text, "tau")
        return " ".join(str(text).split())

    @property
    def context(self) -> Context:
        options = FitOptions(self.draws, self.tune, self.chains, self.seed, self.target_accept, self.sampler)
        return Context(self.studies, self.outcome, self.measure, self.p_bound, self.model, dict(self.priors), options,
                       self.engine, self.design, self.random, None if self.rho is None else float(self.rho))

    def scenarios(self) -> list[Scenario]:
        """The grid in order: every tau prior x r x exclusion x technique grouping, each followed by
        its leave-one-out scenarios (one per study the exclusion keeps)."""
        context, out = self.context, []
        for tau, r, rule, grouping in itertools.product(self.tau_prior, self.r_prepost, self.exclude, self.techniques):
            base = Scenario(tau, r, rule, techniques=grouping)
            out.append(base)
            if self.leave_one_out:
                _, kept = scenario_effects(context, base)
                out += [replace(base, left_out=study) for study in kept]
        return out

    def run(self, n_jobs: int = 1, *, out=None, executor=None, progress: bool = True,
            reuse: bool = True, workers: str | None = None) -> pd.DataFrame:
        """Fit every scenario; returns (and keeps in `.table`) the tidy table.

        n_jobs: scenarios run at once (1 = one at a time in this process).
        workers: "threads" (the default with reuse): threads of this process share one compiled
        model per graph structure, as nutpie samples outside the GIL; "processes" (the default
        otherwise): each worker process compiles for itself, but the Python work per scenario
        (~0.2 s: building, diagnosing) runs in parallel too, which pays on many cores. From a
        script, call run() under `if __name__ == "__main__":` as for any spawned process pool.
        executor: any object with submit(fn, arg) returning futures, e.g. a dask.distributed
        Client (then n_jobs is unused and each scenario samples on one thread).
        out: JSON-lines file written as scenarios finish; scenarios already in it are not rerun.
        reuse: compile once per graph structure (needs nutpie, and a builder taking `weights`,
        `prior_data` and `study_effects`); otherwise, or with False, each scenario's reduced
        table is built and compiled afresh (slow; the reference for checking).
        """
        context = self.context
        sampler = context.options.sampler
        if sampler == "auto":  # part of the results file's fingerprint even when the engine is exact
            if context.engine == "exact":  # whether it is installed, without importing it (and PyMC)
                from importlib.util import find_spec

                sampler = "nutpie" if find_spec("nutpie") is not None else "pymc"
            else:
                sampler = "nutpie" if nutpie_available() else "pymc"
        context = replace(context, options=replace(context.options, sampler=sampler))
        reuse = reuse and sampler == "nutpie" and self.engine == "pymc" and supports_reuse(self.model)
        # sampler threads per scenario: all cores in this process, a share in local workers, one
        # on an external executor (it decides how many scenarios run at once)
        if executor is not None:
            cores = 1
        else:
            cores = None if n_jobs <= 1 else max(1, (os.cpu_count() or 1) // n_jobs)
        scenarios = self.scenarios()
        jobs = {s.id: Job(context, s, reuse, cores) for s in scenarios}
        if len(jobs) != len(scenarios):
            raise ValueError("two scenarios share an id; check the grid for repeated settings")
        workers = workers or ("threads" if reuse else "processes")
        if workers not in ("threads", "processes"):
            raise ValueError(f"workers {workers!r} unknown; choose 'threads' or 'processes'")
        in_this_process = executor is None and (workers == "threads" or n_jobs <= 1)
        fingerprint = context.fingerprint()
        if reuse and in_this_process:
            done = read_records(out, fingerprint) if out is not None else {}
            with spinner("sensitivity: compiling the model once per graph structure", enabled=progress):
                compile_ahead(context, [s for s in scenarios if s.id not in done])
        if self.engine == "exact":  # milliseconds a scenario: one after another here, sharing the effects
            # the cache lists the tau priors (each data variant's priors are fitted together: _exact_record)
            # and starts with the effect tables and rule selections __post_init__ made for the same data
            key, prepared = self._prepared
            cache = (dict(prepared) if key == self._data_key() else {}) | {"tau_priors": tuple(self.tau_prior)}
            function, n_jobs, executor = functools.partial(run_scenario, cache=cache), 1, None
        else:
            function = run_scenario
        records = run_tasks(function, jobs, out=out, fingerprint=fingerprint, n_jobs=n_jobs,
                            executor=executor, threads=workers == "threads", progress=progress, label="sensitivity",
                            failed=lambda record: record["verdict"] in ("FAIL", ERROR),
                            not_fitted=lambda record: record["verdict"] == NOT_FITTED,
                            compiles=self.engine != "exact")
        self.table = records_table([records[s.id] for s in scenarios])
        return self.table


def sweep_engine(engine: str, model: str) -> str:
    """The engine a sweep of `model` runs on: "auto" is the exact engine wherever the model has a
    Gaussian description (evsynth.model.description), PyMC otherwise (the selection model)."""
    from ..model.description import CONSTRUCTORS

    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r} unknown; choose one of {', '.join(ENGINES)}")
    gaussian = model in CONSTRUCTORS
    if engine == "exact" and not gaussian:
        raise ValueError(f"engine 'exact': model {model!r} has no Gaussian description (the exact engine fits "
                         f"{', '.join(sorted(CONSTRUCTORS))}); use engine 'pymc'")
    if engine == "auto":
        return "exact" if gaussian else "pymc"
    return engine


def records_table(records: list[dict]) -> pd.DataFrame:
    """The tidy table: one row per scenario x parameter, columns COLUMNS."""
    rows = [{"scenario": rec["key"], **{k: rec["settings"].get(k) for k in SETTINGS}, **row,
             "verdict": rec["verdict"], "problems": rec["problems"], "warnings": rec["settings"].get("warnings", "")}
            for rec in records for row in rec["rows"]]
    table = pd.DataFrame(rows, columns=COLUMNS)
    for name in ESTIMATES + ["r_prepost"]:
        table[name] = pd.to_numeric(table[name], errors="coerce").astype(float)
    table["n_studies"] = table["n_studies"].astype(int)
    table["techniques"] = table["techniques"].fillna(TECHNIQUE_GROUPINGS[0])  # records from before the column
    for name in ("scenario", "tau_prior", "exclude", "techniques", "left_out", "outcome", "model", "measure", "engine",
                 "parameter", "verdict", "problems", "warnings"):
        table[name] = table[name].fillna("").astype(str)
    return table


def _as_list(values) -> list:
    return list(values) if isinstance(values, (list, tuple)) else [values]


def _only_outcome(studies: pd.DataFrame, measure: str, p_bound: str) -> str:
    effects = compute_effects(studies, measure=measure, p_bound=p_bound)
    runnable, skipped = split_by_outcome(effects)
    if len(runnable) == 1:
        return next(iter(runnable))
    if not runnable:
        raise ValueError(f"no outcome has {MIN_STUDIES} usable studies: {skipped}")
    raise ValueError(f"several outcomes can be analysed ({', '.join(runnable)}); choose one with outcome=...")
