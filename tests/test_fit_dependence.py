"""`evsynth fit` / `evsynth report` with --random and --rho (issue 23): rows sharing a sample are kept
and fitted by the nested model (its summary is the exact engine's on the same description), the
output states the levels, the assumed rho and the variance components; an outcome where no sample
has several rows gets exactly the usual model and says so; bad values exit 2 naming the option."""

import numpy as np
import pandas as pd
import pytest

from evsynth.cli.main import main
from evsynth.data.studies import load_studies
from evsynth.effects.table import compute_effects
from evsynth.engines.exact import summary_table
from evsynth.methods.analysis import with_samples
from evsynth.model import description

from conftest import shared_control_csv

FAST = ["--engine", "exact", "--draws", "200", "--chains", "2", "--quiet"]


@pytest.fixture(scope="module")
def shared_csv(tmp_path_factory):
    """7 made-up trials (synthetic, conftest.shared_control_csv): four with two arms against one
    control group, 3 with one arm."""
    return shared_control_csv(tmp_path_factory.mktemp("dep") / "shared.csv", 7)


def _flat(text: str) -> str:
    """The output with its 100-column wrapping undone."""
    return " ".join(text.split())


def _nested_summary(path, rho):
    effects = with_samples(compute_effects(load_studies(path)))
    model = description.multilevel(effects, None, random="~ 1 | sample/study_id", rho=rho, cluster="sample")
    return summary_table(model)


def test_random_and_rho_fit_the_nested_model_and_say_so(shared_csv, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["fit", str(shared_csv), "--random", "~ 1 | sample/study_id", "--rho", "0.6", "--out", str(out)]
                + FAST) == 0
    raw = capsys.readouterr().out
    assert max(map(len, raw.splitlines())) <= 100
    text = _flat(raw)
    assert "model: multilevel (nested random effects ~ 1 | sample/study_id" in text
    assert "correlation rho = 0.6 (assumed, not estimated" in text
    assert "11 rows in 7 sample groups, 4 with several rows" in text
    assert "variance components (SDs; posterior median [95% CrI]): tau (between study_id within sample)" in text
    saved = pd.read_csv(out / "milk_volume_summary.csv", index_col=0)
    expected = _nested_summary(shared_csv, 0.6)
    assert list(saved.index) == list(expected.index)  # mu, both SDs, prediction
    np.testing.assert_allclose(saved[["mean", "q2.5", "q97.5"]].to_numpy(float),
                               expected[["mean", "q2.5", "q97.5"]].to_numpy(float), rtol=1e-6)
    # every row entered the model: no sample reduced to one row
    assert pd.read_csv(out / "effects.csv")["in_model"].all()
    # rho reaches the model: without it the pooled mean is another (the rho = 0 nested model)
    assert main(["fit", str(shared_csv), "--random", "~ 1 | sample/study_id", "--out", str(out)] + FAST) == 0
    text = _flat(capsys.readouterr().out)
    assert "sampling errors: taken as independent (no --rho)" in text
    plain = pd.read_csv(out / "milk_volume_summary.csv", index_col=0)
    assert plain.loc["pooled (mu)", "mean"] == pytest.approx(_nested_summary(shared_csv, None).loc["pooled (mu)",
                                                                                                  "mean"], rel=1e-6)
    assert abs(plain.loc["pooled (mu)", "mean"] - saved.loc["pooled (mu)", "mean"]) > 1e-4


def test_without_random_a_sample_counts_once(shared_csv, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["fit", str(shared_csv), "--out", str(out)] + FAST) == 0
    text = _flat(capsys.readouterr().out)
    assert "a sample counts once: left out" in text
    assert "--random" in text  # it says how to model the shared samples instead
    assert (~pd.read_csv(out / "effects.csv")["in_model"]).sum() == 4


def test_an_outcome_without_shared_samples_gets_the_usual_model(tmp_path, capsys):
    """The bundled massage table: dewi2024's two rows share mothers but are different outcomes, so per
    outcome no sample has two rows; --random then changes nothing, and the output says why."""
    runs = {}
    for name, extra in (("plain", []), ("random", ["--random", "~ 1 | sample/study_id"])):
        out = tmp_path / name
        assert main(["fit", "--outcome", "milk volume", "--out", str(out)] + extra + FAST) == 0
        runs[name] = (_flat(capsys.readouterr().out), pd.read_csv(out / "milk_volume_summary.csv", index_col=0))
    assert "no sample group has several rows in this outcome, so the nested model adds nothing" in runs["random"][0]
    pd.testing.assert_frame_equal(runs["plain"][1], runs["random"][1])


@pytest.mark.parametrize("args, message", [
    (["--rho", "0.5"], "--rho needs --random"),
    (["--random", "~ 1 | foo/study_id"], "--random '~ 1 | foo/study_id' (outcome 'milk volume'): random level 'foo'"),
    (["--random", "study_id sample"], "--random: random 'study_id sample': expected"),
    (["--random", "~ 1 | sample/study_id", "--model", "by_technique"], "cannot be combined with --model"),
    (["--random", "~ 1 | sample/study_id", "--mods", "year"], "--random and --mods cannot be combined"),
    (["--random", "~ 1 | sample/study_id", "--rho", "1.5"], "argument --rho: 1.5: a correlation must lie"),
    (["--random", "~ 1 | sample/study_id", "--rho", "x"], "argument --rho: 'x' is not a number"),
])
def test_bad_values_exit_2_naming_the_option(shared_csv, tmp_path, capsys, args, message):
    try:
        code = main(["fit", str(shared_csv), "--out", str(tmp_path / "o")] + args + FAST)
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    assert code == 2
    err = _flat(capsys.readouterr().err)
    assert message in err
    assert "Traceback" not in err


def test_report_carries_the_random_structure_rho_and_variance_components(shared_csv, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", str(shared_csv), "--random", "~ 1 | sample/study_id", "--rho", "0.3", "--out", str(out)]
                + FAST) == 0
    html = (out / "report.html").read_text()
    assert "Dependent effects: random structure, assumed correlation, variance components" in html
    assert "correlation rho = 0.3 (assumed" in html
    assert "nested levels (--random)</td><td>~ 1 | sample/study_id" in html
    assert "0.3 (assumed)" in html
    tau = _nested_summary(shared_csv, 0.3).loc["tau (between sample)"]
    assert f"tau (between sample) {tau['q50']:.3f} [{tau['q2.5']:.3f}, {tau['q97.5']:.3f}]" in html


SPEC = """
title = "nested model sweep (synthetic)"
[data]
studies = "shared.csv"
outcome = "milk volume"
[model]
random = "~ 1 | sample/study_id"
{extra}
[grid]
tau_prior = ["halfnormal(0.5)", "halfcauchy(0.5)"]
"""


def _spec(tmp_path, shared_csv, extra="rho = 0.6"):
    import shutil

    shutil.copy(shared_csv, tmp_path / "shared.csv")
    path = tmp_path / "nested.toml"
    path.write_text(SPEC.format(extra=extra))
    return path


def test_spec_file_random_and_rho_sweep_the_nested_model(shared_csv, tmp_path, capsys):
    from evsynth.methods.sensitivity import Sensitivity
    from evsynth.methods.spec import load_spec

    spec = load_spec(_spec(tmp_path, shared_csv))
    assert spec.sensitivity["model"] == "multilevel" and spec.sensitivity["rho"] == 0.6
    table = Sensitivity(**spec.sensitivity).run(progress=False)
    assert set(table["verdict"]) == {"PASS"} and set(table["engine"]) == {"exact"}
    mu = table[(table["parameter"] == "pooled (mu)") & (table["tau_prior"] == "halfnormal(0.5)")]
    assert mu["mean"].iloc[0] == pytest.approx(_nested_summary(shared_csv, 0.6).loc["pooled (mu)", "mean"], rel=1e-9)
    assert "tau (between sample)" in set(table["parameter"])
    assert main(["sensitivity", str(tmp_path / "nested.toml"), "--out", str(tmp_path / "out")]) == 0


@pytest.mark.parametrize("extra, message", [
    ("rho = 1.5", "[model] rho: 1.5; a correlation must lie strictly between -1 and 1"),
    ('name = "by_technique"', "[model] random: fits the nested model; [model] name must be 'multilevel'"),
    ('engine = "pymc"', "[model] random: a sweep of the nested model runs on the exact engine"),
])
def test_spec_file_bad_nested_keys_exit_2(shared_csv, tmp_path, capsys, extra, message):
    assert main(["sensitivity", str(_spec(tmp_path, shared_csv, extra)), "--out", str(tmp_path / "o")]) == 2
    assert message in _flat(capsys.readouterr().err)


def test_spec_file_rho_without_random_and_a_bad_level_exit_2(shared_csv, tmp_path, capsys):
    path = _spec(tmp_path, shared_csv)
    path.write_text(path.read_text().replace('random = "~ 1 | sample/study_id"\n', ""))
    assert main(["sensitivity", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "[model] rho: needs [model] random" in _flat(capsys.readouterr().err)
    path.write_text(SPEC.format(extra="").replace("sample/study_id", "sample study_id"))
    assert main(["sensitivity", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "[model] random: random '~ 1 | sample study_id': expected" in _flat(capsys.readouterr().err)


@pytest.mark.slow
def test_random_on_the_pymc_engine_agrees_with_the_exact_posterior(shared_csv, tmp_path, capsys):
    """The default engine (auto): the nested model sampled (nutpie) and checked against the exact
    posterior in MCSE units; the summary names the same rows as the exact engine's (a ~1 min compile)."""
    out = tmp_path / "out"
    code = main(["fit", str(shared_csv), "--random", "~ 1 | sample/study_id", "--rho", "0.6", "--draws", "1000",
                 "--chains", "2", "--quiet", "--out", str(out)])
    text = _flat(capsys.readouterr().out)
    assert code == 0
    assert "agrees with the exact posterior" in text
    saved = pd.read_csv(out / "milk_volume_summary.csv", index_col=0)
    expected = _nested_summary(shared_csv, 0.6)
    assert sorted(saved.index) == sorted(expected.index)
    for row in expected.index:  # within 0.1 posterior sd (the MCSE check above is the strict one)
        assert abs(saved.loc[row, "q50"] - expected.loc[row, "q50"]) < 0.1 * expected.loc[row, "sd"] + 0.02, row
