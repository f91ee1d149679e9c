"""The bundled massage literature (studies/massage.csv): provenance on every row, exactly which rows
are used and which are not (and why), and the printed figures checked against the independent
extraction in ../shared/literature/candidate_studies.csv."""

import re

import pandas as pd
import pytest

import evsynth.cli as cli
from evsynth.effects import compute_effects, not_used, used_effects
from evsynth.studies import load_studies

from conftest import ROOT, SHARED

MASSAGE = ROOT / "studies" / "massage.csv"
USED = {"hesti2017", "ijaph12", "pratama2023"}  # versus a control or baseline: the pairwise models
HEAD_TO_HEAD_USED = {"emilda2020"}  # oxytocin vs Marmet: only the network model can use it
UNUSABLE = {  # study id -> words that must be in its reason
    "sulaeman2017": "group sizes not printed",
    "rahayuningsih2016": "group sizes not printed",
    "hesti2017_prepost": "count them twice",
    "astuti2024_oxytocin": "size of the intervention arm not printed",
    "astuti2024_prolactin": "size of the intervention arm not printed",
    "mjm2025_epds": "no means, SDs or p-values",
    "mjm2025_oxytocin": "no means, SDs or p-values",
    "mjm2025_milkscore": "no means, SDs or p-values",
    "kundarti2025": "no means or SDs printed",
    "medan_neck": "no means or SDs printed",
    "jgrph417": "means and SDs not printed",
}


@pytest.fixture(scope="module")
def studies():
    return load_studies(MASSAGE)


def test_every_row_carries_its_provenance(studies):
    assert studies["citation"].str.len().gt(10).all()
    assert set(studies["source_level"]) <= {"abstract", "secondary"}
    no_source = studies[studies["source"].isna()]
    assert set(no_source["study_id"]) == {"pratama2023"} and set(no_source["source_level"]) == {"secondary"}
    assert studies["source"].dropna().str.match(r"https?://").all()
    assert not studies["synthetic"].any()


def test_loading_the_bundled_data_reports_exactly_which_rows_are_used_and_which_are_not_and_why(studies):
    effects = compute_effects(studies)
    assert len(effects) == len(studies)
    assert set(used_effects(effects)["study_id"]) == USED
    assert set(effects.loc[effects["used"] & effects["head_to_head"], "study_id"]) == HEAD_TO_HEAD_USED
    left_out = not_used(effects).set_index("study_id")["why_not"]
    assert set(left_out.index) == set(UNUSABLE) | HEAD_TO_HEAD_USED
    for study, words in UNUSABLE.items():
        assert left_out[study].startswith("not usable as reported: ") and words in left_out[study], study
    assert "needs the network model" in left_out["emilda2020"]
    # Only a p printed as a bound makes a row censored, and only hesti2017 has no other SE route.
    by_id = effects.set_index("study_id")
    assert set(by_id.index[by_id["censored"]]) == {"hesti2017"}
    assert by_id.loc[list(USED | HEAD_TO_HEAD_USED), "se_route"].to_dict() == {
        "hesti2017": "p_bound", "ijaph12": "sd", "pratama2023": "p_value", "emilda2020": "sd"}


def test_evsynth_fit_prints_the_rows_not_used_with_their_reasons(monkeypatch, capsys, tmp_path):
    # Everything real up to the model fit; fitting is other tests' job, so no outcome is run here.
    real_split = cli.split_by_outcome
    monkeypatch.setattr(cli, "split_by_outcome", lambda effects, pool: ({}, real_split(effects, pool)[1]))
    assert cli.main(["fit", str(MASSAGE), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    section = out.split("== rows not used (and why) ==\n", 1)[1].split("\n\n", 1)[0].splitlines()
    printed = {line.split()[1] for line in section[1:]}
    assert printed == set(UNUSABLE) | HEAD_TO_HEAD_USED
    effects = compute_effects(load_studies(MASSAGE))
    for reason in not_used(effects)["why_not"]:
        assert reason in out
    # Outcomes are analysed separately by default: each too-small outcome is named with its count.
    assert "outcome 'infant weight' not analysed: 1 usable study; need 2" in out
    assert "p_bound=censor" in out


def _number(text) -> float | None:
    """Leading number of a cell such as '203.82 (mean change)'; None if empty."""
    match = re.match(r"\s*<?\s*(\d+(?:\.\d+)?)", str(text)) if pd.notna(text) else None
    return float(match.group(1)) if match else None


def test_encoded_figures_match_the_independent_extraction(studies):
    path = SHARED / "literature" / "candidate_studies.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found (../shared beside the checkout)")
    candidates = pd.read_csv(path, dtype=str)
    fields = {"n_treat": "n_treat", "n_ctrl": "n_ctrl", "treat_mean": "mean_treat", "treat_sd": "sd_treat",
              "ctrl_mean": "mean_ctrl", "ctrl_sd": "sd_ctrl"}
    for cand in candidates.itertuples():
        key = cand.doi_or_url.split()[-1]
        rows = studies[studies["source"].fillna("").str.contains(key, regex=False)]
        assert not rows.empty, f"candidate row {cand.row} ({cand.citation}) is not encoded"
        two_group = rows[rows["design"] == "two_group"]
        for theirs, ours in fields.items():
            value = _number(getattr(cand, theirs))
            if value is not None and not two_group.empty:
                assert two_group[ours].iloc[0] == pytest.approx(value), (cand.row, ours)
        # A p printed as 0.000 or '<x' is a bound, never an exact p; a printed number is exact.
        printed = str(cand.p_reported) if pd.notna(cand.p_reported) else ""
        first = rows.iloc[0]
        if printed.startswith("0.000 "):
            assert first["p_upper"] == 0.0005 and pd.isna(first["p"]), cand.row
        elif printed.startswith("<"):
            assert first["p_upper"] == _number(printed) and pd.isna(first["p"]), cand.row
        elif _number(printed) is not None:
            assert first["p"] == _number(printed) and pd.isna(first["p_upper"]), cand.row
