"""Exact posterior of the normal-normal random-effects model by integration over tau.

Model: y_i ~ N(theta_i, s_i^2), theta_i ~ N(mu, tau^2), with a prior on tau and a flat or normal
prior on mu. Given tau everything is conjugate, so (as in R's bayesmeta, Roever 2020) only the
one-dimensional marginal posterior of tau needs numerical integration; mu, the shrunken study
effects and the predictive distribution are normal mixtures over tau.

Quadrature: a coarse scan in log(tau) finds where the posterior mass is; the fine grid is uniform
in z = asinh(tau / c), with c the rough posterior median, which is linear in tau near 0 (where
the density is usually largest) and logarithmic in the tail. End-corrected (Gregory) trapezoid
weights make every expectation O(h^4) accurate; tau's CDF uses cumulative Simpson plus cubic
Hermite interpolation with the exact density as slope.

`check_against_exact` compares an MCMC fit (an ArviZ DataTree, see docs/architecture.md) with it;
`bayesmeta_direct` reproduces the coarser discrete mixture that bayesmeta reports for mu.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import integrate, interpolate, optimize, special

from evsynth.model.priors import parse_prior

DEFAULT_PROBS = (0.025, 0.5, 0.975)
_LOG_DROP = 36.0  # grid covers tau where the log posterior is within this of its max (~2e-16)
_COARSE_HALF_WIDTH = 40.0  # coarse search range in log(tau) around the data's scale
_STEP_Z = 0.02  # target fine-grid spacing in z; O(h^4) error ~1e-8 relative


# --------------------------------------------------------------------------- priors


@dataclass(frozen=True)
class _TauPrior:
    """Log density of the tau prior on tau > 0, its support, and its tail for moment checks."""

    label: str
    logpdf: object = None  # callable: tau array -> log density (up to a constant if improper)
    lower: float = 0.0
    upper: float = np.inf
    tail: float = np.inf  # density falls like tau^-tail; inf for light tails or bounded support
    proper: bool = True
    fixed: float | None = None  # tau known: a point mass


def _tau_prior(spec) -> _TauPrior:
    if isinstance(spec, (int, float, np.floating, np.integer)) and not isinstance(spec, bool):
        if not (np.isfinite(spec) and spec >= 0):
            raise ValueError(f"fixed tau must be finite and >= 0, got {spec}")
        return _TauPrior(f"fixed({float(spec):g})", fixed=float(spec))
    if isinstance(spec, str) and spec.strip().lower() in ("uniform", "uniform()"):
        # bayesmeta's tau.prior="uniform": improper, constant on tau >= 0
        return _TauPrior("uniform(0, inf)", lambda t: np.zeros_like(t), tail=0.0, proper=False)
    prior = parse_prior(spec)
    if prior.family == "uniform":
        lo, hi = prior.params
        if lo < 0:
            raise ValueError(f"tau prior {prior}: lower bound must be >= 0")
        return _TauPrior(str(prior), prior.logpdf, lower=lo, upper=hi)
    if prior.support != "positive":
        raise ValueError(f"tau prior {prior} is not on tau > 0; use e.g. halfnormal, halfcauchy")
    tail = {"halfcauchy": 2.0, "halfstudent_t": prior.params[0] + 1}.get(prior.family, np.inf)
    return _TauPrior(str(prior), prior.logpdf, tail=tail)


def _mu_prior(spec) -> tuple[str, float | None, float | None]:
    """(label, mean, sd) of the mu prior; mean/sd None for the flat (improper) prior."""
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("flat", "uniform", "uniform()")):
        return "flat", None, None
    prior = parse_prior(spec)
    if prior.family != "normal":
        raise ValueError(f"mu prior {prior}: only flat or normal priors are conjugate here")
    return str(prior), prior.params[0], prior.params[1]


def _posterior_tail(prior: _TauPrior, k: int, flat_mu: bool) -> float:
    # p(y | tau) falls like tau^-(k-1) with a flat mu prior and tau^-k with a normal one
    return prior.tail + (k - 1 if flat_mu else k)


# --------------------------------------------------------------------------- normal mixtures


@dataclass(frozen=True)
class NormalMixture:
    """Finite mixture of normals: weights (sum 1), component means and sds."""

    weights: np.ndarray
    means: np.ndarray
    sds: np.ndarray
    infinite_variance: bool = False  # the mixture stands for a distribution without a variance

    @property
    def mean(self) -> float:
        return float(self.weights @ self.means)

    @property
    def sd(self) -> float:
        if self.infinite_variance:
            return np.inf
        return float(np.sqrt(self.weights @ (self.sds**2 + (self.means - self.mean) ** 2)))

    def cdf(self, x) -> np.ndarray:
        z = (np.asarray(x, dtype=float)[..., None] - self.means) / self.sds
        return special.ndtr(z) @ self.weights

    def pdf(self, x) -> np.ndarray:
        z = (np.asarray(x, dtype=float)[..., None] - self.means) / self.sds
        return (np.exp(-0.5 * z**2) / (np.sqrt(2 * np.pi) * self.sds)) @ self.weights

    def ppf(self, p) -> np.ndarray:
        """Quantiles by Newton's method, safeguarded by bisection, vectorised over p."""
        p = np.atleast_1d(np.asarray(p, dtype=float))
        if np.any((p <= 0) | (p >= 1)):
            raise ValueError("probabilities must be in (0, 1)")
        # each component has < 1e-20 mass beyond 10 sd, so these bracket every p in (1e-20, 1)
        lo = np.full_like(p, np.min(self.means - 10 * self.sds))
        hi = np.full_like(p, np.max(self.means + 10 * self.sds))
        x = (self.means + self.sds * special.ndtri(p)[:, None]) @ self.weights  # finite start
        scale = self.weights @ self.sds
        for _ in range(200):
            f = self.cdf(x) - p
            lo, hi = np.where(f < 0, x, lo), np.where(f > 0, x, hi)
            step = f / np.maximum(self.pdf(x), 1e-300)
            if np.all(np.abs(step) <= 1e-12 * scale):  # test before the safeguard can bisect
                return x - step
            new = x - step
            bad = (new < lo) | (new > hi) | ~np.isfinite(new)
            x = np.where(bad, 0.5 * (lo + hi), new)
        return x

    def summary(self, probs=DEFAULT_PROBS) -> pd.Series:
        q = self.ppf(probs)
        return pd.Series({"mean": self.mean, "sd": self.sd, **{_pct(p): v for p, v in zip(probs, q)}})


def _pct(p: float) -> str:
    return f"{100 * p:g}%"


def _mixture(weights, means, sds, infinite_variance=False, rel=1e-18) -> NormalMixture:
    # components with negligible weight change nothing but cost time in every evaluation
    keep = weights > rel * weights.max()
    w = weights[keep]
    return NormalMixture(w / w.sum(), means[keep], sds[keep], infinite_variance)


# --------------------------------------------------------------------------- conditional model


def _conditional_mu(tau, yi, sei, mu_mean, mu_sd):
    """Posterior of mu given tau: mean, variance and the log marginal likelihood p(y | tau).

    A normal mu prior enters as one more 'study' with estimate mu_mean and variance mu_sd^2;
    constants that do not depend on tau are dropped.
    """
    var = sei**2 + np.asarray(tau, dtype=float)[:, None] ** 2  # (n_tau, k)
    w = 1.0 / var
    sw, swy = w.sum(axis=1), w @ yi
    if mu_mean is not None:
        sw, swy = sw + 1.0 / mu_sd**2, swy + mu_mean / mu_sd**2
    m = swy / sw
    rss = np.einsum("ij,ij->i", w, (yi - m[:, None]) ** 2)
    if mu_mean is not None:
        rss = rss + (mu_mean - m) ** 2 / mu_sd**2
    loglik = -0.5 * (np.log(var).sum(axis=1) + rss + np.log(sw))
    return m, 1.0 / sw, loglik


def _conditional_theta(tau, yi, sei, mu_cond_mean, mu_cond_var):
    """Mean and sd of each theta_i given tau (rows: tau values, columns: studies)."""
    t2, s2 = np.asarray(tau, dtype=float)[:, None] ** 2, sei**2
    b = s2 / (s2 + t2)  # shrinkage of y_i towards mu
    mean = (1 - b) * yi + b * mu_cond_mean[:, None]
    var = b * t2 + b**2 * mu_cond_var[:, None]
    return mean, np.sqrt(var)


def _log_post_tau(tau, yi, sei, prior: _TauPrior, mu_mean, mu_sd):
    """Unnormalised log posterior density of tau (-inf outside the prior's support)."""
    m, v, loglik = _conditional_mu(tau, yi, sei, mu_mean, mu_sd)
    with np.errstate(divide="ignore", invalid="ignore"):
        lp = loglik + prior.logpdf(tau)
    return np.where(np.isfinite(lp), lp, -np.inf), m, v


def _locate_mass(yi, sei, prior: _TauPrior, mu_mean, mu_sd):
    """(tau_lo, tau_hi, rough median) of the posterior mass, from a coarse scan in log(tau)."""
    centre = np.log(np.median(sei))
    lo = np.log(prior.lower) if prior.lower > 0 else centre - _COARSE_HALF_WIDTH
    hi = np.log(prior.upper) if np.isfinite(prior.upper) else centre + _COARSE_HALF_WIDTH
    x = np.linspace(lo, max(hi, lo + 1e-9), 801)
    lp, _, _ = _log_post_tau(np.exp(x), yi, sei, prior, mu_mean, mu_sd)
    lp = lp + x  # density per unit log(tau)
    if not np.any(np.isfinite(lp)):
        raise ValueError("posterior of tau is zero everywhere on the search range")
    inside = np.flatnonzero(lp > lp.max() - _LOG_DROP)
    step = x[1] - x[0]
    x_lo, x_hi = max(lo, x[inside[0]] - step), min(hi, x[inside[-1]] + step)
    cdf = np.cumsum(np.exp(lp - lp.max()))
    median = np.exp(x[np.searchsorted(cdf, 0.5 * cdf[-1])])
    return np.exp(x_lo), np.exp(x_hi), median


def _gregory_weights(n: int, h: float) -> np.ndarray:
    """Trapezoid weights with 4th-order end corrections (all positive)."""
    w = np.ones(n)
    ends = np.array([17, 59, 43, 49]) / 48
    w[:4] = ends
    w[-4:] = ends[::-1]
    return w * h


# --------------------------------------------------------------------------- result


@dataclass(frozen=True, eq=False)
class ExactPosterior:
    """Exact posterior of the normal-normal model.

    Summaries (`mu`, `tau`, `predictive` as pandas Series, `theta` as a DataFrame per study,
    `summary()` for all three) are computed on first access; the grid fields let callers plot
    the tau density or integrate further. Moments that do not exist (improper-ish heavy tails)
    are reported as inf.
    """

    yi: np.ndarray
    sei: np.ndarray
    labels: pd.Index
    tau_prior: str
    mu_prior: str
    tau_grid: np.ndarray  # nodes in tau (increasing)
    tau_density: np.ndarray  # normalised p(tau | y) at the nodes
    weights: np.ndarray  # quadrature weights times density, summing to 1
    mu_cond_mean: np.ndarray  # E[mu | tau, y] at the nodes
    mu_cond_sd: np.ndarray  # sd[mu | tau, y] at the nodes
    tail: float = np.inf  # posterior density of tau falls like tau^-tail
    _mu_prior_params: tuple = field(default=(None, None), repr=False)
    _scale: float = field(default=np.nan, repr=False)  # c in z = asinh(tau / c)
    _tau_cdf_nodes: np.ndarray = field(default=None, repr=False)

    def _moment_exists(self, r: int) -> bool:
        return self.tail - 1 > r

    # ---- conditional distributions at any tau
    def conditional(self, tau) -> dict:
        """Given tau: mean/sd of mu, sd of a new study's effect, mean/sd of each theta_i."""
        tau = np.atleast_1d(np.asarray(tau, dtype=float))
        m, v, _ = _conditional_mu(tau, self.yi, self.sei, *self._mu_prior_params)
        t_mean, t_sd = _conditional_theta(tau, self.yi, self.sei, m, v)
        return {"mu_mean": m, "mu_sd": np.sqrt(v), "pred_sd": np.sqrt(v + tau**2),
                "theta_mean": t_mean, "theta_sd": t_sd}

    # ---- tau
    def _z(self, tau):
        return np.arcsinh(np.asarray(tau, dtype=float) / self._scale)

    @cached_property
    def _tau_cdf_spline(self):
        # Hermite interpolation with the exact density (per unit z) as the CDF's slope
        dens_z = self.tau_density * self._scale * np.cosh(self._z(self.tau_grid))
        return interpolate.CubicHermiteSpline(self._z(self.tau_grid), self._tau_cdf_nodes, dens_z)

    def tau_cdf(self, t) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        lo, hi = self.tau_grid[0], self.tau_grid[-1]
        if self.tau_grid.size == 1:
            return (t >= lo).astype(float)
        inside = np.clip(self._tau_cdf_spline(self._z(np.clip(t, lo, hi))), 0.0, 1.0)
        return np.where(t < lo, 0.0, np.where(t >= hi, 1.0, inside))

    def tau_quantile(self, p) -> np.ndarray:
        p = np.atleast_1d(np.asarray(p, dtype=float))
        if self.tau_grid.size == 1:
            return np.full(p.shape, self.tau_grid[0])
        z, cdf, spline = self._z(self.tau_grid), self._tau_cdf_nodes, self._tau_cdf_spline
        out = []
        for pi in p:
            j = int(np.clip(np.searchsorted(cdf, pi), 1, z.size - 1))
            out.append(optimize.brentq(lambda v: spline(v) - pi, z[j - 1], z[j], xtol=1e-14))
        return self._scale * np.sinh(np.array(out))

    @cached_property
    def tau(self) -> pd.Series:
        mean = float(self.weights @ self.tau_grid) if self._moment_exists(1) else np.inf
        sd = float(np.sqrt(self.weights @ (self.tau_grid - mean) ** 2)) if self._moment_exists(2) else np.inf
        q = self.tau_quantile(DEFAULT_PROBS)
        return pd.Series({"mean": mean, "sd": sd, **{_pct(p): v for p, v in zip(DEFAULT_PROBS, q)}})

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
        s = self.mu_mixture.summary()
        return pd.concat([s, pd.Series({"P(mu>0)": 1.0 - float(self.mu_mixture.cdf(0.0))})])

    @cached_property
    def predictive(self) -> pd.Series:
        return self.predictive_mixture.summary()

    # ---- study effects
    @cached_property
    def _theta_nodes(self):
        return _conditional_theta(self.tau_grid, self.yi, self.sei, self.mu_cond_mean, self.mu_cond_sd**2)

    def theta_mixture(self, study) -> NormalMixture:
        """Posterior of one study's effect, by label (or position if labels are the default)."""
        i = self.labels.get_loc(study)
        mean, sd = self._theta_nodes
        return _mixture(self.weights, mean[:, i], sd[:, i], not self._moment_exists(2))

    @cached_property
    def theta(self) -> pd.DataFrame:
        mean, sd = self._theta_nodes
        m = self.weights @ mean
        var = self.weights @ (sd**2 + (mean - m) ** 2)
        if not self._moment_exists(2):
            var = np.full_like(var, np.inf)
        return pd.DataFrame({"y": self.yi, "se": self.sei, "mean": m, "sd": np.sqrt(var)}, index=self.labels)

    def summary(self) -> pd.DataFrame:
        """mu, tau and the predictive distribution (rows) with mean, sd and quantiles."""
        return pd.DataFrame({"mu": self.mu, "tau": self.tau, "predictive": self.predictive}).T


# --------------------------------------------------------------------------- main entry


def exact_posterior(yi, sei, tau_prior="halfnormal(0.5)", mu_prior=None, labels=None,
                    n_grid: int | None = None) -> ExactPosterior:
    """Exact posterior of the normal-normal random-effects model.

    tau_prior: a Prior or prior string on tau > 0 (halfnormal, halfcauchy, halfstudent_t,
        exponential, uniform(lo, hi)); "uniform" for bayesmeta's improper flat prior on
        tau >= 0; or a number to hold tau fixed at that value.
    mu_prior: None/"flat" for the improper flat prior (bayesmeta's default) or "normal(m, s)".
    n_grid: nodes of the fine grid; default one per 0.02 in asinh(tau / c), 201 to 2001.
    """
    yi = np.asarray(yi, dtype=float).ravel()
    sei = np.asarray(sei, dtype=float).ravel()
    if yi.shape != sei.shape or yi.size == 0:
        raise ValueError("yi and sei must be non-empty and of equal length")
    if not (np.all(np.isfinite(yi)) and np.all(np.isfinite(sei)) and np.all(sei > 0)):
        raise ValueError("yi must be finite and sei finite and > 0")
    prior = _tau_prior(tau_prior)
    mu_label, mu_mean, mu_sd = _mu_prior(mu_prior)
    tail = _posterior_tail(prior, yi.size, mu_mean is None)
    if prior.fixed is None and tail <= 1:
        raise ValueError(f"posterior of tau is improper with {yi.size} studies and prior "
                         f"{prior.label}; use a proper tau prior or more studies")
    labels = pd.Index(range(yi.size) if labels is None else list(labels), name="study")
    common = dict(yi=yi, sei=sei, labels=labels, tau_prior=prior.label, mu_prior=mu_label,
                  _mu_prior_params=(mu_mean, mu_sd))

    if prior.fixed is not None:
        tau = np.array([prior.fixed])
        m, v, _ = _conditional_mu(tau, yi, sei, mu_mean, mu_sd)
        return ExactPosterior(**common, tau_grid=tau, tau_density=np.array([np.inf]),
                              weights=np.ones(1), mu_cond_mean=m, mu_cond_sd=np.sqrt(v))

    tau_lo, tau_hi, c = _locate_mass(yi, sei, prior, mu_mean, mu_sd)
    # Start exactly at 0 when the density there is not negligible: the integrand is then even
    # in z and the rule keeps its accuracy at that end.
    z_lo = 0.0 if tau_lo < 1e-3 * c else np.arcsinh(tau_lo / c)
    z_hi = np.arcsinh(tau_hi / c)
    n = n_grid or int(np.clip(np.ceil((z_hi - z_lo) / _STEP_Z) + 1, 201, 2001))
    z = np.linspace(z_lo, z_hi, n)
    # sinh(asinh(x)) can round just outside a bounded prior's support, where its density is 0
    tau = np.clip(c * np.sinh(z), prior.lower, prior.upper)
    lp, m, v = _log_post_tau(tau, yi, sei, prior, mu_mean, mu_sd)
    dens_z = np.exp(lp - lp.max()) * c * np.cosh(z)
    h = z[1] - z[0]
    dens_z /= _gregory_weights(n, h) @ dens_z
    cdf = integrate.cumulative_simpson(dens_z, dx=h, initial=0.0)
    cdf = np.maximum.accumulate(np.clip(cdf / cdf[-1], 0.0, 1.0))
    weights = _gregory_weights(n, h) * dens_z
    return ExactPosterior(**common, tau_grid=tau, tau_density=dens_z / (c * np.cosh(z)),
                          weights=weights / weights.sum(), mu_cond_mean=m, mu_cond_sd=np.sqrt(v),
                          tail=tail, _scale=c, _tau_cdf_nodes=cdf)


# --------------------------------------------------------------------------- bayesmeta emulation


def bayesmeta_direct(post: ExactPosterior, delta: float = 0.01, epsilon: float = 1e-4) -> NormalMixture:
    """The discrete mixture bayesmeta uses for mu (DIRECT; Roever & Friede 2017, JCGS 26:217).

    bayesmeta reports mu's mean, sd and quantiles from a few support points in tau, spaced so
    that neighbouring conditionals (mu, prediction, each theta_i) differ by a symmetrised KL
    divergence delta, truncated at tau's 1 - epsilon quantile. This reproduces that
    approximation so published bayesmeta numbers can be matched exactly; the exact posterior
    is `post.mu_mixture`.
    """

    def divergence(t1, t2):
        c = post.conditional([t1, t2])
        means = np.column_stack([c["mu_mean"], c["mu_mean"], c["theta_mean"]])
        sds = np.column_stack([c["mu_sd"], c["pred_sd"], c["theta_sd"]])
        (m1, m2), (s1, s2) = means, sds
        kl = (m1 - m2) ** 2 * 0.5 * (1 / s1**2 + 1 / s2**2) + (s1**2 - s2**2) ** 2 / (2 * s1**2 * s2**2)
        return kl.max()

    def next_tau(t):
        upper = max(1.0, 2 * t)
        while divergence(t, upper) <= delta:
            upper *= 2
        return optimize.brentq(lambda u: divergence(t, u) - delta, t, upper, xtol=1e-12)

    max_tau = post.tau_quantile(1 - epsilon)[0]
    support, bound = [0.0], next_tau(0.0)
    weights = [float(post.tau_cdf(bound))]
    while bound <= max_tau or len(support) < 2:
        ref = next_tau(bound)
        new_bound = next_tau(ref)
        weights.append(max(0.0, float(post.tau_cdf(new_bound) - post.tau_cdf(bound))))
        support.append(ref)
        bound = new_bound
    c = post.conditional(support)
    w = np.array(weights)
    return NormalMixture(w / w.sum(), c["mu_mean"], c["mu_sd"])


# --------------------------------------------------------------------------- MCMC check


def check_against_exact(idata, tau_prior=None, mu_prior=None, threshold: float = 4.0,
                        probs=DEFAULT_PROBS) -> pd.DataFrame:
    """Compare an MCMC fit's mu and tau with the exact posterior, in MCSE units.

    idata follows docs/architecture.md (constant_data yi/sei, posterior mu/tau); priors default
    to idata.attrs["prior_mu"] / ["prior_tau"]. A row is ok when |mcmc - exact| < threshold * MCSE.
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
