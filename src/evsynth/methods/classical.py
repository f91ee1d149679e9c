"""The classical toolkit for one outcome, in one call: every tau^2 estimator side by side, Q-profile
intervals for the heterogeneity, Mantel-Haenszel and Peto pooling of 2x2 tables, influence
diagnostics, the cumulative meta-analysis (classical and exact Bayesian) and trim-and-fill.
What the command line (`evsynth classical`) prints and the report shows; each piece is its own
function elsewhere in evsynth.methods."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..effects.table import used_effects
from .binary_pooling import COUNT_COLUMNS, breslow_day_tarone, cochran_mantel_haenszel, mantel_haenszel, peto
from .cumulative import bayesian_cumulative, cumulative
from .heterogeneity import exact_hpd
from .predictive import predictive_pvalues
from .influence import baujat, influence
from .tau2 import TAU2_METHODS, heterogeneity_ci, rma
from .trimfill import TrimFill, trimfill

ESTIMATOR_COLUMNS = ["estimate", "se", "ci_low", "ci_high", "pval", "tau2", "tau2_se", "I2", "H2", "pi_low", "pi_high"]


@dataclass
class Classical:
    """The tables of one outcome (on the analysis scale: log for RR/OR/ROM) and why a part is missing."""

    label: str
    measure: str
    method: str
    k: int
    estimators: pd.DataFrame
    heterogeneity: pd.DataFrame
    influence: pd.DataFrame
    baujat: pd.DataFrame
    trimfill: dict[str, TrimFill]
    binary: pd.DataFrame | None = None
    cumulative: pd.DataFrame | None = None
    bayesian_cumulative: pd.DataFrame | None = None
    order_by: str | None = None
    bayes_intervals: pd.DataFrame | None = None  # exact posterior: equal-tailed and HPD (mu, tau, I², H²)
    predictive: pd.DataFrame | None = None  # leave-one-out posterior predictive p-values per study
    notes: list[str] = field(default_factory=list)


def estimator_table(yi, vi) -> pd.DataFrame:
    """One row per model: FE and each tau^2 estimator (metafor's rma(method = ...))."""
    rows = {}
    for method in ("FE",) + TAU2_METHODS:
        r = rma(yi, vi, method=method)
        rows[method] = {"estimate": r.mu, "se": r.se, "ci_low": r.ci_low, "ci_high": r.ci_high, "pval": r.pval,
                        "tau2": r.tau2, "tau2_se": r.tau2_se if method != "FE" else np.nan, "I2": r.I2, "H2": r.H2,
                        "pi_low": r.pi_low, "pi_high": r.pi_high}
    return pd.DataFrame.from_dict(rows, orient="index")[ESTIMATOR_COLUMNS].rename_axis("method")


def binary_table(counts: pd.DataFrame) -> pd.DataFrame:
    """Mantel-Haenszel RR, OR, RD and Peto OR of the 2x2 tables (log scale for ratios), with the
    Cochran-Mantel-Haenszel test of OR = 1 and Tarone's test of a common OR in the OR row."""
    rows = {}
    for name, fit in (("MH RR", lambda: mantel_haenszel(counts, "RR")), ("MH OR", lambda: mantel_haenszel(counts, "OR")),
                      ("MH RD", lambda: mantel_haenszel(counts, "RD")), ("Peto OR", lambda: peto(counts))):
        try:
            r = fit()
        except ValueError as exc:
            rows[name] = {"note": str(exc)}
            continue
        rows[name] = {"k": r.k, "estimate": r.mu, "se": r.se, "ci_low": r.ci_low, "ci_high": r.ci_high, "pval": r.pval,
                      "Q": r.Q, "Q_p": r.Q_p, "I2": r.I2, "note": ""}
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("method")
    if table.loc["MH OR", "note"] == "":
        cmh, p = cochran_mantel_haenszel(counts)["mantel_haenszel"]
        ta, ta_p, df = breslow_day_tarone(counts)["tarone"]
        tarone = f"; Tarone's test of one OR: chi2 {ta:.2f} on {df} df, p {ta_p:.2g}" if df >= 1 else ""
        table.loc["MH OR", "note"] = f"CMH test of OR = 1: chi2 {cmh:.2f}, p {p:.2g}{tarone}"
    return table


def _counts_of(studies: pd.DataFrame | None, table: pd.DataFrame) -> pd.DataFrame | None:
    """The 2x2 rows of `studies` behind the used effect rows (same study_id and outcome), or None."""
    if studies is None or not set(COUNT_COLUMNS) <= set(studies.columns):
        return None
    rows = studies[studies["study_id"].isin(table["study_id"]) & studies["outcome"].isin(table["outcome"])]
    rows = rows.dropna(subset=list(COUNT_COLUMNS))
    return rows if len(rows) == len(table) else None


def _order_of(studies: pd.DataFrame | None, table: pd.DataFrame, order_by: str | None):
    """The values of `order_by` (a study-table column, e.g. year) for the used rows, or None."""
    if order_by is None:
        return None
    source = table if order_by in table.columns else studies
    if source is None or order_by not in source.columns:
        raise ValueError(f"cumulative order: column {order_by!r} is in neither the effect nor the study table")
    if source is table:
        values = table[order_by]
    else:
        key = source.drop_duplicates(["study_id", "outcome"]).set_index(["study_id", "outcome"])[order_by]
        values = pd.Series([key.get((s, o)) for s, o in zip(table["study_id"], table["outcome"])])
    if values.isna().any():
        missing = table["study_id"][values.isna().to_numpy()].iloc[0]
        raise ValueError(f"study {missing!r}, field {order_by!r}: empty, so the cumulative order is undefined")
    return values.to_numpy()


def classical(effects: pd.DataFrame, studies: pd.DataFrame | None = None, method: str = "REML",
              order_by: str | None = "year", label: str = "", bayesian: bool = True,
              tau_prior: str = "halfnormal(0.5)", mu_prior: str = "normal(0, 1)") -> Classical:
    """The classical toolkit on one outcome's effect table (its used rows; `studies` for the 2x2
    counts and the cumulative order column). order_by None, or the default "year" when a study has
    none, leaves the cumulative analysis out with a note; another column must exist and be complete.

    Example: classical(effects, studies, method="REML", order_by="year").estimators
    """
    table = used_effects(effects) if {"used", "head_to_head"} <= set(effects.columns) else effects
    if len(table) < 3:
        raise ValueError(f"the classical toolkit needs at least 3 studies ({len(table)} usable)")
    yi, vi = table["yi"].to_numpy(float), table["vi"].to_numpy(float)
    labels = table["study_id"].astype(str).to_numpy()
    measure = effects.attrs.get("measure", "")
    notes = []
    counts = _counts_of(studies, table)
    binary = binary_table(counts) if counts is not None and measure in ("RR", "OR", "RD") else None
    if binary is None and measure in ("RR", "OR", "RD"):
        notes.append("Mantel-Haenszel/Peto: not every study gives 2x2 counts, so they are not computed")
    try:
        order = _order_of(studies, table, order_by)
    except ValueError as exc:
        if order_by != "year":  # asked for: refused by name; the default year is used only when complete
            raise
        notes.append(f"cumulative meta-analysis by year left out: {exc}")
        order = None
    cum = bayes = None
    if order is not None:
        cum = cumulative(yi, vi, order=order, method=method, labels=labels)
        if bayesian:
            bayes = bayesian_cumulative(yi, np.sqrt(vi), order=order, tau_prior=tau_prior, mu_prior=mu_prior,
                                        labels=labels)
    elif order_by is None:
        notes.append("cumulative meta-analysis: no order column (give --order-by COLUMN)")
    return Classical(
        label=label, measure=measure, method=method, k=len(table), estimators=estimator_table(yi, vi),
        heterogeneity=heterogeneity_ci(yi, vi, method=method), influence=influence(yi, vi, method=method, labels=labels),
        baujat=baujat(yi, vi, method=method, labels=labels),
        trimfill={e: trimfill(yi, vi, method=method, estimator=e, labels=labels) for e in ("L0", "R0")},
        binary=binary, cumulative=cum, bayesian_cumulative=bayes, order_by=order_by if order is not None else None,
        bayes_intervals=exact_hpd(yi, np.sqrt(vi), tau_prior=tau_prior, mu_prior=mu_prior) if bayesian else None,
        predictive=predictive_pvalues(yi, np.sqrt(vi), tau_prior=tau_prior, mu_prior=mu_prior, labels=labels,
                                      cross_validated=True) if bayesian else None,
        notes=notes)


def trimfill_table(result: Classical) -> pd.DataFrame:
    """One row per trim-and-fill estimator: k0, side, the filled model's estimate and 95% CI."""
    rows = {e: {"k0": tf.k0, "se_k0": tf.se_k0, "side": tf.side, "estimate": tf.fit.mu, "ci_low": tf.fit.ci_low,
                "ci_high": tf.fit.ci_high, "tau2": tf.fit.tau2} for e, tf in result.trimfill.items()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("estimator")
