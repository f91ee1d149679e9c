"""Contrast-based network meta-analysis: every technique's effect relative to one reference node,
estimated from controlled and head-to-head comparisons together.

Model (Lu & Ades 2004; Dias et al. 2013, NICE DSU TSD 2), one row per two-arm comparison:

    y_i ~ N(theta_i, se_i),   theta_i = d[treat_i] - d[comp_i] + tau * z_i,   z_i ~ N(0, 1),
    d[reference] = 0,  d[k] ~ prior "mu",  tau ~ prior "tau".

`technique_effect` is d (each technique versus the reference). Comparator labels that mean "no
active technique" (effects.CONTROL_LABELS: control, usual care, no massage, ...) are all one node,
the reference. One-group pre/post rows (design "pre_post", or comparator "baseline") are left out
by default: a change from baseline also contains time trends and regression to the mean, so a
baseline is not a control arm. `prepost_as_control=True` (CLI: --prepost-as-control) puts them in
as versus the reference, an assumption the user then makes explicitly. The random effects are non-centered and share one tau across comparisons. A multi-arm
trial is several rows against one shared arm, grouped by a `trial` column (the CLI: rows of one
outcome that share a `sample_id` and a comparator, see multi_arm_trials): their study effects are
correlated 0.5 and their sampling errors carry the shared arm's covariance
(model.description.shared_control; checked against metafor's rma.mv on dat.senn2013). The bundled
massage data have no multi-arm trial.

Consistency (direct and indirect evidence agree) is checked by node-splitting (Dias et al. 2010):
for a comparison a-b with both direct studies and an indirect path once those studies are removed
(van Valkenhoef et al. 2016), the direct studies get their own parameter `direct`, the rest of the
network gives `indirect` = d[a] - d[b], and `inconsistency` = direct - indirect. We chose it over a
design-by-treatment interaction model because our networks hold two-arm studies only and at most a
few loops: in a single loop of two-arm studies the two models are the same (one inconsistency
parameter), and a per-comparison answer says where a conflict is. With a handful of studies a
split has little power, so an unflagged loop is weak evidence of consistency; a network without
loops (the bundled massage data today) cannot be checked at all, and node_split says so.

Engines: the network model is Gaussian given tau (evsynth.model.description.network), so `network_fit`
and `node_split` run on the exact engine by default (engine="auto"): one quadrature over tau per
split instead of one compiled and sampled model per split. engine="pymc" samples the PyMC model
below (the model to read and extend).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..engines.builders import network  # noqa: F401  (the PyMC network model; described in evsynth.model.description)
from ..model.network_graph import (  # noqa: F401  (the structure: part of this module's API)
    check_one_outcome, comparisons, network_table, prepare_network, splittable_comparisons,
)


# --------------------------------------------------------------------------- results


def _interval(draws: np.ndarray) -> dict:
    lo, mid, hi = np.quantile(draws, (0.025, 0.5, 0.975))
    return {"mean": draws.mean(), "q2.5": lo, "q50": mid, "q97.5": hi, "P(>0)": (draws > 0).mean()}


def network_fit(effects: pd.DataFrame, priors: dict | None = None, reference: str = "control",
                prepost_as_control: bool = False, engine: str = "auto", **fit_options):
    """The network model's posterior: the exact engine's independent draws and exact summaries
    (engine "auto" or "exact"), or the PyMC model sampled (engine "pymc"; fit_options go to
    evsynth.engines.fit: draws, tune, chains, seed, sampler)."""
    if _engine(engine) == "pymc":
        from ..engines.fit import fit

        return fit(network(effects, priors, reference, prepost_as_control=prepost_as_control), **fit_options)
    from ..model.description import network as describe_network
    from ..engines.exact import fit_exact

    kept = {k: fit_options[k] for k in ("draws", "chains", "seed") if k in fit_options}
    return fit_exact(describe_network(effects, priors, reference, prepost_as_control=prepost_as_control), **kept)


def _engine(engine: str) -> str:
    if engine not in ("auto", "exact", "pymc"):
        raise ValueError(f"engine {engine!r} unknown; choose auto, exact or pymc")
    return "pymc" if engine == "pymc" else "exact"


def network_summary(idata) -> pd.DataFrame:
    """Each technique versus the reference, and tau (equal-tailed 95% intervals); from the exact
    summaries when the fit has them (exact engine), else from the draws.

    Example:
        >>> import pandas as pd
        >>> import evsynth as es
        >>> rows = [("A", "control", 0.5, 0.15), ("A", "control", 0.4, 0.2), ("B", "control", 0.8, 0.15),
        ...         ("B", "control", 0.9, 0.2), ("B", "A", 0.3, 0.2), ("B", "A", 0.45, 0.2)]    # synthetic
        >>> effects = es.compute_effects(es.load_studies(pd.DataFrame(
        ...     [{"study_id": f"s{i}", "citation": "synthetic", "source_level": "synthetic", "synthetic": True,
        ...       "design": "effect", "technique": t, "comparator": c, "outcome": "synthetic", "yi": y,
        ...       "sei": se, "measure": "SMD"} for i, (t, c, y, se) in enumerate(rows)])))
        >>> idata = es.fit(effects, kind="network", engine="exact", draws=500, chains=2)
        >>> network_summary(idata)["q50"].round(2).to_dict()
        {'A vs control': 0.45, 'B vs control': 0.82, 'tau (between studies)': 0.08}
    """
    ref = idata.attrs.get("reference", "reference")
    if "exact_summary" in getattr(idata, "children", {}):
        exact = idata["exact_summary"].to_dataset().to_dataframe()
        rows = {}
        for _, row in exact.iterrows():
            values = {"mean": row["mean"], "q2.5": row["q2.5"], "q50": row["q50"], "q97.5": row["q97.5"],
                      "P(>0)": row["p_gt_0"]}
            if row["variable"] == "technique_effect":
                rows[f"{row['label']} vs {ref}"] = values
            elif row["variable"] == "tau":
                rows["tau (between studies)"] = values | {"P(>0)": np.nan}
        return pd.DataFrame(rows).T
    post = idata.posterior
    rows = {f"{t} vs {ref}": _interval(post["technique_effect"].sel(technique=t).to_numpy().ravel())
            for t in post["technique"].to_numpy()}
    rows["tau (between studies)"] = _interval(post["tau"].to_numpy().ravel()) | {"P(>0)": np.nan}
    return pd.DataFrame(rows).T


def node_split(effects: pd.DataFrame, priors: dict | None = None, reference: str = "control",
               split: list[tuple[str, str]] | None = None, prepost_as_control: bool = False,
               engine: str = "auto", **fit_options) -> pd.DataFrame:
    """Node-splitting consistency check: one fit per splittable comparison (or those in `split`).

    Returns one row per comparison: direct and indirect estimates (a - b, posterior medians),
    their difference (inconsistency) with its 95% interval, the Bayesian p-value
    2 min(P(diff > 0), P(diff < 0)), `flagged` (the interval excludes 0), whether the fit passed
    its diagnostics (the exact engine has no sampler to fail: always true) and the engine. An
    empty table means the network has no loop, so consistency cannot be checked (attrs["note"]).

    engine "auto"/"exact": each split model by quadrature over tau (evsynth.engines.exact),
    milliseconds each; "pymc": each split model compiled and sampled (fit_options to evsynth.engines.fit).

    Example:
        >>> import pandas as pd
        >>> import evsynth as es
        >>> rows = [("A", "control", 0.5, 0.15), ("A", "control", 0.4, 0.2), ("B", "control", 0.8, 0.15),
        ...         ("B", "control", 0.9, 0.2), ("B", "A", 0.3, 0.2), ("B", "A", 0.45, 0.2)]    # synthetic
        >>> effects = es.compute_effects(es.load_studies(pd.DataFrame(
        ...     [{"study_id": f"s{i}", "citation": "synthetic", "source_level": "synthetic", "synthetic": True,
        ...       "design": "effect", "technique": t, "comparator": c, "outcome": "synthetic", "yi": y,
        ...       "sei": se, "measure": "SMD"} for i, (t, c, y, se) in enumerate(rows)])))
        >>> table = node_split(effects, engine="exact", draws=500, chains=2)
        >>> table[["comparison", "direct_studies", "flagged"]].values.tolist()
        [['A vs B', 2, False], ['A vs control', 2, False], ['B vs control', 2, False]]
    """
    engine = _engine(engine)
    table = prepare_network(effects, reference, prepost_as_control)
    candidates = splittable_comparisons(table) if split is None else [tuple(s) for s in split]
    model = {"priors": priors, "reference": reference, "prepost_as_control": prepost_as_control}
    rows = []
    if engine == "exact":  # one description; each split derived from it (model.description.split_network)
        from ..model.description import network as describe_network

        base = describe_network(effects, **model)
        splittable = candidates if split is None else splittable_comparisons(table)
    for a, b in candidates:
        n_direct = int((((table["treat_node"] == a) & (table["comp_node"] == b))
                        | ((table["treat_node"] == b) & (table["comp_node"] == a))).sum())
        row = _split_exact(base, splittable, (a, b)) if engine == "exact" else \
            _split_pymc(effects, model, (a, b), fit_options)
        lo, hi = row["q2.5"], row["q97.5"]
        rows.append({"comparison": f"{a} vs {b}", "direct_studies": n_direct, **row,
                     "flagged": not lo <= 0 <= hi, "engine": engine})
    out = pd.DataFrame(rows, columns=["comparison", "direct_studies", "direct", "indirect", "inconsistency",
                                      "q2.5", "q97.5", "p_value", "flagged", "diagnostics_ok", "engine"])
    out.attrs["note"] = ("" if candidates else "the network has no closed loop: direct and indirect evidence "
                         "never overlap, so consistency cannot be checked and the estimates rest on it untested")
    return out


def _split_exact(base, splittable, split) -> dict:
    from ..model.description import split_network
    from ..engines.exact import summary_rows

    rows = summary_rows(split_network(base, split, splittable))
    diff = rows[("inconsistency", "inconsistency")]
    p_above = diff["P(>0)"]
    return {"direct": rows[("direct", "direct")]["q50"], "indirect": rows[("indirect", "indirect")]["q50"],
            "inconsistency": diff["q50"], "q2.5": diff["q2.5"], "q97.5": diff["q97.5"],
            "p_value": 2 * min(p_above, 1 - p_above), "diagnostics_ok": True}


def _split_pymc(effects, model: dict, split, fit_options) -> dict:
    from .diagnostics import diagnose
    from ..engines.fit import fit

    idata = fit(network(effects, split=split, **model), **fit_options)
    post = idata.posterior
    diff = post["inconsistency"].to_numpy().ravel()
    lo, hi = np.quantile(diff, (0.025, 0.975))
    return {"direct": float(np.median(post["direct"])), "indirect": float(np.median(post["indirect"])),
            "inconsistency": float(np.median(diff)), "q2.5": lo, "q97.5": hi,
            "p_value": 2 * min((diff > 0).mean(), (diff < 0).mean()), "diagnostics_ok": diagnose(idata).ok}


# --------------------------------------------------------------------------- figure

EDGE_WIDTH = 2.5  # points of line width per study


def network_plot(effects: pd.DataFrame, ax=None, reference: str = "control", prepost_as_control: bool = False):
    """Network graph: nodes = techniques (reference on top), edges = comparisons with usable
    studies, edge width proportional to the number of studies (printed on the edge).

    Example:
        >>> import matplotlib.pyplot as plt
        >>> import pandas as pd
        >>> import evsynth as es
        >>> rows = [("A", "control", 0.5, 0.15), ("A", "control", 0.4, 0.2), ("B", "control", 0.8, 0.15),
        ...         ("B", "control", 0.9, 0.2), ("B", "A", 0.3, 0.2), ("B", "A", 0.45, 0.2)]    # synthetic
        >>> effects = es.compute_effects(es.load_studies(pd.DataFrame(
        ...     [{"study_id": f"s{i}", "citation": "synthetic", "source_level": "synthetic", "synthetic": True,
        ...       "design": "effect", "technique": t, "comparator": c, "outcome": "synthetic", "yi": y,
        ...       "sei": se, "measure": "SMD"} for i, (t, c, y, se) in enumerate(rows)])))
        >>> figure = network_plot(effects)
        >>> type(figure).__name__, len(figure.axes)
        ('Figure', 1)
        >>> plt.close(figure)
    """
    import matplotlib.pyplot as plt

    table = network_table(effects, reference, prepost_as_control=prepost_as_control)
    ref = table.attrs["reference"]
    if table.empty:
        raise ValueError("no usable comparisons to draw")
    edges = comparisons(table)
    nodes = [ref] + sorted((set(edges["a"]) | set(edges["b"])) - {ref})
    angles = np.pi / 2 - 2 * np.pi * np.arange(len(nodes)) / len(nodes)
    xy = {n: (np.cos(t), np.sin(t)) for n, t in zip(nodes, angles)}
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 6))
    for e in edges.itertuples():
        (x0, y0), (x1, y1) = xy[e.a], xy[e.b]
        ax.plot([x0, x1], [y0, y1], color="tab:blue", lw=EDGE_WIDTH * e.studies, alpha=0.6, solid_capstyle="round",
                zorder=1, gid=f"edge:{e.a}|{e.b}")
        ax.text((x0 + x1) / 2, (y0 + y1) / 2, str(e.studies), ha="center", va="center", fontsize=8,
                bbox={"boxstyle": "circle", "fc": "white", "ec": "tab:blue"}, zorder=3)
    for n, (x, y) in xy.items():
        ax.scatter([x], [y], s=300, color="black" if n == ref else "tab:orange", zorder=2)
        ax.annotate(n, (x, y), xytext=(0, 14 if y >= 0 else -14), textcoords="offset points",
                    ha="center", va="center", fontsize=9, fontweight="bold" if n == ref else "normal")
    ax.set_xlim(-1.6, 1.6)
    ax.set_ylim(-1.4, 1.4)
    ax.set_aspect("equal")
    ax.axis("off")
    outcomes = ", ".join(sorted(table["outcome"].unique()))
    ax.set_title(f"Network of comparisons ({outcomes}); edge label = number of studies", fontsize=9)
    return ax.figure


def multi_arm_trials(effects: pd.DataFrame, studies: pd.DataFrame, by_outcome: bool = True) -> pd.DataFrame:
    """One outcome's effect table (rows sharing participants kept) made ready for the network: rows
    of one `sample_id` against one comparator are the arms of a multi-arm trial (column `trial` =
    the sample_id; the study table's n_ctrl and sd_ctrl joined for their shared-control covariance);
    rows sharing a sample otherwise (other comparators; other outcomes when pooled, by_outcome False)
    count once (analysis.one_row_per_sample).
    attrs["multi_arm_note"] names the trials.

    >>> import evsynth as es
    >>> studies = es.load_studies("studies/massage.csv")
    >>> table = multi_arm_trials(es.compute_effects(studies), studies)
    >>> "trial" in table, table.attrs.get("multi_arm_note")
    (True, None)
    """
    from .analysis import one_row_per_sample

    table = effects.copy()
    table.attrs = dict(effects.attrs)
    used = table["used"].astype(bool) & table["sample_id"].notna()
    groups = table[used].groupby(["outcome", "sample_id"])["comparator"]
    arms = {key for key, comparators in groups if len(comparators) > 1 and comparators.nunique() == 1}
    keys = list(zip(table["outcome"], table["sample_id"]))
    trial_rows = np.array([u and k in arms for u, k in zip(used, keys)], bool)
    table["trial"] = np.where(trial_rows, table["sample_id"].astype(str), table["study_id"].astype(str))
    rest = one_row_per_sample(_keep_attrs(table[~trial_rows], table), by_outcome=by_outcome)
    out = pd.concat([table[trial_rows], rest])
    order = {s: i for i, s in enumerate(table["study_id"])}
    out = out.iloc[np.argsort([order[s] for s in out["study_id"]], kind="stable")].reset_index(drop=True)
    out.attrs = dict(rest.attrs)
    lookup = studies.drop_duplicates("study_id").set_index("study_id")
    for column in ("n_ctrl", "sd_ctrl"):
        if column in lookup:
            out[column] = pd.to_numeric(out["study_id"].map(lookup[column]), errors="coerce")
    if arms:
        out.attrs["multi_arm_note"] = ("multi-arm trial(s), their contrasts sharing one control arm: "
                                       + ", ".join(sorted(f"{s} ({o})" for o, s in arms)))
    return out


def _keep_attrs(table: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    table.attrs = dict(like.attrs)
    return table
