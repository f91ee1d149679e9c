"""Posterior predictive p-values on the exact engine against scipy quadrature over tau, and their
behaviour on an injected outlier (both sides of the cut a reader would use)."""

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from evsynth.methods.predictive import predictive_pvalues

from conftest import bcg_log_risk_ratios, reference_file

YI, VI = bcg_log_risk_ratios(pd.read_csv(reference_file("bcg.csv")))
SEI = np.sqrt(VI)


def p_by_quad(yi, sei, y_new, s_new):
    """P(y_rep > y_new) with mu ~ N(0, 1), tau ~ half-normal(0.5), by quad over tau of the conjugate
    conditional of mu (written out here, independently of the engine)."""
    def joint(t):
        cov = np.diag(sei**2 + t**2) + 1.0
        return stats.multivariate_normal(np.zeros(yi.size), cov).pdf(yi) * 2 * stats.norm.pdf(t, 0, 0.5)

    def p_at(t):
        w = 1 / (sei**2 + t**2)
        prec = 1 + w.sum()
        m, v = (w * yi).sum() / prec, 1 / prec
        return stats.norm.sf(y_new, m, np.sqrt(v + s_new**2 + t**2))

    den = integrate.quad(joint, 0, np.inf, epsabs=1e-14, limit=200)[0]
    return integrate.quad(lambda t: joint(t) * p_at(t), 0, np.inf, epsabs=1e-14, limit=200)[0] / den


@pytest.mark.parametrize("cross_validated", [False, True])
def test_predictive_pvalues_match_quadrature(cross_validated):
    table = predictive_pvalues(YI, SEI, cross_validated=cross_validated)
    for i in (0, 3, 7):
        keep = np.arange(YI.size) != i if cross_validated else np.ones(YI.size, bool)
        want = p_by_quad(YI[keep], SEI[keep], YI[i], SEI[i])
        assert table["p_above"].iloc[i] == pytest.approx(want, abs=2e-6)
    assert (table["p_two_sided"] == 2 * np.minimum(table["p_above"], 1 - table["p_above"])).all()


def test_an_injected_outlier_is_unpredicted_and_cross_validation_sharpens_it():
    yi = YI.copy()
    yi[12] = 2.5  # far above the others, precise
    sei = SEI.copy()
    sei[12] = 0.1
    plain = predictive_pvalues(yi, sei)
    loo = predictive_pvalues(yi, sei, cross_validated=True)
    # the outlier: 8e-3 using all studies, 9e-5 left out (its own data no longer pull the posterior)
    assert loo["p_two_sided"].iloc[12] < 1e-3 < plain["p_two_sided"].iloc[12] < 0.05
    assert loo["p_above"].iloc[12] < 0.5  # it lies above what the others predict
    assert (predictive_pvalues(YI, SEI, cross_validated=True)["p_two_sided"] > 0.01).all()  # bcg: none so extreme
