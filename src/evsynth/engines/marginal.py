"""Marginal likelihoods (evidence) of the meta-analytic model family by deterministic quadrature.

The family is {mu = 0, mu ~ prior} x {tau = 0, tau ~ prior} x {no selection, step-function
selection} (eight models, as in robust Bayesian meta-analysis). Every member has at most
2 + (J - 1) parameters (J selection intervals; 4 with the default two cutpoints), few enough for a
tensor-product rule, which is exact up to a measured discretisation error and needs no MCMC
(bridge sampling from posterior draws would add Monte Carlo error and a fit per model).

How: each parameter is mapped to a coordinate in which its integrand is smooth and its posterior
roughly the same width everywhere --
- mu as z = (mu - m(tau)) / s(tau), m and s the conditional posterior mean and sd of mu given tau
  without selection (one box in z then fits every tau);
- tau = a sinh(x), x >= 0 (the transforms are evsynth.engines.sd_axis's, shared with the exact
  engine; likelihood and the half-normal/half-Cauchy/half-t priors are even in
  tau, so the trapezoid rule with a half weight at 0 keeps its spectral accuracy; a = the smallest
  SE keeps the poles at tau = +-i se_i a fixed distance from the real x axis);
- except under a prior on log tau (lognormal: Turner et al. 2015; logstudent_t: Rhodes et al.
  2015), where tau = exp(u) on the whole line: such a density is not even in tau, and the log-t's
  is ~ 1 / (tau |log tau|^(nu+1)) near 0, a spike at x = 0 that no trapezoid in x resolves (the
  RoBMA ensemble under rhodes2015() took 260 s and stopped short of its tolerance). In u the
  prior is the smooth normal / t density of log tau, the likelihood tends to the common-effect one
  as u -> -inf, and its poles at tau = +-i se_i sit at Im u = +-pi/2. The log-t's tails fall only
  like |u|^-(nu+1) (the box spanned u from -90 to 3 at 385 nodes, 15 s for the ensemble), so
  under it u = m + s sinh(v) (m, s its location and scale): in v they fall like exp(-nu |v|);
- the selection weights through omega_j = b_1 ... b_j with logit(b_j);
and integrated with the trapezoid rule over a box. The box is found adaptively: the log integrand
is evaluated on a coarse grid, each axis is cut to where its profile is within DROP of the maximum
(plus one cell) and extended where mass reaches an edge, until stable. Then the nodes on an axis
are doubled while the rule with that axis at double spacing differs by more than TOL / n_axes
(a doubled axis keeps its nodes at the even indices: only the new points are evaluated);
`log_ml_error` is the sum of those differences (conservative: the error of the finer rule falls
geometrically). Censored rows (p printed as a bound) enter as the probability beyond the bound.

Closed forms used in the tests: the common-effect model with a normal prior on mu has a
multivariate-normal marginal likelihood; the random-effects model reduces to a 1-D integral.
Posterior means of tau carry an O(h^2) error on the sinh axis (tau * density is odd in x at 0;
not on the log axis); the evidence, the posterior of mu and the weights do not.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import special

from ..effects.distributions import norm_isf
from ..effects.table import study_data
from ..model.description import resolve_priors
from ..model.priors import Prior, parse_prior
from .sd_axis import LOG_TAU_FAMILIES, axis_for, log_tau_logpdf
from .selection import (
    DEFAULT_CUTPOINTS,
    _sign,
    censored_overlap,
    check_cutpoints,
    interval_index,
    one_sided_p,
)

DROP = 20.0  # keep the box where the log integrand is within this of its maximum (e^-20 ~ 2e-9)
N_COARSE = 25  # nodes per axis while searching the box, and the first rule tried
MAX_ROUNDS = 12  # box-search rounds
TOL = 1e-3  # target error of log ML (posterior model probabilities then move by < 0.1%)
MAX_WORK = 3e8  # grid points x studies: stop refining beyond this and warn


@dataclass(frozen=True)
class ModelSpec:
    effect: bool  # mu ~ prior (else mu = 0)
    heterogeneity: bool  # tau ~ prior (else tau = 0)
    bias: bool | str  # False / "none"; True / "selection" (step function); "PET"; "PEESE"

    def __post_init__(self):
        if self.bias not in (False, True, "none", "selection", "PET", "PEESE"):
            raise ValueError(f"bias {self.bias!r}: choose False, True (selection), 'selection', 'PET' or 'PEESE'")

    @property
    def family(self) -> str:
        """The bias family: "none", "selection", "PET" (y_i ~ mu + b se_i) or "PEESE" (y_i ~ mu + b se_i^2)."""
        return {False: "none", True: "selection"}.get(self.bias, self.bias) if isinstance(self.bias, bool) \
            else self.bias

    @property
    def name(self) -> str:
        bias = {"none": "no selection", "selection": "selection"}.get(self.family, self.family)
        return "/".join(["effect" if self.effect else "no effect",
                         "heterogeneity" if self.heterogeneity else "no heterogeneity", bias])


FAMILY = tuple(ModelSpec(e, h, b) for e in (False, True) for h in (False, True) for b in (False, True))
# RoBMA-PSMA's bias families (Bartos et al. 2023) with the one step-function selection model of this module
PSMA_FAMILY = tuple(ModelSpec(e, h, b) for e in (False, True) for h in (False, True)
                    for b in ("none", "selection", "PET", "PEESE"))
# RoBMA's default slope priors on Cohen's d (Bartos et al. 2023): PET b ~ Cauchy+(0, 1) is unitless
# (b multiplies an SE); PEESE b multiplies an SE squared, so its scale divides by the measure's unit,
# taken as the scale of the mu prior (1 for the standardized measures, the raw-score SD for MD).
PET_SCALE, PEESE_SCALE = 1.0, 5.0


def slope_prior(family: str, mu_prior: Prior) -> Prior:
    """The prior of the PET / PEESE slope b: half-Cauchy, RoBMA's scales in the measure's unit."""
    unit = float(mu_prior.params[-1]) if mu_prior.family in ("normal", "student_t") else 1.0
    scale = PET_SCALE if family == "PET" else PEESE_SCALE / unit
    return parse_prior(f"halfcauchy({scale:.6g})")


@dataclass
class Evidence:
    """Log marginal likelihood of one model and its posterior on the quadrature grid."""

    spec: ModelSpec
    log_ml: float
    log_ml_error: float  # |difference between the 2n-1 and n node rules|
    n_nodes: int  # grid points of the final rule
    means: dict  # posterior means of mu, tau, omega_j (those that are free)
    sds: dict
    mu_parts: tuple | None = None  # (centre, scale, z nodes, weights) for the CDF of mu
    box: dict = field(default_factory=dict)  # axis -> (low, high, nodes) of the final rule

    def mu_cdf(self, x) -> np.ndarray:
        """Posterior CDF of mu (a unit step at 0 for models without an effect).

        Along each tau node the density of z = (mu - centre) / scale is the sinc interpolant of its
        trapezoid nodes -- the function the trapezoid rule integrates exactly -- whose integral up
        to z is sum_j w_j (1/2 + Si(pi (z - z_j) / h) / pi); so the CDF is as accurate as the evidence.
        """
        x = np.atleast_1d(np.asarray(x, float))
        if self.mu_parts is None:
            return (x >= 0).astype(float)
        centre, scale, z, w = self.mu_parts
        h = z[1] - z[0]
        cols = np.flatnonzero(w.sum(axis=0) > 1e-13)  # dropped columns move F by < 1e-13 each
        F = np.zeros(x.shape)
        for part in np.array_split(cols, max(1, cols.size * x.size // 4096)):  # bounded memory
            zx = (x[..., None] - centre[part]) / scale[part]  # (..., columns)
            si, _ = special.sici(np.pi * (zx[..., None] - z) / h)  # (..., columns, z nodes)
            F += np.einsum("...cz,zc->...", 0.5 + si / np.pi, w[:, part])
        return np.clip(F, 0.0, 1.0)

    def mu_quantile(self, p) -> np.ndarray:
        return mixture_quantile([self], [1.0], p)


class MuMixture:
    """The posterior of mu mixed over models: sum_m probabilities[m] * (the CDF of model m), each an
    Evidence's sinc interpolant (Evidence.mu_cdf) or a unit step at 0 (no effect). Every model's
    (column, z node) pairs are laid out in one flat array, so the mixture's CDF and density at a few
    points are one vectorised evaluation, not one per model (the quantiles of a 16-model ensemble
    took ~1,000 per-model calls under Brent's method; issue 26)."""

    def __init__(self, evidences, probabilities):
        parts, self.step, self.probs = [], 0.0, []
        for e, pr in zip(evidences, probabilities):
            if e.mu_parts is None:
                self.step += float(pr)
                continue
            centre, scale, z, w = e.mu_parts
            cols = np.flatnonzero(w.sum(axis=0) > 1e-13)  # dropped columns move F by < 1e-13 each
            shape = (cols.size, z.size)  # column by column, each column's z nodes together
            parts.append((np.broadcast_to(centre[cols, None], shape).ravel(),
                          np.broadcast_to(scale[cols, None], shape).ravel(),
                          np.broadcast_to(z, shape).ravel(), np.full(cols.size * z.size, z[1] - z[0]),
                          w[:, cols].T.ravel(), np.full(cols.size, z.size)))
            self.probs.append(float(pr))
        self.probs = np.array(self.probs)
        sizes = [len(part[0]) for part in parts]
        self.starts = np.cumsum([0] + sizes[:-1]).astype(int)[:len(sizes)]  # each model's first component
        self.centre, self.scale, self.z, self.h, self.w, per_column = (
            np.concatenate([part[i] for part in parts]) if parts else np.zeros(0) for i in range(6))
        self.columns = np.cumsum(np.r_[0, per_column[:-1]]).astype(int)[:per_column.size]  # each column's first
        self.column_model = np.repeat(np.arange(len(parts)), [part[5].size for part in parts])
        self.bounds = ((min(-1e-9, float(np.min(self.centre - 40 * self.scale))) if parts else -1e-9),
                       (max(1e-9, float(np.max(self.centre + 40 * self.scale))) if parts else 1e-9))

    def _per_model(self, values: np.ndarray) -> np.ndarray:
        """Sum (..., components) into (..., models)."""
        return np.add.reduceat(values, self.starts, axis=-1) if self.starts.size else values[..., :0]

    def cdf_pdf(self, x) -> tuple[np.ndarray, np.ndarray]:
        """The mixture's CDF and density at x (each model's CDF clipped to [0, 1] as Evidence.mu_cdf;
        the step at 0 counts as 0 density)."""
        x = np.atleast_1d(np.asarray(x, float))
        t = ((x[..., None] - self.centre) / self.scale - self.z) / self.h
        si, _ = special.sici(np.pi * t)
        F = self._per_model((0.5 + si / np.pi) * self.w)
        inside = (F > 0.0) & (F < 1.0)
        f = self._per_model(np.sinc(t) * self.w / (self.scale * self.h)) * inside
        return np.clip(F, 0.0, 1.0) @ self.probs + self.step * (x >= 0), f @ self.probs

    def cdf(self, x) -> np.ndarray:
        return self.cdf_pdf(x)[0]

    @cached_property
    def around_zero(self) -> np.ndarray:
        """The CDF at -1e-12, 0 and 1e-12 (the jump of the no-effect models; P(mu > 0)) from one
        evaluation at 0: beside 0 the continuous part moves by its density x 1e-12 (the next term,
        ~1e-24 x its slope, is below rounding), so the three points cost one (of the ~10 points a
        16-model ensemble's quantiles evaluate, each ~0.2 million sinc components)."""
        F, f = self.cdf_pdf(np.array([0.0]))
        continuous = F[0] - self.step
        return np.array([continuous - 1e-12 * f[0], F[0], continuous + 1e-12 * f[0] + self.step])

    def quantile(self, p) -> np.ndarray:
        """Quantiles by Newton's method on the mixture CDF, safeguarded by bisection and vectorised
        over p (to ~1e-12 in mu); a quantile inside the jump at 0 of the no-effect models is 0."""
        p = np.atleast_1d(np.asarray(p, float))
        q = p.ravel()
        below, above = (self.around_zero[[0, 2]] - q[:, None]).T
        at_zero = (below < 0) & (above >= 0)
        lo = np.where(above >= 0, self.bounds[0], 1e-12)
        hi = np.where(above >= 0, -1e-12, self.bounds[1])
        x = 0.5 * (lo + hi)
        continuous = float(self.probs.sum())
        todo = ~at_zero
        if self.w.size and continuous > 0 and todo.any():
            x = np.where(todo, self._start(np.where(above >= 0, q, q - self.step) / continuous, lo, hi), x)
        tol = 1e-9 * (float(np.median(self.scale)) if self.scale.size else 1.0)
        active = ~at_zero  # Newton converges quadratically: after a step below tol, x - step is ~tol^2 off
        for _ in range(200):
            if not active.any():
                break
            F, f = self.cdf_pdf(x[active])
            g = F - q[active]
            lo[active], hi[active] = np.where(g < 0, x[active], lo[active]), np.where(g > 0, x[active], hi[active])
            step = np.where(f > 0, g / np.where(f > 0, f, 1.0), np.nan)
            converged = np.isfinite(step) & (np.abs(step) <= tol)
            here = x[active]
            new = here - step
            bad = ~np.isfinite(new) | (new <= lo[active]) | (new >= hi[active])
            x[active] = np.where(g == 0, here, np.where(converged | ~bad, new, 0.5 * (lo[active] + hi[active])))
            stuck = (g == 0) | (hi[active] - lo[active] <= 1e-3 * tol)  # the bracket is the root
            active[np.flatnonzero(active)[converged | stuck]] = False
        return np.where(at_zero, 0.0, x).reshape(p.shape)

    def _start(self, q, lo, hi) -> np.ndarray:
        """Newton's start: the quantile of the models' continuous part with each (tau, slope) column's
        sinc interpolant replaced by the normal of its mean and SD (close, so Newton needs ~3 steps)."""
        from .exact import NormalMixture

        starts = self.columns
        cols, wz, wz2 = (np.add.reduceat(self.w * self.z**k, starts) for k in (0, 1, 2))
        weight = cols * self.probs[self.column_model]
        mean_z = wz / cols
        sd_z = np.sqrt(np.maximum(wz2 / cols - mean_z**2, 1e-12))
        keep = weight > 0
        mixture = NormalMixture(weight[keep] / weight[keep].sum(),
                                (self.centre[starts] + self.scale[starts] * mean_z)[keep], (self.scale[starts] * sd_z)[keep])
        start = mixture.ppf(np.clip(q, 1e-15, 1 - 1e-15))
        return np.where((start > lo) & (start < hi), start, 0.5 * (lo + hi))


def mixture_quantile(evidences, probabilities, p) -> np.ndarray:
    """Quantiles of the mixture sum_m probabilities[m] * posterior of mu under model m (MuMixture)."""
    return MuMixture(evidences, probabilities).quantile(p)


# --------------------------------------------------------------------------- axes


@dataclass(frozen=True)
class _Axis:
    name: str
    lo: float  # domain in the integration coordinate
    hi: float
    start: tuple[float, float]  # initial box


def _log_axis(tau_prior: Prior) -> bool:
    return tau_prior.family in LOG_TAU_FAMILIES


def _tau_support(prior: Prior) -> tuple[float, float]:
    """resolve_priors has refused tau priors off tau >= 0: a uniform's bounds, else (0, inf)."""
    return prior.params if prior.family == "uniform" else (0.0, np.inf)


def _clip_box(box, lo, hi):
    return (max(box[0], lo), min(box[1], hi))


def _tau_scale(sei: np.ndarray, tau_prior: Prior) -> float:
    """a in tau = a sinh(x). The integrand has poles at tau = +-i se_i (and at +-i times the scale of
    a half-Cauchy/half-t prior); with a no larger than the nearest, they all sit at least pi/2 from
    the real x axis, so the trapezoid rule in x converges like exp(-pi^2 / h) whatever the SEs."""
    scales = [float(sei.min())]
    if tau_prior.family in ("halfcauchy", "halfstudent_t"):
        scales.append(tau_prior.params[-1])
    return min(scales)


def _axes(spec, yi, sei, tau_prior, n_weights, tau_a) -> list[_Axis]:
    scale = float(np.std(yi) + sei.max())
    axes = []
    if spec.effect:  # z = (mu - centre(tau)) / scale(tau), see _Integrand._conditional_mu
        axes.append(_Axis("mu", -np.inf, np.inf, (-12.0, 12.0)))
    if spec.heterogeneity and _log_axis(tau_prior):  # u = log tau; start at the prior's centre -+ 6 scales
        centre, width = tau_prior.params[-2:]
        start = np.array([min(centre - 6 * width, math.log(sei.min()) - 6),
                          max(centre + 6 * width, math.log(5 * scale))])
        start = axis_for(tau_prior, 1.0).x_of_log_tau(start)
        axes.append(_Axis("tau", -np.inf, np.inf, (float(start[0]), float(start[1]))))
    elif spec.heterogeneity:
        axis = axis_for(tau_prior, tau_a)  # tau = tau_a sinh(x) (sd_axis)
        lo, hi = (axis.x(t) for t in _tau_support(tau_prior))
        axes.append(_Axis("tau", lo, hi, _clip_box((lo, axis.x(5 * scale)), lo, hi)))
    if spec.family == "selection":
        axes += [_Axis(f"b{j}", -np.inf, np.inf, (-30.0, 30.0)) for j in range(1, n_weights)]
    elif spec.family in ("PET", "PEESE"):  # the slope as log b: smooth on the whole line, b -> 0 decays like b
        axes.append(_Axis("slope", -np.inf, np.inf, (-12.0, 5.0)))
    return axes


# --------------------------------------------------------------------------- the integrand


class _Integrand:
    """log p(y | params) + log p(params) + log Jacobian, on a tensor grid of axis nodes."""

    def __init__(self, spec, yi, sei, censored, mu_prior, tau_prior, cutpoints, direction, tau_a):
        self.spec, self.yi, self.sei, self.tau_a = spec, yi, sei, tau_a
        # PET / PEESE: study i's mean is mu + d b x_i (d the expected sign), x_i = se_i or se_i^2
        self.x = sei if spec.family == "PET" else sei**2 if spec.family == "PEESE" else np.zeros_like(sei)
        self.slope_prior = slope_prior(spec.family, mu_prior) if spec.family in ("PET", "PEESE") else None
        self.cens = np.asarray(censored, bool)
        self.mu_prior, self.tau_prior = mu_prior, tau_prior
        self.log_axis = _log_axis(tau_prior)  # tau = exp(u), else tau = tau_a sinh(x)
        self.axis = axis_for(tau_prior, tau_a)  # the shared transform (sd_axis): u = m + s sinh(v) under a log-t
        self.cuts = check_cutpoints(cutpoints)
        self.d = _sign(direction)
        self.z_cut = norm_isf(np.asarray(self.cuts))
        exact = ~self.cens
        self.counts = np.bincount(interval_index(one_sided_p(yi[exact], sei[exact], direction), self.cuts),
                                  minlength=len(self.cuts) + 1)
        self.overlap = censored_overlap(yi, sei, self.cuts, direction)

    def log_tau_of(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(u = log tau, log du/dx) at the log axis' nodes x."""
        return self.axis.log_tau(x), self.axis.log_du(x)

    def tau_of(self, x: np.ndarray) -> np.ndarray:
        """tau at the tau axis' nodes."""
        return self.axis.tau(x)

    def _conditional_mu(self, tau, shift=0.0):
        """Centre and scale of mu given tau (and the PET / PEESE slope term `shift` = d b, whose
        study means are mu + shift x_i) under the model without selection (normal prior included
        when it is normal). The mu axis is z = (mu - centre(tau)) / scale(tau), so one box in z fits
        every tau even when the spread of mu changes tenfold between tau = 0 and the tail."""
        tau, shift = np.broadcast_arrays(np.asarray(tau, float), np.asarray(shift, float))
        w = 1 / (self.sei**2 + tau[..., None] ** 2)
        precision, weighted = w.sum(axis=-1), (w * (self.yi - shift[..., None] * self.x)).sum(axis=-1)
        if self.mu_prior.family == "normal":
            m0, s0 = self.mu_prior.params
            precision, weighted = precision + 1 / s0**2, weighted + m0 / s0**2
        return weighted / precision, 1 / np.sqrt(precision)

    def params(self, nodes: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mu, tau, log Jacobian) broadcast over the grid axes, in the order of `nodes` (the slope
        and its Jacobian: `slope`)."""
        names = list(nodes)

        def along(name):
            return nodes[name].reshape([-1 if a == names.index(name) else 1 for a in range(len(names))])

        ones = np.zeros([1] * len(names))
        log_jac = ones
        tau = ones
        if "tau" in nodes and self.log_axis:  # tau = exp(u): the prior term is u's density (__call__)
            u, log_du = self.log_tau_of(along("tau"))
            tau = np.exp(u)
            log_jac = log_jac + log_du
        elif "tau" in nodes:  # tau = a sinh(x)
            tau = self.axis.tau(along("tau"))
            log_jac = log_jac + self.axis.log_jacobian(along("tau"))
        mu = ones
        shift = self.slope(nodes)[0]
        if "mu" in nodes:
            centre, scale = self._conditional_mu(tau, shift)
            mu = centre + scale * along("mu")
            log_jac = log_jac + np.log(scale)
        return mu, tau, log_jac

    def slope(self, nodes: dict) -> tuple[np.ndarray, np.ndarray]:
        """(d b, log prior + log Jacobian of b = exp(slope node)) broadcast over the grid; (0, 0)
        without a PET / PEESE slope."""
        names = list(nodes)
        if "slope" not in nodes:
            return np.zeros([1] * len(names)), np.zeros([1] * len(names))
        x = nodes["slope"].reshape([-1 if a == names.index("slope") else 1 for a in range(len(names))])
        b = np.exp(x)
        return self.d * b, self.slope_prior.logpdf(b) + x

    def __call__(self, nodes: dict) -> np.ndarray:
        # a log axis' far end (the box search extends it): tau = exp(u) or tau^2 overflows to inf,
        # where the integrand is 0 (-inf in logs), as it should be; not worth a warning
        with np.errstate(over="ignore"):
            return self._log_integrand(nodes)

    def _log_integrand(self, nodes: dict) -> np.ndarray:
        names = list(nodes)

        def along(name):
            return nodes[name].reshape([-1 if a == names.index(name) else 1 for a in range(len(names))])

        mu, tau, out = self.params(nodes)
        if "mu" in nodes:
            out = out + self.mu_prior.logpdf(mu)
        if "tau" in nodes:
            out = out + (log_tau_logpdf(self.tau_prior, self.log_tau_of(along("tau"))[0]) if self.log_axis
                         else self.tau_prior.logpdf(tau))
        # sum_i log N(y_i | mu, se_i^2 + tau^2) over the exact rows: depends on (mu, tau) only
        shift, log_slope = self.slope(nodes)
        out = out + log_slope
        mean = mu[..., None] + shift[..., None] * self.x  # per study (the slope term is 0 without PET / PEESE)
        exact = ~self.cens
        s2 = self.sei[exact] ** 2 + tau[..., None] ** 2
        out = out + np.sum(-0.5 * (self.yi[exact] - mean[..., exact]) ** 2 / s2 - 0.5 * np.log(2 * np.pi * s2),
                           axis=-1)
        if self.spec.family == "selection":
            out = out + self._selection_terms(nodes, along, mean, tau)
        elif self.cens.any():
            out = out + self._censored_terms(mean, tau, None)
        return out

    def _censored_terms(self, mean, tau, omega):
        """sum over censored rows of log sum_j omega_j P(y in interval j and beyond the bound);
        mean[..., i] is study i's mean."""
        lo, hi = self.overlap
        total = 0.0
        for i in np.flatnonzero(self.cens):
            s = np.sqrt(self.sei[i] ** 2 + tau**2)
            beyond = 0.0
            for j in range(len(self.cuts) + 1):
                p_j = (special.ndtr((self.d * mean[..., i] - self.sei[i] * lo[i, j]) / s)
                       - special.ndtr((self.d * mean[..., i] - self.sei[i] * hi[i, j]) / s))
                beyond = beyond + (p_j if omega is None else omega[j] * p_j)
            total = total + np.log(beyond)
        return total

    def _selection_terms(self, nodes, along, mean, tau):
        n_b = len(self.cuts)
        log_b = [-np.logaddexp(0.0, -along(f"b{j}")) for j in range(1, n_b + 1)]  # log sigmoid
        log_1mb = [-np.logaddexp(0.0, along(f"b{j}")) for j in range(1, n_b + 1)]
        log_omega = [np.zeros(1)]
        for lb in log_b:
            log_omega.append(log_omega[-1] + lb)  # omega_j = b_1 ... b_j
        # prior: ordered uniform with density (J-1)!; Jacobians d omega / d b and d b / d logit(b)
        out = math.lgamma(n_b + 1) + sum(log_omega[1:-1]) + sum(lb + l1 for lb, l1 in zip(log_b, log_1mb))
        out = out + sum(c * lw for c, lw in zip(self.counts, log_omega))
        if self.cens.any():
            out = out + self._censored_terms(mean, tau, [np.exp(lw) for lw in log_omega])
        # eta_j = omega_j - omega_{j+1} = omega_j (1 - b_{j+1}), computed without cancellation
        eta = [np.exp(log_omega[j] + log_1mb[j]) for j in range(n_b)] + [np.exp(log_omega[-1])]
        s = np.sqrt(self.sei**2 + tau[..., None] ** 2)
        log_area = 0.0
        for i in range(len(self.yi)):
            area = eta[-1]
            for m, zc in enumerate(self.z_cut):  # P(one-sided p_i < c_m | mu, tau)
                area = area + eta[m] * special.ndtr((self.d * mean[..., i] - self.sei[i] * zc) / s[..., i])
            log_area = log_area + np.log(area)
        return out - log_area


# --------------------------------------------------------------------------- quadrature


def _trapezoid_weights(x: np.ndarray) -> np.ndarray:
    h = x[1] - x[0]
    w = np.full(x.size, h)
    w[[0, -1]] = h / 2
    return w


def _integral(E: np.ndarray, grids: list[np.ndarray]) -> float:
    """Tensor trapezoid rule: contract E with each axis' weights in turn (one pass, no big temporaries)."""
    out = E
    for g in grids:
        out = np.tensordot(_trapezoid_weights(g), out, axes=([0], [0]))
    return float(out)


def _find_box(f: _Integrand, axes: list[_Axis]) -> dict:
    box = {a.name: a.start for a in axes}
    for _ in range(MAX_ROUNDS):
        grids = {name: np.linspace(*box[name], N_COARSE) for name in box}
        L = f(grids)
        L = np.where(np.isfinite(L), L, -np.inf)
        top = L.max()
        if not np.isfinite(top):
            raise FloatingPointError("the log integrand is not finite anywhere on the search box")
        new, stable = {}, True
        for i, a in enumerate(axes):
            other = tuple(j for j in range(len(axes)) if j != i)
            profile = L.max(axis=other) if other else L
            keep = np.flatnonzero(profile > top - DROP)
            g = grids[a.name]
            lo, hi = g[max(keep[0] - 1, 0)], g[min(keep[-1] + 1, g.size - 1)]
            width = box[a.name][1] - box[a.name][0]
            if keep[0] == 0 and box[a.name][0] > a.lo:  # mass at the lower edge: extend
                lo, stable = max(a.lo, box[a.name][0] - width), False
            if keep[-1] == g.size - 1 and box[a.name][1] < a.hi:
                hi, stable = min(a.hi, box[a.name][1] + width), False
            if hi - lo < 0.5 * width:
                stable = False
            new[a.name] = (lo, hi)
        box = new
        if stable:
            return box
    return box


def _refined(f: _Integrand, box: dict, n: dict, grids: dict, L: np.ndarray | None):
    """(grids, log integrand) of the rule with n[name] nodes on each axis of `box`. An axis refined
    from the previous rule (`grids`, `L`; n -> 2n - 1 nodes) keeps the previous nodes at its even
    indices, so only the new points are evaluated: the grid splits into tensor blocks, one per
    refined axis (its odd nodes; the refined axes before it at their even nodes, the others whole).
    With two of four axes doubled that is 1.11 of the 1.50 million points, with one 1/2."""
    new = {name: np.linspace(*box[name], n[name]) for name in box}
    refined = [name for name in box if L is not None and n[name] != grids[name].size]
    if not refined:
        out = f(new)
        return new, np.where(np.isfinite(out), out, -np.inf)
    names = list(box)
    for name in refined:
        new[name][::2] = grids[name]  # the same floats, not linspace's rounding of them
    out = np.empty([new[name].size for name in names])
    out[tuple(slice(None, None, 2) if name in refined else slice(None) for name in names)] = L
    for j, name in enumerate(refined):
        pick = {m: (slice(1, None, 2) if m == name else slice(None, None, 2) if m in refined[:j] else slice(None))
                for m in names}
        block = f({m: new[m][pick[m]] for m in names})
        out[tuple(pick[m] for m in names)] = np.where(np.isfinite(block), block, -np.inf)
    return new, out


def evidence_data(effects: pd.DataFrame, priors: dict | None = None) -> tuple:
    """(yi, sei, censored, chosen priors) of an effect table: what log_evidence reads from it, taken
    once for a family of models (`data=`)."""
    _, yi, sei, censored = study_data(effects, min_k=1)
    return yi, sei, censored, resolve_priors(effects, priors)


def log_evidence(effects: pd.DataFrame, spec: ModelSpec, priors: dict | None = None,
                 cutpoints=DEFAULT_CUTPOINTS, direction: str = "positive", tol: float = TOL,
                 data: tuple | None = None) -> Evidence:
    """Log marginal likelihood of one model of the family, and its posterior moments on the grid.

    Priors are those of the PyMC builders (`priors` overrides the defaults for mu and tau); the
    selection weights have the cumulative Dirichlet(1, ..., 1) prior of `evsynth.engines.selection`.
    Nodes are doubled on each axis whose halved rule moves log ML by more than tol / n_axes; the
    reported error is the sum of those per-axis differences (a conservative bound in practice).
    data: evidence_data(effects, priors), when several models of one table are integrated.
    """
    yi, sei, censored, chosen = data if data is not None else evidence_data(effects, priors)
    mu_prior, tau_prior = parse_prior(chosen["mu"]), parse_prior(chosen["tau"])
    if mu_prior.support != "real" or mu_prior.family == "uniform":
        raise ValueError(f"mu prior {mu_prior}: the quadrature needs a prior on the whole real line")
    cuts = check_cutpoints(cutpoints)
    tau_a = _tau_scale(sei, tau_prior)
    f = _Integrand(spec, yi, sei, censored, mu_prior, tau_prior, cuts, direction, tau_a)
    axes = _axes(spec, yi, sei, tau_prior, len(cuts) + 1, tau_a)
    if not axes:  # mu = 0, tau = 0, no selection: nothing to integrate
        return Evidence(spec, float(f({})), 0.0, 1, {}, {})
    box = _find_box(f, axes)
    n = {a.name: N_COARSE for a in axes}
    grids, L = {}, None
    while True:
        grids, L = _refined(f, box, n, grids, L)
        top = L.max()
        E = np.exp(L - top)
        total = _integral(E, list(grids.values()))
        log_ml = float(top + np.log(total))
        errors = {}
        for i, name in enumerate(grids):  # the same rule with this axis at double spacing
            half = tuple(slice(None, None, 2) if j == i else slice(None) for j in range(L.ndim))
            coarse_total = _integral(E[half], [g[::2] if g is grids[name] else g for g in grids.values()])
            errors[name] = abs(math.log(total / coarse_total))
        coarse = [name for name, err in errors.items() if err > tol / len(axes)]
        if not coarse:
            break
        grow = np.prod([2 * n[name] - 1 if name in coarse else n[name] for name in n])
        if grow * len(yi) > MAX_WORK:
            warnings.warn(f"{spec.name}: quadrature stopped at {L.size} nodes; estimated error of "
                          f"log ML {sum(errors.values()):.2g} > {tol:g}", RuntimeWarning, stacklevel=2)
            break
        for name in coarse:
            n[name] = 2 * n[name] - 1
    means, sds, cdf = _posterior_moments(f, E, grids, len(cuts))  # E = exp(L - max L), the rule's
    return Evidence(spec, log_ml, float(sum(errors.values())), int(L.size), means, sds, cdf,
                    box={name: (float(lo), float(hi), n[name]) for name, (lo, hi) in box.items()})


def _posterior_moments(f: _Integrand, E, grids: dict, n_cuts: int):
    """Posterior means, SDs and mu's CDF parts from E = exp(L - max L) on the final rule's grid."""
    names = list(grids)
    weights = E
    for i, name in enumerate(names):
        weights = weights * _trapezoid_weights(grids[name]).reshape([-1 if a == i else 1 for a in range(len(names))])
    weights /= weights.sum()
    mu, tau, _ = f.params(grids)
    marginals = {}

    def marginal(flat: tuple) -> np.ndarray:
        """The weights summed over the axes `flat` (kept as length 1), once per set of axes."""
        if flat not in marginals:
            marginals[flat] = weights.sum(axis=flat, keepdims=True) if flat else weights
        return marginals[flat]

    def expect(values):
        # the weights first summed over the axes `values` does not vary along (the selection model's
        # mu and tau vary along 2 of its 4 axes, its weights along the other 2): one pass over the grid
        # per set of axes instead of two per moment
        return float(np.sum(marginal(tuple(a for a in range(len(names)) if values.shape[a] == 1)) * values))

    quantities = {}
    if "mu" in grids:
        quantities["mu"] = mu
    if "tau" in grids:
        quantities["tau"] = tau
    if "slope" in grids:  # the PET / PEESE slope d b
        quantities["b"] = f.slope(grids)[0]
    if "b1" in grids:
        omega = np.ones([1] * len(names))
        for j in range(1, n_cuts + 1):
            axis = grids[f"b{j}"].reshape([-1 if a == names.index(f"b{j}") else 1 for a in range(len(names))])
            omega = omega * special.expit(axis)
            quantities[f"omega_{j}"] = omega
    means = {k: expect(v) for k, v in quantities.items()}
    sds = {k: math.sqrt(max(expect(v**2) - means[k] ** 2, 0.0)) for k, v in quantities.items()}
    return means, sds, (_mu_parts(f, marginal, grids) if "mu" in grids else None)


def _mu_parts(f: _Integrand, marginal, grids: dict):
    """Posterior weights collapsed onto the (z, tau, slope) nodes (`marginal(axes)`: the weights
    summed over those axes), with the z -> mu map of each (tau, slope) node (flattened: one column
    per node)."""
    names = list(grids)
    keep = [names.index("mu")] + [names.index(a) for a in ("tau", "slope") if a in grids]
    w = marginal(tuple(a for a in range(len(names)) if a not in keep))
    w = w.reshape(w.shape[names.index("mu")], -1)
    tau = f.tau_of(grids["tau"]) if "tau" in grids else np.zeros(1)
    shift = f.d * np.exp(grids["slope"]) if "slope" in grids else np.zeros(1)
    centre, scale = f._conditional_mu(tau[:, None], shift[None, :])  # tau before slope, as in `names`
    return centre.ravel(), scale.ravel(), grids["mu"], w


def family_evidence(effects: pd.DataFrame, priors: dict | None = None, cutpoints=DEFAULT_CUTPOINTS,
                    direction: str = "positive", specs=FAMILY) -> list[Evidence]:
    """Evidence for each model of the family (default: all eight)."""
    data = evidence_data(effects, priors)
    return [log_evidence(effects, spec, priors, cutpoints, direction, data=data) for spec in specs]
