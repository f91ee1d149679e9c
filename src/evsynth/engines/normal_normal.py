"""The normal-normal random-effects model, y_i ~ N(theta_i, s_i^2), theta_i ~ N(mu, tau^2), on the
exact engine: `exact_posterior` describes it as the random-effects GaussianModel (the engine's
one-variance case) with bayesmeta's conventions (a flat mu prior, the improper uniform tau prior, a
fixed tau), lets evsynth.engines.exact integrate it and presents the result as pandas objects;
`check_against_exact` compares an MCMC fit with it. No quadrature of its own: the grid, the
conditionals, tau's CDF and the mixtures are the engine's.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from ..model.description import FixedBlock, GaussianModel
from ..model.priors import parse_prior
from . import exact as engine
from .exact import FLAT, NormalMixture

DEFAULT_PROBS = (0.025, 0.5, 0.975)


def _tau_prior(spec) -> tuple[str, str | None, float | None, float]:
    """(label, the engine's prior text, fixed value, tail exponent) of a tau prior."""
    if isinstance(spec, (int, float, np.floating, np.integer)) and not isinstance(spec, bool):
        if not (np.isfinite(spec) and spec >= 0):
            raise ValueError(f"fixed tau must be finite and >= 0, got {spec}")
        return f"fixed({float(spec):g})", None, float(spec), np.inf
    if isinstance(spec, str) and spec.strip().lower() in ("uniform", "uniform()"):
        return "uniform(0, inf)", FLAT, None, 0.0  # bayesmeta's tau.prior="uniform": flat on tau >= 0
    prior = parse_prior(spec)
    if prior.family == "uniform":
        if prior.params[0] < 0:
            raise ValueError(f"tau prior {prior}: lower bound must be >= 0")
        return str(prior), str(prior), None, np.inf
    if prior.support != "positive":
        raise ValueError(f"tau prior {prior} is not on tau > 0; use e.g. halfnormal, halfcauchy")
    # the density falls like tau^-tail (inf: lighter than any power)
    tail = {"halfcauchy": 2.0, "halfstudent_t": prior.params[0] + 1}.get(prior.family, np.inf)
    return str(prior), str(prior), None, tail


def _mu_prior(spec) -> str:
    """The mu prior's text: FLAT (improper, bayesmeta's default) or a normal prior."""
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("flat", "uniform", "uniform()")):
        return FLAT
    prior = parse_prior(spec)
    if prior.family != "normal":
        raise ValueError(f"mu prior {prior}: only flat or normal priors are conjugate here")
    return str(prior)


def _pct(p: float) -> str:
    return f"{100 * p:g}%"


_FLOOR = 1e-18  # nodes lighter than this times the heaviest are left out of the mixtures


def _mixture(weights, means, sds, infinite_variance=False, rel=_FLOOR) -> NormalMixture:
    # components with negligible weight change nothing but cost time in every evaluation
    keep = weights > rel * weights.max()
    w = weights[keep]
    return NormalMixture(w / w.sum(), means[keep], sds[keep], infinite_variance)


# the labels of the summaries, built once (immutable; a str Index costs ~20 us to build)
_MU_INDEX = pd.Index(["mean", "sd", *(_pct(p) for p in DEFAULT_PROBS), "P(mu>0)"])
_INDEX = _MU_INDEX[:-1]
_SUMMARY_INDEX = pd.Index(["mu", "tau", "predictive"])
_SUMMARY_COLUMNS = pd.Index(sorted(_MU_INDEX))  # as pandas aligns the three Series: their union, sorted
_SUMMARY_ORDER = [list(_MU_INDEX).index(c) for c in _SUMMARY_COLUMNS]
_THETA_COLUMNS = pd.Index(["y", "se", "mean", "sd"])


def _values(row: dict, mean: float, sd: float, p_above: float = np.nan) -> np.ndarray:
    """A summary row of the engine (evsynth.engines.exact.summary_rows) in _MU_INDEX's order."""
    return np.array([mean, sd, row["q2.5"], row["q50"], row["q97.5"], p_above], float)


@dataclass(frozen=True, eq=False)
class ExactPosterior:
    """Exact posterior of the normal-normal model (evsynth.engines.exact on its grid over tau).

    Summaries (`mu`, `tau`, `predictive` as pandas Series, `theta` as a DataFrame per study,
    `summary()` for all three) are computed on first access; `tau_grid`, `tau_density` and
    `weights` let callers plot the tau density or integrate further. Moments that do not exist
    (heavy tails) are reported as inf.
    """

    yi: np.ndarray
    sei: np.ndarray
    labels: pd.Index
    tau_prior: str
    mu_prior: str
    model: GaussianModel
    grid: engine.Grid | None  # None: tau fixed
    fixed_tau: float | None = None
    tail: float = np.inf  # the posterior density of tau falls like tau^-tail

    def _moment_exists(self, r: int) -> bool:
        return self.tail - 1 > r

    @cached_property
    def _cond(self) -> engine.Conditionals:
        if self.grid is None:
            return engine.conditionals(self.model, np.array([[self.fixed_tau]]))
        return self.grid.cond

    @property
    def tau_grid(self) -> np.ndarray:
        """The nodes in tau (increasing)."""
        return self._cond.taus[:, 0]

    @property
    def weights(self) -> np.ndarray:
        """Posterior mass of each node (sums to 1)."""
        return np.ones(1) if self.grid is None else self.grid.weights

    @property
    def mu_cond_mean(self) -> np.ndarray:
        return self._cond.mean[:, 0]

    @property
    def mu_cond_sd(self) -> np.ndarray:
        return np.sqrt(self._cond.cov[:, 0, 0])

    @cached_property
    def _marginal(self) -> engine.SDMarginal:
        return engine.sd_marginal(self.grid, 0)

    @property
    def tau_density(self) -> np.ndarray:
        """p(tau | y) at the nodes (inf for a fixed tau)."""
        if self.grid is None:
            return np.array([np.inf])
        m = self._marginal
        return m.density / m.axis.dtau_dx(m.x)

    # ---- conditional distributions at any tau
    def conditional(self, tau) -> dict:
        """Given tau: mean/sd of mu, sd of a new study's effect, mean/sd of each theta_i."""
        tau = np.atleast_1d(np.asarray(tau, dtype=float))
        cond = engine.conditionals(self.model, tau[:, None])
        v = cond.cov[:, 0, 0]
        t_mean, t_var = engine.study_effect_moments(self.model, cond)
        return {"mu_mean": cond.mean[:, 0], "mu_sd": np.sqrt(v), "pred_sd": np.sqrt(v + tau**2),
                "theta_mean": t_mean, "theta_sd": np.sqrt(t_var)}

    # ---- tau
    def tau_cdf(self, t) -> np.ndarray:
        if self.grid is None:
            return (np.asarray(t, dtype=float) >= self.fixed_tau).astype(float)
        return self._marginal.cdf(t)

    def tau_quantile(self, p) -> np.ndarray:
        p = np.atleast_1d(np.asarray(p, dtype=float))
        if self.grid is None:
            return np.full(p.shape, self.fixed_tau)
        return self._marginal.quantile(p)

    @cached_property
    def _rows(self) -> dict:
        """mu, tau and a new study's effect: the engine's summary rows (evsynth.engines.exact.summary_rows,
        the mixtures' quantiles in one search), or with tau fixed the one-node mixtures."""
        if self.grid is not None:
            rows = engine.summary_rows(self.model, self.grid, floor=_FLOOR)
            return {"mu": rows[("mu", "mu")], "tau": rows[("tau", "tau")], "predictive": rows[("prediction", "new study")]}
        t = self.fixed_tau
        mean, sd = self.mu_cond_mean, self.mu_cond_sd
        mu, predictive = engine._mixture_rows(np.ones(1), np.stack([mean, mean]), np.stack([sd, np.sqrt(sd**2 + t**2)]))
        return {"mu": mu, "predictive": predictive,
                "tau": {"mean": t, "sd": 0.0, "q2.5": t, "q50": t, "q97.5": t, "P(>0)": np.nan}}

    @cached_property
    def _table(self) -> np.ndarray:
        """mu, tau and the predictive rows' values (_MU_INDEX's columns); moments that do not exist are inf."""
        rows, var = self._rows, self._moment_exists(2)
        mu, tau, pred = rows["mu"], rows["tau"], rows["predictive"]
        return np.array([_values(mu, mu["mean"], mu["sd"] if var else np.inf, mu["P(>0)"]),
                         _values(tau, tau["mean"] if self._moment_exists(1) else np.inf, tau["sd"] if var else np.inf),
                         _values(pred, pred["mean"], pred["sd"] if var else np.inf)])

    @cached_property
    def tau(self) -> pd.Series:
        return pd.Series(self._table[1, :-1], index=_INDEX)

    # ---- mu and prediction
    @cached_property
    def mu_mixture(self) -> NormalMixture:
        return _mixture(self.weights, self.mu_cond_mean, self.mu_cond_sd, not self._moment_exists(2))

    @cached_property
    def predictive_mixture(self) -> NormalMixture:
        sd = np.sqrt(self.mu_cond_sd**2 + self.tau_grid**2)
        return _mixture(self.weights, self.mu_cond_mean, sd, not self._moment_exists(2))

    def mu_cdf(self, x) -> np.ndarray:
        return self.mu_mixture.cdf(x)

    def mu_quantile(self, p) -> np.ndarray:
        return self.mu_mixture.ppf(p)

    @cached_property
    def mu(self) -> pd.Series:
        return pd.Series(self._table[0], index=_MU_INDEX)

    @cached_property
    def predictive(self) -> pd.Series:
        return pd.Series(self._table[2, :-1], index=_INDEX)

    # ---- study effects
    def theta_mixture(self, study) -> NormalMixture:
        """Posterior of one study's effect, by label (or position if labels are the default)."""
        i = self.labels.get_loc(study)
        mean, var = engine.study_effect_moments(self.model, self._cond, slice(i, i + 1))
        return _mixture(self.weights, mean[:, 0], np.sqrt(var[:, 0]), not self._moment_exists(2))

    @cached_property
    def theta(self) -> pd.DataFrame:
        # by blocks of studies (evsynth.engines.exact.ROW_BLOCK): at k = 10,000 whole nodes x studies
        # arrays took ~100 MB of fresh pages, 75 ms of a first call
        n, G = self.yi.size, self.weights.size
        step = engine.row_step(G, n)
        table = np.empty((4, n))  # the columns y, se, mean, sd: one array the DataFrame takes as it is
        table[0], table[1] = self.yi, self.sei
        m, var = table[2], table[3]
        for start in range(0, n, step):
            rows = slice(start, min(start + step, n))
            mean, v = engine.study_effect_moments(self.model, self._cond, rows)
            m[rows] = engine.dot(self.weights, mean)
            dev = np.subtract(mean, m[rows], out=mean)  # in place: no fresh (nodes x studies) arrays
            var[rows] = engine.dot(self.weights, np.add(v, np.multiply(dev, dev, out=dev), out=v))
        if self._moment_exists(2):
            np.sqrt(var, out=var)
        else:
            var.fill(np.inf)
        return pd.DataFrame(table.T, index=self.labels, columns=_THETA_COLUMNS, copy=False)

    def summary(self) -> pd.DataFrame:
        """mu, tau and the predictive distribution (rows) with mean, sd and quantiles."""
        return pd.DataFrame(self._table[:, _SUMMARY_ORDER], index=_SUMMARY_INDEX, columns=_SUMMARY_COLUMNS, copy=False)


def exact_posterior(yi, sei, tau_prior="halfnormal(0.5)", mu_prior=None, labels=None,
                    n_grid: int | None = None) -> ExactPosterior:
    """Exact posterior of the normal-normal random-effects model (the exact engine's one-variance case).

    tau_prior: a Prior or prior string on tau > 0 (halfnormal, halfcauchy, halfstudent_t,
        exponential, uniform(lo, hi), or on log tau: lognormal, logstudent_t, rhodes2015(),
        turner2015(), integrated over log tau: engines.sd_axis); "uniform" for bayesmeta's improper flat prior on
        tau >= 0; or a number to hold tau fixed at that value.
    mu_prior: None/"flat" for the improper flat prior (bayesmeta's default) or "normal(m, s)".
    n_grid: nodes of the grid over tau (default: the engine's, evsynth.engines.exact.N_FINAL[1]).

    Example: es.exact_posterior([0.3, 0.1, 0.5], [0.1, 0.2, 0.15], "halfnormal(0.5)", "normal(0, 1)").mu
    """
    yi = np.asarray(yi, dtype=float).ravel()
    sei = np.asarray(sei, dtype=float).ravel()
    if yi.shape != sei.shape or yi.size == 0:
        raise ValueError("yi and sei must be non-empty and of equal length")
    if not (engine._all(np.isfinite(yi)) and engine._all(np.isfinite(sei)) and engine._all(sei > 0)):
        raise ValueError("yi must be finite and sei finite and > 0")
    tau_label, tau_text, fixed, prior_tail = _tau_prior(tau_prior)
    mu_text = _mu_prior(mu_prior)
    # p(y | tau) falls like tau^-(k - 1) with a flat mu prior and tau^-k with a normal one
    tail = prior_tail + (yi.size - 1 if mu_text == FLAT else yi.size)
    if fixed is None and tail <= 1:
        raise ValueError(f"posterior of tau is improper with {yi.size} studies and prior "
                         f"{tau_label}; use a proper tau prior or more studies")
    labels = (pd.RangeIndex.from_range(range(yi.size), name="study") if labels is None  # (from_range: fewer checks)
              else pd.Index(list(labels), name="study"))
    model = GaussianModel(kind="random_effects", study_id=tuple(map(str, labels.tolist())), yi=yi, sei=sei,
                          censored=np.zeros(yi.size, bool), X=np.ones((yi.size, 1)),
                          fixed=(FixedBlock("mu", None, ("mu",), mu_text),),
                          study_prior=FLAT if tau_text is None else tau_text,
                          settings={"model": "random_effects", "prior_mu": mu_text, "prior_tau": tau_label})
    grid = None if fixed is not None else engine.posterior_grid(model, n_grid)
    return ExactPosterior(yi, sei, labels, tau_label, "flat" if mu_text == FLAT else mu_text, model, grid,
                          fixed, tail)


def check_against_exact(idata, tau_prior=None, mu_prior=None, threshold: float = 4.0,
                        probs=DEFAULT_PROBS) -> pd.DataFrame:
    """Compare an MCMC fit's mu and tau with the exact posterior, in MCSE units.

    idata follows docs/architecture.md (constant_data yi/sei, posterior mu/tau); priors default
    to idata.attrs["prior_mu"] / ["prior_tau"]. A row is ok when |mcmc - exact| < threshold * MCSE.

    Example: es.check_against_exact(es.fit(es.random_effects(effects), seed=1))
    """
    import arviz as az

    tau_prior = tau_prior if tau_prior is not None else idata.attrs["prior_tau"]
    mu_prior = mu_prior if mu_prior is not None else idata.attrs["prior_mu"]
    cd = idata.constant_data
    exact = exact_posterior(cd["yi"].values, cd["sei"].values, tau_prior=tau_prior, mu_prior=mu_prior)
    exact_q = {"mu": exact.mu_quantile(probs), "tau": exact.tau_quantile(probs)}
    exact_mean = {"mu": exact.mu["mean"], "tau": exact.tau["mean"]}

    rows = []
    for name in ("mu", "tau"):
        draws = idata.posterior[name].values.ravel()
        mcse_mean = float(az.mcse(idata, var_names=[name], method="mean")[name])
        rows.append((name, "mean", draws.mean(), exact_mean[name], mcse_mean))
        for p, ex in zip(probs, exact_q[name]):
            mcse_q = float(az.mcse(idata, var_names=[name], method="quantile", prob=p)[name])
            rows.append((name, _pct(p), np.quantile(draws, p), ex, mcse_q))
    out = pd.DataFrame(rows, columns=["parameter", "statistic", "mcmc", "exact", "mcse"])
    out["z"] = (out["mcmc"] - out["exact"]) / out["mcse"]
    out["ok"] = out["z"].abs() < threshold
    out.attrs.update(tau_prior=exact.tau_prior, mu_prior=exact.mu_prior, threshold=threshold)
    return out
