"""engines.marginal._refined: a refined rule reuses the previous rule's nodes and evaluates only the
new points, giving the integrand a fresh evaluation of the whole finer grid would give."""

import numpy as np
import pandas as pd
import pytest

from evsynth.engines import marginal as M
from evsynth.model.priors import parse_prior


def _integrand(family):
    rng = np.random.default_rng(7)
    sei = rng.uniform(0.1, 0.4, 8)
    yi = rng.normal(0.3, np.sqrt(sei**2 + 0.04))
    spec = M.ModelSpec(True, True, family)
    tau_prior = parse_prior("halfnormal(0.5)")
    a = M._tau_scale(sei, tau_prior)
    f = M._Integrand(spec, yi, sei, np.zeros(8, bool), parse_prior("normal(0, 1)"), tau_prior,
                     M.DEFAULT_CUTPOINTS, "positive", a)
    return f, M._find_box(f, M._axes(spec, yi, sei, tau_prior, 3, a))


class Counting:
    def __init__(self, f):
        self.f, self.points = f, 0

    def __call__(self, nodes):
        out = self.f(nodes)
        self.points += out.size
        return out


@pytest.mark.parametrize("family, refine", [("selection", ("b1", "b2")), ("selection", ("tau",)),
                                            ("selection", ("mu", "tau", "b1", "b2")), ("PET", ("slope",))])
def test_refined_rule_equals_a_fresh_evaluation(family, refine):
    f, box = _integrand(family)
    n = {name: 9 for name in box}
    grids, L = M._refined(f, box, n, {}, None)
    fine = {name: 2 * n[name] - 1 if name in refine else n[name] for name in box}
    counted = Counting(f)
    grids2, L2 = M._refined(counted, box, fine, grids, L)
    fresh = {name: np.linspace(*box[name], fine[name]) for name in box}
    for name in box:  # the same nodes (to linspace's rounding)
        np.testing.assert_allclose(grids2[name], fresh[name], rtol=0, atol=1e-14)
        if name in refine:
            assert np.array_equal(grids2[name][::2], grids[name])
    expected = f(grids2)
    expected = np.where(np.isfinite(expected), expected, -np.inf)
    np.testing.assert_allclose(L2, expected, rtol=1e-13, atol=0)
    assert counted.points == L2.size - L.size  # only the new points were evaluated


def test_log_evidence_unchanged_by_reuse(monkeypatch):
    """The whole evidence with reuse against the rule evaluated afresh at every refinement."""
    rng = np.random.default_rng(3)
    sei = rng.uniform(0.1, 0.4, 7)
    effects = pd.DataFrame({"study_id": [f"s{i}" for i in range(7)], "yi": rng.normal(0.3, 0.3, 7), "sei": sei,
                            "measure": "SMD"})
    spec = M.ModelSpec(True, True, "selection")
    reused = M.log_evidence(effects, spec)

    refined = M._refined

    def fresh(f, box, n, grids, L):
        return refined(f, box, n, {}, None)

    monkeypatch.setattr(M, "_refined", fresh)
    again = M.log_evidence(effects, spec)
    assert again.n_nodes == reused.n_nodes > 25**4  # it refined
    assert abs(again.log_ml - reused.log_ml) < 1e-12
    for name in again.means:
        assert abs(again.means[name] - reused.means[name]) < 1e-12


@pytest.mark.parametrize("null_prob", [0.0, 0.3])
def test_around_zero_from_one_evaluation_equals_the_cdf_at_the_three_points(null_prob):
    """MuMixture.around_zero takes the CDF beside 0 from the value and density at 0: the same as
    evaluating the CDF at -1e-12, 0 and 1e-12 (the jump of the no-effect models between them)."""
    rng = np.random.default_rng(5)
    sei = rng.uniform(0.1, 0.4, 6)
    effects = pd.DataFrame({"study_id": [f"s{i}" for i in range(6)], "yi": rng.normal(0.05, 0.3, 6), "sei": sei,
                            "measure": "SMD"})
    evidences = [M.log_evidence(effects, M.ModelSpec(True, h, b)) for h, b in ((True, "none"), (False, "PET"))]
    evidences.append(M.log_evidence(effects, M.ModelSpec(False, True, "none")))
    mixture = M.MuMixture(evidences, [0.5 - null_prob / 2, 0.5 - null_prob / 2, null_prob])
    direct = mixture.cdf(np.array([-1e-12, 0.0, 1e-12]))
    np.testing.assert_allclose(mixture.around_zero, direct, rtol=0, atol=1e-15)
    assert mixture.around_zero[2] - mixture.around_zero[0] == pytest.approx(null_prob, abs=1e-11)
