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

The same likelihood in numpy (`weighted_loglik`) serves the quadrature in `evsynth.marginal`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
from scipy import special, stats

from .bias import study_arrays
from .models import _prepare, _settings, resolve_priors
from .priors import parse_prior

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
    return stats.norm.sf(_sign(direction) * np.asarray(yi, float) / np.asarray(sei, float))


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
    return pt.cumsum(eta[::-1])[::-1]


def weighted_loglik(yi, sei, mu, tau, eta, cutpoints, direction: str = "positive"):
    """Per-study log density of the selection model (numpy; broadcasting over leading axes).

    mu, tau: arrays broadcastable to each other (shape S); eta: (..., J) Dirichlet increments
    broadcastable to S + (J,). Returns S + (k,). A_i is written as eta_{J-1} + sum_m eta_{m-1}
    P(p_i < c_m), a sum of non-negative terms, so it never cancels.
    """
    cuts = check_cutpoints(cutpoints)
    d = _sign(direction)
    yi, sei = np.asarray(yi, float), np.asarray(sei, float)
    mu, tau = np.asarray(mu, float)[..., None], np.asarray(tau, float)[..., None]
    s = np.sqrt(sei**2 + tau**2)
    eta = np.asarray(eta, float)
    omega = omega_from_eta(eta)
    idx = interval_index(one_sided_p(yi, sei, direction), cuts)
    z_cut = stats.norm.isf(np.asarray(cuts))
    area = eta[..., -1:]
    for m, zc in enumerate(z_cut):  # P(one-sided p < c_m) = P(d*y > se*z_c)
        area = area + eta[..., m:m + 1] * special.ndtr((d * mu - sei * zc) / s)
    log_norm = -0.5 * ((yi - mu) / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi)
    return np.log(omega[..., idx]) + log_norm - np.log(area)


def _normal_cdf(x):
    return 0.5 * pt.erfc(-x / np.sqrt(2.0))


def selection(effects: pd.DataFrame, priors: dict | None = None, cutpoints=DEFAULT_CUTPOINTS,
              direction: str = "positive") -> pm.Model:
    """Random-effects step-function selection model (builder "selection").

    Posterior: `mu`, `tau`, `omega` (dim `interval`, omega[0] = 1). No `theta`: the study effects
    are integrated out, as selection acts on the marginal distribution of y_i.
    """
    cuts = check_cutpoints(cutpoints)
    d = _sign(direction)
    table = _prepare(effects)
    study_arrays(table)  # refuses censored rows and bad yi/sei, naming the study
    chosen = resolve_priors(effects, priors)
    yi_np, sei_np = table["yi"].to_numpy(float), table["sei"].to_numpy(float)
    idx = interval_index(one_sided_p(yi_np, sei_np, direction), cuts)
    z_cut = stats.norm.isf(np.asarray(cuts))
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

        def logp(value, loc, scale, off):
            return pm.logp(pm.Normal.dist(loc, scale), value) + off

        pm.CustomDist("y", mu, s, offset, logp=logp, observed=yi, dims="study")
    model.evsynth_settings = _settings(effects, table) | {
        "model": "selection", "prior_mu": chosen["mu"], "prior_tau": chosen["tau"],
        "prior_eta": f"dirichlet({', '.join(['1'] * (len(cuts) + 1))})",
        "cutpoints": ", ".join(f"{c:g}" for c in cuts), "direction": direction}
    return model
