"""Bias conclusions (evsynth.methods.bias) at and on both sides of their rules' boundaries: PET-PEESE
picks PEESE only when PET's one-sided p is below alpha (equal: PET), in the expected direction;
the funnel's significance regions put a p exactly at a cut in the band above it."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from evsynth.methods.bias import funnel_data, pet_peese


def effect_table(yi, sei) -> pd.DataFrame:
    sei = np.asarray(sei, float)
    return pd.DataFrame({"study_id": [f"s{i}" for i in range(len(sei))], "yi": np.asarray(yi, float),
                         "sei": sei, "vi": sei**2})


def small_study_table(intercept=0.3):
    sei = np.linspace(0.05, 0.4, 12)
    return effect_table(intercept + 0.8 * sei + 0.05 * np.sin(np.arange(12) * 2.1), sei)


def test_pet_peese_switches_exactly_at_alpha():
    table = small_study_table()
    p = pet_peese(table, direction="positive").table.loc["PET", "p_one_sided"]
    assert 0 < p < 0.05
    at = pet_peese(table, alpha=p, direction="positive")
    assert at.chosen == "PET" and at.rule.endswith(f">= {p:g}, so PET")
    assert at.estimate == at.table.loc["PET", "intercept"] and at.ci_low == at.table.loc["PET", "ci_low"]
    above = pet_peese(table, alpha=np.nextafter(p, 1), direction="positive")
    assert above.chosen == "PEESE" and above.rule.startswith(f"PET intercept one-sided p (positive) = {p:.4f} <")
    assert above.estimate == above.table.loc["PEESE", "intercept"]
    assert above.ci_high == above.table.loc["PEESE", "ci_high"]
    assert str(above).startswith(f"PET-PEESE: PEESE estimate {above.estimate:.4f} (95% CI ")


def test_pet_peese_one_sided_p_follows_the_expected_direction():
    table = small_study_table()
    pet = pet_peese(table, direction="positive").table.loc["PET"]
    assert pet["p_one_sided"] == pytest.approx(stats.t.sf(pet["t"], pet["df"]), rel=1e-12)
    against = pet_peese(table, direction="negative")
    # a positive intercept tested for a negative effect: p one-sided = 1 - p(positive), PET kept
    assert against.table.loc["PET", "p_one_sided"] == pytest.approx(1 - pet["p_one_sided"], rel=1e-12)
    assert against.chosen == "PET"
    assert pet_peese(table).direction == "positive"  # sign of the inverse-variance mean
    # the default direction at a pooled mean of exactly 0 is positive (>= 0)
    zero = effect_table([0.1, -0.1, 0.2, -0.2], [0.1, 0.1, 0.2, 0.2])
    assert pet_peese(zero).direction == "positive"
    assert pet_peese(effect_table([0.1, -0.1001, 0.2, -0.2], [0.1, 0.1, 0.2, 0.2])).direction == "negative"


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1])
def test_pet_peese_alpha_outside_the_unit_interval_is_refused(alpha):
    with pytest.raises(ValueError, match=f"alpha {alpha} must lie in"):
        pet_peese(small_study_table(), alpha=alpha)


def test_funnel_regions_at_and_around_each_cut():
    sei = np.ones(7)
    # two-sided p exactly at, and either side of, the 0.05 and 0.01 cuts; and a p of 0.5
    z = [stats.norm.isf(0.025), stats.norm.isf(0.025) * 1.001, stats.norm.isf(0.025) * 0.999,
         stats.norm.isf(0.005) * 1.001, stats.norm.isf(0.005) * 0.999, 0.674, stats.norm.isf(0.05) * 0.999]
    points = funnel_data(effect_table(z, sei)).points
    p = points["p"].to_numpy()
    np.testing.assert_allclose(p, 2 * stats.norm.sf(np.abs(z)), rtol=1e-12)
    expected = []
    for value in p:
        if value < 0.01:
            expected.append("p < 0.01")
        elif value < 0.05:
            expected.append("0.01 <= p < 0.05")
        elif value < 0.1:
            expected.append("0.05 <= p < 0.1")
        else:
            expected.append("p >= 0.1")
    assert points["region"].tolist() == expected
    assert points["region"].tolist()[1:] == ["0.01 <= p < 0.05", "0.05 <= p < 0.1", "p < 0.01",
                                             "0.01 <= p < 0.05", "p >= 0.1", "p >= 0.1"]
