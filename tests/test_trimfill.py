"""Trim-and-fill against metafor 3.8.1's trimfill() on dat.hackshaw1998 (37 studies of passive smoking
and lung cancer, log OR): FE, REML (converged: control threshold 1e-12) and DL models, L0 and R0, side chosen or given
(tests/data/reference/staples_metafor.R)."""

import json

import numpy as np
import pandas as pd
import pytest

from evsynth.methods.trimfill import trimfill

from conftest import reference_file

REF = json.loads(reference_file("reference/staples_metafor.json").read_text())["hackshaw_trimfill"]
HS = pd.read_csv(reference_file("hackshaw1998.csv"))


@pytest.mark.parametrize("case", sorted(REF))
def test_trimfill_matches_metafor(case):
    method, estimator, side = case.split("_")
    ref = REF[case]
    tf = trimfill(HS.yi, HS.vi, method=method, estimator=estimator, side=None if side == "auto" else side)
    assert (tf.k0, tf.side) == (ref["k0"], ref["side"])
    assert tf.se_k0 == pytest.approx(ref["se_k0"], rel=1e-10)
    if estimator == "R0":
        assert tf.p_k0 == pytest.approx(ref["p_k0"], rel=1e-12)
    rel = 1e-10 if method in ("FE", "DL") else 1e-8  # REML: metafor run with threshold 1e-12
    assert (tf.fit.mu, tf.fit.se, tf.fit.ci_low, tf.fit.ci_high) == pytest.approx(
        (ref["b"], ref["se"], ref["ci_lb"], ref["ci_ub"]), rel=rel)
    assert tf.fit.tau2 == pytest.approx(ref["tau2"], rel=rel, abs=1e-12)
    assert tf.data["filled"].tolist() == ref["fill"]
    np.testing.assert_allclose(tf.data["yi"], ref["yi"], rtol=rel)
    np.testing.assert_allclose(tf.data["vi"], ref["vi"], rtol=1e-12)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="estimator 'Q0' unknown"):
        trimfill(HS.yi, HS.vi, estimator="Q0")
    with pytest.raises(ValueError, match="side 'up' unknown"):
        trimfill(HS.yi, HS.vi, side="up")
