"""Sensitivity spec files (TOML, read with tomllib): data, effect measure, model and grid.

    [data]
    studies = "../studies/synthetic_demo.csv"   # relative to this file
    outcome = "milk volume"

    [effects]
    measure = "SMD"
    p_bound = "auto"
    # design = "controlled"   # or "randomised": only those rows in every scenario (default "all";
                              # CLI --design overrides; a rule such as "randomised != 'yes'" in
                              # [grid] exclude sweeps it instead)

    [model]
    name = "by_technique"
    priors = { mu = "normal(0, 1)", tau_technique = "halfnormal(0.5)" }
    # engine = "auto"    # "exact" (no MCMC), "pymc", or "auto": exact wherever the model has one

    [fit]
    draws = 2000
    tune = 1000
    chains = 4
    seed = 2026

    [grid]
    tau_prior = ["halfnormal(0.5)", "halfcauchy(0.5)"]
    r_prepost = [0.3, 0.5, 0.7, 0.9]
    exclude = ["", "design == 'pre_post'"]     # "" = exclude nothing
    techniques = ["as labelled", "by massage component"]   # evsynth.effects.techniques.group_combinations
    leave_one_out = true

    [run]
    n_jobs = 2

A spec is data: every key is checked against this layout (a typo is an error naming the file,
section and key), priors go through evsynth.model.priors and exclusion rules through evsynth.data.rules,
neither of which can run code. Priors are checked when the file is read (a misspelled parameter
name, a tau prior that allows negative values, parameters out of range are input errors, not
failed fits), and the grid is capped at [run] max_scenarios (default MAX_SCENARIOS).
"""

from __future__ import annotations

import difflib
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..model.description import STANDARD_PRIORS
from ..model.priors import PriorError, parse_prior
from ..effects.techniques import TECHNIQUE_GROUPINGS
from ..data.vocabulary import ENGINES, MAX_SCENARIOS, MEASURES, MODELS, P_BOUND_MODES


# section -> key -> (type(s), required)
LAYOUT = {
    "": {"title": (str, False), "description": (str, False)},
    "data": {"studies": (str, True), "outcome": (str, False)},
    "effects": {"measure": (str, False), "p_bound": (str, False), "design": (str, False)},
    "model": {"name": (str, False), "priors": (dict, False), "engine": (str, False), "random": (str, False),
              "rho": ((int, float), False)},
    "fit": {"draws": (int, False), "tune": (int, False), "chains": (int, False), "seed": (int, False),
            "target_accept": ((int, float), False), "sampler": (str, False)},
    "grid": {"tau_prior": (list, False), "r_prepost": (list, False), "exclude": (list, False),
             "techniques": (list, False), "leave_one_out": (bool, False)},
    "run": {"n_jobs": (int, False), "max_scenarios": (int, False)},
}
ITEM_TYPES = {"tau_prior": str, "r_prepost": (int, float), "exclude": str, "techniques": str}


class SpecError(ValueError):
    """A spec file that does not follow the layout; the message names the file, section and key."""


@dataclass
class Spec:
    path: Path
    title: str
    sensitivity: dict  # keyword arguments for evsynth.methods.sensitivity.Sensitivity
    n_jobs: int

    @property
    def name(self) -> str:
        return self.path.stem


def _did_you_mean(word: str, known) -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def load_spec(path) -> Spec:
    path = Path(path)
    if path.is_dir():
        raise SpecError(f"{path}: is a directory; expected a spec file (TOML), e.g. models/massage_sensitivity.toml")
    if not path.is_file():
        raise SpecError(f"{path}: no such spec file")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not UTF-8 text; expected a TOML spec file in UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None
    _check(path, raw)
    data, effects, model = raw["data"], raw.get("effects", {}), raw.get("model", {})
    fit, grid = raw.get("fit", {}), raw.get("grid", {})
    studies = Path(data["studies"])
    studies = studies if studies.is_absolute() else Path(os.path.normpath(path.parent / studies))
    if not studies.is_file():
        raise SpecError(f"{path}, [data] studies: {studies} not found (relative paths are read from the "
                        "spec file's folder)")
    kwargs = {"studies": studies, "outcome": data.get("outcome")}
    kwargs |= {k: effects[k] for k in ("measure", "p_bound", "design") if k in effects}
    if "name" in model:
        kwargs["model"] = model["name"]
    if "engine" in model:
        kwargs["engine"] = model["engine"]
    kwargs |= _nested(path, model)
    priors = dict(model.get("priors", {}))
    for key, value in priors.items():
        if not isinstance(value, str):
            raise SpecError(f"{path}, [model] priors.{key}: expected a prior as text, e.g. 'halfnormal(0.5)'")
    if "tau" in priors:
        raise SpecError(f"{path}, [model] priors.tau: the tau prior is swept; list it in [grid] tau_prior")
    for key, value in priors.items():
        if key not in STANDARD_PRIORS:
            known = [k for k in STANDARD_PRIORS if k != "tau"]
            raise SpecError(f"{path}, [model] priors.{key}: unknown parameter{_did_you_mean(key, known)} "
                            f"(known: {', '.join(known)})")
        _check_prior(path, f"[model] priors.{key}", value, key)
    for value in grid.get("tau_prior", []):
        _check_prior(path, "[grid] tau_prior", value, "tau")
    kwargs["priors"] = priors
    kwargs |= {k: fit[k] for k in ("draws", "tune", "chains", "seed", "target_accept", "sampler") if k in fit}
    for key in ("tau_prior", "r_prepost", "exclude", "techniques"):
        if key in grid:
            kwargs[key] = grid[key]
    unknown = [t for t in kwargs.get("techniques", []) if t not in TECHNIQUE_GROUPINGS]
    if unknown:
        raise SpecError(f"{path}, [grid] techniques: {unknown} unknown; choose from {list(TECHNIQUE_GROUPINGS)}")
    if "exclude" in kwargs:
        kwargs["exclude"] = [rule or None for rule in kwargs["exclude"]]
    kwargs["leave_one_out"] = grid.get("leave_one_out", False)
    n_jobs = raw.get("run", {}).get("n_jobs", 1)
    if n_jobs < 1:
        raise SpecError(f"{path}, [run] n_jobs: must be at least 1")
    kwargs["max_scenarios"] = raw.get("run", {}).get("max_scenarios", MAX_SCENARIOS)
    if kwargs["max_scenarios"] < 1:
        raise SpecError(f"{path}, [run] max_scenarios: must be at least 1")
    return Spec(path, raw.get("title", path.stem), kwargs, n_jobs)


def _nested(path: Path, model: dict) -> dict:
    """[model] random / rho: the nested model (rows sharing a sample kept; exact engine)."""
    if "rho" in model and "random" not in model:
        raise SpecError(f"{path}, [model] rho: needs [model] random (the levels whose rows share participants), "
                        "e.g. random = \"~ 1 | sample/study_id\"")
    if "random" not in model:
        return {}
    from ..model.description import _nesting_paths

    try:
        _nesting_paths(model["random"])
    except ValueError as exc:
        raise SpecError(f"{path}, [model] random: {exc}") from None
    if model.get("name", "multilevel") != "multilevel":
        raise SpecError(f"{path}, [model] random: fits the nested model; [model] name must be 'multilevel' or "
                        f"absent, not {model['name']!r}")
    if model.get("engine", "auto") == "pymc":
        raise SpecError(f"{path}, [model] random: a sweep of the nested model runs on the exact engine; "
                        "[model] engine must be 'auto' or 'exact'")
    out = {"model": "multilevel", "random": model["random"]}
    if "rho" in model:
        if isinstance(model["rho"], bool) or not -1 < float(model["rho"]) < 1:
            raise SpecError(f"{path}, [model] rho: {model['rho']!r}; a correlation must lie strictly between -1 "
                            "and 1")
        out["rho"] = float(model["rho"])
    return out


def _check_prior(path: Path, where: str, text: str, name: str) -> None:
    try:
        parse_prior(text, name)
    except PriorError as exc:
        raise SpecError(f"{path}, {where}: {exc}") from None


def _check(path: Path, raw: dict) -> None:
    for section, body in raw.items():
        if section in LAYOUT[""]:
            _check_value(path, "", section, body)
            continue
        if section not in LAYOUT:
            raise SpecError(f"{path}: unknown section or key {section!r}"
                            f"{_did_you_mean(section, [s for s in LAYOUT if s] + list(LAYOUT['']))}; known sections: "
                            f"{', '.join(s for s in LAYOUT if s)}")
        if not isinstance(body, dict):
            raise SpecError(f"{path}, [{section}]: expected a table of settings")
        for key, value in body.items():
            if key not in LAYOUT[section]:
                raise SpecError(f"{path}, [{section}] {key}: unknown key{_did_you_mean(key, LAYOUT[section])}; "
                                f"known: {', '.join(LAYOUT[section])}")
            _check_value(path, section, key, value)
    for section, keys in LAYOUT.items():
        for key, (_, required) in keys.items():
            if required and key not in raw.get(section, {}):
                raise SpecError(f"{path}, [{section}] {key}: required")


# Keys whose value is one of a few words: refused here, naming the key, not later by the sweep.
CHOICES = {("effects", "measure"): MEASURES, ("effects", "p_bound"): P_BOUND_MODES,
           ("effects", "design"): ("all", "controlled", "randomised"),
           ("model", "name"): MODELS + ("multilevel",),
           ("model", "engine"): ENGINES, ("fit", "sampler"): ("auto", "pymc", "nutpie")}
# What a sweep's own refusal is about -> the spec section and key it comes from (spec_error).
_SUBJECTS = (("random level", "[model] random"), ("rho", "[model] rho"),
             ("a sweep of the nested model", "[model] engine"), ("exclusion rule", "[grid] exclude"), ("outcome", "[data] outcome"),
             ("no outcome", "[data] outcome"), ("several outcomes", "[data] outcome"),
             ("the grid has", "[grid] (its size; the cap is [run] max_scenarios)"), ("engine", "[model] engine"),
             ("model", "[model] name"), ("design", "[effects] design"), ("techniques", "[grid] techniques"),
             ("r_prepost", "[grid] r_prepost"), ("tau_prior", "[grid] tau_prior"), ("exclude", "[grid] exclude"),
             ("p_bound", "[effects] p_bound"), ("measure", "[effects] measure"))


def spec_error(spec: "Spec | Path", exc: Exception) -> SpecError:
    """A refusal raised while a sweep is set up from `spec`, as a SpecError naming the file and the
    section and key the refused value came from (a command-line option that overrode it is named
    by the sweep's own message)."""
    path = spec.path if isinstance(spec, Spec) else spec
    text = str(exc)
    where = next((key for subject, key in _SUBJECTS if text.lower().startswith(subject)), None)
    if where is None and "study" in text.lower():
        where = "[data] studies"
    return SpecError(f"{path}, {where or '(the sweep it describes)'}: {text}")


MINIMUM = {"draws": 1, "tune": 0, "chains": 1, "seed": 0, "n_jobs": 1, "max_scenarios": 1}


def _check_value(path: Path, section: str, key: str, value) -> None:
    kinds, _ = LAYOUT[section][key]
    where = f"{path}, [{section}] {key}" if section else f"{path}, {key}"
    # bool is an int in Python; a count given as true/false is a mistake.
    if not isinstance(value, kinds) or (isinstance(value, bool) and kinds is not bool):
        expected = kinds.__name__ if isinstance(kinds, type) else " or ".join(k.__name__ for k in kinds)
        raise SpecError(f"{where}: expected {expected}, got {value!r}")
    if isinstance(value, str) and not value.strip() and key not in ("title", "description"):
        raise SpecError(f"{where}: empty; give a value or leave the key out")
    if (section, key) in CHOICES and value not in CHOICES[section, key]:
        raise SpecError(f"{where}: {value!r} unknown{_did_you_mean(value, CHOICES[section, key])}; choose one of "
                        f"{', '.join(CHOICES[section, key])}")
    if key == "r_prepost" and isinstance(value, list):
        for r in value:
            if isinstance(r, (int, float)) and not isinstance(r, bool) and not -1 < r < 1:
                raise SpecError(f"{where}: {r} must lie strictly between -1 and 1")
    if key in MINIMUM and value < MINIMUM[key]:
        raise SpecError(f"{where}: {value} is below {MINIMUM[key]}")
    if key == "target_accept" and not 0 < value < 1:
        raise SpecError(f"{where}: {value} must lie strictly between 0 and 1")
    if key in ITEM_TYPES:
        item = ITEM_TYPES[key]
        if not value:
            raise SpecError(f"{where}: give at least one value")
        for entry in value:
            if not isinstance(entry, item) or isinstance(entry, bool):
                raise SpecError(f"{where}: {entry!r} is not a valid entry")
