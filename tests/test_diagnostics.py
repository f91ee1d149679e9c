"""Convergence verdicts on constructed fits (no sampling): draws built so that one diagnostic sits
just past its threshold, with R-hat recomputed by a hand-written rank-normalized split-R-hat."""

import arviz as az
import numpy as np
import pytest
from scipy import stats

from evsynth.diagnostics import THRESHOLDS, diagnose


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
