"""Posterior summaries a meta-analyst reports: pooled and per-technique effects, tau, prediction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from .heterogeneity import heterogeneity_draws

QUANTILES = (0.025, 0.5, 0.975)


def stacked_posterior(idata: xr.DataTree) -> xr.Dataset:
    """The posterior with chain and draw stacked into one `sample` dimension: what
    az.extract(idata, keep_dataset=True) gives, without importing ArviZ (~2 s; the exact engine's
    commands need none of it)."""
    post = idata["posterior"]
    post = post.to_dataset() if hasattr(post, "to_dataset") else post
    stacked = post.stack(sample=("chain", "draw"))
    stacked.attrs["sample_dims"] = ["sample"]
    return stacked


def _describe(label: str, draws: np.ndarray, threshold: float | None) -> dict:
    """threshold None: a scale parameter (tau), for which P(> threshold) says nothing."""
    q = np.quantile(draws, QUANTILES)
    return {"parameter": label, "mean": draws.mean(), "sd": draws.std(ddof=1), "q2.5": q[0], "q50": q[1],
            "q97.5": q[2], "P(>threshold)": np.nan if threshold is None else float((draws > threshold).mean())}


def predictive_draws(idata: xr.DataTree, technique: str | None = None, seed: int = 0) -> np.ndarray:
    """Draws of the true effect in a new study (of `technique`, or of a new technique)."""
    post = stacked_posterior(idata)
    rng = np.random.default_rng(seed)
    # A common-effect fit has no tau: it asserts every study shares mu.
    tau = post["tau"].to_numpy() if "tau" in post else np.zeros(post.sizes["sample"])
    if technique is not None:
        centre = post["technique_effect"].sel(technique=technique).to_numpy()
    elif "tau_technique" in post:
        centre = post["mu"].to_numpy() + post["tau_technique"].to_numpy() * rng.standard_normal(tau.size)
    else:
        centre = post["mu"].to_numpy()
    return centre + tau * rng.standard_normal(tau.size)


def heterogeneity_table(idata: xr.DataTree, X=None) -> pd.DataFrame:
    """The I² and H² rows of a summary (evsynth.methods.heterogeneity), for fits summarized elsewhere (the
    exact engine's table); X: a meta-regression's design matrix with intercept."""
    rows = [_describe(label, draws, None) for label, draws in heterogeneity_draws(idata, X=X).items()]
    columns = ["parameter", "mean", "sd", "q2.5", "q50", "q97.5", "P(>threshold)"]
    return pd.DataFrame(rows, columns=columns).set_index("parameter").rename(columns={"P(>threshold)": "P(>0)"})


TAU_ROW = "tau (between studies)"
MU_ROW = "pooled (mu)"
PREDICTION_ROW = "prediction (new study)"


def summary_tau(summary: pd.DataFrame) -> float | None:
    """The posterior median of tau (between studies) in a summarize() table; None when the model has
    none (common effect). The one tau the weights quoted in the output (1/(se^2 + tau^2)) use."""
    return float(summary.loc[TAU_ROW, "q50"]) if TAU_ROW in summary.index else None


def random_effects_weights(vi, tau: float) -> np.ndarray:
    """Unnormalised random-effects weights 1 / (vi + tau^2): the one definition behind every weight
    the output quotes (the forest's Weight %, the pre/post share, the certainty rules), so they
    cannot drift apart (they did once: 1/vi in one place, 1/(vi + tau^2) in another)."""
    return 1.0 / (np.asarray(vi, dtype=float) + tau**2)


def summary_quantiles(summary: pd.DataFrame | None, row: str) -> tuple[float, float, float] | None:
    """(q2.5, q50, q97.5) of `row` in a summarize() table, None without the table or the row: the
    figures the output quotes (the exact engine's are exact; quantiles of its draws are not)."""
    if summary is None or row not in summary.index:
        return None
    return tuple(float(summary.loc[row, q]) for q in ("q2.5", "q50", "q97.5"))


def summarize(idata: xr.DataTree, threshold: float = 0.0, heterogeneity: bool = True) -> pd.DataFrame:
    """Equal-tailed 95% credible intervals and P(effect > threshold) for the reported quantities.

    Rows: pooled mean (mu), each technique, tau (and tau between techniques), the posterior of I²
    and H² (evsynth.methods.heterogeneity; heterogeneity=False leaves them out), and the 95% prediction
    interval for the effect in a new study. A meta-regression (posterior `beta`) has the intercept
    and one slope per moderator instead of the pooled mean, and no prediction row (a new study's
    effect depends on its moderators).

    Example:
        >>> import evsynth as es
        >>> studies = es.load_studies("studies/bcg.csv", extra_columns=["ablat", "alloc"])
        >>> effects = es.compute_effects(studies, measure="RR")
        >>> idata = es.fit(effects, kind="random_effects", engine="exact", draws=500, chains=2)
        >>> table = summarize(idata)
        >>> table.index.tolist()
        ['pooled (mu)', 'tau (between studies)', 'I² % (between studies)', 'H² (between studies)',
         'prediction (new study)']
        >>> round(float(table.loc["pooled (mu)", "q50"]), 1)
        -0.7
    """
    post = stacked_posterior(idata)
    rows = [_describe("pooled (mu)", post["mu"].to_numpy(), threshold)]
    if "technique_effect" in post:
        for tech in post["technique"].to_numpy():
            rows.append(_describe(f"technique: {tech}",
                                  post["technique_effect"].sel(technique=tech).to_numpy(), threshold))
    if "tau" in post:
        rows.append(_describe("tau (between studies)", post["tau"].to_numpy(), None))
    if "tau_technique" in post:
        rows.append(_describe("tau (between techniques)", post["tau_technique"].to_numpy(), None))
    if heterogeneity:
        rows += [_describe(label, draws, None) for label, draws in heterogeneity_draws(idata).items()]
    if "beta" in post:  # a meta-regression: mu is the intercept, a new study's effect depends on its moderators
        rows[0]["parameter"] = "intercept (mu)"
        for j, term in enumerate(post["moderator"].to_numpy()):
            rows.insert(1 + j, _describe(f"slope: {term}", post["beta"].isel(moderator=j).to_numpy(), threshold))
    else:
        rows.append(_describe("prediction (new study)", predictive_draws(idata), threshold))
    table = pd.DataFrame(rows).set_index("parameter")
    table.attrs["threshold"] = threshold
    return table.rename(columns={"P(>threshold)": f"P(>{threshold:g})"})


def multilevel_summary(idata: xr.DataTree, threshold: float = 0.0) -> pd.DataFrame:
    """summarize's table for a nested model (model.description.multilevel) fitted by MCMC: the pooled
    mean, one SD per level (`tau_<level>`, labelled as the exact engine labels them: "tau (between
    sample)", the row level's "tau (between study_id within sample)") and the prediction for a new
    row of a new cluster, whose true effect varies by every level's SD (mu + sum tau_l z_l)."""
    post = stacked_posterior(idata)
    rng = np.random.default_rng(0)
    mu = post["mu"].to_numpy()
    rows, spread = [_describe("pooled (mu)", mu, threshold)], np.zeros(mu.size)
    levels = [v for v in post.data_vars if str(v).startswith("tau_")]
    row_level = idata.attrs.get("row_level")
    for name in levels + (["tau"] if "tau" in post else []):
        draws = post[name].to_numpy()
        spread = spread + draws * rng.standard_normal(draws.size)
        if name == "tau" and row_level:
            *outer, inner = row_level.split("/")
            label = f"tau (between {inner}{' within ' + '/'.join(outer) if outer else ''})"
        else:
            label = f"tau (between {name[4:]})" if name != "tau" else "tau (between studies)"
        rows.append(_describe(label, draws, None))
    rows.append(_describe("prediction (new study)", mu + spread, threshold))
    table = pd.DataFrame(rows).set_index("parameter")
    table.attrs["threshold"] = threshold
    return table.rename(columns={"P(>threshold)": f"P(>{threshold:g})"})
