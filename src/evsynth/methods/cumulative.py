"""Cumulative meta-analysis: the pooled estimate as the studies accrue in a chosen order (year, or
any column), classical as metafor's cumul(), and Bayesian on the exact engine, where each step is
an exact posterior (quadrature over tau, no sampling), so the whole sequence takes a moment."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..engines.normal_normal import exact_posterior
from .frequentist import _as_arrays, _critical, _projection, _two_sided_p
from .influence import check_method, refit, study_labels


def cumulative(yi, vi, order=None, method: str = "REML", labels=None) -> pd.DataFrame:
    """metafor's cumul(rma(yi, vi, method = method), order = order): the pooled estimate, its SE, 95%
    CI, p-value, tau^2, I^2 and Q after adding the studies one at a time in increasing `order`
    (ties keep the given order; None: as given). Row j holds the first j studies, labelled by the
    study added.

    Example: cumulative(table.yi, table.vi, order=table.year, labels=table.study_id)
    """
    yi, vi = _as_arrays(yi, vi)
    method = check_method(method)
    k = yi.size
    index = study_labels(labels, k)
    sort = np.arange(k) if order is None else np.argsort(np.asarray(order), kind="stable")
    yi, vi, index = yi[sort], vi[sort], index[sort]
    crit = _critical(np.inf)
    rows = []
    for j in range(1, k + 1):
        X = np.ones((j, 1))
        f = refit(yi[:j], vi[:j], X, method)
        mu, se = float(f.coef[0]), float(np.sqrt(f.cov[0, 0]))
        if j > 1:
            s2 = (j - 1) / np.trace(_projection(X, 1.0 / vi[:j]))
            i2 = (max(0.0, 100 * (f.QE - (j - 1)) / f.QE) if f.QE > 0 else 0.0) if method == "FE" \
                else 100 * f.tau2 / (f.tau2 + s2)
        else:
            i2 = 0.0
        rows.append({"k": j, "estimate": mu, "se": se, "ci_low": mu - crit * se, "ci_high": mu + crit * se,
                     "pval": float(_two_sided_p(mu / se, np.inf)), "tau2": f.tau2, "I2": i2, "Q": f.QE})
    table = pd.DataFrame(rows, index=pd.Index(index, name="added"))
    table.attrs.update(method=method)
    return table


def bayesian_cumulative(yi, sei, order=None, tau_prior: str = "halfnormal(0.5)", mu_prior: str | None = "normal(0, 1)",
                        labels=None) -> pd.DataFrame:
    """The exact posterior of the random-effects model after each added study (increasing `order`):
    mu's mean, median and 95% CrI, P(mu > 0), tau's median and 95% CrI (evsynth's standard priors by
    default; the priors as exact_posterior takes them). Row j holds the first j studies.

    Example: bayesian_cumulative(table.yi, table.sei, order=table.year, labels=table.study_id)
    """
    yi = np.asarray(yi, dtype=float).ravel()
    sei = np.asarray(sei, dtype=float).ravel()
    _as_arrays(yi, sei**2)
    k = yi.size
    index = study_labels(labels, k)
    sort = np.arange(k) if order is None else np.argsort(np.asarray(order), kind="stable")
    yi, sei, index = yi[sort], sei[sort], index[sort]
    rows = []
    for j in range(1, k + 1):
        post = exact_posterior(yi[:j], sei[:j], tau_prior=tau_prior, mu_prior=mu_prior)
        mu, tau = post.mu, post.tau
        rows.append({"k": j, "mean": mu["mean"], "median": mu["50%"], "q2.5": mu["2.5%"], "q97.5": mu["97.5%"],
                     "P(mu>0)": mu["P(mu>0)"], "tau_median": tau["50%"], "tau_q2.5": tau["2.5%"],
                     "tau_q97.5": tau["97.5%"]})
    table = pd.DataFrame(rows, index=pd.Index(index, name="added"))
    table.attrs.update(tau_prior=tau_prior, mu_prior=mu_prior or "flat")
    return table
