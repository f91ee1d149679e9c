"""Posterior predictive p-values of the random-effects model, per study, on the exact engine:
p_i = P(y_rep_i > y_i | data), with the "mixed" replicate y_rep_i ~ N(mu, s_i² + tau²) (a new study
like study i, its own theta drawn again; Marshall & Spiegelhalter 2003). With
cross_validated=True the posterior leaves study i out (a leave-one-out conflict p-value); otherwise
it uses all studies, which makes the p-values conservative (pulled towards 0.5).

No sampling: p_i = sum_g w_g Phi((m_g - y_i) / sqrt(v_g + s_i² + tau_g²)) over the exact engine's tau
nodes g (weights w_g, conditional mean m_g and variance v_g of mu). A p near 0 or 1 marks a study
the model does not predict; the two-sided p is 2 min(p, 1 - p).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..engines.normal_normal import exact_posterior


def _p_above(post, y: float, s: float) -> float:
    sd = np.sqrt(post.mu_cond_sd**2 + s**2 + post.tau_grid**2)
    return float(post.weights @ stats.norm.sf(y, post.mu_cond_mean, sd))


def predictive_pvalues(yi, sei, tau_prior: str = "halfnormal(0.5)", mu_prior: str | None = "normal(0, 1)",
                       labels=None, cross_validated: bool = False) -> pd.DataFrame:
    """Per-study posterior predictive p-values (columns p_above = P(y_rep > y_i), p_two_sided).

    Example: predictive_pvalues(table.yi, table.sei, labels=table.study_id, cross_validated=True)
    """
    yi = np.asarray(yi, dtype=float).ravel()
    sei = np.asarray(sei, dtype=float).ravel()
    if cross_validated and yi.size < 2:
        raise ValueError("a cross-validated predictive p-value needs at least 2 studies")
    full = None if cross_validated else exact_posterior(yi, sei, tau_prior=tau_prior, mu_prior=mu_prior)
    rows = []
    for i in range(yi.size):
        if cross_validated:
            keep = np.arange(yi.size) != i
            post = exact_posterior(yi[keep], sei[keep], tau_prior=tau_prior, mu_prior=mu_prior)
        else:
            post = full
        p = _p_above(post, yi[i], sei[i])
        rows.append({"yi": yi[i], "p_above": p, "p_two_sided": 2 * min(p, 1 - p)})
    index = pd.Index(range(1, yi.size + 1) if labels is None else list(labels), name="study")
    table = pd.DataFrame(rows, index=index)
    table.attrs.update(tau_prior=tau_prior, mu_prior=mu_prior or "flat", cross_validated=cross_validated)
    return table
