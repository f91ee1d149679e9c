"""Prior-data conflict verdicts (evsynth.methods.conflict) at and on both sides of their boundaries,
on constructed posteriors: a study's predictive p at exactly the interval's edge is inside, a hair
beyond it is outside; a between-study SD at exactly the prior tail is not flagged, a hair past it is.
The p values and the prior CDFs are checked against closed forms (normal CDF; scipy distributions)."""

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from evsynth.methods.conflict import prior_data_conflict

SE = 0.2
TAU = 0.3
SCALE = np.sqrt(TAU**2 + SE**2)  # as the check computes it


def effects(yi, sei=None, censored=None):
    k = len(yi)
    sei = np.full(k, SE) if sei is None else np.asarray(sei, float)
    out = pd.DataFrame({"study_id": [f"s{i}" for i in range(k)], "technique": "t", "comparator": "control",
                        "outcome": "o", "unit": "", "design": "two_group", "measure": "SMD",
                        "yi": np.asarray(yi, float), "sei": sei, "vi": sei**2, "used": True, "head_to_head": False,
                        "why_not": "", "censored": False if censored is None else censored, "synthetic": True})
    out.attrs["measure"] = "SMD"
    return out


def fit(mu=0.0, tau=TAU, draws=1, prior_tau="halfnormal(0.5)"):
    """A posterior of `draws` identical draws (mu, tau): the predictive is exactly N(mu, tau² + se²)."""
    tree = az.from_dict({"posterior": {"mu": np.full((1, draws), mu), "tau": np.full((1, draws), tau)}})
    tree.attrs["prior_tau"] = prior_tau
    return tree


def edge_case(y: float, upper: bool) -> tuple[float, float]:
    """(y, level) near the given y such that y's predictive p (as the check computes it, from
    mu 0 and SCALE) is exactly the lower (1 - level) / 2 or upper (1 + level) / 2 edge in floats."""
    for _ in range(200):
        p = float(np.mean(stats.norm.cdf((np.array([y]) - 0.0) / SCALE)))
        level = 2 * p - 1 if upper else 1 - 2 * p
        candidates, down, up = [level], level, level
        for _ in range(100):
            down, up = np.nextafter(down, 0), np.nextafter(up, 1)
            candidates += [down, up]
        for level in candidates:
            if ((1 + level) / 2 if upper else (1 - level) / 2) == p:
                return y, level
        y = np.nextafter(y, np.inf)
    raise AssertionError("no exact edge found")


def test_predictive_p_is_the_normal_cdf_of_the_standardised_effect():
    yi = [-0.5, 0.0, 0.2, 0.9]
    check = prior_data_conflict(fit(mu=0.1, draws=4), effects(yi))
    z = (np.array(yi) - 0.1) / SCALE  # -1.66, -0.28, 0.28, 2.22
    np.testing.assert_allclose(check.table["p_predictive"], stats.norm.cdf(z), rtol=1e-12)
    assert check.table["outside"].tolist() == [False, False, False, True]
    # the printed interval: 2.5% and 97.5% points of predictive draws (one normal per posterior draw;
    # 20000 draws: Monte-Carlo sd of each point about 0.002)
    row = prior_data_conflict(fit(mu=0.1, draws=20000), effects([0.0])).table.iloc[0]
    assert row["lower"] == pytest.approx(0.1 - 1.959964 * SCALE, abs=0.01)
    assert row["upper"] == pytest.approx(0.1 + 1.959964 * SCALE, abs=0.01)


@pytest.mark.parametrize("upper", [False, True])
def test_a_study_exactly_at_the_interval_edge_is_inside_and_a_hair_beyond_is_outside(upper):
    at, level = edge_case((1 if upper else -1) * 1.96 * SCALE, upper)
    assert 0.95 < level < 0.9501
    nudge = 1e-9 * (1 if upper else -1)  # away from the centre
    check = prior_data_conflict(fit(), effects([at, at + nudge, at - nudge]), level=level)
    assert check.table["outside"].tolist() == [False, True, False]
    assert check.warnings[0].startswith("1 of 3 studies lie outside their 95% posterior predictive interval: s1 (yi ")
    check = prior_data_conflict(fit(), effects([at, at + nudge, at - nudge]))  # level 0.95: all three outside
    assert check.table["outside"].all()


def test_level_sets_the_interval():
    y = SCALE * stats.norm.ppf(0.93)  # inside the 95% interval, outside the 80%
    assert prior_data_conflict(fit(), effects([y])).ok
    check = prior_data_conflict(fit(), effects([y]), level=0.8)
    assert not check.ok and "outside their 80% posterior predictive interval" in check.warnings[0]


def test_censored_rows_are_not_checked_and_are_named():
    check = prior_data_conflict(fit(), effects([0.0, 5.0], censored=[False, True]))
    assert check.table["study_id"].tolist() == ["s0"] and check.ok
    assert "censored rows not checked (yi is a bound): s1" in check.notes


@pytest.mark.parametrize("prior, cdf", [
    ("halfnormal(0.5)", lambda x: stats.halfnorm.cdf(x, 0, 0.5)),
    ("halfcauchy(0.2)", lambda x: stats.halfcauchy.cdf(x, 0, 0.2)),
    ("halfstudent_t(3, 0.5)", lambda x: 2 * stats.t(3, 0, 0.5).cdf(x) - 1),
    ("exponential(2)", lambda x: 1 - np.exp(-2 * x)),
    ("uniform(0, 2)", lambda x: x / 2),
])
def test_prior_tail_is_the_prior_cdf_at_the_posterior_median(prior, cdf):
    taus = np.array([[0.1, 0.3, 0.7]])  # median 0.3
    tree = az.from_dict({"posterior": {"mu": np.zeros((1, 3)), "tau": taus}})
    check = prior_data_conflict(tree, effects([0.0]), priors={"tau": prior})
    assert check.sd_tails["tau"] == pytest.approx(cdf(0.3), rel=1e-12)


def test_prior_tail_flags_strictly_beyond_the_tail():
    value = prior_data_conflict(fit(tau=1.3), effects([0.0])).sd_tails["tau"]
    assert value == pytest.approx(stats.halfnorm.cdf(1.3, 0, 0.5), rel=1e-12)  # 0.9907
    assert prior_data_conflict(fit(tau=1.3), effects([0.0])).warnings[0].startswith(
        "tau: posterior median 1.3 lies at the 99.07% point of its prior halfnormal(0.5)")
    assert prior_data_conflict(fit(tau=1.3), effects([0.0]), tail=value).ok  # equal: not beyond
    assert not prior_data_conflict(fit(tau=1.3), effects([0.0]), tail=np.nextafter(value, 0)).ok
    assert prior_data_conflict(fit(tau=1.28), effects([0.0])).ok  # cdf 0.9896 < 0.99


def test_prior_given_overrides_the_fit_s_and_a_missing_prior_is_a_note():
    assert not prior_data_conflict(fit(tau=1.3), effects([0.0])).ok
    assert prior_data_conflict(fit(tau=1.3), effects([0.0]), priors={"tau": "halfnormal(5)"}).ok
    check = prior_data_conflict(fit(tau=1.3, prior_tau=None), effects([0.0]))
    assert check.ok and "the prior of tau is not recorded in this fit: its tail is not checked" in check.notes


# --------------------------------------------------------------------------- what is checked, and the texts


def two_technique_fit(centres=(0.0, 3.0), tau=0.1, draws=1):
    te = np.tile(np.asarray(centres, float), (1, draws, 1))
    return az.from_dict({"posterior": {"mu": np.full((1, draws), 1.5), "tau": np.full((1, draws), tau),
                                       "technique_effect": te}},
                        dims={"technique_effect": ["technique"]}, coords={"technique": ["a", "b"]})


def test_per_technique_centres_are_the_technique_effects():
    table = effects([0.1, 2.8, 3.3]).assign(technique=["a", "b", "b"])
    check = prior_data_conflict(two_technique_fit(), table)
    scale = np.sqrt(0.1**2 + SE**2)
    expected = stats.norm.cdf((np.array([0.1, 2.8, 3.3]) - np.array([0.0, 3.0, 3.0])) / scale)
    np.testing.assert_allclose(check.table["p_predictive"], expected, rtol=1e-12)
    assert check.ok  # against mu = 1.5 every one would be far outside
    assert check.table["technique"].tolist() == ["a", "b", "b"]
    assert check.table["yi"].tolist() == [0.1, 2.8, 3.3] and check.table["sei"].tolist() == [SE] * 3
    unknown = prior_data_conflict(two_technique_fit(), table.assign(technique=["a", "b", "c"]),
                                  priors={"tau": "halfnormal(0.5)"})
    assert unknown.table.empty and unknown.notes == [
        "model with moderators or unknown techniques: the per-study predictive check is not done"]


def test_what_cannot_be_checked_is_a_note_with_its_reason():
    eff = effects([0.0, 0.1])
    moderators = az.from_dict({"posterior": {"mu": np.zeros((1, 3)), "tau": np.full((1, 3), 0.2),
                                             "beta": np.zeros((1, 3, 1))}})
    assert prior_data_conflict(moderators, eff, priors={"tau": "halfnormal(0.5)"}).notes == [
        "model with moderators or unknown techniques: the per-study predictive check is not done"]
    no_mu = az.from_dict({"posterior": {"tau": np.full((1, 3), 0.2)}})
    assert prior_data_conflict(no_mu, eff, priors={"tau": "halfnormal(0.5)"}).notes == [
        "model with moderators or unknown techniques: the per-study predictive check is not done"]
    selection = fit()
    selection.attrs["model"] = "selection"
    check = prior_data_conflict(selection, effects([9.0]))
    assert check.table.empty and check.notes == [
        "selection model: its likelihood weights studies by their p-values, so the plain predictive check does not apply"]
    no_tau = az.from_dict({"posterior": {"mu": np.zeros((1, 3))}})
    assert prior_data_conflict(no_tau, eff).notes == ["no between-study SD tau in this fit: the predictive check needs one"]
    assert prior_data_conflict(fit(), eff).notes == []  # a plain random-effects fit: everything checked


def test_a_fit_without_attrs_is_read():
    from types import SimpleNamespace

    tree = fit()
    plain = SimpleNamespace(posterior=tree["posterior"].to_dataset())
    check = prior_data_conflict(plain, effects([0.0]), priors={"tau": "halfnormal(0.5)"})
    assert check.ok and check.sd_tails["tau"] == pytest.approx(stats.halfnorm.cdf(TAU, 0, 0.5), rel=1e-12)


def test_censored_rows_are_skipped_not_the_rest():
    check = prior_data_conflict(fit(), effects([5.0, 9.0, 0.0, -9.0], censored=[True, True, False, False]))
    assert check.table["study_id"].tolist() == ["s2", "s3"] and check.table["outside"].tolist() == [False, True]
    assert check.notes == ["censored rows not checked (yi is a bound): s0, s1"]


def test_the_texts_the_user_reads():
    ok = prior_data_conflict(fit(), effects([0.0]))
    assert str(ok) == ("prior-data conflict: none found (every checked study inside its 95% posterior predictive "
                       "interval; between-study SDs not in their prior's tail)")
    bad = prior_data_conflict(fit(tau=1.3, draws=20000), effects([5.0, -5.0, 0.0], censored=[False, False, True]))
    lines = str(bad).split("\n")
    assert lines[0] == "prior-data conflict: WARNING"
    t = bad.table
    assert lines[1] == ("  !! 2 of 2 studies lie outside their 95% posterior predictive interval: "
                        f"s0 (yi 5, interval {t.lower[0]:.3g} to {t.upper[0]:.3g}), "
                        f"s1 (yi -5, interval {t.lower[1]:.3g} to {t.upper[1]:.3g}); the model does not describe these data")
    assert lines[2] == ("  !! tau: posterior median 1.3 lies at the 99.07% point of its prior halfnormal(0.5); the data "
                        "pull it into the prior's tail, so the prior, not the data, sets the width of the intervals and "
                        "of the prediction")
    assert lines[3:] == ["  (censored rows not checked (yi is a bound): s2)"]


def test_the_default_seed_is_zero():
    a = prior_data_conflict(fit(draws=200), effects([0.0]))
    assert a.table["lower"].iloc[0] == prior_data_conflict(fit(draws=200), effects([0.0]), seed=0).table["lower"].iloc[0]
    assert a.table["lower"].iloc[0] != prior_data_conflict(fit(draws=200), effects([0.0]), seed=1).table["lower"].iloc[0]


def test_each_between_study_sd_is_checked_on_its_own():
    posterior = {"mu": np.zeros((1, 3)), "tau_technique": np.full((1, 3), 1.3)}
    check = prior_data_conflict(az.from_dict({"posterior": posterior}), effects([0.0]),
                                priors={"tau_technique": "halfnormal(0.5)"})
    assert list(check.sd_tails) == ["tau_technique"] and check.warnings[0].startswith("tau_technique: posterior median")
    both = az.from_dict({"posterior": posterior | {"tau": np.full((1, 3), 0.2)}})
    check = prior_data_conflict(both, effects([0.0]), priors={"tau_technique": "halfnormal(0.5)"})
    assert "the prior of tau is not recorded in this fit: its tail is not checked" in check.notes
    assert list(check.sd_tails) == ["tau_technique"]
