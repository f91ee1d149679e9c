"""Exact leave-one-out posteriors of the random-effects model, every study at once.

Leaving study i out of theta_j = mu + tau e_j changes, at each tau, only the precision sums of mu's
Gaussian conditional: sum_j w_j, sum_j w_j y_j, sum_j w_j y_j^2 and sum_j log w_j (w_j = 1 /
(se_j^2 + tau^2)) lose their i-th term, a rank-one downdate. So on one grid over tau the k
leave-one-out posteriors are (k, nodes) arrays: log p(tau | y_-i) and mu | tau, y_-i in closed form
at every node, then what the exact engine does with one grid (evsynth.engines.exact: mu's normal
mixture and its quantiles by Newton's method, tau's degree-5 CDF interpolant), vectorised over i.
The grid is the full fit's box with FINE times its nodes, so the figures equal the k refits
(`summary_rows(model.subset(keep))`, each on its own grid) to the refits' own quadrature error
(tests/test_leave_out.py: 1e-9). A row whose posterior reaches an end of the box is marked for a
refit. 1,000 studies: ~0.1 s instead of 1,000 refits (~4-8 s, issue 26).

Only the plain random-effects description qualifies (one fixed block `mu` over an intercept, the
study-level tau, independent rows, no censored rows); for any other the caller refits.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from ..model.description import GaussianModel
from .exact import DROP, FLAT, PROBS, _LAGRANGE, _LAGRANGE_INTEGRAL, _LOG_2PI, _log_prior, axis_weights, grid_of

FINE = 4  # the shared grid's node density, in multiples of the full fit's
# A row is left to a refit when its density at an end of the box (not a prior's bound) is above
# e^-EDGE of its maximum: the mass beyond is then below ~1e-10, well inside the 1e-9 agreement.
EDGE = DROP - 5


def qualifies(model: GaussianModel) -> bool:
    """Whether `model` is the plain random-effects description this module downdates."""
    return (model.study_prior is not None and not model.parts and not model.reported
            and len(model.fixed) == 1 and model.fixed[0].name == "mu" and model.X.shape[1] == 1
            and bool(np.all(model.X == 1.0)) and not model.censored.any() and model.study_correlation is None
            and model.sampling_cov is None and model.n >= 3)


def leave_one_out_summaries(model: GaussianModel, grid=None) -> dict[str, np.ndarray] | None:
    """{"mu": (k, 3) posterior 2.5/50/97.5% of mu, "tau": (k,) posterior median of tau, "ok": (k,)
    bool}: row i without study i, on the full posterior's box (of `grid`, the full model's exact
    grid, made when not given) with FINE times its nodes. A row is not ok (NaN figures: refit it)
    when its log posterior at an end of the box is within EDGE of its maximum, unless the box ends
    there at the prior's bound. None when the model does not qualify (`qualifies`).

    Example:
        >>> import evsynth as es
        >>> from evsynth.model.description import random_effects
        >>> bcg = es.load_studies("studies/bcg.csv", extra_columns=["ablat", "alloc"])
        >>> out = leave_one_out_summaries(random_effects(es.compute_effects(bcg, measure="RR")))
        >>> out["mu"].shape, int(out["ok"].sum())  # 2 of the 13 leave the full fit's box: refit those
        ((13, 3), 11)
    """
    if not qualifies(model):
        return None
    grid = grid_of(model, grid)
    ax, full_x = grid.axes[0], grid.nodes[0]
    x = np.linspace(full_x[0], full_x[-1], FINE * (full_x.size - 1) + 1)
    rule = axis_weights(ax, x)
    taus = np.clip(ax.scale * np.sinh(x), ax.lower, ax.upper)
    loglik, mean, var = _downdated(model, taus)
    with np.errstate(divide="ignore", invalid="ignore"):
        lp = loglik + (_log_prior(ax.prior, taus) + np.log(ax.scale * np.cosh(x)))
    lp = np.where(np.isfinite(lp), lp, -np.inf)
    top = lp.max(axis=1)
    ok = np.isfinite(top)
    if x[0] > ax.lo:
        ok &= lp[:, 0] <= top - EDGE
    if not (x[-1] == ax.hi and np.isfinite(ax.upper)):
        ok &= lp[:, -1] <= top - EDGE
    mu_q, tau_q50 = np.full((model.n, len(PROBS)), np.nan), np.full(model.n, np.nan)
    rows = np.flatnonzero(ok)
    if rows.size:
        w = np.exp(lp[rows] - top[rows, None]) * rule
        w = w / w.sum(axis=1, keepdims=True)
        # mu's mixture on the full fit's own nodes (spectrally accurate there already; 4x fewer components)
        coarse = np.exp(lp[rows, ::FINE] - top[rows, None]) * grid.rules[0]
        coarse = coarse / coarse.sum(axis=1, keepdims=True)
        mu_q[rows] = _mixture_quantiles(coarse, mean[rows, ::FINE], np.sqrt(var[rows, ::FINE]), np.array(PROBS))
        even = np.full(rows.size, ax.even_at(x[0]))
        tau_q50[rows] = ax.scale * np.sinh(_sd_median(np.broadcast_to(x, w.shape), w / rule, even))
    return {"mu": mu_q, "tau": tau_q50, "ok": ok}


def _downdated(model: GaussianModel, taus: np.ndarray):
    """exact.conditionals of the model without study i, for every i, at the nodes taus (G,):
    log p(y_-i | tau), E[mu | tau, y_-i] and Var[mu | tau, y_-i], (k, G) each."""
    flat = model.fixed[0].prior == FLAT
    if flat:  # no prior precision, no constant
        m0, p0 = 0.0, 0.0
    else:
        means, sds = model.prior_moments()
        m0, p0 = float(means[0]), float(1 / sds[0] ** 2)
    y = model.yi
    w = 1 / (model.sei[:, None] ** 2 + taus[None, :] ** 2)  # (k, G)
    sw = w.sum(axis=0) - w
    swy = y @ w - w * y[:, None]
    swyy = y**2 @ w - w * y[:, None] ** 2
    logw = np.log(w)
    logdet_s = -(logw.sum(axis=0) - logw)
    q = p0 + sw
    b = p0 * m0 + swy
    var = 1 / q
    mean = var * b
    logdet_p0 = 0.0 if flat else np.log(p0)
    loglik = -0.5 * (logdet_s + np.log(q) - logdet_p0 + swyy + m0 * p0 * m0 - b * mean
                     + (model.n - 1 - (1 if flat else 0)) * _LOG_2PI)
    return loglik, mean, var


def _mixture_quantiles(w: np.ndarray, means: np.ndarray, sds: np.ndarray, p: np.ndarray) -> np.ndarray:
    """exact.NormalMixture.ppf for each row's mixture (weights w, (m, G)), over the nodes the engine
    keeps (weight above 1e-14 of the largest); a row stops at the step where its own test passes."""
    keep = w > 1e-14 * w.max(axis=1, keepdims=True)
    w = np.where(keep, w, 0.0)
    w = w / w.sum(axis=1, keepdims=True)
    means, sds = np.where(keep, means, 0.0), np.where(keep, sds, 1.0)
    lo = np.repeat(np.where(keep, means - 10 * sds, np.inf).min(axis=1)[:, None], p.size, axis=1)
    hi = np.repeat(np.where(keep, means + 10 * sds, -np.inf).max(axis=1)[:, None], p.size, axis=1)
    x = np.einsum("mgp,mg->mp", means[:, :, None] + sds[:, :, None] * special.ndtri(p), w)
    scale = np.einsum("mg,mg->m", w, sds)
    out = np.full_like(x, np.nan)
    todo = np.arange(w.shape[0])
    for _ in range(200):
        z = (x[todo][:, :, None] - means[todo][:, None, :]) / sds[todo][:, None, :]
        wt = w[todo][:, None, :]
        f = (special.ndtr(z) * wt).sum(axis=2) - p
        pdf = (np.exp(-0.5 * z**2) / (np.sqrt(2 * np.pi) * sds[todo][:, None, :]) * wt).sum(axis=2)
        lo[todo], hi[todo] = np.where(f < 0, x[todo], lo[todo]), np.where(f > 0, x[todo], hi[todo])
        step = f / np.maximum(pdf, 1e-300)
        done = np.all(np.abs(step) <= 1e-12 * scale[todo, None], axis=1)
        out[todo[done]] = x[todo[done]] - step[done]
        new = x[todo] - step
        bad = (new < lo[todo]) | (new > hi[todo]) | ~np.isfinite(new)
        x[todo] = np.where(bad, 0.5 * (lo[todo] + hi[todo]), new)
        todo = todo[~done]
        if todo.size == 0:
            return out
    out[todo] = x[todo]
    return out


def _sd_median(x: np.ndarray, dens: np.ndarray, even: np.ndarray) -> np.ndarray:
    """exact.sd_marginal(...).quantile(0.5) in x for each row: the degree-5 local interpolant of the
    marginal density (dens per unit x, up to a constant), its CDF and Newton's method on it."""
    m, n = x.shape
    h = x[:, 1] - x[:, 0]
    extrapolate = np.array([6, -15, 20, -15, 6, -1], float)
    left = np.empty((m, 2))
    # even at x = 0: reflected; else two steps extrapolated (as exact.sd_marginal, one node at a time)
    first = extrapolate @ dens[:, :6].T
    second = extrapolate @ np.column_stack([first, dens[:, :5]]).T
    left[:, 0], left[:, 1] = np.where(even, dens[:, 2], second), np.where(even, dens[:, 1], first)
    pad = dens
    for _ in range(3):
        nxt = pad[:, :-7:-1] @ extrapolate
        pad = np.column_stack([pad, nxt])
    padded = np.column_stack([left, pad])
    windows = np.lib.stride_tricks.sliding_window_view(padded, 6, axis=1)[:, : n - 1]
    cells = h[:, None] * (windows @ _LAGRANGE_INTEGRAL.sum(axis=1))
    cdf = np.column_stack([np.zeros(m), np.cumsum(cells, axis=1)])
    total = cdf[:, -1:]
    padded = padded / total
    cdf_nodes = np.maximum.accumulate(np.clip(cdf / total, 0.0, 1.0), axis=1)

    rows = np.arange(m)

    def cell(xv):
        i = np.clip(np.floor((xv - x[:, 0]) / h).astype(int), 0, n - 2)
        s = (xv - x[rows, i]) / h
        f = padded[rows[:, None], i[:, None] + np.arange(6)]
        return i, s, f

    def cdf_x(xv):
        i, s, f = cell(xv)
        powers = s[:, None] ** np.arange(7)
        return cdf_nodes[rows, i] + h * np.einsum("mk,mk->m", f, powers @ _LAGRANGE_INTEGRAL.T)

    def pdf_x(xv):
        _, s, f = cell(xv)
        return np.einsum("mk,mk->m", f, (s[:, None] ** np.arange(7)) @ _LAGRANGE.T)

    p = 0.5
    j = np.clip((cdf_nodes < p).sum(axis=1), 1, n - 1)  # np.searchsorted(cdf_nodes, p) per row
    lo, hi = x[rows, j - 1], x[rows, j]
    c0, c1 = cdf_nodes[rows, j - 1], cdf_nodes[rows, j]
    xv = lo + (hi - lo) * np.clip((p - c0) / np.where(c1 > c0, c1 - c0, 1.0), 0.0, 1.0)
    out = np.full(m, np.nan)
    todo = np.ones(m, bool)
    for _ in range(20):
        f, d = cdf_x(xv) - p, pdf_x(xv)
        lo, hi = np.where(f < 0, xv, lo), np.where(f > 0, xv, hi)
        new = xv - f / np.where(d > 0, d, np.inf)
        new = np.where((new <= lo) | (new >= hi) | (d <= 0), 0.5 * (lo + hi), new)
        done = np.abs(new - xv) <= 1e-14 * np.maximum(np.abs(xv), 1e-300) + 1e-300
        xv = np.where(todo, new, xv)
        out = np.where(todo & done, xv, out)
        todo &= ~done
        if not todo.any():
            return out
    return np.where(todo, xv, out)
