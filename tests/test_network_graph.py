"""The network's structure (evsynth.model.network_graph) on small hand-made networks whose nodes,
edges, loops and refusals are known by inspection: every control label one node (case-insensitive),
edges in one order (reference last, otherwise alphabetical) with their study counts, the comparisons
that lie on a loop, and each refusal word for word (issue 28: the network module's mutants)."""

import pandas as pd
import pytest

from evsynth.data.studies import load_studies
from evsynth.effects import compute_effects
from evsynth.model import network_graph as ng


def effects_of(spec, outcome="o", measure="SMD", **extra) -> pd.DataFrame:
    """spec: (study_id, technique, comparator) rows of a synthetic table (yi 0.3, se 0.2)."""
    rows = [{"study_id": s, "citation": "synthetic", "source_level": "synthetic", "design": "effect",
             "technique": t, "comparator": c, "outcome": outcome, "yi": 0.3, "sei": 0.2, "measure": measure,
             "synthetic": True} | extra for s, t, c in spec]
    return compute_effects(load_studies(pd.DataFrame(rows)), measure=measure)


def test_network_table_nodes_attrs_and_prepost_rows():
    effects = effects_of([("p1", "B", "baseline"), ("s1", "A", "Usual Care"), ("s2", "B", "A"),
                          ("s3", "A", "no massage")])
    table = ng.network_table(effects)
    assert table["study_id"].tolist() == ["s1", "s2", "s3"] and table.index.tolist() == [0, 1, 2]
    assert table.columns.tolist() == effects.columns.tolist() + ["treat_node", "comp_node"]  # nothing else added
    assert table["treat_node"].tolist() == ["A", "B", "A"]
    assert table["comp_node"].tolist() == ["control", "A", "control"]  # any case of any control label
    assert table.attrs["reference"] == "control" and table.attrs["prepost_left_out"] == ["p1"]
    assert table.attrs["prepost_as_control"] is False
    asked = ng.network_table(effects, prepost_as_control=True)
    assert asked["study_id"].tolist() == ["p1", "s1", "s2", "s3"]
    assert asked["comp_node"].tolist() == ["control", "control", "A", "control"]  # 'baseline' is a control label
    assert asked.attrs["prepost_left_out"] == [] and asked.attrs["prepost_as_control"] is True
    # the reference: a control label in any case is the node 'control'; a technique label stays itself
    assert ng.network_table(effects, reference="Usual care").attrs["reference"] == "control"
    assert ng.network_table(effects, reference="A").attrs["reference"] == "A"
    # the control labels can be given: then 'usual care' is a node of its own
    own = ng.network_table(effects, control_labels=("No Massage",))
    assert own["comp_node"].tolist() == ["Usual Care", "A", "control"]
    assert own.attrs["reference"] == "control"
    assert ng.network_table(effects, reference="usual care", control_labels=("no massage",)).attrs[
        "reference"] == "usual care"
    # unused rows never enter (attrs of the effect table kept)
    assert set(effects.attrs) <= set(table.attrs)


def test_comparisons_one_order_with_counts():
    effects = effects_of([("s1", "B", "control"), ("s2", "A", "control"), ("s3", "A", "B"), ("s4", "B", "A"),
                          ("s5", "C", "B"), ("s6", "control", "C")])
    edges = ng.comparisons(ng.network_table(effects))
    assert edges.columns.tolist() == ["a", "b", "studies"] and edges.index.tolist() == [0, 1, 2, 3, 4]
    assert list(edges.itertuples(index=False, name=None)) == [
        ("A", "B", 2), ("A", "control", 1), ("B", "C", 1), ("B", "control", 1), ("C", "control", 1)]
    # with a technique as the reference, it goes last; without one in attrs, all alphabetical
    by_b = ng.comparisons(ng.network_table(effects, reference="B"))
    assert list(by_b.itertuples(index=False, name=None)) == [
        ("A", "B", 2), ("A", "control", 1), ("C", "B", 1), ("C", "control", 1), ("control", "B", 1)]
    table = ng.network_table(effects)
    table.attrs = {}
    assert list(ng.comparisons(table).itertuples(index=False, name=None)) == [
        ("A", "B", 2), ("A", "control", 1), ("B", "C", 1), ("B", "control", 1), ("C", "control", 1)]
    assert ng._edge("control", "A", "control") == ("A", "control")
    assert ng._edge("B", "A", None) == ("A", "B") and ng._edge("A", "B", "A") == ("B", "A")


def test_splittable_comparisons_are_the_edges_on_a_loop():
    # a triangle A-B-control with a pendant C (C-control) and a chain D-C: only the triangle's edges
    effects = effects_of([("s1", "A", "control"), ("s2", "B", "control"), ("s3", "A", "B"), ("s4", "C", "control"),
                          ("s5", "D", "C")])
    assert ng.splittable_comparisons(ng.network_table(effects)) == [("A", "B"), ("A", "control"), ("B", "control")]
    # a chain has no loop; a square A-B-C-control has four splittable edges and no others
    chain = effects_of([("s1", "A", "control"), ("s2", "B", "A"), ("s3", "C", "B")])
    assert ng.splittable_comparisons(ng.network_table(chain)) == []
    square = effects_of([("s1", "A", "control"), ("s2", "B", "A"), ("s3", "C", "B"), ("s4", "C", "control")])
    assert ng.splittable_comparisons(ng.network_table(square)) == [("A", "B"), ("A", "control"), ("B", "C"),
                                                                   ("C", "control")]
    assert ng._connected("A", [("A", "B"), ("C", "B"), ("D", "E")]) == {"A", "B", "C"}
    assert ng._connected("E", [("A", "B"), ("C", "B"), ("D", "E")]) == {"D", "E"}
    assert ng._connected("Z", [("A", "B")]) == {"Z"}


def test_refusals_word_for_word():
    cut = effects_of([("s1", "A", "control"), ("s2", "C", "B")])
    with pytest.raises(ValueError) as err:
        ng.prepare_network(cut, "control")
    assert str(err.value) == (
        "techniques ['B', 'C'] are not connected to the reference 'control' by any chain of comparisons, so "
        "their effects versus it are not identified; analyse that part of the network separately (choose one "
        "of them as `reference`)")
    with pytest.raises(ValueError) as err:
        ng.prepare_network(cut, "Z")
    assert str(err.value) == "reference 'Z' is not a node of the network (nodes: ['A', 'B', 'C', 'control'])"
    only_prepost = effects_of([("p1", "B", "baseline"), ("p2", "C", "baseline")])
    with pytest.raises(ValueError) as err:
        ng.prepare_network(only_prepost, "control")
    assert str(err.value) == ("only pre/post rows (p1, p2): a baseline is not a control arm; use "
                              "prepost_as_control=True (--prepost-as-control) to treat it as one")
    assert ng.prepare_network(only_prepost, "control", prepost_as_control=True)["study_id"].tolist() == ["p1", "p2"]
    same = effects_of([("s1", "A", "control"), ("s2", "usual care", "control")])
    with pytest.raises(ValueError) as err:
        ng.prepare_network(same, "control")
    assert str(err.value) == "study 's2': technique and comparator are the same node"
    # raw mean differences in two units are not pooled (the table's measure, from its attrs)
    md = pd.concat([effects_of([("s1", "A", "control")], measure="MD", unit="ml"),
                    effects_of([("s2", "B", "A")], measure="MD", unit="g")], ignore_index=True)
    md.attrs = effects_of([("s1", "A", "control")], measure="MD", unit="ml").attrs
    assert md.attrs["measure"] == "MD"
    with pytest.raises(ValueError, match=r"^MD pools raw differences, but the units differ \(g, ml\); "):
        ng.prepare_network(md, "control")
    # a checked table comes back whole
    fine = effects_of([("s1", "A", "control"), ("s2", "B", "A")])
    table = ng.prepare_network(fine, "control")
    assert table["study_id"].tolist() == ["s1", "s2"] and table.attrs["reference"] == "control"
    assert ng.prepare_network(fine, "A").attrs["reference"] == "A"


def test_one_outcome_per_network_unless_pooled_on_purpose():
    a = effects_of([("s1", "A", "control")], outcome="milk volume")
    b = effects_of([("s2", "A", "control")], outcome="prolactin")
    c = effects_of([("s3", "A", "control")], outcome="weight")
    mixed = pd.concat([a, b, c], ignore_index=True)
    mixed.attrs = dict(a.attrs)
    with pytest.raises(ValueError) as err:
        ng.check_one_outcome(mixed)
    assert str(err.value) == (
        "the effect table mixes 3 outcomes (milk volume, prolactin, weight): a network compares techniques on one "
        "outcome; select one (effects[effects.outcome == ...]) or pool them on purpose with "
        "analysis.group_by_outcome(effects, pool_outcomes=True)")
    with pytest.raises(ValueError, match="mixes 3 outcomes"):
        ng.prepare_network(mixed, "control")
    mixed.attrs["pooled_outcomes"] = True
    assert ng.check_one_outcome(mixed) is None
    # rows no model uses do not count as an outcome of the network
    unused = mixed.copy()
    unused.attrs = {k: v for k, v in mixed.attrs.items() if k != "pooled_outcomes"}
    unused.loc[unused["outcome"] != "weight", "used"] = False
    assert ng.check_one_outcome(unused) is None
    # head-to-head rows count (the network uses them)
    h2h = pd.concat([a, effects_of([("s4", "A", "B")], outcome="prolactin")], ignore_index=True)
    h2h.attrs = dict(a.attrs)
    with pytest.raises(ValueError, match=r"mixes 2 outcomes \(milk volume, prolactin\)"):
        ng.check_one_outcome(h2h)
