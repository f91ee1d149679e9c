"""Each technique on its own data (evsynth.methods.own_data): the own estimate beside the partially
pooled one, "rests on one uncontrolled study", and P(>0) withheld when the own 95% interval includes 0
(both sides of the rule)."""

import numpy as np
import pandas as pd
import pytest

from evsynth.effects.techniques import ONE_UNCONTROLLED, coverage_lines, technique_coverage
from evsynth.methods.own_data import Z975, own_data, withhold_unsupported


def table(rows):
    out = pd.DataFrame([{"study_id": s, "technique": t, "comparator": "control", "outcome": "o", "unit": "",
                         "design": d, "measure": "SMD", "yi": y, "sei": se, "vi": se**2, "n_total": 30,
                         "censored": False, "head_to_head": False, "used": True, "why_not": "", "synthetic": True}
                        for s, t, d, y, se in rows])
    out.attrs["measure"] = "SMD"
    return out


def test_one_study_is_its_own_estimate_and_the_rule_boundary():
    se = 0.2
    just_above = Z975 * se * 1.001  # lower limit just above 0
    t = table([("a", "x", "pre_post", just_above, se), ("b", "y", "two_group", Z975 * se * 0.999, se),
               ("c", "z", "two_group", 0.5, 0.1), ("d", "z", "two_group", 0.7, 0.1)])
    own = own_data(t)
    assert own.loc["x", "own_low"] == pytest.approx(just_above - Z975 * se)
    assert own.loc["x", "supports_positive"] and not own.loc["y", "supports_positive"]
    assert own.loc["x", "one_uncontrolled"] and not own.loc["y", "one_uncontrolled"]
    assert own.loc["z", "k"] == 2 and own.loc["z", "how"] == "random effects on its 2 studies, exact"
    assert 0.5 < own.loc["z", "own_q50"] < 0.7
    summary = pd.DataFrame({"q50": [0.4, 0.4, 0.4], "q2.5": [0.1, 0.1, 0.1], "q97.5": [0.7, 0.7, 0.7],
                            "P(>0)": [0.99, 0.99, 0.99]},
                           index=["technique: x", "technique: y", "technique: z"])
    shown, blanked = withhold_unsupported(summary, own)
    assert "y" in blanked and "x" not in blanked and np.isnan(shown.loc["technique: y", "P(>0)"])
    # two studies: tau rests on its prior, so the own interval may reach 0; the rule follows it either way
    assert ("z" in blanked) == (own.loc["z", "own_low"] <= 0)
    assert shown.loc["technique: x", "P(>0)"] == 0.99
    lines = coverage_lines(technique_coverage(t, shown, own=own))
    x = next(line for line in lines if line.startswith("x:"))
    assert ONE_UNCONTROLLED in x and "; own data alone: " in x and "(its one study)" in x
    assert ONE_UNCONTROLLED not in next(line for line in lines if line.startswith("y:"))


def test_a_censored_single_study_never_supports_p():
    t = table([("a", "x", "two_group", 1.0, 0.2)])
    t["censored"] = True
    assert not own_data(t).loc["x", "supports_positive"]
