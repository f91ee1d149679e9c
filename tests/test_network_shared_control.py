"""The network model's multi-arm trials (issue 23): contrasts of one trial against its shared control
arm get the shared-control sampling covariance, checked against metafor's rma.mv on dat.senn2013
(Willms 1999 has three arms) with the same V (figures and the R script in tests/data/reference/
network_shared_control.*). The Bayesian network model given tau, with flat priors on the treatment
effects, is the GLS fit at that tau: equal to metafor's estimates and SEs at tau^2 fixed (0.05), at
metafor's REML tau^2, and at tau = 0 (common effect); with V diagonal instead it is not."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from evsynth.data.studies import load_studies
from evsynth.effects.table import compute_effects
from evsynth.engines.exact import FLAT, conditionals
from evsynth.model import description
from evsynth.model.moderators import with_study_columns

from conftest import reference_file

REF = json.loads(reference_file("reference/network_shared_control.json").read_text())


@pytest.fixture(scope="module")
def effects(tmp_path_factory):
    """dat.senn2013's contrasts (as the R script made them) as a study table, through evsynth's own
    effect sizes (MD), with the study table's n_ctrl / sd_ctrl and the trial as `trial`."""
    data = pd.DataFrame(REF["data"])
    rows = pd.DataFrame({
        "study_id": [f"{s}: {t}" for s, t in zip(data["study"], data["treat"])],
        "citation": data["study"] + " (metadat dat.senn2013)",
        "source": "https://wviechtb.github.io/metadat/reference/dat.senn2013.html", "source_level": "secondary",
        "design": "two_group", "technique": data["treat"], "comparator": data["comp"], "outcome": "HbA1c",
        "unit": "%", "direction": "lower", "n_treat": data["n_treat"], "n_ctrl": data["n_ctrl"],
        "mean_treat": data["mean_treat"], "mean_ctrl": data["mean_ctrl"], "sd_treat": data["sd_treat"],
        "sd_ctrl": data["sd_ctrl"]})
    path = tmp_path_factory.mktemp("senn") / "senn2013.csv"
    rows.to_csv(path, index=False)
    studies = load_studies(path)
    table = with_study_columns(compute_effects(studies, measure="MD"), studies)
    table["trial"] = list(data["study"])
    return table


def _given_tau(model, tau):
    """Posterior mean and sd of the treatment effects given tau, flat priors on them (the GLS fit)."""
    flat = replace(model, fixed=tuple(replace(b, prior=FLAT) for b in model.fixed))
    cond = conditionals(flat, [[tau]] if flat.study_prior is not None else np.zeros((1, 0)))
    k = flat.fixed[0].size
    return cond.mean[0, :k], np.sqrt(np.diag(cond.cov[0])[:k])


def test_the_sampling_covariance_is_metafors(effects):
    model = description.network(effects, {"mu": "normal(0, 1)", "tau": "halfnormal(0.5)"}, reference="placebo")
    assert model.fixed[0].labels == tuple(REF["reml"]["technique"])
    assert "shared control arm within multi-arm trial(s) Willms (1999) (MD: sd_ctrl^2 / n_ctrl)" == \
        model.settings["sampling_cov"]
    order = [list(model.study_id).index(f"{s}: {t}") for s, t in zip(pd.DataFrame(REF["data"])["study"],
                                                                       pd.DataFrame(REF["data"])["treat"])]
    np.testing.assert_allclose(model.sampling_cov[np.ix_(order, order)], np.array(REF["V"]), rtol=1e-12, atol=1e-15)
    assert np.count_nonzero(model.sampling_cov - np.diag(np.diag(model.sampling_cov))) == 2


@pytest.mark.parametrize("case", ["tau2_0.05", "reml", "common_effect"])
def test_given_tau_equals_metafor_rma_mv(effects, case):
    model = description.network(effects, {"mu": "normal(0, 1)", "tau": "halfnormal(0.5)"}, reference="placebo")
    ref = REF[case]
    if case == "common_effect":
        model = model.without("tau")
    mean, sd = _given_tau(model, np.sqrt(ref["tau2"]))
    np.testing.assert_allclose(mean, ref["estimate"], rtol=1e-6)
    np.testing.assert_allclose(sd, ref["se"], rtol=1e-6)


def test_ignoring_the_shared_control_gives_the_other_answer(effects):
    """Without n_ctrl the trial's errors stay independent, and the model says so: it then equals
    metafor's fit with a diagonal V, which differs from the shared-control one beyond 1e-3."""
    plain = effects.drop(columns=["n_ctrl"])
    model = description.network(plain, {"mu": "normal(0, 1)", "tau": "halfnormal(0.5)"}, reference="placebo")
    assert model.sampling_cov is None
    assert model.settings["sampling_cov"].startswith("independent: multi-arm trial(s) Willms (1999) lack n_ctrl")
    mean, sd = _given_tau(model, np.sqrt(REF["reml_diagonal_V"]["tau2"]))
    np.testing.assert_allclose(mean, REF["reml_diagonal_V"]["estimate"], rtol=1e-6)
    np.testing.assert_allclose(sd, REF["reml_diagonal_V"]["se"], rtol=1e-6)
    assert np.max(np.abs(np.array(REF["reml_diagonal_V"]["se"]) - REF["reml"]["se"])) > 1e-3


def test_refusals(effects):
    two = effects.copy()  # Willms's acarbose arm entered against metformin: no longer one shared arm
    two.loc[two["study_id"] == "Willms (1999): acarbose", "comparator"] = "metformin"
    with pytest.raises(ValueError, match="different comparators"):
        description.network(_with_attrs(two, effects), None, reference="placebo")
    other = _with_attrs(effects, effects)
    other.attrs["measure"] = "ROM"
    assert description.network(other, None, reference="placebo").settings["sampling_cov"].startswith(
        "independent: no shared-control covariance for ROM")


def _with_attrs(table, like):
    table = table.copy()
    table.attrs = dict(like.attrs)
    return table


@pytest.fixture(scope="module")
def multi_arm_csv(tmp_path_factory):
    """Made-up trials (synthetic): four with two arms against one control group (sample_id shared),
    three with one arm."""
    rng = np.random.default_rng(7)
    rows = []
    for k in range(7):
        for tech in (["oxytocin", "neck"] if k < 4 else ["oxytocin"]):
            d = rng.normal(0.5 if tech == "oxytocin" else 0.2, 0.2)
            rows.append(dict(study_id=f"trial{k}_{tech}", citation=f"made-up trial {k}", source_level="synthetic",
                             design="two_group", technique=tech, outcome="milk volume", unit="mL",
                             n_treat=int(rng.integers(20, 40)), n_ctrl=30, mean_treat=round(50 + 10 * d, 2),
                             mean_ctrl=50.0, sd_treat=10.0, sd_ctrl=10.0, synthetic="true",
                             sample_id=f"trial{k}" if k < 4 else ""))
    path = tmp_path_factory.mktemp("arms") / "arms.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_network_command_keeps_multi_arm_trials_with_their_covariance(multi_arm_csv, tmp_path, capsys):
    from evsynth.cli.main import main
    from evsynth.engines.exact import summary_table
    from evsynth.methods.network import multi_arm_trials
    from evsynth.present.results import load_result

    assert main(["network", str(multi_arm_csv), "--engine", "exact", "--draws", "200", "--chains", "2", "--quiet",
                 "--out", str(tmp_path)]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert ("multi-arm trial(s), their contrasts sharing one control arm: trial0 (milk volume), trial1 (milk volume), "
            "trial2 (milk volume), trial3 (milk volume)") in text
    assert ("sampling errors: shared control arm within multi-arm trial(s) trial0, trial1, trial2, trial3 (SMD: "
            "1 / n_ctrl + d_1 d_2 / (2 N), Gleser & Olkin 2009)") in text
    assert "a sample counts once" not in text
    studies = load_studies(multi_arm_csv)
    table = multi_arm_trials(compute_effects(studies), studies)
    model = description.network(table, None)
    assert model.n == 11 and model.sampling_cov is not None
    expected = summary_table(model)
    saved = load_result(tmp_path / "network_milk_volume.nc")
    got = saved.exact_summary["mean"].sel(quantity=["technique_effect[neck]", "technique_effect[oxytocin]"]).to_numpy()
    np.testing.assert_allclose(got, expected.loc[["technique: neck", "technique: oxytocin"], "mean"], rtol=1e-9)
