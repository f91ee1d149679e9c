"""Design as a visible dimension: controlled (two-group) rows and one-group pre/post rows answer
different questions, so an analysis shows them apart.

A controlled row estimates "how much more than without the technique"; a pre/post row estimates
"how much the outcome changed", which also contains time trends (milk volume rises by itself over
the first postpartum days) and regression to the mean. `design_moderator(effects)` fits the
random-effects meta-regression with a pre/post indicator as moderator,

    theta_i = mu + beta * pre_post_i + tau e_i,

so `mu` is the mean of controlled studies, mu + beta that of pre/post studies, and beta their
difference, by evsynth.methods.regression.fit_meta_regression with the exact engine (quadrature over tau:
no MCMC, censored rows by their exact likelihood). Used by `evsynth fit` and the notebook; the sensitivity grid drops the pre/post rows
with the exclusion rule "design == 'pre_post'".

`restrict_design(effects, "controlled" | "randomised")` keeps only rows with a concurrent control
(or only randomised ones: `randomised == "yes"` in the study table) and says how many it left out;
`prepost_weight_share(effects, tau)` is the share of the random-effects weight that one-group
pre/post rows carry, printed by `evsynth fit` beside each pooled effect.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..effects.table import uncontrolled, used_effects
from .summary import random_effects_weights

MODERATOR = "pre_post"  # 1 for a one-group pre/post row, 0 for a controlled row
DESIGN_CHOICES = ("all", "controlled", "randomised")  # --design
ROWS = ("controlled studies (mu)", "pre/post studies (mu + beta)", "pre/post - controlled (beta)")


def design_moderator(effects: pd.DataFrame, priors: dict | None = None, draws: int = 4000,
                     seed: int = 2026) -> pd.DataFrame:
    """Posterior median, 95% interval and P(> 0) of the controlled mean, the pre/post mean and
    their difference, with the studies behind each. Raises ValueError when the used rows are all
    of one design (then there is nothing to contrast) or fewer than three."""
    from ..engines.exact import fit_exact
    from ..model.description import meta_regression

    used = used_effects(effects)
    pre_post = uncontrolled(used).to_numpy()
    if len(used) < 3:
        raise ValueError(f"only {len(used)} used row(s): a design contrast needs at least 3")
    if pre_post.all() or not pre_post.any():
        raise ValueError(f"no design contrast: all {len(used)} used rows are "
                         f"{'pre/post' if pre_post.all() else 'controlled'}")
    table = effects.assign(**{MODERATOR: uncontrolled(effects).astype(float)})
    table.attrs = dict(effects.attrs)
    # the meta-regression's own draws, as methods.regression.fit_meta_regression makes them (same
    # model, draws and seed); its no-moderator fit, REML fit and heterogeneity table are not needed here
    tree = fit_exact(meta_regression(table, [MODERATOR], priors), draws=draws, chains=1, seed=seed)
    post = tree["posterior"]  # chains stacked, as regression.beta_draws
    mu = post["mu"].transpose("chain", "draw").to_numpy().reshape(-1)
    beta = post["beta"].transpose("chain", "draw", "moderator").to_numpy()[..., 0].reshape(-1)
    ids = used["study_id"].to_numpy()
    studies = [", ".join(ids[~pre_post]), ", ".join(ids[pre_post]), ""]
    rows = []
    for label, draws_, who in zip(ROWS, (mu, mu + beta, beta), studies):
        lo, mid, hi = np.quantile(draws_, (0.025, 0.5, 0.975))
        rows.append({"parameter": label, "q50": mid, "q2.5": lo, "q97.5": hi, "P(>0)": float((draws_ > 0).mean()),
                     "studies": who})
    out = pd.DataFrame(rows).set_index("parameter")
    out.attrs = {"model": "meta_regression (exact engine)", "prior_tau": tree.attrs.get("prior_tau", ""),
                 "prior_mu": tree.attrs.get("prior_mu", ""), "prior_beta": tree.attrs.get("prior_beta", "")}
    return out


def restrict_design(effects: pd.DataFrame, design: str = "all") -> pd.DataFrame:
    """The effect table with rows outside `design` left out of every model (used = False, and their
    why_not says why); attrs["design_note"] says how many were left out.

    design: "all" (no change), "controlled" (rows with a concurrent comparator: one-group pre/post
    rows are left out), "randomised" (rows whose study table says randomised = yes; "no", "unclear"
    and an empty cell are left out).

    Example: ``es.restrict_design(es.compute_effects(studies), "randomised")``
    """
    if design not in DESIGN_CHOICES:
        raise ValueError(f"design {design!r} unknown; choose one of {', '.join(DESIGN_CHOICES)}")
    out = effects.copy()
    out.attrs = dict(effects.attrs, design=design)
    if design == "all":
        return out
    if design == "controlled":
        outside = uncontrolled(out).to_numpy()
        reason = "one-group pre/post (no concurrent control): left out by design 'controlled'"
        reasons = [reason] * len(out)
    else:
        randomised = out["randomised"].fillna("unclear") if "randomised" in out else pd.Series("unclear", out.index)
        outside = (randomised != "yes").to_numpy()
        reasons = [f"not randomised (randomised = {value}): left out by design 'randomised'" for value in randomised]
    removed = outside & out["used"].to_numpy(bool)
    out.loc[removed, "why_not"] = [r for r, hit in zip(reasons, removed) if hit]
    out.loc[removed, "used"] = False
    computable = int(effects["used"].sum())
    out.attrs["design_note"] = (f"design {design}: {int(removed.sum())} of {computable} rows with an effect size left "
                                f"out ({', '.join(out.loc[removed, 'study_id']) or 'none'})")
    return out


def prepost_weight_share(effects: pd.DataFrame, tau: float) -> float:
    """Share of the total random-effects weight, w_i = 1 / (se_i^2 + tau^2), carried by one-group
    pre/post rows among the rows a pairwise model uses (versus a control or baseline). Censored rows
    count with their SE. 0 when no row is pre/post, 1 when all are.

    Example: ``es.prepost_weight_share(effects, tau=0.5)``
    """
    if not (np.isfinite(tau) and tau >= 0):
        raise ValueError(f"tau must be a finite number >= 0, not {tau}")
    used = used_effects(effects)
    if used.empty:
        raise ValueError("no used rows: no weights to share")
    weights = random_effects_weights(used["sei"].to_numpy(float) ** 2, tau)
    return float(weights[uncontrolled(used).to_numpy()].sum() / weights.sum())
