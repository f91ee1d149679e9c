"""The coordinate x in which the quadrature engines (exact, marginal) integrate over a
between-study SD tau, and the prior's log density per unit x: one transform per SD axis.

- tau = a sinh(x), x >= 0 (SinhAxis): linear near 0, logarithmic in the tail. The likelihood and
  the half-normal / half-Cauchy / half-t priors are even in tau, so the trapezoid rule with a
  half weight at x = 0 keeps its spectral accuracy there; a no larger than the smallest SE (and a
  half-Cauchy/t's scale) keeps the integrand's poles at tau = +-i se_i away from the real x axis.
- Under a prior on log tau (lognormal: Turner et al. 2015; logstudent_t: Rhodes et al. 2015) that
  axis is wrong: such a density is not even in tau, and the log-t's behaves like
  1 / (tau |log tau|^(nu+1)) near 0, a spike at x = 0 that no trapezoid in x resolves (the exact
  engine's E[tau] was 1.3% off on the synthetic demo under rhodes2015(), its 2.5% point 55%).
  LogAxis integrates over u = log tau on the whole line, where the prior is the smooth normal /
  Student-t density of u (computed in u, so it stays finite where exp(u) underflows) and the
  likelihood tends to the common-effect one as u -> -inf; the log-t's tails in u fall only like
  |u|^-(nu+1), so under it u = m + s sinh(x) (m, s its location and scale), in which they fall
  like exp(-nu |x|). Nothing is even at any x there: plain trapezoid ends, cut where the density
  is negligible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..effects.distributions import norm_logpdf, t_logpdf

LOG_TAU_FAMILIES = ("lognormal", "logstudent_t")  # priors on log tau: integrated over u = log tau
FLAT = "flat"  # the improper flat prior on tau >= 0 (exact_posterior's bayesmeta-style default)


def log_prior(prior, t: np.ndarray) -> np.ndarray:
    """Log density of an SD's prior in tau; the common families in closed form (scipy's frozen
    distributions cost ~1 ms each to build, which a sweep of thousands of grids notices)."""
    if prior.family == "halfnormal":
        (s,) = prior.params
        return 0.5 * np.log(2 / np.pi) - np.log(s) - 0.5 * (t / s) ** 2
    if prior.family == "halfcauchy":
        (b,) = prior.params
        return np.log(2 / (np.pi * b)) - np.log1p((t / b) ** 2)
    if prior.family == FLAT:
        return np.where(t >= 0, 0.0, -np.inf)
    return prior.logpdf(t)


def log_tau_logpdf(prior, u: np.ndarray) -> np.ndarray:
    """Log density of u = log tau under a lognormal / logstudent_t prior on tau (normal / Student-t
    in u), computed in u so that it stays finite where exp(u) underflows."""
    if prior.family == "lognormal":
        m, s = prior.params
        return norm_logpdf(u, m, s)
    nu, m, s = prior.params
    return t_logpdf(u, nu, m, s)


@dataclass(frozen=True)
class SinhAxis:
    """tau = scale * sinh(x), x >= 0."""

    scale: float

    def tau(self, x):
        return self.scale * np.sinh(x)

    def x(self, tau):
        return np.arcsinh(tau / self.scale)

    def dtau_dx(self, x):
        return self.scale * np.cosh(x)

    def log_jacobian(self, x):
        """log dtau/dx."""
        return np.log(self.scale * np.cosh(x))

    def log_prior(self, prior, x, tau):
        """The prior's log density per unit x at the nodes x (tau: their SDs, within the support)."""
        return log_prior(prior, tau) + self.log_jacobian(x)

    def reflects_at(self, x: float) -> bool:
        """Whether tau(-x) = -tau(x) about this end (x = 0): a cell there may be folded back."""
        return x == 0.0


@dataclass(frozen=True)
class LogAxis:
    """u = log tau = loc + scale * sinh(x) (a log-t prior), or u = x (scale None: a lognormal)."""

    loc: float = 0.0
    scale: float | None = None

    def log_tau(self, x):
        return x if self.scale is None else self.loc + self.scale * np.sinh(x)

    def log_du(self, x):
        """log du/dx."""
        return np.zeros_like(x) if self.scale is None else np.log(self.scale * np.cosh(x))

    def x_of_log_tau(self, u):
        return u if self.scale is None else np.arcsinh((u - self.loc) / self.scale)

    def tau(self, x):
        with np.errstate(under="ignore", over="ignore"):
            return np.exp(self.log_tau(x))

    def x(self, tau):
        with np.errstate(divide="ignore"):
            return self.x_of_log_tau(np.log(tau))

    def dtau_dx(self, x):
        with np.errstate(under="ignore", over="ignore"):
            return np.exp(self.log_tau(x) + self.log_du(x))

    def log_jacobian(self, x):
        return self.log_tau(x) + self.log_du(x)

    def log_prior(self, prior, x, tau):
        """The prior's log density per unit x: u's density times du/dx (tau unused: it may underflow)."""
        return log_tau_logpdf(prior, self.log_tau(x)) + self.log_du(x)

    def reflects_at(self, x: float) -> bool:
        return False


def axis_for(prior, scale: float) -> SinhAxis | LogAxis:
    """The transform for an SD with this prior: LogAxis under a prior on log tau (stretched by
    sinh under a log-t), else tau = scale * sinh(x)."""
    if prior.family == "logstudent_t":
        return LogAxis(float(prior.params[-2]), float(prior.params[-1]))
    if prior.family == "lognormal":
        return LogAxis()
    return SinhAxis(scale)
