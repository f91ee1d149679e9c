"""Prior-data conflict: a fit can pass every convergence diagnostic and still not describe its data.

Two checks on a fitted random-effects or per-technique model (any engine), reported as warnings
beside the diagnostics verdict, never as a diagnostics failure:

- Posterior predictive of each study: where the study's observed effect falls in the predictive
  distribution of a new study like it, y_new ~ N(centre, tau^2 + se_i^2) with centre = mu (or the
  study's technique effect), averaged over the posterior draws. p_i = P(y_new <= y_i); an effect
  outside the central `level` interval is flagged. (Two studies at +5 and -5 with SE 0.01 under
  a half-normal(0.5) tau prior: both lie outside the 95% prediction interval.)
- Each between-study SD against its prior: the prior's CDF at the posterior median. Above `tail`
  the data have pulled tau into the prior's tail, so the prior, not the data, sets how wide the
  intervals and the prediction are.

Censored rows (effect known only to lie beyond a bound) are not checked against the predictive:
their yi is a bound, not an observation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..effects.distributions import norm_cdf, t_cdf
from ..effects.table import used_effects
from ..model.priors import parse_prior

LEVEL = 0.95  # central predictive interval an observed effect should fall in
TAIL = 0.99  # prior CDF at the posterior median of a between-study SD beyond which it is flagged
SD_PARAMETERS = ("tau", "tau_technique")


@dataclass
class Conflict:
    table: pd.DataFrame  # per checked study: yi, sei, predictive interval, p_predictive, outside
    sd_tails: dict  # parameter -> prior CDF at its posterior median
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what could not be checked, and why

    @property
    def ok(self) -> bool:
        return not self.warnings

    def __str__(self) -> str:
        if self.ok:
            lines = ["prior-data conflict: none found (every checked study inside its "
                     f"{LEVEL:.0%} posterior predictive interval; between-study SDs not in their prior's tail)"]
        else:
            lines = ["prior-data conflict: WARNING"] + [f"  !! {w}" for w in self.warnings]
        return "\n".join(lines + [f"  ({n})" for n in self.notes])


def _draws(posterior, name: str) -> np.ndarray:
    """(sample, ...) array of a posterior variable, chains stacked."""
    array = np.asarray(posterior[name])
    return array.reshape(-1, *array.shape[2:])


def _centres(posterior, table: pd.DataFrame) -> np.ndarray | None:
    """(sample, study) centre of a new study like each one: its technique effect, else mu."""
    if "beta" in posterior:  # moderators: the centre depends on the study's covariates
        return None
    if "technique_effect" in posterior:
        labels = [str(t) for t in np.asarray(posterior["technique_effect"]["technique"])]
        if not set(table["technique"]) <= set(labels):
            return None
        index = [labels.index(t) for t in table["technique"]]
        return _draws(posterior, "technique_effect")[:, index]
    if "mu" in posterior and np.ndim(posterior["mu"]) == 2:  # scalar mu: no moderators
        return np.repeat(_draws(posterior, "mu")[:, None], len(table), axis=1)
    return None


def _prior_cdf(text: str, x: float) -> float:
    prior = parse_prior(text)
    if prior.family == "halfstudent_t":
        nu, sigma = prior.params
        return float(2 * t_cdf(x, nu, 0, sigma) - 1)
    from ..model.priors import _FAMILIES

    return float(_FAMILIES[prior.family][1](*prior.params).cdf(x))


def prior_data_conflict(idata, effects: pd.DataFrame, *, priors: dict | None = None, level: float = LEVEL,
                        tail: float = TAIL, seed: int = 0) -> Conflict:
    """Check a fit against its data (module docstring). `effects`: the table the model was built
    from (its used rows are the studies); `priors`: {parameter: prior text}, by default the
    fit's attrs (prior_tau, prior_tau_technique)."""
    posterior = idata.posterior
    attrs = dict(getattr(idata, "attrs", {}) or {})
    table = used_effects(effects).reset_index(drop=True)
    warnings, notes, rows = [], [], []
    if "tau" not in posterior:
        notes.append("no between-study SD tau in this fit: the predictive check needs one")
        centres = None
    elif attrs.get("model") == "selection":
        notes.append("selection model: its likelihood weights studies by their p-values, so the plain predictive "
                     "check does not apply")
        centres = None
    else:
        centres = _centres(posterior, table)
        if centres is None:
            notes.append("model with moderators or unknown techniques: the per-study predictive check is not done")
    if centres is not None:
        tau = _draws(posterior, "tau")
        rng = np.random.default_rng(seed)
        low_q, high_q = (1 - level) / 2, (1 + level) / 2
        for i, row in table.iterrows():
            if bool(row["censored"]):
                continue
            scale = np.sqrt(tau**2 + row["sei"] ** 2)
            p = float(np.mean(norm_cdf((row["yi"] - centres[:, i]) / scale)))
            predictive = centres[:, i] + scale * rng.standard_normal(scale.size)
            lower, upper = np.quantile(predictive, [low_q, high_q])
            rows.append({"study_id": row["study_id"], "technique": row["technique"], "yi": row["yi"],
                         "sei": row["sei"], "lower": lower, "upper": upper, "p_predictive": p,
                         "outside": not low_q <= p <= high_q})
        censored = table.loc[table["censored"].astype(bool), "study_id"].tolist()
        if censored:
            notes.append(f"censored rows not checked (yi is a bound): {', '.join(censored)}")
    checks = pd.DataFrame(rows, columns=["study_id", "technique", "yi", "sei", "lower", "upper", "p_predictive",
                                         "outside"])
    outside = checks[checks["outside"]]
    if not outside.empty:
        listed = ", ".join(f"{r.study_id} (yi {r.yi:.3g}, interval {r.lower:.3g} to {r.upper:.3g})"
                           for r in outside.itertuples())
        warnings.append(f"{len(outside)} of {len(checks)} studies lie outside their {level:.0%} posterior "
                        f"predictive interval: {listed}; the model does not describe these data")
    sd_tails = {}
    for name in SD_PARAMETERS:
        text = (priors or {}).get(name) or attrs.get(f"prior_{name}")
        if name not in posterior:
            continue
        if not text:
            notes.append(f"the prior of {name} is not recorded in this fit: its tail is not checked")
            continue
        median = float(np.median(_draws(posterior, name)))
        sd_tails[name] = cdf = _prior_cdf(text, median)
        if cdf > tail:
            warnings.append(f"{name}: posterior median {median:.3g} lies at the {cdf:.2%} point of its prior "
                            f"{text}; the data pull it into the prior's tail, so the prior, not the data, sets "
                            "the width of the intervals and of the prediction")
    return Conflict(checks, sd_tails, warnings, notes)
