"""Node-split figures and verdict against a closed form: with a vague prior on the effects and the
between-study SD held at ~0, a control-A-B triangle's inconsistency posterior is normal with the
Bucher (1997) difference as mean and its SE as sd, so the split's estimate, interval and Bayesian
p-value 2 min(P(diff > 0), P(diff < 0)) are closed forms; `flagged` flips where the interval's edge
crosses 0 (|difference| / SE = 1.959964)."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from evsynth.effects import compute_effects
from evsynth.data.studies import load_studies
from evsynth.methods.network import node_split

PRIORS = {"mu": "normal(0, 1000)", "tau": "halfnormal(0.00001)"}
SE = {("A", "control"): [0.1, 0.15], ("B", "control"): [0.12, 0.2], ("A", "B"): [0.1, 0.25]}


def triangle(direct_shift: float) -> pd.DataFrame:
    """Two studies per edge; A-control and B-control fixed, the A-B studies at indirect + shift."""
    y = {("A", "control"): [0.5, 0.3], ("B", "control"): [0.1, 0.2]}
    indirect = np.mean(y[("A", "control")]) - np.mean(y[("B", "control")])  # not the IV means: any values do
    y[("A", "B")] = [indirect + direct_shift + 0.05, indirect + direct_shift - 0.05]
    rows = [{"study_id": f"{t}-{c}-{j}", "citation": "synthetic", "source_level": "synthetic", "design": "effect",
             "technique": t, "comparator": c, "outcome": "o", "yi": y[(t, c)][j], "sei": SE[(t, c)][j],
             "measure": "SMD", "synthetic": True} for (t, c) in SE for j in range(2)]
    return compute_effects(load_studies(pd.DataFrame(rows)))


def bucher(effects: pd.DataFrame) -> tuple[float, float, float]:
    """(direct A-B, indirect A-B, SE of their difference), inverse-variance common-effect means."""
    def pooled(t, c):
        rows = effects[(effects["technique"] == t) & (effects["comparator"] == c)]
        w = 1 / rows["sei"].to_numpy() ** 2
        return float(w @ rows["yi"].to_numpy() / w.sum()), 1 / w.sum()

    (d, v1), (a, v2), (b, v3) = pooled("A", "B"), pooled("A", "control"), pooled("B", "control")
    return d, a - b, float(np.sqrt(v1 + v2 + v3))


@pytest.mark.parametrize("shift", [0.0, 0.2, -0.35, 0.6])
def test_split_matches_the_bucher_closed_form(shift):
    effects = triangle(shift)
    direct, indirect, se = bucher(effects)
    row = node_split(effects, PRIORS, split=[("A", "B")]).iloc[0]
    diff = direct - indirect
    assert row["comparison"] == "A vs B" and row["direct_studies"] == 2 and row["engine"] == "exact"
    assert row["direct"] == pytest.approx(direct, abs=1e-5)
    assert row["indirect"] == pytest.approx(indirect, abs=1e-5)
    assert row["inconsistency"] == pytest.approx(diff, abs=1e-5)
    assert row["q2.5"] == pytest.approx(diff - 1.959964 * se, abs=1e-5)
    assert row["q97.5"] == pytest.approx(diff + 1.959964 * se, abs=1e-5)
    assert row["p_value"] == pytest.approx(2 * stats.norm.sf(abs(diff) / se), abs=1e-5)
    assert row["flagged"] == (abs(diff) / se > 1.959964)


@pytest.mark.parametrize("sign", [1, -1])
def test_flagged_flips_where_the_interval_s_edge_crosses_zero(sign):
    direct, indirect, se = bucher(triangle(0.0))
    # the A-B studies' shift moves the difference one for one (the indirect path is unchanged)
    for z, flagged in ((1.959964 * 0.999, False), (1.959964 * 1.001, True)):
        row = node_split(triangle(sign * z * se - (direct - indirect)), PRIORS, split=[("A", "B")]).iloc[0]
        assert row["inconsistency"] / se == pytest.approx(sign * z, abs=1e-4)
        assert bool(row["flagged"]) is flagged, (z, row.to_dict())
        assert bool(row["p_value"] < 0.05) is flagged


def test_node_split_table_columns_counts_and_notes():
    effects = triangle(0.2)
    table = node_split(effects, PRIORS)  # every splittable comparison
    assert table.columns.tolist() == ["comparison", "direct_studies", "direct", "indirect", "inconsistency", "q2.5",
                                      "q97.5", "p_value", "flagged", "diagnostics_ok", "engine"]
    assert table["comparison"].tolist() == ["A vs B", "A vs control", "B vs control"]
    assert table["direct_studies"].tolist() == [2, 2, 2] and table["diagnostics_ok"].all()
    assert table.attrs["note"] == ""
    # a B-vs-A study counts as direct evidence on A vs B
    reversed_row = effects.iloc[[4]].assign(study_id="B-A-x", technique="B", comparator="A",
                                            yi=-effects["yi"].iloc[4])
    more = pd.concat([effects, reversed_row], ignore_index=True)
    more.attrs = dict(effects.attrs)
    assert node_split(more, PRIORS, split=[("A", "B")])["direct_studies"].tolist() == [3]
    with pytest.raises(ValueError, match=r"^engine 'nuts' unknown; choose auto, exact or pymc$"):
        node_split(effects, PRIORS, engine="nuts")
    star = triangle(0.0)
    star = star[star["comparator"] == "control"].reset_index(drop=True)
    empty = node_split(star, PRIORS)
    assert empty.empty and empty.attrs["note"] == (
        "the network has no closed loop: direct and indirect evidence never overlap, so consistency cannot be "
        "checked and the estimates rest on it untested")
