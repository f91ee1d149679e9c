"""The publication-bias-adjusted estimate every analysis reports beside its pooled effect: Bayesian
model averaging as RoBMA-PSMA (Bartos et al. 2023) over {effect, no effect} x {heterogeneity, none}
x {no bias, step-function selection, PET, PEESE} (16 models), weighted by marginal likelihoods
from quadrature (methods.compare.model_average, engines.marginal: no MCMC, error < 1e-3 in log ML).

Priors (RoBMA's defaults; mu and tau are this toolkit's defaults for the measure, as every model
here uses them): mu ~ the analysis' mu prior (normal(0, 1) on SMD); tau ~ its tau prior
(halfnormal(0.5) on SMD); selection: weights of the one-sided p intervals (< 0.025, 0.025-0.05,
> 0.05) non-increasing, cumulative Dirichlet(1, 1, 1); PET slope b ~ Cauchy+(0, 1); PEESE slope b ~
Cauchy+(0, 5 / unit) (unit: the mu prior's scale). Prior model probabilities: 1/2 effect, 1/2
heterogeneity, and within those no bias 1/2, selection 1/4, PET 1/8, PEESE 1/8.

Minimum k (MIN_STUDIES): with fewer than 3 studies not run. Two points fit a PET / PEESE line
exactly, so the bias models' intercept and slope would be their priors (and the selection weights
rest on two p-values); the "adjusted" figure would restate the prior.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..effects.table import used_effects

MIN_STUDIES = 3
# Above this many studies the 16 models' quadrature no longer meets its error target (measured on a
# synthetic two-group table: 100 studies clean in 6 s, 200 missed the log-ML tolerance, 300 overflowed
# the inclusion Bayes factor), so the ensemble is not run and the reason is stated (issue 25).
MAX_STUDIES = 100
FAMILIES = ("selection", "PET", "PEESE")


@dataclass
class BiasAdjusted:
    """The bias-adjusted (model-averaged) effect of one outcome. Fields:

    ran: whether the ensemble was fitted (False: `reason` says why, the figures are NaN);
    k: studies in the ensemble; min_k: MIN_STUDIES;
    mean, sd, low, median, high: model-averaged posterior of mu over all 16 models (95% CrI
      low-high; the no-effect models put their mass at 0);
    p_effect, p_heterogeneity, p_bias: posterior inclusion probabilities (prior 1/2 each);
    bf_effect, bf_heterogeneity, bf_bias: inclusion Bayes factors (posterior / prior odds);
    families: posterior probability of each bias family (none, selection, PET, PEESE);
    priors: the prior of each component, as text; ensemble: the methods.compare.ModelAverage;
    reason: why not run, or "" when it ran.
    """

    ran: bool
    k: int
    min_k: int = MIN_STUDIES
    mean: float = float("nan")
    sd: float = float("nan")
    low: float = float("nan")
    median: float = float("nan")
    high: float = float("nan")
    p_effect: float = float("nan")
    p_heterogeneity: float = float("nan")
    p_bias: float = float("nan")
    bf_effect: float = float("nan")
    bf_heterogeneity: float = float("nan")
    bf_bias: float = float("nan")
    families: dict = field(default_factory=dict)
    priors: dict = field(default_factory=dict)
    ensemble: object = None
    reason: str = ""

    @property
    def includes_zero(self) -> bool:
        return bool(self.ran and self.low <= 0.0 <= self.high)

    def __str__(self) -> str:
        return self.line()

    def line(self, digits: int = 2) -> str:
        """One line for a reader: the adjusted effect, its interval and the inclusion probabilities."""
        if not self.ran:
            return f"bias-adjusted estimate not computed: {self.reason}"
        f = f".{digits}f"
        return (f"bias-adjusted {self.mean:{f}} (95% CrI {self.low:{f}} to {self.high:{f}}); "
                f"P(effect) {self.p_effect:.2f}, P(bias) {self.p_bias:.2f}, P(heterogeneity) "
                f"{self.p_heterogeneity:.2f} (RoBMA-PSMA, {self.k} studies)")

    def table(self) -> pd.DataFrame:
        """Posterior model probabilities of the 16 models (from the ensemble)."""
        if self.ensemble is None:
            return pd.DataFrame()
        cols = ["model", "prior_prob", "post_prob", "log_ml", "mu_mean", "tau_mean", "b_mean"]
        return self.ensemble.models[cols].set_index("model")


def ensemble_priors(effects: pd.DataFrame, priors: dict | None = None) -> dict[str, str]:
    """The prior of each component of the ensemble, as text (see the module docstring)."""
    from ..engines.marginal import slope_prior
    from ..model.description import resolve_priors
    from ..model.priors import parse_prior

    chosen = resolve_priors(effects, {k: v for k, v in (priors or {}).items() if k in ("mu", "tau")})
    mu = parse_prior(chosen["mu"])
    return {"mu": chosen["mu"], "tau": chosen["tau"],
            "selection": "weights of one-sided p < 0.025, 0.025-0.05, > 0.05 non-increasing, cumulative "
                         "Dirichlet(1, 1, 1)",
            "PET": f"b ~ {slope_prior('PET', mu)} (y_i ~ mu + b se_i)",
            "PEESE": f"b ~ {slope_prior('PEESE', mu)} (y_i ~ mu + b se_i^2)",
            "models": "P(effect) = P(heterogeneity) = 1/2; no bias 1/2, selection 1/4, PET 1/8, PEESE 1/8"}


def bias_adjusted(effects: pd.DataFrame, priors: dict | None = None, direction: str = "positive",
                  max_studies: int = MAX_STUDIES) -> BiasAdjusted:
    """The RoBMA-PSMA bias-adjusted estimate of one outcome's effect table (see BiasAdjusted); not
    run (ran False, reason stated) below MIN_STUDIES or above `max_studies` studies.

    Example: es.bias_adjusted(effects).line()
    """
    from .compare import PSMA, model_average

    k = len(used_effects(effects))
    if k < MIN_STUDIES:
        return BiasAdjusted(False, k, reason=f"{k} stud{'y' if k == 1 else 'ies'}; the ensemble needs at least "
                            f"{MIN_STUDIES} (two studies fit a PET line exactly: the adjustment would be the prior)")
    if k > max_studies:
        return BiasAdjusted(False, k, reason=f"k = {k:,} > {max_studies:,} studies (the quadrature over 16 models "
                            "does not reach its accuracy above that)")
    mu_tau = {k_: v for k_, v in (priors or {}).items() if k_ in ("mu", "tau")}
    try:
        table = ensemble_priors(effects, mu_tau)
        ma = model_average(effects, mu_tau, direction=direction, bias_families=PSMA)
    except ValueError as exc:  # e.g. a mu prior the quadrature cannot take (uniform)
        return BiasAdjusted(False, k, reason=str(exc))
    inc, mu = ma.inclusion, ma.mu
    return BiasAdjusted(True, k, MIN_STUDIES, float(mu["mean"]), float(mu["sd"]), float(mu["q2.5"]),
                        float(mu["q50"]), float(mu["q97.5"]),
                        *(float(inc.loc[c, "post_prob"]) for c in ("effect", "heterogeneity", "bias")),
                        *(float(inc.loc[c, "BF_incl"]) for c in ("effect", "heterogeneity", "bias")),
                        families=ma.bias_families["post_prob"].to_dict(), priors=table, ensemble=ma)
