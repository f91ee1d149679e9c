"""BCG (metadat's dat.bcg, studies/bcg.csv) through `evsynth fit` with the defaults and --measure RR:
the model chosen from the data is random effects, the fit PASSes its diagnostics, and the pooled
log risk ratio is the exact posterior's (quadrature, evsynth.engines.exact) within Monte Carlo
error, which in turn lies within 0.2 posterior SD of metafor's REML estimate (-0.7145; the gap is
the N(0, 1) prior on mu: with normal(0, 10) the exact median is -0.709).

metafor 3.8-1: rma(yi, vi, data = escalc("RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data =
dat.bcg)) -> estimate -0.7145, SE 0.1798, tau^2 0.3132 (tests/data/reference_figures.md).
"""

import numpy as np
import pandas as pd

from evsynth import compute_effects, load_studies
from evsynth.cli.main import main
from evsynth.model.description import random_effects
from evsynth.engines.exact import summary_rows

from conftest import ROOT

METAFOR_MU = -0.7145


def test_bcg_with_defaults_is_random_effects_and_matches(tmp_path, capsys):
    path = ROOT / "studies" / "bcg.csv"
    out = tmp_path / "bcg"
    code = main(["fit", str(path), "--measure", "RR", "--extra-column", "ablat", "--extra-column", "alloc",
                 "--out", str(out), "--draws", "1000", "--tune", "1000", "--chains", "4", "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0, printed[-3000:]  # diagnostics PASS
    assert "model: random_effects (auto: one technique (BCG vaccine)" in " ".join(printed.split())
    assert "diagnostics: PASS" in printed
    summary = pd.read_csv(out / "tuberculosis_summary.csv", index_col=0)
    mu = summary.loc["pooled (mu)"]
    effects = compute_effects(load_studies(path, extra_columns=["ablat", "alloc"]), measure="RR")
    exact = summary_rows(random_effects(effects))[("mu", "mu")]
    mcse = exact["sd"] * 1.25 / np.sqrt(4 * 1000 / 2)  # a median from >= 2000 effective draws
    assert abs(mu["q50"] - exact["q50"]) < 4 * mcse, (mu["q50"], exact["q50"])
    assert abs(mu["q2.5"] - exact["q2.5"]) < 0.05 and abs(mu["q97.5"] - exact["q97.5"]) < 0.05
    assert abs(exact["q50"] - METAFOR_MU) < 0.2 * exact["sd"]
