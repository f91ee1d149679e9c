"""Exact leave-one-out posteriors of the random-effects model, every study at once.

Leaving study i out of theta_j = mu + tau e_j changes, at each tau, only the precision sums of mu's
Gaussian conditional: sum_j w_j, sum_j w_j y_j, sum_j w_j y_j^2 and sum_j log w_j (w_j = 1 /
(se_j^2 + tau^2)) lose their i-th term, a rank-one downdate. So on one grid over tau the k
leave-one-out posteriors are (k, nodes) arrays: log p(tau | y_-i) and mu | tau, y_-i in closed form
at every node, then what the exact engine does with one grid, by the engine's own functions over
the k rows (evsynth.engines.exact: mixture_quantiles with each row's weights for mu, SDMarginal over
a stack of densities for tau's median).
The grid is the full fit's box with FINE times its nodes, so the figures equal the k refits
(`summary_rows(model.subset(keep))`, each on its own grid) to the refits' own quadrature error
(tests/test_leave_out.py: 1e-9). A row whose posterior reaches an end of the box is marked for a
refit. 1,000 studies: ~0.1 s instead of 1,000 refits (~4-8 s, issue 26).

Only the plain random-effects description qualifies (one fixed block `mu` over an intercept, the
study-level tau, independent rows, no censored rows); for any other the caller refits.
"""

from __future__ import annotations

import numpy as np

from ..model.description import GaussianModel
from .exact import _LOG_2PI, DROP, FLAT, PROBS, SDMarginal, grid_of, mixture_quantiles

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
    taus = np.clip(ax.transform.tau(x), ax.lower, ax.upper)
    loglik, mean, var = _downdated(model, taus)
    with np.errstate(divide="ignore", invalid="ignore"):
        lp = loglik + ax.transform.log_prior(ax.prior, x, taus)  # per unit x (sd_axis)
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
        # mu's mixture on the full fit's own nodes (spectrally accurate there already; 4x fewer components)
        coarse = np.exp(lp[rows, ::FINE] - top[rows, None]) * grid.rules[0]
        coarse = np.where(coarse > 1e-14 * coarse.max(axis=1, keepdims=True), coarse, 0.0)  # summary_rows' floor
        coarse = coarse / coarse.sum(axis=1, keepdims=True)
        mu_q[rows] = mixture_quantiles(coarse, mean[rows, ::FINE], np.sqrt(var[rows, ::FINE]), np.array(PROBS))
        tau = SDMarginal.of(ax.transform, x, np.exp(lp[rows] - top[rows, None]), ax.even_at(x[0]))  # density per unit x
        tau_q50[rows] = tau.quantile([0.5])[:, 0]
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
