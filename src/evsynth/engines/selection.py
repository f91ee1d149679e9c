"""Bayesian step-function selection model (Vevea & Hedges 1995; as in RoBMA, Bartos et al. 2022).

Publication is assumed to depend on a study's one-sided p-value (in the expected `direction`)
through a step function: weight omega_0 = 1 for p below the first cutpoint, omega_1 for the next
interval, and so on. The observed effect, with the study effect integrated out, then has the
weighted normal density

    f(y_i) = omega[j(p_i)] * N(y_i | mu, s_i) / A_i,   s_i^2 = se_i^2 + tau^2,
    A_i    = sum_j omega_j * P(p-value of study i falls in interval j | mu, tau),

so the normalising constant A_i is a sum of normal CDF differences, computed in PyTensor.
The default cutpoints (0.025, 0.05) one-sided are two-sided 0.05 and 0.10 for effects in the
expected direction. The weights have RoBMA's cumulative-Dirichlet prior: eta ~ Dirichlet(1, ..., 1),
omega_j = eta_j + ... + eta_{J-1}, so 1 = omega_0 >= omega_1 >= ... > 0 and the ordered weights
are uniform on their region.

Rows whose p-value is printed only as a bound (`censored`, yi = the signed bound) contribute the
weighted probability of lying beyond the bound, split over the intervals it spans.
The same likelihood in numpy (`weighted_loglik`) checks the quadrature in `evsynth.engines.marginal`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

from ..effects.distributions import norm_isf, norm_sf
from ..effects.table import study_data
from ..model.description import data_settings as _settings
from ..model.description import prepare as _prepare
from ..model.description import resolve_priors
from ..model.priors import parse_prior

DEFAULT_CUTPOINTS = (0.025, 0.05)
DIRECTIONS = ("positive", "negative")


def check_cutpoints(cutpoints) -> tuple[float, ...]:
    cuts = tuple(float(c) for c in cutpoints)
    if not cuts or any(not 0 < c < 1 for c in cuts) or any(a >= b for a, b in zip(cuts, cuts[1:])):
        raise ValueError(f"cutpoints {cutpoints}: need increasing one-sided p-values in (0, 1), "
                         "e.g. (0.025, 0.05)")
    return cuts


def _sign(direction: str) -> float:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction {direction!r}: choose one of {DIRECTIONS}")
    return 1.0 if direction == "positive" else -1.0


def one_sided_p(yi, sei, direction: str = "positive") -> np.ndarray:
    """One-sided p-value of each study in the expected direction (z-test on yi / sei)."""
    return norm_sf(_sign(direction) * np.asarray(yi, float) / np.asarray(sei, float))


def interval_index(p, cutpoints) -> np.ndarray:
    """Interval j of each p-value: 0 for p < c_0, j for c_{j-1} <= p < c_j, J-1 for p >= c_{J-2}."""
    return np.searchsorted(np.asarray(check_cutpoints(cutpoints)), np.asarray(p, float), side="right")


def interval_labels(cutpoints) -> list[str]:
    cuts = check_cutpoints(cutpoints)
    edges = [0.0, *cuts, 1.0]
    return [f"p in [{lo:g}, {hi:g})" if hi < 1 else f"p in [{lo:g}, 1]" for lo, hi in zip(edges, edges[1:])]


def omega_from_eta(eta):
    """Weights from the Dirichlet increments: omega_j = sum_{m >= j} eta_m (works on numpy or PyTensor)."""
    if isinstance(eta, np.ndarray):
        return np.cumsum(eta[..., ::-1], axis=-1)[..., ::-1]
    import pytensor.tensor as pt  # PyMC's tensors only when a model is built

    return pt.cumsum(eta[::-1])[::-1]


def censored_overlap(yi, sei, cutpoints, direction: str = "positive") -> tuple[np.ndarray, np.ndarray]:
    """For rows known only to lie beyond a bound (yi = the signed bound, as in the models: y >= yi
    when yi > 0, y <= yi when yi < 0): the part of each selection interval inside that region, as
    (lo, hi) of shape (k, J) in t = d * y / se units; empty parts are (0, 0)."""
    cuts = check_cutpoints(cutpoints)
    d = _sign(direction)
    yi, sei = np.asarray(yi, float), np.asarray(sei, float)
    z = norm_isf(np.asarray(cuts))  # decreasing; interval j is t in (z_j, z_{j-1}]
    lo_j = np.r_[z, -np.inf]
    hi_j = np.r_[np.inf, z]
    t_bound = (d * yi / sei)[:, None]
    upward = ((yi > 0) == (d > 0))[:, None]  # region t >= t_bound, else t <= t_bound
    lo = np.where(upward, np.maximum(lo_j, t_bound), lo_j)
    hi = np.where(upward, hi_j, np.minimum(hi_j, t_bound))
    empty = lo >= hi
    return np.where(empty, 0.0, lo), np.where(empty, 0.0, hi)


def weighted_loglik(yi, sei, mu, tau, eta, cutpoints, direction: str = "positive", censored=None):
    """Per-study log density of the selection model (numpy; broadcasting over leading axes).

    mu, tau: arrays broadcastable to each other (shape S); eta: (..., J) Dirichlet increments
    broadcastable to S + (J,). Returns S + (k,). A_i is written as eta_{J-1} + sum_m eta_{m-1}
    P(p_i < c_m), a sum of non-negative terms, so it never cancels. Censored rows contribute
    log(sum_j omega_j P(y in interval j and beyond the bound)) - log A_i.
    """
    cuts = check_cutpoints(cutpoints)
    d = _sign(direction)
    yi, sei = np.asarray(yi, float), np.asarray(sei, float)
    mu, tau = np.asarray(mu, float)[..., None], np.asarray(tau, float)[..., None]
    s = np.sqrt(sei**2 + tau**2)
    eta = np.asarray(eta, float)
    omega = omega_from_eta(eta)
    idx = interval_index(one_sided_p(yi, sei, direction), cuts)
    z_cut = norm_isf(np.asarray(cuts))
    area = eta[..., -1:]
    for m, zc in enumerate(z_cut):  # P(one-sided p < c_m) = P(d*y > se*z_c)
        area = area + eta[..., m:m + 1] * special.ndtr((d * mu - sei * zc) / s)
    log_norm = -0.5 * ((yi - mu) / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi)
    out = np.log(omega[..., idx]) + log_norm
    if censored is not None and np.any(censored):
        censored = np.asarray(censored, bool)
        lo, hi = censored_overlap(yi, sei, cuts, direction)
        beyond = 0.0
        for j in range(len(cuts) + 1):  # G(x) = P(t > x) = Phi((d mu - se x) / s)
            p_j = special.ndtr((d * mu - sei * lo[:, j]) / s) - special.ndtr((d * mu - sei * hi[:, j]) / s)
            beyond = beyond + omega[..., j:j + 1] * p_j
        with np.errstate(divide="ignore"):  # uncensored columns of `beyond` are not used
            out = np.where(censored, np.log(beyond), out)
    return out - np.log(area)


def _normal_cdf(x):
    import pytensor.tensor as pt

    return 0.5 * pt.erfc(-x / np.sqrt(2.0))


def _tail(x: np.ndarray, dmu, sei, s):
    """P(t > x) = Phi((d mu - se x) / s) for fixed x that may be +-inf (then 0 or 1), with the
    infinite entries kept out of the arithmetic so gradients stay finite."""
    finite = np.where(np.isfinite(x), x, 0.0)
    value = _normal_cdf((dmu - sei * finite) / s)
    import pytensor.tensor as pt

    return pt.switch(np.isposinf(x), 0.0, pt.switch(np.isneginf(x), 1.0, value))


def selection(effects: pd.DataFrame, priors: dict | None = None, cutpoints=DEFAULT_CUTPOINTS,
              direction: str = "positive"):
    """Random-effects step-function selection model (builder "selection"): a pm.Model.

    Posterior: `mu`, `tau`, `omega` (dim `interval`, omega[0] = 1). No `theta`: the study effects
    are integrated out, as selection acts on the marginal distribution of y_i.

    Example:
        >>> import evsynth as es
        >>> studies = es.load_studies("studies/bcg.csv", extra_columns=["ablat", "alloc"])
        >>> effects = es.compute_effects(studies, measure="RR")
        >>> sorted(v.name for v in selection(effects, direction="negative").free_RVs)
        ['eta', 'mu', 'tau']
    """
    cuts = check_cutpoints(cutpoints)
    d = _sign(direction)
    import pymc as pm
    import pytensor.tensor as pt

    table = _prepare(effects)
    _, _, _, censored = study_data(table)  # refuses bad yi/sei, naming the study
    chosen = resolve_priors(effects, priors)
    yi_np, sei_np = table["yi"].to_numpy(float), table["sei"].to_numpy(float)
    idx = interval_index(one_sided_p(yi_np, sei_np, direction), cuts)
    z_cut = norm_isf(np.asarray(cuts))
    coords = {"study": table["study_id"].tolist(), "interval": interval_labels(cuts)}
    with pm.Model(coords=coords) as model:
        yi = pm.Data("yi", yi_np, dims="study")
        sei = pm.Data("sei", sei_np, dims="study")
        interval_idx = pm.Data("interval_idx", idx, dims="study")
        mu = parse_prior(chosen["mu"]).to_pymc("mu")
        tau = parse_prior(chosen["tau"]).to_pymc("tau")
        eta = pm.Dirichlet("eta", a=np.ones(len(cuts) + 1), dims="interval")
        omega = pm.Deterministic("omega", omega_from_eta(eta), dims="interval")
        s = pt.sqrt(sei**2 + tau**2)
        area = eta[-1]
        for m, zc in enumerate(z_cut):
            area = area + eta[m] * _normal_cdf((d * mu - sei * zc) / s)
        offset = pt.log(omega[interval_idx]) - pt.log(area)
        # censored rows: log sum_j omega_j P(y in interval j and beyond the bound) - log A
        lo, hi = censored_overlap(yi_np, sei_np, cuts, direction)
        beyond = 0.0
        for j in range(len(cuts) + 1):
            beyond = beyond + omega[j] * (_tail(lo[:, j], d * mu, sei, s) - _tail(hi[:, j], d * mu, sei, s))
        beyond_ll = pt.log(pt.switch(censored, beyond, 1.0)) - pt.log(area)

        def logp(value, loc, scale, off, cens_ll, is_cens):
            return pt.switch(is_cens, cens_ll, pm.logp(pm.Normal.dist(loc, scale), value) + off)

        pm.CustomDist("y", mu, s, offset, beyond_ll, censored.astype("int8"), logp=logp, observed=yi,
                      dims="study")
    model.evsynth_settings = _settings(effects, table) | {
        "model": "selection", "prior_mu": chosen["mu"], "prior_tau": chosen["tau"],
        "prior_eta": f"dirichlet({', '.join(['1'] * (len(cuts) + 1))})",
        "cutpoints": ", ".join(f"{c:g}" for c in cuts), "direction": direction}
    return model
