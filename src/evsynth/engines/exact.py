"""The exact engine: the posterior of a GaussianModel (evsynth.model.description) by quadrature over
its variance components and closed-form Gaussian conditionals for everything else.

Given the SDs t = (tau, tau_1, ...), the latent g = (beta, z_1, ...) and the statistics y are
jointly Gaussian: y = A(t) g + e + eps with A(t) = [X, tau_1 Z_1, ...], e ~ N(0, tau^2 R),
eps ~ N(0, diag(se^2)). So p(y_exact | t) is a Gaussian density (computed in the latent
dimension, Woodbury) and g | y, t is Gaussian. Only t needs numerical integration: each SD is
mapped to x = asinh(tau / a) (linear near 0, logarithmic in the tail; under a prior on log tau,
lognormal or log-t, to u = log tau or its sinh stretch: evsynth.engines.sd_axis), the box holding the mass
is found on a coarse grid (extended as far as a heavy tail needs) and integrated with the trapezoid
rule, whose half weight at x = 0 keeps its accuracy there (the integrand is even in x); where the box
ends at a prior's bound (uniform(0, 2) at 2, a lower bound above 0, an exponential prior at 0) Gregory's
end corrections make it 4th order. 1 to 3 SDs: at least 161, 41 or 25 nodes per axis. An SD's
quantiles and CDF come from a degree-5 local interpolant of its marginal density (SDMarginal).
evsynth.engines.normal_normal presents the one-variance case (es.exact_posterior).

Censored rows (a p-value printed as a bound): the statistic y_c is only known to lie beyond its
bound. Given t, y_c given the exact rows is Gaussian, so its term in the marginal likelihood is
the probability that a Gaussian vector lies in an orthant. We chose the orthant probability over
one more numerical dimension per censored row: the latter multiplies the grid by ~50 per row,
where the orthant is one normal CDF for one censored row (closed form, exact to rounding) and
scipy's multivariate normal CDF (Genz's algorithm, error < 1e-5) for several. Posterior summaries
then mix over the latent y_c as well: one censored row by a 64-point midpoint rule on the
truncated normal's quantile scale (deterministic), several by 64 exact draws per node (labelled
in attrs["exact_summaries"]). Draws: a grid node by its weight, jittered uniformly within its
cell, y_c from its truncated conditional by rejection, then g and the study effects from their
Gaussian conditionals: independent draws, so R-hat ~ 1 and ESS ~ the number of draws.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, fields, replace
from functools import partial

import numpy as np
import pandas as pd
from scipy import special

from ..effects.distributions import norm_cdf, norm_logpdf
from ..model.description import GaussianModel
from ..model.priors import Prior, parse_prior
from .sd_axis import FLAT, LOG_TAU_FAMILIES, SinhAxis, axis_for

PROBS = (0.025, 0.5, 0.975)
DROP = 30.0  # the box keeps tau where the log posterior is within this of its maximum
N_COARSE = 21
MAX_STEP = {1: 0.035, 2: 0.1, 3: 0.15}  # node spacing in x beyond which a box gets more than N_FINAL nodes
N_FINAL = {1: 161, 2: 41, 3: 25}  # Gaussian summaries converge spectrally; one SD's CDF to ~5e-8
N_LATENT = 64  # latent censored statistics per node in the summaries
_LOG_2PI = np.log(2 * np.pi)
# FLAT (sd_axis): the improper flat prior (of a fixed block, or of an SD on tau >= 0): exact_posterior's
# bayesmeta-style defaults; it has no PyMC counterpart and its evidence has no constant
_EVEN = ("halfnormal", "halfcauchy", "halfstudent_t", "uniform", FLAT)  # log density even in tau at 0


# --------------------------------------------------------------------------- products on one thread

SERIAL_GEMV = 9_000  # OpenBLAS threads a matrix-vector product above 9,216 entries,
SERIAL_GEMM = 250_000  # and a matrix product above 262,144 multiply-adds


# x.all(), x.any() of a boolean array (every axis): the ufuncs themselves, not ndarray's Python-level
# methods (numpy/_core/_methods.py; ~15 us at a process's first call)
_all, _any = partial(np.logical_and.reduce, axis=None), partial(np.logical_or.reduce, axis=None)


def dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b (a 1-D or 2-D, b 1-D or 2-D) in blocks small enough that OpenBLAS computes each on
    the calling thread. At the engine's sizes its threads cost more than they save: on a busy
    2-core machine one (1681 x 18) @ (18 x 25) product waited ~8 ms for a worker thread where one
    thread takes 25 us, and a waiting worker spins, so the process's CPU time grows too (the
    100-scenario sweep: 2.0 s CPU with two BLAS threads, 0.7 s with one, at load 3)."""
    if a.size * (b.shape[1] if b.ndim == 2 else 1) <= SERIAL_GEMV:  # small (every engine product at k = 50):
        return a @ b  # below both thresholds, as the blocking below would find in more steps
    if a.ndim == 1:  # x @ B, in blocks of B's columns
        if b.ndim == 1:
            return a @ b
        per = max(1, SERIAL_GEMV // max(b.shape[0], 1))
        if b.shape[1] <= per:
            return a @ b
        return np.concatenate([a @ b[:, j:j + per] for j in range(0, b.shape[1], per)])
    rows, inner = a.shape
    per = max(1, (SERIAL_GEMV if b.ndim == 1 else SERIAL_GEMM // max(b.shape[1], 1)) // max(inner, 1))
    if rows <= per:
        return a @ b
    return np.concatenate([a[i:i + per] @ b for i in range(0, rows, per)])


# --------------------------------------------------------------------------- normal mixtures


@dataclass(frozen=True)
class NormalMixture:
    """Finite mixture of normals: weights (sum 1), component means and sds (the posterior of a
    linear quantity over the grid)."""

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
        """Quantiles (mixture_quantiles), vectorised over p."""
        p = np.atleast_1d(np.asarray(p, dtype=float))
        return mixture_quantiles(self.weights, self.means[None], self.sds[None], p.ravel())[0].reshape(p.shape)


_INV_SQRT_2PI = 1 / np.sqrt(2 * np.pi)
_PROBS_Z = np.array([-1.9599639845400545, 0.0, 1.959963984540054])  # special.ndtri(PROBS), its floats
# (tests/test_exact.py checks them): a process's first ndtri call costs ~25 us
_NEG_SQRT_HALF = -np.sqrt(0.5)
COARSE_COMPONENTS = 128  # the quantile search first runs on about this many of a large mixture's components
HALLEY_TOL = 1e-4  # a last Halley step at most this (in mean component sds) leaves an error ~its cube
NEWTON_TOL = 1e-6  # a last Newton step (Halley's refused) at most this leaves an error ~its square


def _weighted(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The weighted sums of a's rows (R, N): by shared weights w (N,), or each row by its own (R, N)."""
    return dot(a, w) if w.ndim == 1 else np.einsum("rn,rn->r", a, w)


def mixture_quantiles(weights, means, sds, p, subset_start: bool = False) -> np.ndarray:
    """Quantiles p (P,) of R normal mixtures with component means and sds (R, N) and weights
    (summing to 1) shared (N,) or each mixture's own (R, N; a zero weight drops that component,
    bracket included): (R, P), to ~1e-12 of the mean component sd.

    Each quantile is found by Halley's method (Newton's with the density's slope, whose error cubes
    each step) on the mixture's CDF, safeguarded by bisection within a bracket (rtsafe: a step that
    leaves the bracket or does not halve the previous one bisects). It starts from the
    Cornish-Fisher expansion of the mixture's first four moments (the mean of the components'
    quantiles when skewness or kurtosis are large), and with more than 4 x COARSE_COMPONENTS
    components first runs on an evenly strided subset of them (a coarser quadrature of the same
    posterior, ~1e-4 sd off), so the full mixture, whose normal CDFs are the cost, is
    evaluated about once per quantile: a last Halley step below HALLEY_TOL sd leaves an error of about
    its cube (a Newton step below NEWTON_TOL: its square), ~1e-12 sd, and ends that quantile's search.
    subset_start (shared weights): the expansion's moments too are the subset's, not the full
    mixture's (a few (R, N) passes fewer; only the start of the subset's search changes, so the
    quantiles agree with the default's to ~1e-12 sd, not bit for bit)."""
    return _quantile_search(weights, means, sds, p, subset_start)[0]


def _quantile_search(weights, means, sds, p, subset_start: bool = False) -> tuple:
    """mixture_quantiles' quantiles, with the mixtures' means and sds (R,) when its start computed
    them (else None): _mixture_rows reports those, the same floats."""
    w = np.asarray(weights, float)
    means, sds = _rows2d(means), _rows2d(sds)
    p = np.asarray(p, float)
    if _any((p <= 0) | (p >= 1)):
        raise ValueError("probabilities must be in (0, 1)")
    n = w.shape[-1]
    if subset_start and w.ndim == 1 and n > 4 * COARSE_COMPONENTS:
        k = n // COARSE_COMPONENTS
        x = mixture_quantiles(w[::k] / w[::k].sum(), means[:, ::k], sds[:, ::k], p)
        lo = np.min(means - 10 * sds, axis=1)[:, None] + np.zeros(p.size)
        hi = np.max(means + 10 * sds, axis=1)[:, None] + np.zeros(p.size)
        x = np.where((x > lo) & (x < hi), x, 0.5 * (lo + hi))
        return _halley_search(w, means, sds, p, x, lo, hi, dot(sds, w)[:, None] + np.zeros(p.size)), None, None
    mean = _weighted(means, w)
    dev = means - mean[:, None]
    s2, d2 = sds**2, dev**2
    var = _weighted(s2 + d2, w)
    sd = np.sqrt(var)
    z = _PROBS_Z.copy() if p.tolist() == list(PROBS) else special.ndtri(p)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        g1 = _weighted(dev * (d2 + 3 * s2), w) / sd**3
        g2 = _weighted(d2 * (d2 + 6 * s2) + 3 * s2**2, w) / var**2 - 3
        cf = (z + g1[:, None] * (z**2 - 1) / 6 + g2[:, None] * (z**3 - 3 * z) / 24
              - (g1**2)[:, None] * (2 * z**3 - 5 * z) / 36)  # np.outer's products, without its wrapper
    x = mean[:, None] + sd[:, None] * cf
    near = ((np.abs(g1) < 1) & (np.abs(g2) < 4))[:, None]  # else the expansion can be far off or not monotone
    if not _all(near):  # there: the mean of the components' quantiles
        if w.ndim == 1:
            average = dot((means + sds * z[:, None, None]).reshape(-1, w.size), w).reshape(p.size, -1).T
        else:
            average = np.einsum("prn,rn->rp", means + sds * z[:, None, None], w)
        x = np.where(near, x, average)
    # each component has < 1e-20 mass beyond 10 sd, so these bracket every p in (1e-20, 1)
    if w.ndim == 1:
        lo, hi = np.minimum.reduce(means - 10 * sds, axis=1), np.maximum.reduce(means + 10 * sds, axis=1)
    else:
        lo = np.where(w > 0, means - 10 * sds, np.inf).min(axis=1)
        hi = np.where(w > 0, means + 10 * sds, -np.inf).max(axis=1)
    lo, hi = lo[:, None] + np.zeros(p.size), hi[:, None] + np.zeros(p.size)
    x = np.where((x > lo) & (x < hi), x, 0.5 * (lo + hi))
    scale = _weighted(sds, w)[:, None] + np.zeros(p.size)
    if n > 4 * COARSE_COMPONENTS:
        k = n // COARSE_COMPONENTS
        wk = w[..., ::k]
        total = wk.sum(axis=-1, keepdims=w.ndim == 2)
        if (total > 0).all():
            x = _halley_search(wk / total, means[:, ::k], sds[:, ::k], p, x, lo, hi, scale)
            x = np.where((x > lo) & (x < hi), x, 0.5 * (lo + hi))
    return _halley_search(w, means, sds, p, x, lo, hi, scale), mean, sd


def _rows2d(a) -> np.ndarray:
    """a as a float array of rows (np.atleast_2d's shapes, without its wrapper)."""
    a = np.asarray(a, float)
    return a if a.ndim >= 2 else a.reshape(1, -1)


def _halley_search(w, means, sds, p, x, lo, hi, scale, max_iter: int = 200) -> np.ndarray:
    """mixture_quantiles' safeguarded search from x (R, P) within (lo, hi), only the quantiles not
    yet found taking part in each evaluation."""
    R = x.shape[0]  # each quantile's mixture (row) and probability (col)
    row, col = np.arange(R).repeat(p.size), np.arange(p.size)[None].repeat(R, axis=0).ravel()
    out = x.ravel().copy()
    todo = np.arange(x.size)
    xs, lo, hi, target, tol = out.copy(), lo.ravel().copy(), hi.ravel().copy(), p[col], scale.ravel()
    M, inv = means[row], 1 / sds[row]
    shared = w.ndim == 1
    w = w if shared else w[row]  # each quantile's row's weights
    half = 0.5 * w
    last = hi - lo
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # once for the search
        for _ in range(max_iter):
            t = (xs[:, None] - M) * inv
            F = _weighted(special.erfc(t * _NEG_SQRT_HALF), half)  # the normal CDF, ndtr(t), at half its cost
            phi = np.exp(-0.5 * t * t) * inv
            f = _weighted(phi, w) * _INV_SQRT_2PI
            slope = -_weighted(phi * t * inv, w) * _INV_SQRT_2PI
            g = F - target
            lo, hi = np.where(g < 0, xs, lo), np.where(g > 0, xs, hi)
            newton = g / f
            halley = 2 * g * f / (2 * f * f - g * slope)
            size = np.abs(newton)
            cubic = np.isfinite(halley) & (np.abs(halley) <= 2 * size)
            step = np.where(cubic, halley, newton)
            new = xs - step
            finite, root, width = np.isfinite(new), g == 0, hi - lo
            ok = finite & (new > lo) & (new < hi) & (np.abs(step) <= 0.5 * last)
            close = finite & (size <= np.where(cubic, HALLEY_TOL, NEWTON_TOL) * tol)  # the last step
            nxt = np.where(root, xs, np.where(close | ok, new, 0.5 * (lo + hi)))
            last = np.where(ok, np.abs(step), 0.5 * width)
            out[todo] = nxt
            go = ~(close | root | (width <= 1e-14 * (np.abs(xs) + tol)))  # or the bracket is the root
            if not _any(go):
                break
            if _all(go):
                xs = nxt
                continue
            todo, xs, lo, hi, target, tol, last, M, inv = (
                a[go] for a in (todo, nxt, lo, hi, target, tol, last, M, inv))
            if not shared:
                w, half = w[go], half[go]
    return out.reshape(x.shape)


# --------------------------------------------------------------------------- Gaussian algebra given t


@dataclass
class Conditionals:
    """Everything Gaussian at a set of nodes t (rows): see the module docstring."""

    taus: np.ndarray  # (G, J)
    scale: np.ndarray  # (G, d): A(t) = basis * scale, column by column (1 for beta, tau_j for z_j)
    loglik: np.ndarray  # (G,) log p(y_exact, censored rows beyond their bounds | t)
    mean: np.ndarray  # (G, d) E[g | y_exact, t]
    cov: np.ndarray  # (G, d, d)
    # censored rows (m of them); None when there are none
    c_mean: np.ndarray | None = None  # (G, m) E[y_c | y_exact, t]
    c_cov: np.ndarray | None = None  # (G, m, m)
    gain: np.ndarray | None = None  # (G, d, m): E[g | y_c] = mean + gain (y_c - c_mean)
    post_cov: np.ndarray | None = None  # (G, d, d): Cov[g | y_exact, y_c, t]
    basis: np.ndarray | None = None  # (n, d): [X, Z_1, ...]

    @property
    def A(self) -> np.ndarray:
        """A(t) = [X, tau_1 Z_1, ...] at every node: (G, n, d)."""
        return self.basis[None] * self.scale[:, None, :]

    def g_cov(self) -> np.ndarray:
        return self.cov if self.post_cov is None else self.post_cov


def _latent_prior(model: GaussianModel) -> tuple[np.ndarray, np.ndarray]:
    """Mean and precision of g = (beta, z_1, ...); a flat block (FLAT) has precision 0."""
    flat = [block.prior == FLAT for block in model.fixed]
    m, s = (), ()
    if not all(flat):
        proper = replace(model, fixed=tuple(b for b, f in zip(model.fixed, flat) if not f))
        m, s = proper.prior_moments()
    means, sds, k = [], [], 0
    for block, f in zip(model.fixed, flat):
        means += [0.0] * block.size if f else list(m[k:k + block.size])
        sds += [np.inf] * block.size if f else list(s[k:k + block.size])
        k += 0 if f else block.size
    d = len(means) + sum(len(part.labels) for part in model.parts)
    P0, m0 = np.zeros((d, d)), np.zeros(d)
    m0[:len(means)] = means
    for i, sd in enumerate(sds):  # the fixed blocks' precisions, entry by entry (a few)
        P0[i, i] = 1 / (sd * sd)
    k = len(means)
    for part in model.parts:
        q = len(part.labels)
        P0[k:k + q, k:k + q] = np.eye(q) if part.correlation is None else np.linalg.inv(part.correlation)
        k += q
    return m0, P0


def _split_taus(model: GaussianModel, taus: np.ndarray):
    """(study-level tau or None, [tau_j of each part]) as columns of the node array."""
    k = 0
    study = None
    if model.study_prior is not None:
        study, k = taus[:, 0], 1
    return study, [taus[:, k + j] for j in range(len(model.parts))]


def basis(model: GaussianModel) -> np.ndarray:
    """B = [X, Z_1, ...] (n, d): A(t) = B diag(1, ..., tau_1, ..., tau_2, ...)."""
    return np.concatenate([model.X] + [part.design for part in model.parts], axis=1)


def design_scale(model: GaussianModel, taus: np.ndarray) -> np.ndarray:
    """The diagonal of that scaling at every node: (G, d)."""
    _, part_taus = _split_taus(model, taus)
    cols = [np.empty((taus.shape[0], model.X.shape[1]))]
    cols[0].fill(1.0)  # np.ones, without its wrapper
    cols += [np.repeat(t[:, None], len(part.labels), axis=1) for t, part in zip(part_taus, model.parts)]
    return np.concatenate(cols, axis=1) if model.parts else cols[0]


def study_var(model: GaussianModel, taus: np.ndarray) -> np.ndarray:
    """Variances of e + eps when the study effects are independent: se^2 + tau^2, (G, n)."""
    study, _ = _split_taus(model, taus)
    if study is None:  # common effect: no SD, the same variances at every node
        return np.broadcast_to(model.sei[None] ** 2, (taus.shape[0], model.n))
    return model.sei[None] ** 2 + study[:, None] ** 2


def sampling_matrix(model: GaussianModel) -> np.ndarray:
    """V, the covariance of the sampling errors eps: diag(se^2), or the model's sampling_cov."""
    return np.diag(model.sei**2) if model.sampling_cov is None else model.sampling_cov


def study_cov(model: GaussianModel, taus: np.ndarray) -> np.ndarray:
    """Covariance of e + eps: V + tau^2 R, (G, n, n); V = diag(se^2) unless the model has a
    sampling covariance (rows sharing participants)."""
    study, _ = _split_taus(model, taus)
    S = sampling_matrix(model)[None]
    if study is None:
        return np.broadcast_to(S, (taus.shape[0], model.n, model.n)).copy()
    R = np.eye(model.n) if model.study_correlation is None else model.study_correlation
    return S + study[:, None, None] ** 2 * R[None]


def conditionals(model: GaussianModel, taus: np.ndarray, orthant: bool = True, moments: bool = True,
                 prior: tuple | None = None) -> Conditionals:
    """Everything Gaussian at the nodes taus (G, J); moments=False: the log-likelihood and the mean
    only (no covariance; the box search needs no more), unless the model has censored rows.
    prior: _latent_prior(model), when the caller has it."""
    taus = np.asarray(taus, float)
    if taus.ndim < 2:  # np.atleast_2d's shapes, without its wrapper
        taus = taus.reshape(1, -1)
    m0, P0 = _latent_prior(model) if prior is None else prior
    B, D = basis(model), design_scale(model, taus)
    cens = model.censored
    o, c = (~cens).nonzero()[0], cens.nonzero()[0]
    y = model.yi
    diagonal = model.study_correlation is None and model.sampling_cov is None
    G, d = D.shape
    if diagonal:  # independent study effects: A'WA = D (B'WB) D, and B'WB = w @ (rows' outer products)
        study, _ = _split_taus(model, taus)
        # the exact rows' data (every row without censored ones: slices below, not index arrays)
        B_o, sei_o, y_o = (B, model.sei, y) if c.size == 0 else (B[o], model.sei[o], y[o])
        # each row's outer product B_i B_i', B_i y_i and y_i^2: B'WB, B'Wy and y'Wy are w @ these, with no
        # (nodes x rows) array but w itself (a first call's fresh arrays are fresh pages, ~2 us each)
        outer = (B_o[:, :, None] * B_o[:, None, :]).reshape(o.size, d * d)
        By, yy = B_o * y_o[:, None], y_o * y_o
        BtWB, BtWy, logdet_S, yWy = np.zeros((G, d * d)), np.zeros((G, d)), np.zeros(G), np.zeros(G)
        step = row_step(G, o.size)  # a large table's nodes x rows arrays in blocks (ROW_BLOCK)
        for start in range(0, o.size, step):
            rows = slice(start, start + step)
            s2 = sei_o[rows] ** 2
            # 1 / (se^2 + tau^2) at every node and row (an outer sum: a broadcast's first call in a process
            # costs ~40 us), inverted in place
            if study is not None:
                w = np.add.outer(study**2, s2)
                np.divide(1, w, out=w)
            else:
                w = 1 / np.broadcast_to(s2, (G, s2.size))
            BtWB += dot(w, outer[rows])
            BtWy += dot(w, By[rows])
            yWy += dot(w, yy[rows])
            logdet_S -= np.add.reduce(np.log(w, out=w), axis=1)  # w's last use: its logs in place
        AtWA = BtWB.reshape(G, d, d) * D[:, :, None] * D[:, None, :]
        AtWy = BtWy * D
    else:
        Sigma = study_cov(model, taus)
        S_oo = Sigma[:, o][:, :, o]
        W = np.linalg.inv(S_oo)
        A_o = B[o][None] * D[:, None, :]
        AtW = A_o.transpose(0, 2, 1) @ W
        AtWA, AtWy = AtW @ A_o, AtW @ y[o]
        logdet_S = np.linalg.slogdet(S_oo)[1]
        yWy = np.einsum("i,gij,j->g", y[o], W, y[o])
    Q = P0[None] + AtWA
    b = (P0 @ m0)[None] + AtWy
    cov, mean, logdet_Q = spd_solve(Q, b, inverse=moments or c.size > 0)
    proper = P0.diagonal() > 0  # a flat prior's block adds no constant (its evidence is improper)
    logdet_P0 = _logdet(P0[proper][:, proper]) if _any(proper) else 0.0
    loglik = -0.5 * (logdet_S + logdet_Q - logdet_P0 + yWy + m0 @ P0 @ m0 - np.einsum("gi,gi->g", b, mean)
                     + (o.size - (~proper).sum()) * _LOG_2PI)
    out = Conditionals(taus, D, loglik, mean, cov, basis=B)
    if c.size == 0:
        return out
    A = out.A
    A_o = A[:, o]
    # y_c | y_o, g ~ N(H g + K y_o, S_c|o): K = S_co S_oo^-1 (zero when study effects are independent)
    if diagonal:
        K = np.zeros((taus.shape[0], c.size, o.size))
        S_cgo = np.einsum("gi,ij->gij", study_var(model, taus)[:, c], np.eye(c.size))
    else:
        S_co = Sigma[:, c][:, :, o]
        K = np.linalg.solve(S_oo, S_co.transpose(0, 2, 1)).transpose(0, 2, 1)
        S_cgo = Sigma[:, c][:, :, c] - K @ S_co.transpose(0, 2, 1)
    H = A[:, c] - K @ A_o
    c_mean = np.einsum("gij,gj->gi", H, mean) + K @ y[o]
    HC = H @ cov
    c_cov = HC @ H.transpose(0, 2, 1) + S_cgo
    gain = np.linalg.solve(c_cov, HC).transpose(0, 2, 1)
    out.c_mean, out.c_cov, out.gain = c_mean, c_cov, gain
    out.post_cov = cov - gain @ HC
    if orthant:
        out.loglik = loglik + log_orthant(c_mean, c_cov, y[c], model.censoring_direction()[c])
    return out


def _logdet(P: np.ndarray) -> float:
    """log det P of a symmetric positive definite P: a diagonal one's logs summed in order, as
    LAPACK's LU (slogdet) sums them, without numpy.linalg's first call in a process (~70 us)."""
    diagonal = np.diagonal(P)
    if np.count_nonzero(P) == np.count_nonzero(diagonal):
        total = 0.0
        for value in diagonal.tolist():
            total += math.log(value)
        return total
    return np.linalg.slogdet(P)[1]


ROW_BLOCK = 16_000  # nodes x rows per block when a (nodes x rows) array would hold more than 4 of them:
# 128 kB, below glibc's threshold for giving each array fresh pages from the kernel (mmap), so the
# blocks reuse the heap (k = 10,000: 24 -> 16 ms CPU, its first call 35 -> 17 ms)


def row_step(nodes: int, rows: int) -> int:
    """Rows per block of a (nodes x rows) computation (ROW_BLOCK)."""
    return rows if nodes * rows <= 4 * ROW_BLOCK else max(1, ROW_BLOCK // max(nodes, 1))


SMALL = 6  # up to this size, spd_solve's loops over the matrix entries beat LAPACK's loop over the matrices


def spd_solve(Q: np.ndarray, b: np.ndarray, inverse: bool = True) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Q^-1 (None unless `inverse`), Q^-1 b and log det Q for a stack of symmetric positive definite
    matrices Q (G, d, d) and vectors b (G, d). Up to d = SMALL by a Cholesky factorisation written
    over the stack (each numpy operation does one matrix entry at every node: a grid holds thousands
    of tiny matrices, for which LAPACK's per-matrix calls cost ~1 us each); larger, or where that
    factorisation meets a pivot <= 0, by numpy.linalg (which raises LinAlgError for a matrix that
    is not positive definite)."""
    G, d, _ = Q.shape
    if d == 1 and _all(Q > 0):
        return 1 / Q if inverse else None, b / Q[:, 0], np.log(Q[:, 0, 0])
    if d <= SMALL:
        A = np.moveaxis(Q, 0, -1)  # (d, d, G): entry (i, j) at every node, contiguous in the nodes
        L = np.zeros((d, d, G))
        for j in range(d):
            s = A[j:, j] - (L[j:, :j] * L[j, :j]).sum(axis=1) if j else A[j:, j]
            if not (s[0] > 0).all():
                break
            L[j, j] = np.sqrt(s[0])
            L[j + 1:, j] = s[1:] / L[j, j]
        else:
            logdet = 2 * np.log(np.diagonal(L)).sum(axis=1)
            bT = np.moveaxis(b, 0, -1)
            if not inverse:  # Q^-1 b by forward and back substitution: L z = b, L^T x = z
                z = np.zeros((d, G))
                for i in range(d):
                    z[i] = (bT[i] - (L[i, :i] * z[:i]).sum(axis=0)) / L[i, i]
                x = np.zeros((d, G))
                for i in reversed(range(d)):
                    x[i] = (z[i] - (L[i + 1:, i] * x[i + 1:]).sum(axis=0)) / L[i, i]
                return None, x.T, logdet
            M = np.zeros((d, d, G))  # L^-1 (lower triangular), row by row
            for i in range(d):
                M[i, i] = 1 / L[i, i]
                if i:
                    M[i, :i] = -(L[i, :i, None] * M[:i, :i]).sum(axis=0) * M[i, i]
            cov = np.einsum("kig,kjg->ijg", M, M)  # Q^-1 = L^-T L^-1, (d, d, G)
            mean = (cov * bT[None]).sum(axis=1)
            return np.moveaxis(cov, -1, 0), mean.T, logdet
    L = np.linalg.cholesky(Q)
    cov = np.linalg.inv(Q)
    return cov, np.einsum("gij,gj->gi", cov, b), 2 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)


def log_orthant(mean, cov, bounds, direction) -> np.ndarray:
    """log P(direction * (y - bounds) > 0) for y ~ N(mean, cov), per node.

    One censored row: a normal tail. Two: the bivariate normal CDF by Owen's T function (closed
    form, vectorised over the nodes; scipy's Genz integration node by node cost 0.2 s per grid and is
    only good to ~1e-6). More (or a correlation of +-1): scipy's multivariate normal CDF per node."""
    shift = direction * (mean - bounds)  # (G, m): the event is shift + noise > 0
    if shift.shape[1] == 1:
        return special.log_ndtr(shift[:, 0] / np.sqrt(cov[:, 0, 0]))
    D = direction[:, None] * direction[None, :]
    out = np.empty(shift.shape[0])
    todo = np.arange(shift.shape[0])
    if shift.shape[1] == 2:
        sd = np.sqrt(np.stack([cov[:, 0, 0], cov[:, 1, 1]], axis=1))
        rho = cov[:, 0, 1] * D[0, 1] / (sd[:, 0] * sd[:, 1])
        ok = np.abs(rho) < 1 - 1e-9
        p = bivariate_normal_cdf(shift[ok, 0] / sd[ok, 0], shift[ok, 1] / sd[ok, 1], rho[ok])
        out[ok] = np.log(np.maximum(p, 1e-300))
        todo = np.flatnonzero(~ok)
    for g in todo:
        # P(-v < 0) for v = shift + noise: a multivariate normal CDF at 0
        from scipy import stats  # only for three or more censored rows together

        p = stats.multivariate_normal(mean=-shift[g], cov=cov[g] * D, allow_singular=True).cdf(
            np.zeros(shift.shape[1]), rng=np.random.default_rng(0))
        out[g] = np.log(max(p, 1e-300))
    return out


def bivariate_normal_cdf(a, b, rho):
    """P(X <= a, Y <= b) for standard normals with correlation rho (|rho| < 1), by Owen (1956):
    Phi2 = (Phi(a) + Phi(b)) / 2 - T(a, (b - rho a) / (a r)) - T(b, (a - rho b) / (b r)) - beta,
    r = sqrt(1 - rho^2), beta = 1/2 when a b < 0 or (a b = 0 and a + b < 0), else 0; at a = b = 0,
    1/4 + asin(rho) / (2 pi)."""
    a, b, rho = np.broadcast_arrays(*(np.asarray(v, float) for v in (a, b, rho)))
    r = np.sqrt(1 - rho**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        # a = 0: the slope is +-inf with the sign of b (owens_t(0, +-inf) = +-1/4); a = b = 0 is
        # replaced by Sheppard's formula below
        slope_a = np.where(a == 0, np.copysign(np.inf, b), (b - rho * a) / (a * r))
        slope_b = np.where(b == 0, np.copysign(np.inf, a), (a - rho * b) / (b * r))
    beta = np.where((a * b < 0) | ((a * b == 0) & (a + b < 0)), 0.5, 0.0)
    p = 0.5 * (special.ndtr(a) + special.ndtr(b)) - special.owens_t(a, slope_a) - special.owens_t(b, slope_b) - beta
    p = np.where((a == 0) & (b == 0), 0.25 + np.arcsin(rho) / (2 * np.pi), p)  # Sheppard's formula
    return np.clip(p, 0.0, 1.0)


# --------------------------------------------------------------------------- the grid over t


@dataclass(frozen=True)
class _Axis:
    name: str
    prior: object  # evsynth.model.priors.Prior (family FLAT: improper flat on tau >= 0)
    transform: object  # sd_axis.SinhAxis (tau = a sinh(x)) or LogAxis (a prior on log tau)
    lo: float  # the prior's support in x (-inf: a log axis)
    hi: float  # its upper end, or where the coarse search starts when the support is unbounded
    lower: float = 0.0  # the support in tau
    upper: float = np.inf
    start: float | None = None  # a log axis: where the coarse search starts below
    floor: float = -np.inf  # a log axis: how far down the box may extend (tau 1e-12 times the start)
    ceiling: float | None = None  # a log axis: how far up (tau 1e12 times the start)

    @property
    def limit(self) -> float:
        """How far the box may extend: the support's end, or tau = 1e12 times the search start
        (a heavy-tailed posterior, e.g. a half-Cauchy prior on an SD with few levels)."""
        if self.ceiling is not None:
            return self.ceiling
        return self.hi if math.isfinite(self.upper) else self.hi + np.log(1e12)

    def even_at(self, x: float) -> bool:
        """The log density is even in x about this end (x = 0 with a prior even in tau, as
        p(y | t) is): the trapezoid rule is then spectrally accurate there without a correction."""
        return x == 0.0 and self.prior.family in _EVEN


def _axes(model: GaussianModel) -> list[_Axis]:
    dev = model.yi - np.add.reduce(model.yi) / model.n  # np.std(yi) by its own operations, without its wrapper
    spread = math.sqrt(np.add.reduce(dev * dev) / model.n) + float(np.maximum.reduce(model.sei))
    out = []
    for name, text in model.taus:
        prior = Prior(FLAT, ()) if text == FLAT else parse_prior(text)
        if prior.family == "uniform":
            lower, upper = prior.params
            if lower < 0:
                raise ValueError(f"prior of {name} is {prior}: an SD needs a prior on tau >= 0")
        elif prior.family != FLAT and prior.support != "positive":
            raise ValueError(f"prior of {name} is {prior}: an SD needs a prior on tau > 0")
        else:
            lower, upper = 0.0, np.inf
        if prior.family in LOG_TAU_FAMILIES:  # u = log tau (sd_axis): start at the prior's centre -+ 6 scales
            out.append(_log_axis(name, prior, model, spread))
            continue
        a = float(np.minimum.reduce(model.sei))
        if prior.family in ("halfcauchy", "halfstudent_t", "halfnormal"):
            a = min(a, prior.params[-1])
        elif prior.family == "exponential":
            a = min(a, 1 / prior.params[0])
        transform = axis_for(prior, a)
        hi = transform.x(upper if math.isfinite(upper) else 20 * spread)
        out.append(_Axis(name, prior, transform, transform.x(lower), hi, lower, upper))
    return out


def _log_axis(name: str, prior: Prior, model: GaussianModel, spread: float) -> _Axis:
    """The axis of an SD with a prior on log tau: unbounded in x both ways; the coarse search starts
    on u = log tau in [min(m - 6 s, log(min se) - 6), max(m + 6 s, log(20 spread))] (m, s the
    prior's location and scale) and may extend as far as the posterior's tails need: above it to
    u = 300 (or 12 decades of tau, if further; tau^2 stays finite), below to u - 1e6 (tau is 0 in
    floating point long before). A log-t prior's tails in u are heavy: its mass below 12 decades
    under the start is ~1e-7, which the 2.5% point of tau notices, and with 2 studies tau^2's
    posterior mean has ~1e-6 of its value above 12 decades over the start."""
    transform = axis_for(prior, float(model.sei.min()))
    centre, width = prior.params[-2:]
    u_lo = min(centre - 6 * width, math.log(model.sei.min()) - 6)
    u_hi = max(centre + 6 * width, math.log(20 * spread))
    lo, hi, floor, ceiling = (float(transform.x_of_log_tau(u)) for u in
                              (u_lo, u_hi, u_lo - 1e6, max(u_hi + math.log(1e12), 300.0)))
    return _Axis(name, prior, transform, -np.inf, hi, 0.0, np.inf, start=lo, floor=floor, ceiling=ceiling)


def _linspace(lo: float, hi: float, n: int) -> np.ndarray:
    """np.linspace(lo, hi, n) (n >= 2) by the same operations, so the same floats, without its
    Python-level wrapper (a first call in a process cost ~40 us: the engine's k = 50 posterior
    takes ~1 ms in all)."""
    x = np.arange(n, dtype=float)
    step = (hi - lo) / (n - 1)
    if step == 0:
        x /= n - 1
        x *= hi - lo
    else:
        x *= step
    x += lo
    x[-1] = hi
    return x


def _mesh(nodes: list[np.ndarray]) -> np.ndarray:
    """The tensor grid's nodes as rows (G, J), in C order (the first axis slowest)."""
    if len(nodes) == 1:
        return nodes[0][:, None]
    mesh = np.meshgrid(*nodes, indexing="ij")
    return np.column_stack([m.ravel() for m in mesh])


def _taus(axes, x: np.ndarray) -> np.ndarray:
    """tau(x) on each axis (tau = a sinh(x), or exp(u(x)): sd_axis), kept within the prior's support
    (sinh(asinh(u)) can round just outside a bounded prior's support, where its density is 0)."""
    cols = [np.minimum(np.maximum(ax.transform.tau(x[:, j]), ax.lower), ax.upper) for j, ax in enumerate(axes)]
    return cols[0][:, None] if len(cols) == 1 else np.column_stack(cols)


def _log_posterior(model, axes, nodes: list[np.ndarray], moments: bool = True, conds: dict | None = None,
                   prior: tuple | None = None):
    """Log density on a tensor grid in x (per unit x), with the conditionals at every node
    (moments=False: see conditionals). conds: conditionals already computed, by their SDs
    (posterior_grids: models that differ only in an SD's prior share them), filled here."""
    x = _mesh(nodes) if nodes else np.zeros((1, 0))
    taus = _taus(axes, x) if axes else x
    key = None if conds is None else (moments, taus.shape, taus.tobytes())
    cond = None if key is None else conds.get(key)
    if cond is None:
        cond = conditionals(model, taus, moments=moments, prior=prior)
        if key is not None:
            conds[key] = cond
    return _log_density(cond, axes, x, taus, nodes), cond


def _log_density(cond: Conditionals, axes, x: np.ndarray, taus: np.ndarray, nodes: list[np.ndarray]) -> np.ndarray:
    """The log posterior density per unit x at the nodes: the log-likelihood and each SD's log prior
    per unit x (its density times the Jacobian of the axis' transform: sd_axis)."""
    lp = cond.loglik.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        for j, ax in enumerate(axes):
            lp += ax.transform.log_prior(ax.prior, x[:, j], taus[:, j])
    lp = np.where(np.isfinite(lp), lp, -np.inf)
    return lp.reshape([len(n) for n in nodes]) if nodes else lp


def _find_box(model, axes, conds: dict | None = None, prior: tuple | None = None) -> list[tuple[float, float]]:
    box = [(ax.lo if ax.start is None else ax.start, ax.hi) for ax in axes]
    for _ in range(10):
        nodes = [_linspace(lo, hi, N_COARSE) for lo, hi in box]
        lp, _ = _log_posterior(model, axes, nodes, moments=False, conds=conds, prior=prior)
        top = np.maximum.reduce(lp, axis=None)
        if not math.isfinite(top):
            raise FloatingPointError("the posterior of the SDs is zero everywhere on the search box")
        new, stable = [], True
        for j, ax in enumerate(axes):
            others = tuple(k for k in range(len(axes)) if k != j)
            profile = lp.max(axis=others) if others else lp
            keep = (profile > top - DROP).nonzero()[0]
            g = nodes[j]
            if ax.start is not None:  # a log axis: also where tau^2 p(tau) is within DROP (tau's sd; the
                # posterior's tail in u can be as heavy as the log-t prior's)
                second = profile + 2 * ax.transform.log_tau(g)
                keep = np.union1d(keep, np.flatnonzero(second > second.max() - DROP))
            lo, hi = g[max(keep[0] - 1, 0)], g[min(keep[-1] + 1, g.size - 1)]
            width = box[j][1] - box[j][0]
            if keep[-1] == g.size - 1 and box[j][1] < ax.limit:  # mass at the upper edge: extend
                hi, stable = min(ax.limit, box[j][1] + width), False
            if ax.start is not None and keep[0] == 0 and box[j][0] > ax.floor:  # a log axis: and the lower
                lo, stable = max(ax.floor, box[j][0] - width), False
            if hi - lo < 0.25 * width:  # the mass sits in a few coarse cells: zoom in
                stable = False
            new.append((lo, hi))
        box = new
        if stable:
            break
    return box


@dataclass
class Grid:
    axes: list
    nodes: list  # x nodes per axis
    weights: np.ndarray  # (G,) posterior mass of each node's cell, summing to 1
    cond: Conditionals  # at the nodes, flattened in C order
    log_evidence: float  # log p(y) (constants included), for Bayes factors
    rules: list | None = None  # quadrature weights along each axis (axis_weights)
    model: GaussianModel | None = field(default=None, repr=False)  # the model it was built for


def model_digest(model: GaussianModel) -> str:
    """A digest of everything the grid and the summaries depend on: two models with one digest
    have one posterior."""
    import hashlib

    h = hashlib.sha256(repr((model.kind, model.study_id, model.fixed, model.study_prior,
                              sorted(model.settings.items()))).encode())
    arrays = [model.yi, model.sei, model.censored, model.X, model.study_correlation, model.sampling_cov]
    for part in model.parts:
        h.update(repr((part.tau, part.prior, part.dim, part.labels)).encode())
        arrays += [part.design, part.correlation]
    for rep in model.reported:
        h.update(repr((rep.name, rep.dim, rep.labels, sorted(rep.random))).encode())
        arrays += [rep.fixed, *(rep.random[k] for k in sorted(rep.random))]
    for a in arrays:
        h.update(b"-" if a is None else np.ascontiguousarray(a).tobytes() + repr(np.shape(a)).encode())
    return h.hexdigest()


def grid_of(model: GaussianModel, grid: Grid | None) -> Grid:
    """`grid` if it was built for `model` (or one equal to it), else a clear error; the model's own
    grid when none is given. A grid of another model would give its posterior under this model's
    labels without any sign of it."""
    if grid is None:
        return posterior_grid(model)
    if grid.model is not model and (grid.model is None or model_digest(grid.model) != model_digest(model)):
        raise ValueError("this grid was built for another model (posterior_grid(model) makes the right one)")
    return grid


def _trapezoid(x: np.ndarray) -> np.ndarray:
    w = np.empty(x.size)  # np.full's array, without its wrapper
    w.fill(x[1] - x[0])
    w[0] *= 0.5
    w[-1] *= 0.5
    return w


def axis_weights(ax: _Axis, x: np.ndarray) -> np.ndarray:
    """Quadrature weights along one axis: the trapezoid rule, with Gregory's 4th-order end
    corrections at an end where the box is cut at the prior's bound (uniform(0, 2) at 2, a lower
    bound above 0, an exponential prior at 0), where the density need not be small nor even. At an
    end cut where the density is e^-30 of its maximum, or at an even x = 0, the trapezoid is exact
    to far below that (the integrand is analytic in x; Euler-Maclaurin's odd-derivative terms vanish)."""
    w = _trapezoid(x)
    if x.size < 8:
        return w
    ends = (np.array([17, 59, 43, 49]) / 48 - np.array([0.5, 1, 1, 1])) * (x[1] - x[0])
    if x[0] == ax.lo and not ax.even_at(x[0]):
        w[:4] += ends
    if x[-1] == ax.hi and math.isfinite(ax.upper):
        w[-4:] += ends[::-1]
    return w


def posterior_grid(model: GaussianModel, n_nodes: int | None = None) -> Grid:
    axes = _axes(model)
    if not axes:
        lp, cond = _log_posterior(model, axes, [])
        return Grid(axes, [], np.ones(1), cond, float(lp[0]), model=model)
    prior = _latent_prior(model)  # once for the box search and the final grid
    box = _find_box(model, axes, prior=prior)
    n = n_nodes or N_FINAL[len(axes)] if len(axes) in N_FINAL else n_nodes
    if n is None:
        raise ValueError(f"{len(axes)} variance components: the exact engine integrates at most 3")
    sizes = [n if n_nodes else _box_size(lo, hi, len(axes)) for lo, hi in box]
    nodes = [_linspace(lo, hi, size) for (lo, hi), size in zip(box, sizes)]
    lp, cond = _log_posterior(model, axes, nodes, prior=prior)
    return _weighted_grid(model, axes, nodes, lp, cond)


def _box_size(lo: float, hi: float, n_axes: int) -> int:
    """Nodes along one axis of a box: a wide box (a heavy tail) gets more, so the spacing in the
    bulk stays near the default's."""
    n = N_FINAL[n_axes]
    return min(max(math.ceil((hi - lo) / MAX_STEP[n_axes]) + 1, n), 4 * n)


def _weighted_grid(model, axes, nodes, lp, cond) -> Grid:
    """The Grid of a log density lp on the tensor grid `nodes`: each node's mass (quadrature rule
    times density) and the log evidence."""
    top = np.maximum.reduce(lp, axis=None)
    w = np.exp(lp - top)
    rules = [axis_weights(ax, g) for ax, g in zip(axes, nodes)]
    for j, rule in enumerate(rules):
        w = w * rule.reshape([-1 if k == j else 1 for k in range(len(nodes))])
    total = w.sum()
    return Grid(axes, nodes, (w / total).ravel(), cond, float(top + np.log(total)), rules, model)


def _axes_key(axes: list[_Axis]) -> tuple:
    """What a grid's nodes and quadrature rules depend on, beyond the SD priors' densities: the
    mapping tau(x) (sd_axis), the search box, the support and whether the density is even at 0."""
    return tuple((ax.name, ax.transform, ax.lo, ax.hi, ax.lower, ax.upper, ax.prior.family in _EVEN, ax.start,
                  ax.floor, ax.ceiling) for ax in axes)


def _same_but_study_prior(a: GaussianModel, b: GaussianModel) -> bool:
    """Whether two models differ at most in the study-level SD's prior (and the settings that name
    it): by identity of every other field (a model with another prior swapped in, as sweeps make
    them), else by digest."""
    others = [f.name for f in fields(a) if f.name not in ("study_prior", "settings")]
    if all(getattr(a, name) is getattr(b, name) for name in others):
        return True
    return model_digest(replace(a, study_prior="", settings={})) == model_digest(replace(b, study_prior="", settings={}))


def posterior_grids(models: list[GaussianModel]) -> list[Grid]:
    """posterior_grid of each of `models`, which differ only in the study-level SD's prior (a
    sweep's tau priors on one data variant). The conditionals (everything Gaussian given the SDs)
    do not depend on that prior, so models whose axes map and bound tau alike (_axes_key) share
    one grid and one set of conditionals, each prior only re-weighting the nodes. Each model's
    box is searched as posterior_grid searches it (on shared coarse conditionals); the shared grid
    spans every member's box at the finest member's spacing, so it resolves each posterior at
    least as well as the model's own grid: the figures agree with posterior_grid's to ~1e-10 (the
    quadrature's error), not bit for bit. A model alone in its group, a group whose shared grid
    would hold more nodes than its members' own grids together, and models with censored rows
    (their summaries mix latent draws per node, which another grid would change at the Monte Carlo
    level) get posterior_grid's grids."""
    if not models:
        return []
    if not all(_same_but_study_prior(models[0], m) for m in models[1:]):
        raise ValueError("posterior_grids: the models must differ only in the study-level SD's prior")
    axes = [_axes(m) for m in models]
    groups: dict = {}
    for i, ax in enumerate(axes):
        alone = len(ax) not in N_FINAL or models[i].censored.any()  # censored rows: summaries mix latent draws per node
        groups.setdefault(("alone", i) if alone else _axes_key(ax), []).append(i)
    out: list = [None] * len(models)
    conds: dict = {}
    for members in groups.values():
        if len(members) == 1:
            out[members[0]] = posterior_grid(models[members[0]])
            continue
        group_axes = axes[members[0]]
        boxes = [_find_box(models[i], axes[i], conds) for i in members]
        own = [[_box_size(lo, hi, len(group_axes)) for lo, hi in box] for box in boxes]
        nodes = []
        for j in range(len(group_axes)):
            lo, hi = min(box[j][0] for box in boxes), max(box[j][1] for box in boxes)
            step = min((box[j][1] - box[j][0]) / (size[j] - 1) for box, size in zip(boxes, own))
            nodes.append(_linspace(lo, hi, max(N_FINAL[len(group_axes)], int(np.ceil((hi - lo) / step - 1e-9)) + 1)))
        if np.prod([g.size for g in nodes]) >= sum(np.prod(size) for size in own):
            for i in members:
                out[i] = posterior_grid(models[i])
            continue
        lp, cond = _log_posterior(models[members[0]], group_axes, nodes)  # the first member's log density
        x = _mesh(nodes)
        for k, i in enumerate(members):
            if k:
                lp = _log_density(cond, axes[i], x, cond.taus, nodes)
            out[i] = _weighted_grid(models[i], axes[i], nodes, lp, cond)
    return out


# --------------------------------------------------------------------------- quantities


def quantity_rows(model: GaussianModel) -> list[tuple[str, str, str | None, object]]:
    """(variable, label, dim, row function t -> (G, d) coefficients on g) of every reported scalar."""
    d = model.X.shape[1] + sum(len(p.labels) for p in model.parts)
    rows = []
    for name, sl in model.block_slices().items():
        block = next(b for b in model.fixed if b.name == name)
        for k, label in enumerate(block.labels):
            e = np.zeros(d)
            e[sl.start + k] = 1.0
            rows.append((name, label, block.dim, lambda taus, e=e: e[None].repeat(taus.shape[0], axis=0)))
    offsets, start = {}, model.X.shape[1]
    for part in model.parts:
        offsets[part.tau] = start
        start += len(part.labels)
    names = [t for t, _ in model.taus]
    for rep in model.reported:
        for k, label in enumerate(rep.labels):
            def row(taus, rep=rep, k=k):
                out = np.zeros((taus.shape[0], d))
                out[:, :rep.fixed.shape[1]] = rep.fixed[k]
                for tau_name, matrix in rep.random.items():
                    o = offsets[tau_name]
                    out[:, o:o + matrix.shape[1]] = taus[:, [names.index(tau_name)]] * matrix[k]
                return out
            rows.append((rep.name, label, rep.dim, row))
    return rows


def _latent_nodes(model: GaussianModel, cond: Conditionals, rng):
    """y_c | y_exact, censored, t at each node as L equally likely pieces: (means (G, L, m),
    covariances (G, L, m, m) of y_c within each piece). One censored row: the truncated normal
    cut into N_LATENT cells of equal probability, each with its exact mean and variance, so the
    mixture keeps the posterior mean and variance exact. Several: N_LATENT exact draws (variance 0)."""
    direction = model.censoring_direction()[model.censored]
    bounds = model.yi[model.censored]
    G, m = cond.c_mean.shape
    if m == 1:
        sd = np.sqrt(cond.c_cov[:, 0, 0])
        alpha = direction[0] * (bounds[0] - cond.c_mean[:, 0]) / sd  # standardized bound, mass above it
        mean, var = _tail_cells(alpha, N_LATENT)
        means = cond.c_mean[:, 0, None] + direction[0] * sd[:, None] * mean
        return means[..., None], (sd[:, None] ** 2 * var)[..., None, None], np.full((G, N_LATENT), 1 / N_LATENT)
    draws, weights = ghk_draws(cond.c_mean, cond.c_cov, bounds, direction, N_LATENT, rng)
    return draws, np.zeros((G, N_LATENT, m, m)), weights / weights.sum(axis=1, keepdims=True)


def _tail_cells(alpha: np.ndarray, L: int) -> tuple[np.ndarray, np.ndarray]:
    """A standard normal given z > alpha, cut into L cells of equal probability: each cell's
    mean and variance (G, L), from the closed forms for a normal restricted to [a, b]."""
    tail = special.ndtr(-alpha)[:, None]  # P(z > alpha)
    u = np.linspace(0.0, 1.0, L + 1)[None, :]
    with np.errstate(divide="ignore"):
        edges = -special.ndtri(tail * (1.0 - u))  # survival function = tail * (1 - u); last edge +inf
    edges[:, 0] = alpha
    a, b = edges[:, :-1], edges[:, 1:]
    mass = tail / L
    pdf_a, pdf_b = np.exp(-0.5 * a**2) / np.sqrt(2 * np.pi), np.exp(-0.5 * b**2) / np.sqrt(2 * np.pi)
    b_pdf_b = np.where(np.isfinite(b), np.where(np.isfinite(b), b, 0.0) * pdf_b, 0.0)
    mean = (pdf_a - pdf_b) / mass
    var = 1.0 + (a * pdf_a - b_pdf_b) / mass - mean**2
    return mean, np.maximum(var, 0.0)


def ghk_draws(mean, cov, bounds, direction, size: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """`size` draws per node of y ~ N(mean, cov) restricted to direction * (y - bounds) > 0, with
    importance weights (Geweke-Hajivassiliou-Keane: each coordinate from its truncated conditional
    given the previous ones; the weight is the product of those truncation probabilities, whose
    mean is the orthant probability). Returns draws (G, size, m) and weights (G, size)."""
    G, m = mean.shape
    D = direction[:, None] * direction[None, :]
    L = np.linalg.cholesky(cov * D[None])  # of v = direction * (y - bounds)
    shift = direction * (mean - bounds)
    e = np.zeros((G, size, m))
    log_w = np.zeros((G, size))
    for i in range(m):
        partial = shift[:, None, i] + np.einsum("gj,gsj->gs", L[:, i, :i], e[:, :, :i])
        lo = -partial / L[:, None, i, i]  # e_i > lo keeps v_i > 0
        tail = special.ndtr(-lo)
        e[:, :, i] = -special.ndtri(np.clip(rng.random((G, size)) * tail, 1e-300, None))
        log_w += np.log(np.maximum(tail, 1e-300))
    v = shift[:, None, :] + np.einsum("gij,gsj->gsi", L, e)
    y = bounds + direction * v
    w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    return y, w


def truncated_draws(mean, cov, bounds, direction, rng, rounds: int = 200) -> np.ndarray:
    """One draw per node of y ~ N(mean, cov) given direction * (y - bounds) > 0: by rejection
    (exact); nodes where that keeps failing (bounds improbable at those SDs) take one of 256 GHK
    draws by importance weight (sampling-importance-resampling, bias O(1/256))."""
    G, m = mean.shape
    L = np.linalg.cholesky(cov)
    out = np.empty((G, m))
    todo = np.arange(G)
    for _ in range(rounds):
        y = mean[todo] + np.einsum("gij,gj->gi", L[todo], rng.standard_normal((todo.size, m)))
        ok = np.all(direction * (y - bounds) > 0, axis=1)
        out[todo[ok]] = y[ok]
        todo = todo[~ok]
        if todo.size == 0:
            return out
    draws, weights = ghk_draws(mean[todo], cov[todo], bounds, direction, 256, rng)
    cum = np.cumsum(weights, axis=1)
    pick = (cum < rng.random((todo.size, 1)) * cum[:, -1:]).sum(axis=1)
    out[todo] = draws[np.arange(todo.size), pick]
    return out


def exact_summary(model: GaussianModel, grid: Grid | None = None, seed: int = 0) -> pd.DataFrame:
    """Mean, sd, 2.5/50/97.5% and P(>0) of every reported quantity, each SD and the predictive
    distribution of a new study's effect (when the model has `mu`), exact up to the quadrature."""
    table = pd.DataFrame(summary_rows(model, grid, seed)).T
    table.index.names = ["variable", "label"]
    return table


def summary_rows(model: GaussianModel, grid: Grid | None = None, seed: int = 0,
                 floor: float = 1e-14) -> dict[tuple[str, str], dict]:
    """exact_summary's rows as {(variable, label): {"mean": ..., ...}} (no DataFrame: sweeps
    call this thousands of times). The mixtures leave out nodes whose weight is below `floor`
    times the largest (evsynth.engines.normal_normal keeps down to 1e-18: a heavy tail's sd), none
    on a grid with a log axis (_tail_floor)."""
    grid = grid_of(model, grid)
    floor = _tail_floor(grid, floor)
    cond, w = grid.cond, grid.weights
    keep = w > floor * np.maximum.reduce(w)
    taus = cond.taus[keep]
    mean, cov, wk = cond.mean[keep], cond.g_cov()[keep], w[keep]
    if _any(model.censored):
        sub = Conditionals(taus, cond.scale[keep], cond.loglik[keep], mean, cond.cov[keep], cond.c_mean[keep],
                           cond.c_cov[keep], cond.gain[keep], cond.post_cov[keep], cond.basis)
        latent, latent_cov, piece = _latent_nodes(model, sub, np.random.default_rng(seed))
        means = mean[:, None, :] + np.einsum("gdm,glm->gld", sub.gain, latent - sub.c_mean[:, None, :])
        weights = wk[:, None] * piece
    else:
        means, weights, latent_cov = mean[:, None, :], wk[:, None], None

    quantities = quantity_rows(model)
    keys = [(name, label) for name, label, _, _ in quantities]
    f = np.concatenate([row(taus)[:, None] for _, _, _, row in quantities]
                       or [np.zeros((taus.shape[0], 1, means.shape[2]))], axis=1)  # (G, R, d)
    m = np.einsum("grd,gld->rgl", f, means)  # each quantity's mean in each (node, latent piece)
    var = np.einsum("gre,gre->rg", f @ cov, f)[:, :, None]  # and its variance there
    if latent_cov is not None:
        fg = np.einsum("grd,gdm->grm", f, sub.gain)
        var = var + np.einsum("grm,glmk,grk->rgl", fg, latent_cov, fg)
    if var.shape != m.shape:
        var = np.broadcast_to(var, m.shape)
    if "mu" in model.block_slices() and model.taus:  # a new study's effect: mu's mixture widened by the SDs
        k = next(i for i, (name, _) in enumerate(keys) if name == "mu")
        keys.append(("prediction", "new study"))
        m = np.concatenate([m, m[k:k + 1]])
        var = np.concatenate([var, var[k:k + 1] + (taus**2).sum(axis=1)[None, :, None]])
    rows = dict(zip(keys, _mixture_rows((weights / weights.sum()).ravel(), m.reshape(len(keys), -1),
                                        np.sqrt(var).reshape(len(keys), -1)))) if keys else {}
    for j, (name, _) in enumerate(model.taus):
        rows[(name, name)] = _tau_row(grid, j)
    if ("prediction", "new study") in rows:  # its place in the table: after the SDs
        rows[("prediction", "new study")] = rows.pop(("prediction", "new study"))
    return rows


def _tail_floor(grid: Grid, floor: float) -> float:
    """The mixtures' weight floor on `grid`: 0 (every node) when an SD has a prior on log tau, whose
    posterior tail in tau can be as heavy as 1 / (tau^2 |log tau|^6) (2 studies, a log-t prior):
    nodes below 1e-14 of the heaviest then hold ~1e-4 of a new study's predictive variance."""
    return 0.0 if any(ax.start is not None for ax in grid.axes) else floor


def summaries(models: list[GaussianModel], grids: list[Grid], floor: float = 1e-14) -> list[dict]:
    """summary_rows(model, grid) of each model, for models that differ only in the study-level SD's
    prior on posterior_grids' grids: where grids share their conditionals (and no row is censored),
    every prior's mixtures are searched together (each mixture keeps its own weights; a node below
    `floor` times a prior's heaviest has weight 0 in that prior's mixtures, as summary_rows drops
    it) and its SDs' marginals are one stack; equal to summary_rows up to rounding."""
    out: list = [None] * len(models)
    shared: dict = {}
    for i, (model, grid) in enumerate(zip(models, grids)):
        if model.censored.any() or len(grid.axes) == 0:
            out[i] = summary_rows(model, grid, floor=floor)
        else:
            shared.setdefault(id(grid.cond), []).append(i)
    for members in shared.values():
        if len(members) == 1:
            out[members[0]] = summary_rows(models[members[0]], grids[members[0]], floor=floor)
            continue
        for i, rows in zip(members, _shared_rows([models[i] for i in members], [grids[i] for i in members], floor)):
            out[i] = rows
    return out


def _shared_rows(models, grids, floor) -> list[dict]:
    """summaries of grids sharing one Conditionals (no censored rows)."""
    model, cond = models[0], grids[0].cond
    for grid, other in zip(grids, models):
        grid_of(other, grid)
    floor = _tail_floor(grids[0], floor)
    W = np.stack([grid.weights for grid in grids])  # (P, G)
    kept = W > floor * W.max(axis=1, keepdims=True)
    keep = kept.any(axis=0)
    taus, mean, cov = cond.taus[keep], cond.mean[keep], cond.cov[keep]
    quantities = quantity_rows(model)
    keys = [(name, label) for name, label, _, _ in quantities]
    f = np.stack([row(taus) for _, _, _, row in quantities], axis=1)  # (G, R, d)
    m = np.einsum("grd,gd->rg", f, mean)  # each quantity's mean and variance at each node, once for all priors
    var = np.einsum("gre,gre->rg", f @ cov, f)
    if "mu" in model.block_slices():
        k = next(i for i, (name, _) in enumerate(keys) if name == "mu")
        keys.append(("prediction", "new study"))
        m = np.concatenate([m, m[k:k + 1]])
        var = np.concatenate([var, var[k:k + 1] + (taus**2).sum(axis=1)[None]])
    sd = np.sqrt(var)
    below = _below_zero(m, sd)  # each component's P(< 0), the same for every prior
    own = kept[:, keep]
    Wk = np.where(own, W[:, keep], 0.0)
    Wk /= Wk.sum(axis=1, keepdims=True)
    probs = np.asarray(PROBS)
    starts = _shared_starts(Wk, m, sd, probs)
    # each component has < 1e-20 mass beyond 10 sd: the brackets (of all nodes, a safeguard only)
    lowest, highest = np.min(m - 10 * sd, axis=1)[:, None], np.max(m + 10 * sd, axis=1)[:, None]
    out = []
    for p in range(W.shape[0]):
        mine = np.flatnonzero(own[p])
        w, means, sds = Wk[p, mine], m.take(mine, axis=1), sd.take(mine, axis=1)
        lo, hi, x = starts[p]
        q = _halley_search(w, means, sds, probs, x, np.maximum(lo, lowest), np.minimum(hi, highest),
                           dot(sds, w)[:, None] + np.zeros(probs.size))
        out.append(dict(zip(keys, _mixture_rows(w, means, sds, q=q, below=below.take(mine, axis=1)))))
    for j, (name, _) in enumerate(model.taus):
        for p, row in enumerate(_tau_rows(grids, j)):
            out[p][(name, name)] = row
    for rows in out:
        if ("prediction", "new study") in rows:
            rows[("prediction", "new study")] = rows.pop(("prediction", "new study"))
    return out


def _shared_starts(W, m, sd, probs) -> list[tuple]:
    """Starts of every prior's quantile searches (_shared_rows), from one evaluation of the
    components shared by the priors (weights W (P, N), zero off a prior's nodes; means and sds (R, N)):
    the quantiles of the priors' average mixture on an evenly strided subset of the components
    (as mixture_quantiles' first search), then at that point each prior's CDF, density and slope
    (one normal CDF per component for all priors) and one safeguarded Halley step of its own.
    The priors' quantiles lie within a few hundredths of a posterior sd of each other, so each
    start is within ~1e-4 sd of its root and its own search (on its nodes) ends after about one
    evaluation; returns per prior (lo, hi, x), (R, P) each, the bracket and the start."""
    average = W.mean(axis=0)
    k = max(1, average.size // COARSE_COMPONENTS)
    x0 = mixture_quantiles(average[::k] / average[::k].sum(), m[:, ::k], sd[:, ::k], probs)  # (R, Q)
    inv = 1 / sd
    t = (x0[:, :, None] - m[:, None, :]) * inv[:, None, :]  # (R, Q, N)
    F = dot(special.erfc(t * _NEG_SQRT_HALF).reshape(-1, t.shape[2]), 0.5 * W.T)  # (R Q, P)
    phi = np.exp(-0.5 * t * t) * inv[:, None, :]
    f = dot(phi.reshape(-1, t.shape[2]), W.T) * _INV_SQRT_2PI
    slope = -dot((phi * t * inv[:, None, :]).reshape(-1, t.shape[2]), W.T) * _INV_SQRT_2PI
    x0 = np.repeat(x0.reshape(-1, 1), W.shape[0], axis=1)
    g = F - np.repeat(np.tile(probs, m.shape[0]).reshape(-1, 1), W.shape[0], axis=1)
    lo, hi = np.where(g < 0, x0, -np.inf), np.where(g > 0, x0, np.inf)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        newton = g / f
        halley = 2 * g * f / (2 * f * f - g * slope)
    step = np.where(np.isfinite(halley) & (np.abs(halley) <= 2 * np.abs(newton)), halley, newton)
    x = np.where(np.isfinite(step), x0 - step, x0)
    x = np.where((x > lo) & (x < hi), x, x0)
    shape = (m.shape[0], probs.size)
    return [(lo[:, p].reshape(shape), hi[:, p].reshape(shape), x[:, p].reshape(shape)) for p in range(W.shape[0])]


def _below_zero(means: np.ndarray, sds: np.ndarray) -> np.ndarray:
    """P(< 0) of normals: ndtr(-m / s) as 0.5 erfc(m / (s sqrt 2)), the one normal-CDF routine of the
    quantile searches (a process's first call of each scipy ufunc costs ~25 us)."""
    return 0.5 * special.erfc(means / sds * -_NEG_SQRT_HALF)


def _mixture_rows(weights, means, sds, subset_start: bool = False, q=None, below=None) -> list[dict]:
    """Mean, sd, 2.5/50/97.5% and P(>0) of R mixtures with means and sds (R, N) and weights shared
    (N,) or each mixture's own (R, N); subset_start: mixture_quantiles'; q, below: the quantiles
    and each component's P(< 0), when the caller has them."""
    mean = sd = None
    if q is None:
        q, mean, sd = _quantile_search(weights, means, sds, np.asarray(PROBS), subset_start)
    if mean is None:
        mean = _weighted(means, weights)
        sd = np.sqrt(_weighted(sds**2 + (means - mean[:, None]) ** 2, weights))
    above = 1.0 - _weighted(_below_zero(means, sds) if below is None else below, weights)
    return [{"mean": float(mean[r]), "sd": float(sd[r]), "q2.5": q[r, 0], "q50": q[r, 1], "q97.5": q[r, 2],
             "P(>0)": float(above[r])} for r in range(len(mean))]


def _stencil_integrals() -> np.ndarray:
    """Coefficients (rows: the nodes s = -2..3 of a cell [0, 1]; columns: powers of s) of the
    integrals from 0 to s of the Lagrange basis of degree 5 on those nodes."""
    nodes = np.arange(-2, 4)
    integral = []
    for k in nodes:
        others = nodes[nodes != k]
        integral.append((np.polynomial.Polynomial.fromroots(others) / np.prod(k - others)).integ().coef)
    return np.array(integral)


_LAGRANGE_INTEGRAL = _stencil_integrals()  # a constant: (6, 7)
_CELL_INTEGRAL = _LAGRANGE_INTEGRAL.sum(axis=1)  # each stencil node's weight in its cell's integral
_POWERS = np.arange(7.0)  # s^0..s^6, float exponents: the same powers as integer ones, without a cast
_EXTRAPOLATE = np.array([6, -15, 20, -15, 6, -1], float)  # the degree-5 polynomial through 6 nodes, one step on
_STENCIL = np.arange(6)  # a cell's stencil: its nodes -2..3 in the padded density
_CELL_POINTS = 65  # SDMarginal.quantile tabulates a cell's CDF at s = 0, 1/64, ..., 1
_CELL_POWERS = np.linspace(0.0, 1.0, _CELL_POINTS)[:, None] ** _POWERS  # (65, 7)


def _take(a: np.ndarray, i: np.ndarray) -> np.ndarray:
    """a[i] for one row a (n,); a stack (m, n) takes each row's own indices i (m, ...)."""
    return a[i] if a.ndim == 1 else a[np.arange(a.shape[0]).reshape((-1,) + (1,) * (i.ndim - 1)), i]


@dataclass(frozen=True)
class SDMarginal:
    """The posterior of one SD from its marginal density at the axis nodes (the other axes summed
    out): moments by Gregory's rule, the CDF by the degree-5 polynomial through the 6 nodes
    around each cell, integrated exactly (6th order, so the CDF is good to ~1e-9 on 161 nodes), and
    quantiles inverted on that CDF (quantile). The densities may be a
    stack of m rows on the same nodes (m posteriors at once: engines.leave_one_out); then cdf and
    quantile take and give (m, P) and moments is not defined."""

    axis: object  # the transform tau(x) (sd_axis.SinhAxis or LogAxis)
    x: np.ndarray
    density: np.ndarray  # per unit x, normalised: (n,), or (m, n)
    padded: np.ndarray  # the density with 2 nodes before and 3 after (reflected at an even 0, else extrapolated)
    cdf_nodes: np.ndarray

    @classmethod
    def of(cls, axis, x: np.ndarray, density: np.ndarray, even: bool) -> SDMarginal:
        """From the density (per unit x, up to a constant; (n,) or (m, n)) at the evenly spaced x (n,);
        axis: the transform tau(x) (a number a: tau = a sinh(x)); even: the log density is even in
        tau at x[0] = 0 (the stencils reflect there)."""
        axis = SinhAxis(float(axis)) if isinstance(axis, (int, float)) else axis
        h = x[1] - x[0]
        if even:
            left = density[..., 2:0:-1]
        else:  # two steps extrapolated, one node at a time
            first = density[..., :6] @ _EXTRAPOLATE
            second = np.concatenate([first[..., None], density[..., :5]], axis=-1) @ _EXTRAPOLATE
            left = np.concatenate([second[..., None], first[..., None]], axis=-1)
        pad = density
        for _ in range(3):
            pad = np.concatenate([pad, (pad[..., -1:-7:-1] @ _EXTRAPOLATE)[..., None]], axis=-1)
        padded = np.ascontiguousarray(np.concatenate([left, pad], axis=-1))
        # the 6-node window at each cell: sliding_window_view(padded, 6, axis=-1)[..., :n - 1, :], the same
        # view made directly (its Python wrapper's first call in a process cost ~80 us)
        step = padded.strides[-1]
        windows = np.ndarray(padded.shape[:-1] + (x.size - 1, 6), float, buffer=padded,
                             strides=padded.strides[:-1] + (step, step))
        cdf = np.add.accumulate(h * (windows @ _CELL_INTEGRAL), axis=-1)
        cdf = np.concatenate([np.zeros(cdf.shape[:-1] + (1,)), cdf], axis=-1)
        total = cdf[..., -1:]
        return cls(axis, x, density / total, padded / total,
                   np.maximum.accumulate(np.minimum(np.maximum(cdf / total, 0.0), 1.0), axis=-1))

    @property
    def tau(self) -> np.ndarray:
        return self.axis.tau(self.x)

    def moments(self) -> tuple[float, float]:
        """Mean and sd of tau (one row). tau = a sinh(x) is odd in x, so at x = 0 the plain trapezoid
        rule is only second order for them: Gregory's end corrections at both ends (on a log axis
        both ends are cut where the density is negligible, and they change nothing there)."""
        w = _trapezoid(self.x)
        if self.x.size >= 8:
            w[:4] = w[-4:][::-1] = np.array([17, 59, 43, 49]) / 48 * (self.x[1] - self.x[0])
        w = w * self.density
        w = w / w.sum()
        tau = self.tau
        mean = float(w @ tau)
        return mean, float(np.sqrt(max(w @ (tau - mean) ** 2, 0.0)))

    def _cell_cdf(self, i) -> np.ndarray:
        """The CDF within cells i as polynomial coefficients in s (..., 7), s in [0, 1] across the cell:
        the CDF at the cell's start plus h times the integral of its stencil's degree-5 interpolant (by
        einsum, no BLAS: a process's first matrix-matrix product sets OpenBLAS's buffers up, ~100 us)."""
        stencil = _take(self.padded, i[..., None] + _STENCIL)  # the 6 nodes around each cell
        coef = np.einsum("...k,km->...m", stencil, _LAGRANGE_INTEGRAL)
        coef *= self.x[1] - self.x[0]
        coef[..., 0] += _take(self.cdf_nodes, i)
        return coef

    def _cdf_x(self, x):
        """The CDF at x (axis units): its cell's polynomial at s."""
        h = self.x[1] - self.x[0]
        i = np.minimum(np.maximum(np.floor((x - self.x[0]) / h).astype(int), 0), self.x.size - 2)
        s = (x - self.x[i]) / h
        return np.einsum("...m,...m->...", self._cell_cdf(i), s[..., None] ** _POWERS)

    def cdf(self, t) -> np.ndarray:
        """P(tau <= t): t of any shape for one row; (m, P) for a stack."""
        t = np.asarray(t, dtype=float)
        lo, hi = self.tau[0], self.tau[-1]
        x = self.axis.x(np.clip(t, lo, hi))
        x = np.where(np.isfinite(x), x, self.x[0])  # a log axis whose first nodes' tau underflows to 0
        x = x.ravel() if self.cdf_nodes.ndim == 1 else x
        inside = np.clip(self._cdf_x(x), 0.0, 1.0).reshape(t.shape)
        return np.where(t < lo, 0.0, np.where(t >= hi, 1.0, inside))

    def quantile(self, p) -> np.ndarray:
        """Quantiles p (P,) of tau: (P,) for one row, (m, P) for a stack. Inverted on the grid's CDF:
        the cell holding p, where the CDF is a polynomial of degree 6 in s (its stencil's integral),
        tabulated at 65 points of the cell in one product, then two Newton steps from the linear
        interpolation between the tabulated points around p (error ~1e-5 of a cell, then ~1e-10, then
        below rounding), each kept within those two points."""
        p = np.atleast_1d(np.asarray(p, dtype=float))
        if self.cdf_nodes.ndim == 1:
            j = self.cdf_nodes.searchsorted(p)
        else:  # each row's searchsorted
            j = (self.cdf_nodes[:, None, :] < p[:, None]).sum(axis=-1)
        i = np.minimum(np.maximum(j - 1, 0), self.x.size - 2)
        coef = self._cell_cdf(i)  # CDF(s) - p in cell i, as polynomial coefficients in s
        coef[..., 0] -= p
        table = np.einsum("...m,tm->...t", coef, _CELL_POWERS)  # at s = 0, 1/64, ..., 1
        below = np.minimum((table < 0).sum(axis=-1), _CELL_POINTS - 1)  # table[below - 1] < 0 <= table[below]
        a = np.maximum(below - 1, 0)
        rows = table.reshape(-1, _CELL_POINTS)  # each quantile's table a row
        fa, fb = _take(rows, a.ravel()).reshape(a.shape), _take(rows, below.ravel()).reshape(a.shape)
        lo, hi = a / (_CELL_POINTS - 1), below / (_CELL_POINTS - 1)
        s = lo + (hi - lo) * np.where(fb > fa, -fa / np.where(fb > fa, fb - fa, 1.0), 0.5)
        slope = coef[..., 1:] * _POWERS[1:]
        for _ in range(2):
            powers = s[..., None] ** _POWERS
            value = np.einsum("...m,...m->...", coef, powers)
            d = np.einsum("...m,...m->...", slope, powers[..., :6])
            s = np.minimum(np.maximum(s - value / np.where(d > 0, d, np.inf), lo), hi)
        return self.axis.tau(self.x[i] + (self.x[1] - self.x[0]) * s)


def sd_marginal(grid: Grid, j: int) -> SDMarginal:
    """SDMarginal of the j-th SD on `grid`."""
    x = grid.nodes[j]
    shape = [len(n) for n in grid.nodes]
    others = tuple(k for k in range(len(shape)) if k != j)
    mass = grid.weights.reshape(shape)
    mass = mass.sum(axis=others) if others else mass
    rule = grid.rules[j] if grid.rules is not None else _trapezoid(x)
    return SDMarginal.of(grid.axes[j].transform, x, mass / rule, grid.axes[j].even_at(x[0]))


def _tau_row(grid: Grid, j: int) -> dict:
    """Summary of the j-th SD (sd_marginal)."""
    marginal = sd_marginal(grid, j)
    mean, sd = marginal.moments()
    q = marginal.quantile(PROBS)
    return {"mean": mean, "sd": sd, "q2.5": q[0], "q50": q[1], "q97.5": q[2], "P(>0)": np.nan}


def _tau_rows(grids: list[Grid], j: int) -> list[dict]:
    """_tau_row of grids on the same nodes, their marginals as one stack."""
    grid = grids[0]
    x = grid.nodes[j]
    shape = [len(n) for n in grid.nodes]
    others = tuple(k + 1 for k in range(len(shape)) if k != j)
    mass = np.stack([g.weights for g in grids]).reshape([len(grids)] + shape)
    mass = mass.sum(axis=others) if others else mass
    marginal = SDMarginal.of(grid.axes[j].transform, x, mass / grid.rules[j], grid.axes[j].even_at(x[0]))
    q = marginal.quantile(PROBS)
    rows = []
    for p in range(len(grids)):
        mean, sd = replace(marginal, density=marginal.density[p]).moments()
        rows.append({"mean": mean, "sd": sd, "q2.5": q[p, 0], "q50": q[p, 1], "q97.5": q[p, 2], "P(>0)": np.nan})
    return rows


# --------------------------------------------------------------------------- draws


def sample_taus(grid: Grid, size: int, rng) -> np.ndarray:
    """SDs drawn by node weight and spread uniformly over the node's cell in x."""
    if not grid.axes:
        return np.zeros((size, 0))
    idx = rng.choice(grid.weights.size, size=size, p=grid.weights)
    shape = [len(n) for n in grid.nodes]
    cells = np.unravel_index(idx, shape)
    taus = []
    for j, (ax, nodes) in enumerate(zip(grid.axes, grid.nodes)):
        h = nodes[1] - nodes[0]
        x = nodes[cells[j]] + h * (rng.random(size) - 0.5)
        x = np.clip(np.abs(x) if ax.transform.reflects_at(nodes[0]) else x, nodes[0], nodes[-1])
        taus.append(ax.transform.tau(x))
    return np.column_stack(taus)


def sample(model: GaussianModel, grid: Grid, size: int, rng) -> dict[str, np.ndarray]:
    """Independent posterior draws: every reported quantity, the SDs and the study effects."""
    taus = sample_taus(grid, size, rng)
    cond = conditionals(model, taus, orthant=False)
    mean = cond.mean
    y = np.broadcast_to(model.yi, (size, model.n))  # read-only: copied only to hold censored rows' draws
    if model.censored.any():
        y = y.copy()
        c = model.censored
        y_c = truncated_draws(cond.c_mean, cond.c_cov, model.yi[c], model.censoring_direction()[c], rng)
        y[:, c] = y_c
        mean = mean + np.einsum("gdm,gm->gd", cond.gain, y_c - cond.c_mean)
    g = mean + np.einsum("gij,gj->gi", np.linalg.cholesky(_symmetric(cond.g_cov())), rng.standard_normal(mean.shape))
    out = {}
    for name, label, dim, row in quantity_rows(model):
        out.setdefault(name, []).append(np.einsum("gd,gd->g", row(taus), g))
    out = {k: np.column_stack(v) for k, v in out.items()}
    for j, (name, _) in enumerate(model.taus):
        out[name] = taus[:, j]
    out["theta"] = _study_effects(model, cond, taus, g, y, rng)
    return out


def _symmetric(M):
    return 0.5 * (M + M.transpose(0, 2, 1)) + 1e-14 * np.eye(M.shape[1])[None]


def _study_effects(model, cond, taus, g, y, rng) -> np.ndarray:
    """theta = A g + e, e | (y - A g) Gaussian (the study effects' shrinkage, given everything else).

    Independent study effects: theta_i = c_i + w_i (y_i - c_i) + sqrt(w_i se_i^2) z_i with c = A g and
    w_i = tau^2 / (tau^2 + se_i^2). The normals are drawn as one array that becomes the result,
    transformed in place in blocks of draws of ROW_BLOCK values: the same floats as the whole-array
    formula, but 4,000 x 1,000 draws made ~10 fresh 32 MB arrays, whose pages cost the kernel
    0.4-0.7 s of a 1,000-study fit (issue 26); now one."""
    study, _ = _split_taus(model, taus)
    if study is None:
        return np.einsum("gnd,gd->gn", cond.A, g)
    s2 = model.sei**2
    if model.study_correlation is None and model.sampling_cov is None:
        theta = rng.standard_normal(y.shape)
        step = max(1, ROW_BLOCK // max(model.n, 1))
        for lo in range(0, theta.shape[0], step):
            rows = slice(lo, lo + step)
            centre = np.einsum("gnd,gd->gn", cond.basis[None] * cond.scale[rows, None, :], g[rows])
            resid = np.subtract(y[rows], centre)
            t2 = study[rows, None] ** 2
            shrink = t2 / (t2 + s2)
            centre += np.multiply(shrink, resid, out=resid)  # c + w (y - c)
            block = theta[rows]
            block *= np.sqrt(np.multiply(shrink, s2, out=shrink), out=shrink)
            block += centre
        return theta
    centre = np.einsum("gnd,gd->gn", cond.A, g)
    resid = y - centre
    R = np.eye(model.n) if model.study_correlation is None else model.study_correlation
    T = study[:, None, None] ** 2 * R[None]
    M = np.linalg.solve(T + sampling_matrix(model)[None], T).transpose(0, 2, 1)  # T (T + V)^-1 (both symmetric)
    cov = _symmetric(T - M @ T)
    e = np.einsum("gij,gj->gi", M, resid) + np.einsum("gij,gj->gi", np.linalg.cholesky(cov),
                                                      rng.standard_normal(resid.shape))
    return centre + e


def _times_rows(X: np.ndarray, B: np.ndarray) -> np.ndarray:
    """X @ B.T, (G, k) by (n, k): a broadcast product when k = 1 (BLAS took 10 ms where it takes 0.3)."""
    return np.multiply.outer(X[:, 0], B[:, 0]) if X.shape[1] == 1 else dot(X, B.T)


def study_effect_moments(model: GaussianModel, cond: Conditionals, rows: slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of each study's effect theta_i given y and the SDs at every node (G, n),
    or of the studies in `rows` only: theta = A g + e, with e_i shrunk towards y_i - (A g)_i by
    tau^2 / (tau^2 + se_i^2), as the draws take it (_study_effects). For independent study effects
    and no censored rows."""
    if model.study_correlation is not None or model.sampling_cov is not None or _any(model.censored):
        raise ValueError("study_effect_moments: independent study effects and sampling errors, no censored rows only")
    B, D = cond.basis[rows], cond.scale  # A = B diag(D) at each node, never formed (G x n x d)
    G, d = D.shape
    X, V = cond.mean * D, (cond.cov * D[:, :, None] * D[:, None, :]).reshape(G, d * d)
    study, _ = _split_taus(model, cond.taus)
    if study is not None and d == 1 and _all(B == 1):
        # an intercept alone: A g's mean and variance are X and V at every row, (G, 1) broadcast
        # below (the same floats as X @ B.T, without two (G x n) arrays)
        centre, centre_var = X, V
    else:
        pairs = (B[:, :, None] * B[:, None, :]).reshape(B.shape[0], d * d)  # each row's outer product
        centre, centre_var = _times_rows(X, B), _times_rows(V, pairs)
    if study is None:
        return centre, centre_var
    t2, s2 = study[:, None] ** 2, model.sei[rows][None] ** 2
    # (1 - shrink) centre + shrink y and (1 - shrink)^2 centre_var + shrink s^2 in three (G, n) arrays
    # (1 - shrink taken twice rather than kept in a fourth): a first call's fresh (G x n) arrays are
    # fresh pages from the kernel, at k = 50 16 page faults (~25 us) each
    shrink = np.add(t2, s2)
    np.divide(t2, shrink, out=shrink)
    mean = np.subtract(1, shrink)
    mean *= centre
    var = np.multiply(shrink, model.yi[rows])
    mean += var
    np.subtract(1, shrink, out=var)
    var *= var
    var *= centre_var
    shrink *= s2
    var += shrink
    return mean, var


def pointwise_loglik(model: GaussianModel, theta: np.ndarray) -> np.ndarray:
    """log p(y_i | theta_i): a normal density, or the probability beyond the bound (censored).
    With a sampling covariance V (rows sharing participants) an exact row's term is
    log p(y_i | y_-i, theta), the Gaussian conditional (mean y_i - (P r)_i / P_ii, variance
    1 / P_ii, P = V^-1 over the exact rows, r = y - theta): the terms LOO needs for a model whose
    likelihood does not factorize (Buerkner, Gabry & Vehtari 2021). Censored rows share no
    sampling covariance (the description refuses it), so theirs stays the tail probability.
    Many draws of many studies (4,000 x 1,000) are done in blocks of draws, the same values without
    the ~8 temporary arrays of the whole size (fresh pages from the kernel: ~0.15 s, issue 26)."""
    theta = np.asarray(theta)
    if model.sampling_cov is None and theta.ndim >= 2 and theta.size > 4 * ROW_BLOCK:
        rows = theta.reshape(-1, theta.shape[-1])
        out = np.empty(rows.shape)
        step = max(1, ROW_BLOCK // rows.shape[1])
        for lo in range(0, rows.shape[0], step):
            out[lo:lo + step] = _loglik_terms(model, rows[lo:lo + step])
        return out.reshape(theta.shape)
    return _loglik_terms(model, theta)


def _loglik_terms(model: GaussianModel, theta: np.ndarray) -> np.ndarray:
    """pointwise_loglik's terms for draws `theta` (..., n)."""
    z = (model.yi - theta) / model.sei
    exact = norm_logpdf(z) - np.log(model.sei)
    if model.sampling_cov is not None:
        o = np.flatnonzero(~model.censored)
        P = np.linalg.inv(model.sampling_cov[np.ix_(o, o)])
        r = (model.yi - theta)[..., o]
        p = np.diag(P)
        cond_mean = model.yi[o] - (r @ P) / p  # P symmetric: (P r)_i
        exact = np.array(exact, copy=True) * np.ones_like(np.asarray(theta, float))
        exact[..., o] = norm_logpdf(model.yi[o], cond_mean, 1 / np.sqrt(p))
    if not model.censored.any():  # np.where below would return `exact`
        return exact
    beyond = special.log_ndtr(model.censoring_direction() * (theta - model.yi) / model.sei)
    return np.where(model.censored, beyond, exact)


# --------------------------------------------------------------------------- the result


MAX_DRAW_CELLS = 50_000_000  # chains x draws x studies: each study-level array of draws (theta, its log-likelihood)


def check_draw_size(studies: int, draws: int, chains: int) -> None:
    """Refuse, before any work, a posterior whose per-study draws (theta and its log-likelihood,
    chains x draws x studies values each) exceed MAX_DRAW_CELLS: not a MemoryError half way."""
    cells = chains * draws * studies
    if cells > MAX_DRAW_CELLS:
        raise ValueError(f"{chains} chains x {draws:,} draws x {studies:,} studies = {cells:,} values per "
                         f"study-level array of draws, more than the limit of {MAX_DRAW_CELLS:,} "
                         f"(~{MAX_DRAW_CELLS * 8 / 1e9:.1f} GB each); ask for fewer draws (--draws, --chains)")


def fit_exact(model: GaussianModel, *, draws: int = 1000, chains: int = 4, seed: int = 2026, grid: Grid | None = None):
    """The exact posterior as a DataTree shaped like an MCMC fit: posterior (independent draws,
    `chains` x `draws`), log_likelihood, observed_data, constant_data, and the exact summaries
    as group `exact_summary`; attrs carry the model settings and engine="exact". grid: the
    posterior_grid of `model`, when the caller has it already."""
    import xarray as xr

    from .. import __version__

    check_draw_size(len(model.study_id), draws, chains)
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    grid = grid_of(model, grid)
    summary = exact_summary(model, grid, seed)
    values = sample(model, grid, chains * draws, rng)
    coords = {"chain": np.arange(chains), "draw": np.arange(draws), "study": list(model.study_id)}
    variables = {}
    dims_of = {name: dim for name, _, dim, _ in quantity_rows(model)}
    labels_of = {}
    for name, label, dim, _ in quantity_rows(model):
        labels_of.setdefault(name, []).append(label)
    for name, array in values.items():
        dim = "study" if name == "theta" else dims_of.get(name)
        if dim is None:
            variables[name] = (("chain", "draw"), np.asarray(array).reshape(chains, draws))
        else:
            if dim != "study":
                coords[dim] = labels_of[name]
            variables[name] = (("chain", "draw", dim), np.asarray(array).reshape(chains, draws, -1))
    posterior = xr.Dataset(variables, coords=coords)
    loglik = pointwise_loglik(model, values["theta"]).reshape(chains, draws, -1)
    log_likelihood = xr.Dataset({"y": (("chain", "draw", "study"), loglik)}, coords=posterior["theta"].coords)
    constant = {"yi": ("study", model.yi), "sei": ("study", model.sei)}
    constant |= {k: ("study", np.asarray(v)) for k, v in model.data.items() if np.ndim(v) == 1}
    constant_data = xr.Dataset(constant, coords={"study": list(model.study_id)})
    observed = xr.Dataset({"y": ("study", model.yi)}, coords={"study": list(model.study_id)})
    table = summary.reset_index()
    quantity = [f"{v}[{lab}]" if v != lab else v for v, lab in zip(table["variable"], table["label"])]
    exact = xr.Dataset({col.replace("%", "").replace("(>0)", "_gt_0").replace("P", "p"):
                        ("quantity", table[col].to_numpy(float)) for col in ["mean", "sd", "q2.5", "q50", "q97.5", "P(>0)"]},
                       coords={"quantity": quantity, "variable": ("quantity", table["variable"].tolist()),
                               "label": ("quantity", table["label"].tolist())})
    sample_dims = {"sample_dims": ["chain", "draw"]}
    tree = xr.DataTree.from_dict({"posterior": posterior.assign_attrs(sample_dims),
                                  "log_likelihood": log_likelihood.assign_attrs(sample_dims),
                                  "observed_data": observed, "constant_data": constant_data,
                                  "exact_summary": exact})
    method = "mixture over the grid" + ("" if not model.censored.any() else
                                        "; censored row: 64-point midpoint rule" if model.censored.sum() == 1 else
                                        f"; {int(model.censored.sum())} censored rows: {N_LATENT} exact draws per node")
    tree.attrs.update({k: str(v) for k, v in model.settings.items()})
    tree.attrs.update(engine="exact", sampler="exact", seed=str(seed), draws=str(draws), chains=str(chains),
                      exact_summaries=method, log_evidence=f"{grid.log_evidence:.10g}",
                      grid_nodes=str(grid.weights.size), seconds=f"{time.perf_counter() - start:.3f}",
                      evsynth_version=__version__)
    return tree


# --------------------------------------------------------------------------- the reported table

REPORT_LABELS = {"mu": "pooled (mu)", "tau": "tau (between studies)", "tau_technique": "tau (between techniques)",
                 "prediction": "prediction (new study)"}


def report_label(variable: str, label: str) -> str:
    """The row name evsynth.methods.summary.summarize gives the same quantity ('technique: neck', ...)."""
    if variable in REPORT_LABELS:
        return REPORT_LABELS[variable]
    if variable == "technique_effect":
        return f"technique: {label}"
    if variable.startswith("tau_") and variable == label:  # a level of a multilevel model
        return f"tau (between {variable[4:]})"
    return variable if variable == label else f"{variable}: {label}"


def summary_table(model: GaussianModel, grid: Grid | None = None) -> pd.DataFrame:
    """exact_summary in the shape of evsynth.methods.summary.summarize: one row per reported quantity
    ('pooled (mu)', 'technique: neck', 'tau (between studies)', ..., 'prediction (new study)'),
    columns mean, sd, q2.5, q50, q97.5, P(>0)."""
    rows = summary_rows(model, grid)
    labels = [report_label(*key) for key in rows]
    if "row_level" in model.settings:  # a multilevel model: tau is the SD between rows within the levels above
        *outer, inner = model.settings["row_level"].split("/")
        within = f" within {'/'.join(outer)}" if outer else ""
        labels = [f"tau (between {inner}{within})" if key == ("tau", "tau") else label for key, label in zip(rows, labels)]
    if "beta" in model.block_slices():  # a meta-regression, labelled as summarize labels it: mu is the
        # intercept, and a new study's effect depends on its moderators (no prediction row)
        keep = [key[0] != "prediction" for key in rows]
        rows = {k: v for k, v, kept in zip(list(rows), rows.values(), keep) if kept}
        labels = [("intercept (mu)" if k[0] == "mu" else f"slope: {k[1]}" if k[0] == "beta" else label)
                  for k, label in zip(rows, [lab for lab, kept in zip(labels, keep) if kept])]
    table = pd.DataFrame(list(rows.values()), index=pd.Index(labels, name="parameter"))
    table.attrs["threshold"] = 0.0
    return table.astype(float)


# --------------------------------------------------------------------------- evidence: Bayes factors, leave-one-out


def log_evidence(model: GaussianModel) -> float:
    """log p(y) of the model (constants included; censored rows as the probability beyond their
    bounds), by the same quadrature as the posterior."""
    return posterior_grid(model).log_evidence


def bayes_factor(model: GaussianModel, null: str) -> dict:
    """BF10 of `model` against its point null `null` = 0 (a fixed block such as "mu" or a
    moderator block "beta", or a variance component "tau" / "tau_technique"; GaussianModel.without),
    from the two marginal likelihoods (the priors of the other parameters do not depend on the
    tested one, so this equals the Savage-Dickey density ratio)."""
    full, restricted = log_evidence(model), log_evidence(model.without(null))
    log_bf = full - restricted
    return {"hypothesis": f"{null} != 0" if null in model.block_slices() else f"{null} > 0", "BF10": float(np.exp(log_bf)),
            "log_BF10": log_bf, "log_evidence": full, "log_evidence_null": restricted, "method": "exact engine"}


def loo(model: GaussianModel) -> pd.DataFrame:
    """Exact leave-one-out: elpd_i = log p(y_i | y_-i) = log p(y) - log p(y_-i), both marginal
    likelihoods by quadrature (study effects integrated out, as evsynth.methods.compare.study_loglik; a
    censored row scores the probability beyond its bound). No importance sampling, so no Pareto k:
    every study's term is exact up to the quadrature. One row per study; attrs: elpd_loo (the
    sum), se (sqrt(n) * sd of the terms, as ArviZ reports PSIS-LOO) and n."""
    full = log_evidence(model)
    terms = np.empty(model.n)
    for i in range(model.n):
        keep = np.ones(model.n, bool)
        keep[i] = False
        terms[i] = full - log_evidence(model.subset(keep))
    table = pd.DataFrame({"study_id": list(model.study_id), "elpd_loo": terms})
    table.attrs.update(elpd_loo=float(terms.sum()), se=float(np.sqrt(model.n) * terms.std(ddof=1)), n=model.n,
                       method="exact leave-one-out (log p(y) - log p(y_-i), quadrature)")
    return table


def loo_compare(models: dict[str, GaussianModel]) -> pd.DataFrame:
    """Models (fitted to the same studies, same order) ranked by exact elpd_loo, in the columns of
    az.compare where they apply: rank, elpd_diff (to the best), dse (SE of that difference from
    the paired study terms), p_worse (normal approximation), elpd, se, weight (stacking) and
    method ("exact LOO"). No p (effective parameters) and no Pareto k diagnostics: nothing here is
    importance-sampled. evsynth.methods.compare.loo_compare calls this for model descriptions."""
    from scipy import optimize  # here: only the stacking weights need it

    if len(models) < 2:
        raise ValueError("need at least two models to compare")
    terms = {}
    for name, model in models.items():
        if not isinstance(model, GaussianModel):
            raise ValueError(f"model {name!r} is a {type(model).__name__}, not a GaussianModel (evsynth.model.description)")
        terms[name] = loo(model).set_index("study_id")["elpd_loo"]
    reference = next(iter(terms.values())).index
    for name, t in terms.items():
        if list(t.index) != list(reference):
            raise ValueError(f"model {name!r} was fitted to different studies than the others; LOO compares "
                             "models of the same data")
    frame = pd.DataFrame({name: t.to_numpy() for name, t in terms.items()}, index=reference)
    total = frame.sum().sort_values(ascending=False)
    frame = frame[total.index]
    n = len(frame)
    diff = frame.sub(frame.iloc[:, 0], axis=0)
    # dse as az.compare computes it (sqrt(n var) of the paired differences, ddof 0), so the two
    # engines' tables read the same way; se as ArviZ's loo (ddof 1).
    dse = np.sqrt(n * diff.var(ddof=0))
    # Stacking (Yao et al. 2018): weights on the simplex maximizing sum_i log sum_k w_k p(y_i | y_-i, M_k).
    # Each study's densities are rescaled by their maximum (the same optimum, no underflow).
    dens = np.exp(frame.to_numpy() - frame.to_numpy().max(axis=1, keepdims=True))
    k = dens.shape[1]
    fit = optimize.minimize(lambda w: -np.log(dens @ w).sum(), np.full(k, 1 / k), method="SLSQP",
                            jac=lambda w: -(dens / (dens @ w)[:, None]).sum(axis=0), bounds=[(0, 1)] * k,
                            constraints={"type": "eq", "fun": lambda w: w.sum() - 1})
    weight = np.clip(fit.x, 0, None)
    elpd_diff, dse = diff.sum().to_numpy(), dse.to_numpy()
    p_worse = np.r_[np.nan, norm_cdf(0, elpd_diff[1:], dse[1:] + 1e-12)]  # as az.compare: P(diff < 0)
    table = pd.DataFrame({"rank": np.arange(k), "elpd_diff": elpd_diff, "dse": dse, "p_worse": p_worse,
                          "elpd": total.to_numpy(), "se": np.sqrt(n * frame.var(ddof=1)).to_numpy(),
                          "weight": weight / weight.sum(), "method": "exact LOO"},
                         index=pd.Index(total.index, name="model"))
    table.attrs.update(method="exact leave-one-out (log p(y) - log p(y_-i), quadrature)", n=n)
    return table


# --------------------------------------------------------------------------- MCMC against the exact posterior


@dataclass
class ExactVerdict:
    """What `diagnose` gives an MCMC fit, for the exact engine: there is no sampler, so nothing can
    fail (the draws are independent, from the posterior computed by quadrature)."""

    table: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["r_hat", "ess_bulk", "ess_tail"]))
    divergences: int = 0
    bfmi: list = field(default_factory=list)
    thresholds: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)
    ok: bool = True
    verdict: str = "PASS"

    def __str__(self) -> str:
        return ("diagnostics: none needed (exact engine: quadrature over the variance components, closed-form "
                "Gaussian conditionals; independent draws, no MCMC)")

CHECKED = ("mean", "q2.5", "q50", "q97.5")


def agreement(idata, model: GaussianModel, threshold: float = 5.0, grid: Grid | None = None) -> pd.DataFrame:
    """An MCMC fit of `model` against its exact posterior, in Monte-Carlo standard errors: for every
    reported quantity and SD in both, the draws' mean and 2.5/50/97.5% quantiles minus the exact
    ones, divided by the MCSE of that statistic (arviz_stats.mcse: method "mean" / "quantile").
    attrs: max_abs_z, worst (which row), threshold, ok (max |z| < threshold). A disagreement means
    the sampler did not explore the posterior (or the two engines fit different models).

    The threshold is on the largest of 8 to 24 z values, whose MCSEs are themselves estimates
    (tail quantiles most), so it sits above a single z's 4: benchmarks/agreement_calibration.py,
    400 correct fits of the bundled data's two models (evsynth fit's settings; two runs of 100
    seeds, whose chains started at different points): max |z| >= 4 in 3 (0.75%), >= 4.5 in 2,
    >= 5 in none; the same fits judged against the model with the between-study SD's prior scale
    10% smaller: >= 5 in 98% (milk volume) and 48% (infant weight) of 100, halved: 100%."""
    from arviz_stats import mcse

    posterior = idata["posterior"].to_dataset() if hasattr(idata["posterior"], "to_dataset") else idata.posterior
    rows = []
    for (variable, label), exact in summary_rows(model, grid).items():
        if variable not in posterior:
            continue
        draws = posterior[variable]
        extra = [d for d in draws.dims if d not in ("chain", "draw")]
        if extra:
            draws = draws.sel({extra[0]: label})
        values = draws.to_numpy().ravel()
        for statistic in CHECKED:
            if statistic == "mean":
                estimate, error = values.mean(), mcse(draws, method="mean")
            else:
                p = float(statistic[1:]) / 100
                estimate, error = np.quantile(values, p), mcse(draws, method="quantile", prob=p)
            error = float(np.asarray(error))
            rows.append({"quantity": report_label(variable, label), "statistic": statistic, "mcmc": estimate,
                         "exact": exact[statistic], "mcse": error, "z": (estimate - exact[statistic]) / error})
    table = pd.DataFrame(rows)
    worst = table.loc[table["z"].abs().idxmax()]
    table.attrs.update(max_abs_z=float(abs(worst["z"])), worst=f"{worst['quantity']} {worst['statistic']}",
                       threshold=threshold, ok=bool(abs(worst["z"]) < threshold))
    return table


def agreement_line(table: pd.DataFrame) -> str:
    """One line for the terminal: quiet when the engines agree, loud when they do not."""
    a = table.attrs
    n = table["quantity"].nunique()
    if a["ok"]:
        return (f"agrees with the exact posterior: max |z| {a['max_abs_z']:.1f} (MCSE units; mean and 2.5/50/97.5% "
                f"of {n} quantities, worst {a['worst']})")
    return (f"!! DISAGREES WITH THE EXACT POSTERIOR: |z| {a['max_abs_z']:.1f} >= {a['threshold']:g} MCSE at "
            f"{a['worst']}: the sampler has not explored the posterior; do not use these draws (try more tuning, "
            "or --engine exact)")
