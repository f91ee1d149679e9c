"""Convergence verdicts on constructed fits (no sampling): draws built so that one diagnostic sits
just past its threshold, with R-hat recomputed by a hand-written rank-normalized split-R-hat."""

import arviz as az
import numpy as np
import pytest
from scipy import stats

from evsynth.methods.diagnostics import THRESHOLDS, diagnose


def split_rank_rhat(draws: np.ndarray) -> float:
    """Rank-normalized split-R-hat (Vehtari et al. 2021, Bayesian Analysis 16(2), sec. 4.1-4.2):
    the larger of the bulk R-hat and the R-hat of the draws folded around their median."""
    def rhat_of(x):
        half = x.shape[1] // 2
        split = np.concatenate([x[:, :half], x[:, x.shape[1] - half:]])  # 2M chains of N/2
        ranks = stats.rankdata(split, method="average").reshape(split.shape)
        z = stats.norm.ppf((ranks - 3 / 8) / (split.size + 1 / 4))  # Blom's rank normalization
        n = z.shape[1]
        within = z.var(axis=1, ddof=1).mean()
        between_over_n = z.mean(axis=1).var(ddof=1)
        return float(np.sqrt(((n - 1) / n * within + between_over_n) / within))

    return max(rhat_of(draws), rhat_of(np.abs(draws - np.median(draws))))


def constructed_fit(mu: np.ndarray, seed: int = 0):
    """A fit whose only parameter is `mu` (chains x draws), with clean sampler statistics: no
    divergences, and independent normal energies (E-BFMI about 2)."""
    rng = np.random.default_rng(seed)
    shape = mu.shape
    return az.from_dict({"posterior": {"mu": mu},
                         "sample_stats": {"diverging": np.zeros(shape, bool), "energy": rng.normal(size=shape)}})


def offset_chains(offset: float) -> np.ndarray:
    """Four chains of 1000 independent N(0, 1) draws, the first shifted by `offset` sd."""
    draws = np.random.default_rng(17).normal(size=(4, 1000))
    draws[0] += offset
    return draws


def sticky_lower_tail(chains: int = 4, n: int = 2000, run: int = 50) -> np.ndarray:
    """Independent normal draws reordered so that each chain's lowest 5% come in runs of `run`
    consecutive draws: the lower-tail indicator is strongly autocorrelated, the bulk much less."""
    rng = np.random.default_rng(5)
    out = []
    for _ in range(chains):
        x = np.sort(rng.normal(size=n))
        low, rest = rng.permutation(x[: n // 20]), rng.permutation(x[n // 20:])
        blocks = np.array_split(low, len(low) // run)
        pieces = np.array_split(rest, len(blocks))
        out.append(np.concatenate([np.concatenate([p, b]) for p, b in zip(pieces, blocks)]))
    return np.array(out)


def rhat_problems(report) -> list[str]:
    return [p for p in report.problems if "R-hat" in p]


def test_rhat_just_above_the_threshold_fails_unrounded():
    # Issue 17: R-hat 1.0147 rounded to 1.01 passed against the 1.01 threshold.
    draws = offset_chains(0.37)
    expected = split_rank_rhat(draws)
    assert 1.0145 < expected < 1.0150  # the construction: a chain offset by 0.37 sd
    report = diagnose(constructed_fit(draws))
    assert report.verdict == "FAIL"
    assert float(report.table.loc["mu", "r_hat"]) == pytest.approx(expected, abs=1e-9)  # unrounded
    assert len(rhat_problems(report)) == 1 and rhat_problems(report)[0].startswith("mu")
    assert report.problems == rhat_problems(report)  # nothing else is wrong with this fit


def test_same_construction_without_the_offset_passes():
    draws = offset_chains(0.0)
    assert split_rank_rhat(draws) < 1.005
    report = diagnose(constructed_fit(draws))
    assert report.verdict == "PASS", report.problems


def test_rhat_threshold_is_vehtari_1_01():
    assert THRESHOLDS["r_hat"] == 1.01
    draws = offset_chains(0.25)  # R-hat about 1.007: passes 1.01, fails a stricter 1.005
    assert 1.005 < split_rank_rhat(draws) < 1.01
    assert diagnose(constructed_fit(draws)).ok
    assert rhat_problems(diagnose(constructed_fit(draws), thresholds={"r_hat": 1.005}))


def test_one_chain_has_no_rhat_and_fails():
    # ArviZ returns NaN R-hat for a single chain; a NaN must never count as converged.
    report = diagnose(constructed_fit(offset_chains(0.0)[:1]))
    assert np.isnan(float(report.table.loc["mu", "r_hat"]))
    assert report.verdict == "FAIL"
    assert rhat_problems(report), report.problems


def test_low_tail_ess_alone_fails():
    draws = sticky_lower_tail()
    fit = constructed_fit(draws)
    bulk = float(az.ess(fit, method="bulk")["mu"])
    tail = float(az.ess(fit, method="tail")["mu"])
    assert bulk >= THRESHOLDS["ess_bulk"] > tail and split_rank_rhat(draws) < 1.01  # the construction
    assert THRESHOLDS["ess_tail"] == 400
    report = diagnose(fit)
    assert report.verdict == "FAIL"
    assert report.problems == [p for p in report.problems if "ess tail" in p] != []


def ebfmi(energy: np.ndarray) -> float:
    """E-BFMI of one chain (Betancourt 2016, arXiv:1604.00695, eq. 3):
    sum (E_n - E_{n-1})^2 / sum (E_n - mean E)^2."""
    return float(np.sum(np.diff(energy) ** 2) / np.sum((energy - energy.mean()) ** 2))


def clean_draws() -> np.ndarray:
    return offset_chains(0.0)


def test_divergences_counted_and_named():
    draws = clean_draws()
    fit = constructed_fit(draws)
    fit["sample_stats"]["diverging"].values[1, [3, 50, 700]] = True
    report = diagnose(fit)
    assert report.divergences == 3
    assert report.problems == ["3 divergent transitions after tuning"]
    assert diagnose(fit, thresholds={"divergences": 3}).ok  # at the limit: allowed


def test_low_ebfmi_named_per_chain_and_the_limit_itself_passes():
    # Energies of chain 2 a random walk: E-BFMI far below 0.3; the other chains independent (about 2).
    rng = np.random.default_rng(3)
    energy = rng.normal(size=(4, 1000))
    energy[2] = np.cumsum(energy[2])
    fit = az.from_dict({"posterior": {"mu": clean_draws()},
                        "sample_stats": {"diverging": np.zeros((4, 1000), bool), "energy": energy}})
    expected = [ebfmi(e) for e in energy]
    assert expected[2] < 0.05 and min(expected[:2] + expected[3:]) > 1.5  # the construction
    report = diagnose(fit)
    assert report.bfmi == pytest.approx(expected, rel=1e-10)
    assert report.problems == [f"chain 2: E-BFMI {expected[2]:.2f} < 0.3"]
    assert diagnose(fit, thresholds={"bfmi": report.bfmi[2]}).ok  # E-BFMI equal to the limit passes


def test_rhat_and_ess_equal_to_their_limits_pass():
    fit = constructed_fit(offset_chains(0.37))
    row = diagnose(fit).table.loc["mu"]
    at_limits = {"r_hat": float(row["r_hat"]), "ess_bulk": float(row["ess_bulk"]), "ess_tail": float(row["ess_tail"])}
    report = diagnose(fit, thresholds=at_limits)
    assert report.ok and report.thresholds == THRESHOLDS | at_limits  # the limits applied, reported
    assert diagnose(fit, thresholds=at_limits | {"r_hat": float(row["r_hat"]) - 1e-9}).problems == [
        f"mu: R-hat {float(row['r_hat']):.3f} > {float(row['r_hat']) - 1e-9}"]
    for kind in ("ess_bulk", "ess_tail"):
        problems = diagnose(fit, thresholds=at_limits | {kind: at_limits[kind] + 1e-6}).problems
        assert problems == [f"mu: {kind.replace('_', ' ')} {at_limits[kind]:.0f} < {at_limits[kind] + 1e-6}"]


@pytest.mark.parametrize("present", [(), ("diverging",), ("energy",)])
def test_missing_sampler_statistics_named_and_the_rest_still_checked(present):
    shape = (4, 1000)
    stats = {"diverging": np.zeros(shape, bool), "energy": np.random.default_rng(0).normal(size=shape)}
    groups = {"posterior": {"mu": clean_draws()}}
    if present:
        groups["sample_stats"] = {k: stats[k] for k in present}
    report = diagnose(az.from_dict(groups))
    assert report.problems == ["no sampler statistics (diverging, energy): divergences and E-BFMI not checked"]
    assert report.divergences == 0
    assert (report.bfmi == []) == ("energy" not in present)
    assert len(report.bfmi) == (4 if "energy" in present else 0)


def test_only_model_parameters_are_checked():
    # Selection weights: omega's first element is 1 in every draw (no R-hat, NaN); it is not a
    # parameter of SUMMARY_VARS and must not fail the fit. eta (the free weights) is checked.
    rng = np.random.default_rng(8)
    omega = np.ones((4, 1000, 2))
    omega[..., 1] = rng.uniform(size=(4, 1000))
    fit = constructed_fit(clean_draws())
    fit["posterior"]["omega"] = (("chain", "draw", "omega_dim_0"), omega)
    report = diagnose(fit)
    assert report.ok, report.problems
    assert list(report.table.index) == ["mu"]


def test_printed_summary_holds_the_worst_values():
    rng = np.random.default_rng(3)
    energy = rng.normal(size=(4, 1000))
    energy[2] = np.cumsum(energy[2])
    draws = offset_chains(0.37)
    diverging = np.zeros((4, 1000), bool)
    diverging[0, :2] = True
    fit = az.from_dict({"posterior": {"mu": draws, "tau": np.abs(clean_draws())},
                        "sample_stats": {"diverging": diverging, "energy": energy}})
    report = diagnose(fit)
    table = report.table
    lines = str(report).splitlines()
    assert lines[0] == (
        f"diagnostics: FAIL (max R-hat {split_rank_rhat(draws):.3f}, "
        f"min ESS bulk {table['ess_bulk'].min():.0f}, min ESS tail {table['ess_tail'].min():.0f}, "
        f"divergences 2, min E-BFMI {min(ebfmi(e) for e in energy):.2f})")
    assert lines[1:] == [f"  !! {p}" for p in report.problems] and len(lines) == 4  # R-hat, divergences, E-BFMI
    no_stats = str(diagnose(az.from_dict({"posterior": {"mu": clean_draws()}}))).splitlines()
    assert no_stats[0].endswith("divergences 0, min E-BFMI nan)")
