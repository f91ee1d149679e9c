"""Techniques: what the evidence says about each one, and how combinations are grouped.

`technique_coverage(effects, summary)` is the one table the CLI, the HTML report and the notebook
show for an outcome: every technique in the data (each label, and each component that appears
only inside combinations), with its estimate where the model gives one and otherwise the reason
there is none. Nothing is dropped silently: a technique whose rows are all unusable is listed
with those rows' reasons.

`group_combinations(effects)` is the documented grouping of combination techniques: a label
such as "breast care + oxytocin" (components "breast care; oxytocin") whose components include
exactly one of the massage techniques this toolkit is about (oxytocin, neck, Marmet) is analysed
as that technique; combinations of two of them ("oxytocin + marmet") and other labels stay as
they are. It is applied only on request (`evsynth fit --group-combinations`, the sensitivity
grid's `techniques = ["as labelled", "by massage component"]`), so its effect is visible as a
scenario; by default every label is its own technique.
"""

from __future__ import annotations

import re

import pandas as pd

from .table import not_used, uncontrolled
from ..data.studies import COMPONENT_SEPARATOR

MASSAGE_TECHNIQUES = ("oxytocin", "neck", "marmet")
TECHNIQUE_GROUPINGS = ("as labelled", "by massage component")
COVERAGE_COLUMNS = ["technique", "status", "studies_used", "designs", "q50", "q2.5", "q97.5", "own_data", "reason"]
ONE_UNCONTROLLED = "rests on one uncontrolled study"
# order of the table: estimates first, then techniques without one
STATUS_ORDER = ("estimate", "pooled only", "no usable study", "only in combinations", "only as comparator",
                "not analysed")


def components_of(label: str, components) -> list[str]:
    """The parts of a technique: its `components` cell when given, else the label itself."""
    if components is None or (isinstance(components, float) and pd.isna(components)) or not str(components).strip():
        return [label]
    return [part.strip() for part in str(components).split(COMPONENT_SEPARATOR)]


def group_combinations(effects: pd.DataFrame, into=MASSAGE_TECHNIQUES) -> pd.DataFrame:
    """Each row whose components include exactly one technique of `into` takes that technique as
    its label; the label as printed stays in `technique_as_labelled`. Returns a copy."""
    wanted = {t.lower(): t for t in into}
    out = effects.copy()
    out.attrs = dict(effects.attrs)
    as_labelled = effects["technique"].tolist()
    grouped = []
    for label, components in zip(as_labelled, effects.get("components", pd.Series([None] * len(effects)))):
        massage = [wanted[c.lower()] for c in components_of(label, components) if c.lower() in wanted]
        grouped.append(massage[0] if len(massage) == 1 else label)
    out["technique"] = grouped
    out["technique_as_labelled"] = as_labelled
    out.attrs["techniques"] = f"by massage component ({', '.join(into)})"
    return out


def _short(reason: str) -> str:
    """A why_not text without its asides: parentheses dropped, cut at the first '; ' or ', so'
    (the full text is in the rows-not-used table)."""
    text = re.sub(r" \([^()]*\)", "", reason.removeprefix("not usable as reported: "))
    return re.split(r"; |, so ", text, maxsplit=1)[0]


def _designs(uncontrolled_flags) -> str:
    """"2 controlled, 1 pre/post" from the used rows' uncontrolled flags (effects.table.uncontrolled)."""
    pre_post = int(sum(uncontrolled_flags))
    n = len(uncontrolled_flags)
    parts = [f"{n - pre_post} controlled"] if n > pre_post else []
    return ", ".join(parts + ([f"{pre_post} pre/post"] if pre_post else []))


def technique_coverage(effects: pd.DataFrame, summary: pd.DataFrame | None = None,
                       not_analysed: str | None = None, own: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per technique of one outcome's effect table: its estimate or why there is none.

    summary: the posterior summary of the fit (evsynth.summarize), whose rows "technique: <label>"
    give the estimates; None, or a model without per-technique effects, gives none.
    not_analysed: the reason the outcome was not fitted at all (e.g. too few usable studies).

    Columns: technique, status ("estimate", "pooled only": used, but the model has no
    per-technique effect; "no usable study"; "only in combinations": a component never studied
    alone; "only as comparator": the active comparator of head-to-head rows; "not analysed"), studies_used (ids), designs (controlled / pre/post counts of the
    used rows), q50, q2.5, q97.5 (posterior median and 95% interval), own_data (with `own`, from
    methods.own_data: the technique's own-data estimate, no pooling across techniques, as text),
    reason (plain words; "rests on one uncontrolled study" where true).

    The table's columns are read once as lists (`evsynth fit` and `report` call this for every
    outcome, the 15 not analysed included: per-technique pandas slices cost ~6 ms an outcome).
    """
    study = effects["study_id"].tolist()
    used_flag = effects["used"].to_numpy(dtype=bool)
    h2h_flag = effects["head_to_head"].to_numpy(dtype=bool)
    left_out = ~used_flag | h2h_flag  # effects.table.not_used: unusable rows and head-to-head ones
    used_ids = set(study) - {s for s, out in zip(study, left_out) if out}
    estimates = {}
    if summary is not None:
        for name, row in summary.iterrows():
            if str(name).startswith("technique: "):
                estimates[str(name).removeprefix("technique: ")] = row
    labelled = effects["technique_as_labelled"].tolist() if "technique_as_labelled" in effects.columns else None
    flags = uncontrolled(effects).tolist()
    rows = []
    is_used = [s in used_ids for s in study]  # once, not per technique (10,000 x 20,000 rows)
    excluded = None
    for technique, positions in sorted(effects.groupby("technique").indices.items()):
        used = [i for i in positions if is_used[i]]
        entry = {"technique": technique, "studies_used": ", ".join(study[i] for i in used),
                 "designs": _designs([flags[i] for i in used]),
                 "q50": float("nan"), "q2.5": float("nan"), "q97.5": float("nan"), "own_data": ""}
        if own is not None and technique in own.index:
            o = own.loc[technique]
            entry["own_data"] = f"{o['own_q50']:.2f} [{o['own_low']:.2f}, {o['own_high']:.2f}] ({o['how']})"
        if labelled is not None:
            merged = sorted({labelled[i] for i in positions} - {technique})
            if merged:
                entry["technique"] = f"{technique} (with {', '.join(merged)})"
        if not_analysed is not None:
            entry |= {"status": "not analysed", "reason": f"outcome not analysed: {not_analysed}"}
        elif not used:
            if excluded is None:
                excluded = not_used(effects).set_index("study_id")["why_not"]
            why = [f"{study[i]}: {_short(excluded[study[i]])}" for i in positions]
            entry |= {"status": "no usable study", "reason": "; ".join(why)}
        elif technique in estimates:
            est = estimates[technique]
            entry |= {"status": "estimate", "q50": est["q50"], "q2.5": est["q2.5"], "q97.5": est["q97.5"],
                      "reason": ("one study: its estimate is pulled towards the other techniques (partial "
                                 "pooling)" if len(used) == 1 else f"{len(used)} studies")}
            if len(used) == 1 and all(flags[i] for i in used):
                entry["reason"] = f"{ONE_UNCONTROLLED}; " + entry["reason"]
        else:
            entry |= {"status": "pooled only",
                      "reason": "the model has no per-technique effect; these studies enter the pooled estimate"}
        rows.append(entry)
    status = {r["technique"].split(" (with ")[0]: r["status"] for r in rows}
    rows += _component_only_rows(effects, status, not_analysed)
    rows += _comparator_only_rows(effects, status | {r["technique"]: r["status"] for r in rows[len(status):]},
                                  not_analysed)
    table = pd.DataFrame(rows, columns=COVERAGE_COLUMNS)
    table["own_data"] = table["own_data"].fillna("")
    order = sorted(range(len(rows)), key=lambda i: (STATUS_ORDER.index(rows[i]["status"]), rows[i]["technique"]))
    return table.take(order).reset_index(drop=True)


def _component_only_rows(effects: pd.DataFrame, status: dict, not_analysed: str | None) -> list[dict]:
    """Components (e.g. 'marmet' inside 'oxytocin + marmet') that no row studies alone."""
    label_col = "technique_as_labelled" if "technique_as_labelled" in effects.columns else "technique"
    inside: dict[str, list[str]] = {}
    components_column = effects["components"].tolist() if "components" in effects.columns else [None] * len(effects)
    for label, technique, components in zip(effects[label_col].tolist(), effects["technique"].tolist(),
                                            components_column):
        for part in components_of(label, components):
            if part not in status and part != label:
                inside.setdefault(part, [])
                note = f"{label} ({status.get(technique, 'no usable study')})"
                if note not in inside[part]:
                    inside[part].append(note)
    return [{"technique": part, "status": "not analysed" if not_analysed is not None else "only in combinations",
             "studies_used": "", "designs": "", "q50": float("nan"), "q2.5": float("nan"), "q97.5": float("nan"),
             "reason": f"no row studies it alone; part of: {', '.join(where)}"}
            for part, where in sorted(inside.items())]


def _comparator_only_rows(effects: pd.DataFrame, status: dict, not_analysed: str | None) -> list[dict]:
    """Active comparators of head-to-head rows (e.g. 'marmet' in oxytocin vs marmet) that no row
    studies as the technique: only a network model can estimate them."""
    h2h = effects["head_to_head"].to_numpy(dtype=bool)
    if not h2h.any():
        return []
    rows: dict[str, list[tuple[str, str, bool]]] = {}
    out = []
    for comparator, s, t, usable, here in zip(effects["comparator"].tolist(), effects["study_id"].tolist(),
                                              effects["technique"].tolist(), effects["used"].to_numpy(dtype=bool),
                                              h2h):
        if here and not pd.isna(comparator):
            rows.setdefault(comparator, []).append((s, t, bool(usable)))
    for comparator in sorted(rows):
        if comparator in status:
            continue
        where = ", ".join(f"{s} ({t} vs {comparator})" for s, t, _ in rows[comparator])
        usable = any(u for _, _, u in rows[comparator])
        out.append({"technique": comparator,
                    "status": "not analysed" if not_analysed is not None else "only as comparator",
                    "studies_used": "", "designs": "", "q50": float("nan"), "q2.5": float("nan"),
                    "q97.5": float("nan"),
                    "reason": f"only the comparator of head-to-head rows: {where}; " + (
                        "the network model (evsynth network) can use them" if usable else "none of them usable")})
    return out


def format_coverage(table: pd.DataFrame) -> pd.DataFrame:
    """The coverage table for reading: the estimate as 'median [2.5%, 97.5%]'."""
    estimate = table.apply(lambda r: "" if pd.isna(r["q50"]) else f"{r['q50']:.2f} [{r['q2.5']:.2f}, {r['q97.5']:.2f}]",
                           axis=1)
    view = table.assign(estimate=estimate)
    return view[["technique", "status", "estimate", "own_data", "studies_used", "designs", "reason"]]


def coverage_lines(table: pd.DataFrame) -> list[str]:
    """The coverage table as sentences, one per technique (for a terminal): the estimate with its
    studies and designs, or the status and the reason there is none."""
    lines = []
    for row in format_coverage(table).itertuples(index=False):
        if row.estimate:
            own = f"; own data alone: {row.own_data}" if row.own_data else ""
            lines.append(f"{row.technique}: {row.estimate} from {row.studies_used} ({row.designs}; {row.reason})"
                         f"{own}")
        else:
            lines.append(f"{row.technique}: {row.status}: {row.reason}")
    return lines
