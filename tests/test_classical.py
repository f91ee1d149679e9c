"""The classical toolkit per outcome (evsynth.methods.classical), its command (`evsynth classical`)
and its report section, on studies/bcg.csv: the pieces are the ones checked against metafor in
test_tau2, test_binary_pooling, test_influence and test_trimfill; here they are wired up right."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from evsynth.cli.main import main
from evsynth.data.studies import load_studies
from evsynth.effects import compute_effects
from evsynth.methods.classical import classical, trimfill_table

from conftest import ROOT, reference_file

REF = json.loads(reference_file("reference/staples_metafor.json").read_text())
BCG = ROOT / "studies" / "bcg.csv"


@pytest.fixture(scope="module")
def bcg():
    studies = load_studies(BCG, extra_columns=["ablat", "alloc"])
    return studies, compute_effects(studies, measure="RR")


def test_classical_tables_are_metafors_figures(bcg):
    studies, effects = bcg
    res = classical(effects, studies, label="tuberculosis")
    for method in ("FE", "DL", "REML", "PM", "ML", "SJ", "HE", "EB", "HS"):
        assert res.estimators.loc[method, "estimate"] == pytest.approx(REF["bcg_estimators"][method]["tight"]["b"],
                                                                       rel=1e-8)
    assert np.isnan(res.estimators.loc["FE", "pi_low"])
    assert res.heterogeneity.loc["tau^2", "ci_low"] == pytest.approx(
        REF["bcg_estimators"]["REML"]["tight"]["ci_tau2"][1], rel=1e-8)
    assert res.binary.loc["MH RR", "estimate"] == pytest.approx(REF["bcg_mh"]["RR"]["b"], rel=1e-10)
    assert res.binary.loc["Peto OR", "estimate"] == pytest.approx(REF["bcg_mh"]["PETO"]["b"], rel=1e-10)
    np.testing.assert_allclose(res.influence["rstudent"], REF["bcg_influence"]["rstudent"], rtol=1e-8)
    assert res.order_by == "year"
    np.testing.assert_allclose(res.cumulative["estimate"], REF["bcg_cumul"]["REML"]["estimate"], rtol=1e-8)
    assert len(res.bayesian_cumulative) == 13
    assert res.bayes_intervals.loc["I² %", "eti_high"] > res.bayes_intervals.loc["I² %", "eti_low"]
    assert trimfill_table(res).loc["L0", "k0"] == 1  # metafor: one study missing on the right for dat.bcg


def test_without_an_order_column_the_cumulative_part_says_so(bcg):
    studies, effects = bcg
    res = classical(effects, studies.drop(columns="year"))
    assert res.cumulative is None and any("by year left out" in n for n in res.notes)
    with pytest.raises(ValueError, match="column 'nope' is in neither"):
        classical(effects, studies, order_by="nope")
    gap = studies.copy()
    gap.loc[3, "year"] = None
    assert classical(effects, gap).cumulative is None
    with pytest.raises(ValueError, match="study 'bcg04', field 'ablat'"):
        holes = gap.assign(ablat=gap["ablat"].where(gap.index != 3))
        classical(effects, holes, order_by="ablat")


def test_command_prints_and_saves_every_part(tmp_path, capsys):
    code = main(["classical", str(BCG), "--measure", "RR", "--extra-column", "ablat", "--extra-column", "alloc",
                 "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "every tau² estimator" in out and "Q-profile" in out and "Mantel-Haenszel" in out
    assert "trim-and-fill" in out and "cumulative meta-analysis by year" in out and "HPD" in out
    assert [line for line in out.splitlines() if len(line) > 100] == []
    # the tests of the MH OR row are printed whole (a table column cut them to "chi2 1~")
    assert "MH OR: CMH test of OR = 1: chi2 135.69, p 2.3e-31; Tarone's test of one OR: chi2 171.76 on 12 df" \
        in " ".join(out.split())
    saved = {p.name for p in tmp_path.iterdir()}
    for part in ("estimators.csv", "heterogeneity.csv", "influence.csv", "trimfill.csv", "mantel_haenszel.csv",
                 "cumulative.csv", "bayes_intervals.csv", "predictive.csv", "baujat.png", "cumulative.png", "trimfill.png"):
        assert f"classical_tuberculosis_{part}" in saved


def test_command_refuses_an_unknown_order_column(tmp_path, capsys):
    code = main(["classical", str(BCG), "--measure", "RR", "--extra-column", "ablat", "--extra-column", "alloc",
                 "--order-by", "nope", "--out", str(tmp_path)])
    assert code == 2
    assert "--order-by 'nope': no such column in the study table" in capsys.readouterr().err


def test_report_section_shows_the_classical_checks(bcg):
    from evsynth.present.report import classical_section

    studies, effects = bcg
    html = classical_section(studies, SimpleNamespace(label="tuberculosis", effects=effects))
    for text in ("Every tau² estimator", "Q-profile", "shortest (HPD)", "posterior predictive p-values", "Mantel-Haenszel", "Influence", "Cumulative meta-analysis",
                 "Trim-and-fill", "<img"):
        assert text in html
    assert html.count("<img") == 3
    few = classical_section(studies, SimpleNamespace(label="x", effects=effects.head(2)))
    assert "Not computed: the classical toolkit needs at least 3 studies" in few
