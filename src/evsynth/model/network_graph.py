"""The network's structure, with no model: nodes (every control label is the node "control"),
edges (comparisons with their number of studies), loops (which comparisons can be split) and the
checks that make a network analysable (connected to the reference, one outcome). Used by the
model description (evsynth.model.description.network) and by the verbs in evsynth.methods.network."""

from __future__ import annotations

from collections import defaultdict

import pandas as pd

from ..effects.table import CONTROL_LABELS, check_poolable, uncontrolled, used_effects


# --------------------------------------------------------------------------- network structure


def _reference_label(reference: str, control_labels) -> str:
    return "control" if reference.lower() in control_labels else reference


def network_table(effects: pd.DataFrame, reference: str = "control", control_labels=CONTROL_LABELS,
                  prepost_as_control: bool = False) -> pd.DataFrame:
    """The usable rows (controlled and head-to-head) with their nodes: `treat_node`, `comp_node`.

    Every comparator label in `control_labels` becomes the node "control"; a technique label as
    `reference` makes that technique the reference instead. Pre/post rows (a change from
    baseline) are left out unless `prepost_as_control`; their ids are in attrs["prepost_left_out"].

    Example:
        >>> import evsynth as es
        >>> studies = es.load_studies("studies/bcg.csv", extra_columns=["ablat", "alloc"])
        >>> table = network_table(es.compute_effects(studies, measure="RR"))
        >>> table.loc[0, ["study_id", "treat_node", "comp_node"]].tolist()
        ['bcg01', 'BCG vaccine', 'control']
    """
    labels = frozenset(label.lower() for label in control_labels)
    table = used_effects(effects, allow_head_to_head=True)
    pre_post = uncontrolled(table)
    left_out = [] if prepost_as_control else table.loc[pre_post, "study_id"].tolist()
    if left_out:
        table = table[~pre_post].reset_index(drop=True)

    def node(label: str) -> str:
        return "control" if label.lower() in labels else label

    table["treat_node"] = table["technique"].map(node)
    table["comp_node"] = table["comparator"].map(node)
    table.attrs |= {"reference": _reference_label(reference, labels), "prepost_left_out": left_out,
                    "prepost_as_control": prepost_as_control}
    return table


def _edge(a: str, b: str, reference: str | None) -> tuple[str, str]:
    """An edge in one order everywhere: the reference last (technique vs reference, the sign of the
    technique effects), otherwise alphabetical."""
    a, b = sorted((a, b))
    return (b, a) if a == reference else (a, b)


def comparisons(table: pd.DataFrame) -> pd.DataFrame:
    """One row per edge (pair of nodes, reference last) with its number of studies."""
    reference = table.attrs.get("reference")
    pairs = [_edge(a, b, reference) for a, b in zip(table["treat_node"], table["comp_node"])]
    counts = pd.Series(pairs, dtype=object).value_counts()
    return pd.DataFrame({"a": [p[0] for p in counts.index], "b": [p[1] for p in counts.index],
                         "studies": counts.to_numpy()}).sort_values(["a", "b"], ignore_index=True)


def _connected(start: str, edges: list[tuple[str, str]]) -> set[str]:
    neighbours = defaultdict(set)
    for a, b in edges:
        neighbours[a].add(b)
        neighbours[b].add(a)
    seen, todo = {start}, [start]
    while todo:
        for nxt in neighbours[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def splittable_comparisons(table: pd.DataFrame) -> list[tuple[str, str]]:
    """Comparisons with direct evidence and independent indirect evidence: the two nodes are
    still connected after removing every study of that comparison (i.e. the edge lies on a loop)."""
    edges = list(zip(comparisons(table)["a"], comparisons(table)["b"]))
    return [(a, b) for a, b in edges if b in _connected(a, [e for e in edges if e != (a, b)])]


def _check_connected(table: pd.DataFrame, reference: str) -> None:
    nodes = set(table["treat_node"]) | set(table["comp_node"])
    if reference not in nodes:
        raise ValueError(f"reference {reference!r} is not a node of the network (nodes: {sorted(nodes)})")
    edges = list(zip(table["treat_node"], table["comp_node"]))
    cut_off = sorted(nodes - _connected(reference, edges))
    if cut_off:
        raise ValueError(f"techniques {cut_off} are not connected to the reference {reference!r} by any "
                         "chain of comparisons, so their effects versus it are not identified; analyse "
                         "that part of the network separately (choose one of them as `reference`)")


def check_one_outcome(effects: pd.DataFrame) -> None:
    """A network compares techniques on one outcome: refuse a table that mixes outcomes (as the CLI,
    which fits one network per outcome), unless the outcomes were pooled on purpose
    (analysis.group_by_outcome(pool_outcomes=True) marks the table)."""
    outcomes = sorted(set(used_effects(effects, allow_head_to_head=True)["outcome"]))
    if len(outcomes) > 1 and not effects.attrs.get("pooled_outcomes"):
        raise ValueError(f"the effect table mixes {len(outcomes)} outcomes ({', '.join(outcomes)}): a network "
                         "compares techniques on one outcome; select one (effects[effects.outcome == ...]) or "
                         "pool them on purpose with analysis.group_by_outcome(effects, pool_outcomes=True)")


def prepare_network(effects: pd.DataFrame, reference: str, prepost_as_control: bool = False) -> pd.DataFrame:
    check_one_outcome(effects)
    table = network_table(effects, reference, prepost_as_control=prepost_as_control)
    if table.empty and table.attrs["prepost_left_out"]:
        raise ValueError(f"only pre/post rows ({', '.join(table.attrs['prepost_left_out'])}): a baseline is not a "
                         "control arm; use prepost_as_control=True (--prepost-as-control) to treat it as one")
    table = check_poolable(table, effects.attrs.get("measure"))
    loops = table["treat_node"] == table["comp_node"]
    if loops.any():
        raise ValueError(f"study {table.loc[loops, 'study_id'].iloc[0]!r}: technique and comparator are the same node")
    _check_connected(table, table.attrs["reference"])
    return table
