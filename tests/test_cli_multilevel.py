"""`evsynth multilevel`: rows sharing a sample kept and modelled (nested model, REML + CR2, exact
Bayesian, --rho, --rho-grid); its figures are those of the library functions on the same rows."""

import re

import pandas as pd
import pytest

from evsynth.cli.main import main
from evsynth.effects.covariance import impute_covariance
from evsynth.effects.table import compute_effects, used_effects
from evsynth.data.studies import load_studies
from evsynth.methods.multilevel import multilevel
from evsynth.methods.robust import robust

from conftest import shared_control_csv


@pytest.fixture(scope="module")
def shared_csv(tmp_path_factory):
    """6 made-up trials (synthetic, conftest.shared_control_csv): four with two arms against one
    control group, 2 with one arm."""
    return shared_control_csv(tmp_path_factory.mktemp("ml") / "shared.csv", 6)


def test_fits_and_equals_the_library(shared_csv, capsys):
    assert main(["multilevel", str(shared_csv), "--rho", "0.5", "--rho-grid", "0,0.9"]) == 0
    out = capsys.readouterr().out
    assert all(len(line) <= 100 for line in out.splitlines())
    assert "10 rows, 6 samples (4 with several rows)" in out
    assert "tau (between sample)" in out and "cluster-robust (CR2) inference over 6 clusters" in out
    effects = used_effects(compute_effects(load_studies(shared_csv), measure="SMD"))
    effects["sample"] = effects["sample_id"].where(effects["sample_id"].notna(), effects["study_id"])
    fit = multilevel(effects, "~ 1 | sample/study_id", V=impute_covariance(effects["vi"], effects["sample"], 0.5))
    printed = re.search(r"intrcpt +(-?[0-9.]+) +SE ([0-9.]+)", out)
    assert float(printed.group(1)) == pytest.approx(fit.coefficients.iloc[0]["estimate"], abs=5e-5)
    assert float(printed.group(2)) == pytest.approx(fit.coefficients.iloc[0]["se"], abs=5e-5)
    cr2 = robust(fit, cluster=effects["sample"].to_numpy()).coefficients.iloc[0]
    assert f"df {cr2['df']:.1f}" in out
    assert "pooled effect by assumed rho" in out and "certainty are assessed by evsynth fit" in out


@pytest.mark.parametrize("rho", ["1", "-1", "1.5", "abc"])
def test_impossible_rho_refused(shared_csv, rho, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["multilevel", str(shared_csv), "--rho", rho])
    assert exc.value.code == 2
    assert "--rho" in capsys.readouterr().err


def test_rho_just_inside_accepted(shared_csv, capsys):
    assert main(["multilevel", str(shared_csv), "--rho", "0.99"]) == 0


def test_no_shared_sample_nothing_to_model(tmp_path, shared_csv, capsys):
    table = pd.read_csv(shared_csv).assign(sample_id="")
    path = tmp_path / "independent.csv"
    table.to_csv(path, index=False)
    assert main(["multilevel", str(path)]) == 4
    assert "no sample with several usable rows" in capsys.readouterr().out


def test_bad_random_names_the_column(shared_csv, capsys):
    assert main(["multilevel", str(shared_csv), "--random", "~ 1 | trial/study_id"]) == 2
    assert "'trial'" in capsys.readouterr().err
