"""The RoBMA-PSMA ensemble (methods.compare.model_average with bias_families=PSMA; methods.robma) against
a long Monte Carlo run of the same 16 models written independently here: parameters drawn from their
priors, each model's marginal likelihood the mean of its likelihood (importance sampling from the
prior), model-averaged figures from the weighted draws, MCSE by batch means. The quadrature must
agree within MCSE; and the minimum k on both sides."""

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from evsynth.methods.compare import PSMA, family_prior, model_average
from evsynth.methods.robma import MIN_STUDIES, bias_adjusted

YI = np.array([0.62, 0.35, 0.81, 0.12, 0.55, 0.95])
SEI = np.array([0.20, 0.15, 0.32, 0.12, 0.25, 0.38])
CUTS = (0.025, 0.05)


def table(yi=YI, sei=SEI):
    k = len(yi)
    out = pd.DataFrame({
        "study_id": [f"s{i}" for i in range(k)], "technique": "t", "comparator": "control", "outcome": "o",
        "unit": "", "design": "two_group", "measure": "SMD", "yi": yi, "sei": sei, "vi": np.square(sei),
        "n_total": 40, "censored": False, "head_to_head": False, "used": True, "why_not": "", "synthetic": True})
    out.attrs["measure"] = "SMD"
    return out


def log_lik(effect, het, bias, n, rng):
    """(mu draws, log likelihood) of one model under draws from its priors (mu ~ N(0, 1), tau ~ HN(0.5),
    PET b ~ HC(1), PEESE b ~ HC(5), selection weights 1 >= w2 >= w3 uniform-ordered)."""
    mu = rng.normal(0, 1, n) if effect else np.zeros(n)
    tau = np.abs(rng.normal(0, 0.5, n)) if het else np.zeros(n)
    mean = np.repeat(mu[:, None], len(YI), axis=1)
    if bias in ("PET", "PEESE"):
        b = np.abs(stats.cauchy.rvs(scale=1.0 if bias == "PET" else 5.0, size=n, random_state=rng))
        mean = mean + b[:, None] * (SEI if bias == "PET" else SEI**2)
    s = np.sqrt(SEI**2 + tau[:, None] ** 2)
    ll = stats.norm.logpdf(YI, mean, s).sum(axis=1)
    if bias == "selection":
        u = np.sort(rng.uniform(size=(n, 2)), axis=1)[:, ::-1]
        w = np.column_stack([np.ones(n), u])  # weights of p < .025, .025-.05, > .05 (one-sided)
        p = stats.norm.sf(YI / SEI)
        j = np.searchsorted(CUTS, p, side="right")
        ll = ll + np.log(w[:, j]).sum(axis=1)
        z = stats.norm.isf(CUTS)
        below = [special.ndtr((mean - SEI * zc) / s) for zc in z]  # P(p < c) for each cut
        area = w[:, [0]] * below[0] + w[:, [1]] * (below[1] - below[0]) + w[:, [2]] * (1 - below[1])
        ll = ll - np.log(area).sum(axis=1)
    return mu, ll


@pytest.mark.slow  # 16 models x 400k prior draws
def test_model_averaged_figures_agree_with_long_monte_carlo():
    ma = model_average(table(), bias_families=PSMA)
    within = family_prior(PSMA)
    rng = np.random.default_rng(20260)
    n, batches = 400_000, 20
    specs = [(e, h, b) for e in (False, True) for h in (False, True) for b in ("none", "selection", "PET", "PEESE")]
    per_batch = {s: [] for s in specs}  # (sum of likelihood, sum of likelihood * mu) per batch
    for spec in specs:
        mu, ll = log_lik(*spec, n, rng)
        lik = np.exp(ll - 0.0)
        for part in np.array_split(np.arange(n), batches):
            per_batch[spec].append((lik[part].mean(), (lik[part] * mu[part]).mean()))
    prior = np.array([within[b] / 4 for _, _, b in specs])

    def figures(ml, mumass):
        post = prior * ml / np.sum(prior * ml)
        is_ = {"effect": np.array([s[0] for s in specs]), "heterogeneity": np.array([s[1] for s in specs]),
               "bias": np.array([s[2] != "none" for s in specs])}
        mean = np.sum(prior * mumass) / np.sum(prior * ml)
        return np.array([mean] + [post[m].sum() for m in is_.values()] + list(post))

    ml = np.array([[per_batch[s][i][0] for s in specs] for i in range(batches)])
    mm = np.array([[per_batch[s][i][1] for s in specs] for i in range(batches)])
    est = figures(ml.mean(axis=0), mm.mean(axis=0))
    batch = np.array([figures(ml[i], mm[i]) for i in range(batches)])
    mcse = batch.std(axis=0, ddof=1) / np.sqrt(batches)
    quad = np.array([ma.mu["mean"], *(ma.inclusion.loc[c, "post_prob"] for c in ("effect", "heterogeneity", "bias")),
                     *ma.models["post_prob"]])
    # same model order: effect outer, heterogeneity, then bias none/selection/PET/PEESE
    assert list(ma.models["bias_family"][:4]) == ["none", "selection", "PET", "PEESE"]
    z = (quad - est) / np.maximum(mcse, 1e-4)
    print("quadrature", np.round(quad[:4], 4), "Monte Carlo", np.round(est[:4], 4), "MCSE", np.round(mcse[:4], 4))
    assert np.all(np.abs(z) < 4), (np.round(z, 2), np.round(quad, 4), np.round(est, 4))
    assert mcse[0] < 0.01  # the run is long enough to check the mean to about 0.01


def test_minimum_k_boundary_and_fields():
    assert MIN_STUDIES == 3
    below = bias_adjusted(table(YI[:2], SEI[:2]))
    assert not below.ran and "at least 3" in below.reason and np.isnan(below.mean)
    at = bias_adjusted(table(YI[:3], SEI[:3]))
    assert at.ran and at.k == 3 and at.low < at.median < at.high
    assert set(at.families) == {"none", "selection", "PET", "PEESE"}
    assert at.families["none"] == pytest.approx(1 - at.p_bias)
    assert at.priors["PET"].startswith("b ~ halfcauchy(1)") and at.priors["PEESE"].startswith("b ~ halfcauchy(5)")


def test_family_prior_is_robma_psma_and_the_eight_model_default_is_unchanged():
    assert family_prior(PSMA) == {"none": 0.5, "selection": 0.25, "PET": 0.125, "PEESE": 0.125}
    assert family_prior(("selection",)) == {"none": 0.5, "selection": 0.5}
    ma = model_average(table(YI[:4], SEI[:4]))
    assert len(ma.models) == 8 and np.allclose(ma.models["prior_prob"], 1 / 8)
