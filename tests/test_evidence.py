"""The evidence fields of issue 22: randomised, sample_id, test, means and effect_sign in the study
table; pre/post SDs of change from the printed statistic (implied r, flagged outside -0.2..0.99);
rank-test p-values used conservatively; change-score SMDs kept apart; p-derived rows; the design
restriction, the pre/post weight share and one row per sample. Reference figures: metafor's escalc
(tests/data/reference/paired_statistics.R)."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import evsynth as es
import evsynth.cli.main as cli
from evsynth.data.studies import StudyDataError, load_studies
from evsynth.effects import compute_effects, used_effects
from evsynth.effects.continuous import hedges_j
from evsynth.methods.analysis import group_by_outcome, one_row_per_sample
from evsynth.methods.designs import prepost_weight_share, restrict_design

from conftest import ROOT

MASSAGE = ROOT / "studies" / "massage.csv"
REFERENCE = json.loads((ROOT / "tests" / "data" / "reference" / "paired_statistics.json").read_text())
BASE = {"citation": "A 2020", "source_level": "abstract", "technique": "oxytocin", "outcome": "milk volume"}
# The audit's randomised trials (../shared/literature/audit_2026-12.md, row 21); every other row is not.
RCTS = {"rahayuningsih2016", "choi2023_mrm", "mld_ttm2023", "savabi2017", "thai2026_marmet", "tanjungkarang2023_marmet"}


def effects_of(rows, **kwargs):
    return compute_effects(load_studies(pd.DataFrame([dict(BASE, **r) for r in rows])), **kwargs)


def row_of(rows, **kwargs):
    return effects_of(rows, **kwargs).iloc[0]


@pytest.fixture(scope="module")
def massage():
    return load_studies(MASSAGE)


# --- the bundled data ---------------------------------------------------------------------------

def test_every_massage_row_says_whether_it_was_randomised(massage):
    assert massage["randomised"].notna().all()
    assert set(massage.loc[massage["randomised"] == "yes", "study_id"]) == RCTS
    assert set(massage.loc[massage["design"] == "pre_post", "randomised"]) == {"no"}
    unclear = set(massage.loc[massage["randomised"] == "unclear", "study_id"])
    assert unclear == {"icash_a051", "jmscr2017_acup_oxy", "jose_manipal", "rofiah2016"}  # the source does not say


def test_rows_sharing_mothers_share_a_sample_id(massage):
    samples = massage.dropna(subset=["sample_id"]).groupby("sample_id")["study_id"].apply(set).to_dict()
    assert samples["dewi2024"] == {"dewi2024_weight", "dewi2024_urination"}
    assert samples["hesti2017"] == {"hesti2017", "hesti2017_prepost"}
    assert all(len(ids) >= 2 for ids in samples.values())  # a sample_id on one row would say nothing


def test_massage_figures_match_metafor_escalc(massage):
    smd = compute_effects(massage).set_index("study_id")
    smcc = compute_effects(massage, measure="SMCC").set_index("study_id")
    for study in ("viswanath2016", "dewi2024_urination"):  # SD of change from t (implied r, flagged)
        ref = REFERENCE[study]
        assert smd.loc[study, "se_route"] == "t_sd"
        assert smd.loc[study, "r_implied"] == pytest.approx(ref["r_implied"], abs=1e-12)
        assert smd.loc[study, "yi"] == pytest.approx(ref["SMCR_t"]["yi"], abs=1e-9)
        assert smd.loc[study, "vi"] == pytest.approx(ref["SMCR_t"]["vi"], abs=1e-9)
        assert smcc.loc[study, "yi"] == pytest.approx(ref["SMCC_t"]["yi"], abs=1e-9)
        assert smcc.loc[study, "vi"] == pytest.approx(ref["SMCC_t"]["vi"], abs=1e-9)
    assert smd.loc["viswanath2016", "sei"] == pytest.approx(0.3586, abs=1e-4)  # the "about 0.36"
    # dewi2024_weight: t implies r = 0.9999, flagged; the t-based SE would be 0.014, the assumed-r one is kept
    ref = REFERENCE["dewi2024_weight"]
    assert smd.loc["dewi2024_weight", "r_implied"] == pytest.approx(ref["r_implied"], abs=1e-12)
    assert smd.loc["dewi2024_weight", "vi"] == pytest.approx(ref["SMCR_assumed_r"]["vi"], abs=1e-9)
    assert smd.loc["dewi2024_weight", "se_route"] == "sd"
    assert "r = 0.9999" in smd.loc["dewi2024_weight", "warnings"]
    for study in ("saputri2015_marmet", "fara2022", "pratama2023", "jose_manipal", "kundarti2025", "medan_neck"):
        assert smd.loc[study, "yi"] == pytest.approx(REFERENCE[study]["yi"], abs=1e-9), study
        assert smd.loc[study, "vi"] == pytest.approx(REFERENCE[study]["vi"], abs=1e-9), study
    # hesti2017's between-group p is the Mann-Whitney's: the normal quantile, not the t on 42 df
    assert smd.loc["hesti2017", "yi"] == pytest.approx(REFERENCE["hesti2017_as_rank"]["yi"], abs=1e-9)
    assert smd.loc["hesti2017", "yi"] < REFERENCE["hesti2017_as_t"]["yi"]


def test_marmet_has_an_estimate_from_one_uncontrolled_study(massage):
    milk = used_effects(compute_effects(massage)).query("outcome == 'milk volume'")
    marmet = milk[milk["technique"] == "marmet"]
    assert list(marmet["study_id"]) == ["saputri2015_marmet"] and list(marmet["design"]) == ["pre_post"]


# --- paired statistics --------------------------------------------------------------------------

def _prepost_with_r(r_target: float, **extra):
    """A pre/post row with sd_pre = sd_post = 1 whose printed t implies the correlation r_target."""
    n, md = 20, 0.8
    t = md * math.sqrt(n) / math.sqrt(2 - 2 * r_target)
    return dict(study_id="s", design="pre_post", n=n, mean_pre=10.0, mean_post=10.0 + md, sd_pre=1.0, sd_post=1.0,
                t=t, **extra)


@pytest.mark.parametrize("r_target,flagged", [(-0.199, False), (-0.201, True), (0.989, False), (0.991, True),
                                              (0.5, False), (-0.9, True)])
def test_implied_r_is_flagged_outside_minus_0_2_to_0_99(r_target, flagged):
    row = row_of([_prepost_with_r(r_target)])
    assert row["r_implied"] == pytest.approx(r_target, abs=1e-9)
    assert ("pre/post correlation r =" in row["warnings"]) is flagged


@pytest.mark.parametrize("r_target,route", [(0.989, "t_sd"), (0.991, "sd"), (-0.201, "t_sd"), (0.3, "t_sd")])
def test_the_statistic_gives_the_se_unless_it_is_implausible_and_smaller(r_target, route):
    row = row_of([_prepost_with_r(r_target)])
    assert row["se_route"] == route
    r_used = r_target if route == "t_sd" else 0.5  # the flagged r = 0.991 would shrink the SE: assumed r kept
    g = hedges_j(19) * 0.8 / 1.0
    assert row["vi"] == pytest.approx(2 * (1 - r_used) / 20 + g**2 / 40, rel=1e-9)


def test_an_exact_p_with_sds_gives_the_sd_of_change_but_a_bound_or_a_rank_p_does_not():
    base = dict(study_id="s", design="pre_post", n=30, mean_pre=7.33, mean_post=15.56, sd_pre=4.86, sd_post=8.38)
    exact = row_of([dict(base, p=0.0002)])
    t = stats.t.isf(0.0001, 29)
    assert exact["se_route"] == "p_sd"
    assert exact["r_implied"] == pytest.approx((4.86**2 + 8.38**2 - (8.23 * math.sqrt(30) / t) ** 2)
                                               / (2 * 4.86 * 8.38), rel=1e-9)
    assert row_of([dict(base, p_upper=0.001)])["se_route"] == "sd"  # a bound fixes no t
    assert row_of([dict(base, p=0.0002, test="wilcoxon")])["se_route"] == "sd"  # a rank p fixes no t
    assert math.isnan(row_of([dict(base, p_upper=0.001)])["r_implied"])


# --- rank tests ---------------------------------------------------------------------------------

def test_a_rank_test_p_is_converted_with_the_normal_quantile():
    base = dict(study_id="s", design="two_group", n_treat=12, n_ctrl=12, mean_treat=5.0, mean_ctrl=3.0, p=0.01)
    as_t = row_of([dict(base, test="t")])
    unnamed = row_of([base])
    rank = row_of([dict(base, test="mann-whitney")])
    j, scale = hedges_j(22), math.sqrt(1 / 12 + 1 / 12)
    assert as_t["yi"] == pytest.approx(j * stats.t.isf(0.005, 22) * scale, rel=1e-12) == unnamed["yi"]
    assert rank["yi"] == pytest.approx(j * stats.norm.isf(0.005) * scale, rel=1e-12)
    assert rank["yi"] < as_t["yi"]


@pytest.mark.parametrize("test,censored", [("t", True), (None, True), ("wilcoxon", False), ("mann-whitney", False)])
def test_a_rank_test_bound_is_used_as_the_p_not_censored(test, censored):
    row = dict(study_id="s", design="two_group", n_treat=22, n_ctrl=22, effect_sign="positive", p_upper=0.0005)
    if test:
        row["test"] = test
    out = row_of([row])
    assert bool(out["censored"]) is censored and out["used"]
    quantile = stats.t.isf(0.00025, 42) if censored else stats.norm.isf(0.00025)
    assert out["yi"] == pytest.approx(hedges_j(42) * quantile * math.sqrt(2 / 22), rel=1e-12)


# --- change scores ------------------------------------------------------------------------------

def test_change_score_smds_are_kept_apart_unless_asked_and_md_mixes_them():
    rows = [dict(study_id="c", design="two_group", n_treat=10, n_ctrl=10, mean_treat=8.0, mean_ctrl=3.0,
                 sd_treat=4.0, sd_ctrl=4.0, means="change"),
            dict(study_id="f", design="two_group", n_treat=10, n_ctrl=10, mean_treat=8.0, mean_ctrl=3.0,
                 sd_treat=4.0, sd_ctrl=4.0, means="final")]
    smd = effects_of(rows).set_index("study_id")
    assert not smd.loc["c", "used"] and "change scores" in smd.loc["c", "why_not"]
    assert "Cochrane Handbook 10.5.2" in smd.loc["c", "why_not"]
    assert smd.loc["f", "used"] and smd.loc["f", "why_not"] == ""
    assert effects_of(rows, pool_change_scores=True)["used"].all()
    assert effects_of(rows, measure="MD")["used"].all()
    assert not effects_of(rows, measure="SMCC").set_index("study_id").loc["c", "used"]


# --- rows without means -------------------------------------------------------------------------

@pytest.mark.parametrize("sign", [1, -1])
def test_a_p_derived_prepost_row_needs_no_means(sign):
    row = dict(study_id="s", design="pre_post", n=15, p=0.001, test="paired-t",
               effect_sign="positive" if sign > 0 else "negative")
    out = row_of([row], r_prepost=0.3)
    t = stats.t.isf(0.0005, 14)
    assert out["yi"] == pytest.approx(sign * hedges_j(14) * t * math.sqrt(2 * 0.7 / 15), rel=1e-12)
    assert out["vi"] == pytest.approx(2 * 0.7 / 15 + out["yi"] ** 2 / 30, rel=1e-12)
    smcc = row_of([row], measure="SMCC")
    assert smcc["yi"] == pytest.approx(sign * hedges_j(14) * t / math.sqrt(15), rel=1e-12)
    md = row_of([row], measure="MD")
    assert not md["used"] and "not MD" in md["why_not"]


# --- validation ---------------------------------------------------------------------------------

GOOD = dict(study_id="s1", design="two_group", n_treat=10, n_ctrl=10, mean_treat=5.0, mean_ctrl=4.0,
            sd_treat=1.0, sd_ctrl=1.0)


@pytest.mark.parametrize("fields,field", [
    (dict(randomised="maybe"), "randomised"), (dict(randomised="Yes"), "randomised"),
    (dict(test="ttest"), "test"), (dict(test="paired-t"), "test"), (dict(means="changes"), "means"),
    (dict(effect_sign="up"), "effect_sign"), (dict(effect_sign="positive"), "effect_sign"),  # beside means
    (dict(design="pre_post", n=10, mean_pre=1.0, mean_post=2.0, sd_pre=1.0, sd_post=1.0, randomised="yes"),
     "randomised"),
    (dict(design="pre_post", n=10, mean_pre=1.0, mean_post=2.0, sd_pre=1.0, sd_post=1.0, test="t"), "test"),
    (dict(design="pre_post", n=10, mean_pre=1.0, mean_post=2.0, sd_pre=1.0, sd_post=1.0, means="change"), "means"),
    (dict(mean_treat=None, mean_ctrl=None, sd_treat=None, sd_ctrl=None, effect_sign="positive"), "effect_sign"),
    (dict(mean_treat=None, mean_ctrl=None, effect_sign="positive", p=0.01), "sd_treat"),
])
def test_bad_evidence_fields_are_refused_naming_study_and_field(write_csv, capsys, fields, field):
    row = {k: v for k, v in {**BASE, **GOOD, **fields}.items() if v is not None}
    path = write_csv([row])
    with pytest.raises(StudyDataError) as info:
        load_studies(path)
    assert f"study 's1', field '{field}'" in str(info.value)
    assert cli.main(["fit", str(path), "--out", str(path.parent / "out")]) == 2
    assert f"field '{field}'" in " ".join(capsys.readouterr().err.split())


def test_good_evidence_fields_load(write_csv):
    rows = [dict(BASE, **GOOD, randomised="unclear", sample_id="a", test="mann-whitney", means="final"),
            dict(BASE, study_id="s2", design="pre_post", n=12, effect_sign="negative", p_upper=0.001,
                 test="wilcoxon", randomised="no", sample_id="a")]
    table = load_studies(write_csv(rows))
    assert list(table["randomised"]) == ["unclear", "no"] and list(table["sample_id"]) == ["a", "a"]


# --- design restriction and weight share --------------------------------------------------------

def _designs():
    rows = [dict(study_id="rct", design="two_group", n_treat=20, n_ctrl=20, mean_treat=2.0, mean_ctrl=1.0,
                 sd_treat=1.0, sd_ctrl=1.0, randomised="yes"),
            dict(study_id="quasi", design="two_group", n_treat=10, n_ctrl=10, mean_treat=2.0, mean_ctrl=1.0,
                 sd_treat=1.0, sd_ctrl=1.0, randomised="no"),
            dict(study_id="blank", design="two_group", n_treat=10, n_ctrl=10, mean_treat=2.0, mean_ctrl=1.0,
                 sd_treat=1.0, sd_ctrl=1.0),
            dict(study_id="pp", design="pre_post", n=30, mean_pre=1.0, mean_post=2.0, sd_change=1.0)]
    return effects_of(rows)


def test_restrict_design_leaves_out_and_counts():
    effects = _designs()
    assert list(effects["randomised"]) == ["yes", "no", "unclear", "unclear"]  # an empty cell reads unclear
    controlled = restrict_design(effects, "controlled")
    assert list(used_effects(controlled)["study_id"]) == ["rct", "quasi", "blank"]
    assert controlled.attrs["design_note"] == "design controlled: 1 of 4 rows with an effect size left out (pp)"
    randomised = restrict_design(effects, "randomised").set_index("study_id")
    assert list(randomised.index[randomised["used"]]) == ["rct"]
    assert randomised.loc["blank", "why_not"] == "not randomised (randomised = unclear): left out by design 'randomised'"
    assert restrict_design(effects, "all")["used"].all()
    with pytest.raises(ValueError, match="design 'rct' unknown"):
        restrict_design(effects, "rct")


def test_prepost_weight_share_is_the_random_effects_weight_of_the_prepost_rows():
    effects = _designs()
    sei = effects["sei"].to_numpy()
    for tau in (0.0, 0.3, 5.0):
        w = 1 / (sei**2 + tau**2)
        assert prepost_weight_share(effects, tau) == pytest.approx(w[3] / w.sum(), rel=1e-12)
    assert prepost_weight_share(effects, 1e6) == pytest.approx(0.25, abs=1e-9)  # equal weights at huge tau
    assert prepost_weight_share(restrict_design(effects, "controlled"), 0.3) == 0.0
    only_pp = effects[effects["study_id"] == "pp"]
    assert prepost_weight_share(only_pp, 0.3) == 1.0
    with pytest.raises(ValueError, match="tau"):
        prepost_weight_share(effects, -0.1)


# --- one row per sample -------------------------------------------------------------------------

def test_one_row_per_sample_keeps_the_largest_n_then_the_first_listed():
    rows = [dict(study_id="a", design="pre_post", n=20, mean_pre=1.0, mean_post=2.0, sd_change=1.0, sample_id="m"),
            dict(study_id="b", design="pre_post", n=20, mean_pre=1.0, mean_post=2.0, sd_change=1.0, sample_id="m",
                 outcome="weight"),
            dict(study_id="c", design="pre_post", n=21, mean_pre=1.0, mean_post=2.0, sd_change=1.0, sample_id="k"),
            dict(study_id="d", design="pre_post", n=22, mean_pre=1.0, mean_post=2.0, sd_change=1.0, sample_id="k",
                 outcome="weight")]
    effects = effects_of(rows)
    once = one_row_per_sample(effects).set_index("study_id")
    assert list(once.index[once["used"]]) == ["a", "d"]  # tie: the first listed; else the larger n
    assert once.loc["b", "why_not"].startswith("same participants (sample_id 'm') as a")
    assert one_row_per_sample(effects).attrs["sample_note"] == "a sample counts once: left out b (kept a), c (kept d)"
    per_outcome = one_row_per_sample(effects, by_outcome=True)
    assert per_outcome["used"].all()  # within one outcome no sample repeats


def test_pooled_outcomes_count_the_44_dewi_mothers_once(massage):
    pooled = group_by_outcome(compute_effects(massage), pool_outcomes=True)["all outcomes (SMD)"]
    used = used_effects(pooled)
    assert "dewi2024_weight" in set(used["study_id"]) and "dewi2024_urination" not in set(used["study_id"])
    assert used["n_total"].sum() == used.drop_duplicates("study_id")["n_total"].sum()
    assert pooled.attrs["sample_note"] == "a sample counts once: left out dewi2024_urination (kept dewi2024_weight)"


def test_fit_restricted_to_randomised_rows_says_what_it_left_out(capsys, tmp_path):
    assert cli.main(["fit", str(MASSAGE), "--design", "randomised", "--engine", "exact", "--out", str(tmp_path)]) == 4
    out = " ".join(capsys.readouterr().out.split())
    assert "design randomised: 13 of 13 rows with an effect size left out" in out
    assert "not randomised (randomised = no): left out by design 'randomised'" in out


def test_fit_controlled_prints_the_prepost_weight_share_of_zero(capsys, tmp_path):
    assert cli.main(["fit", str(MASSAGE), "--design", "controlled", "--outcome", "milk volume", "--engine", "exact",
                     "--draws", "500", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert all(len(line) <= 100 for line in out.splitlines())
    text = " ".join(out.split())
    note = text.split("design controlled: ", 1)[1].split(")", 1)[0]
    assert note.startswith("6 of 13 rows with an effect size left out (")
    assert {"pratama2023", "viswanath2016", "fara2022", "saputri2015_marmet"} <= set(note.split("(")[1].split(", "))
    assert "milk volume: one-group pre/post rows carry 0% of the weight (0 of 3 rows;" in text


def test_public_names():
    assert es.restrict_design is restrict_design and es.prepost_weight_share is prepost_weight_share
    assert es.one_row_per_sample is one_row_per_sample
    assert np.isfinite(es.prepost_weight_share(_designs(), 0.2))


def test_sensitivity_design_option_restricts_every_scenario(tmp_path, capsys):
    from evsynth.methods.sensitivity import Sensitivity, scenario_effects

    spec = tmp_path / "spec.toml"
    spec.write_text(f'title = "design"\n[data]\nstudies = "{MASSAGE}"\noutcome = "milk volume"\n'
                    '[model]\nname = "random_effects"\nengine = "exact"\n[fit]\ndraws = 500\nchains = 1\n'
                    '[grid]\ntau_prior = ["halfnormal(0.5)"]\nr_prepost = [0.5]\n[effects]\ndesign = "controlled"\n')
    grid = Sensitivity(studies=MASSAGE, outcome="milk volume", model="random_effects", design="controlled",
                       engine="exact")
    _, kept = scenario_effects(grid.context, grid.scenarios()[0])
    assert sorted(kept) == ["jose_manipal", "kundarti2025", "langgeng2020"]
    everything = Sensitivity(studies=MASSAGE, outcome="milk volume", model="random_effects", engine="exact")
    assert grid.context.fingerprint() != everything.context.fingerprint()
    assert main_status(["sensitivity", str(spec), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "milk volume: design controlled: 4 of 8 rows with an effect size left out" in text
    # the command-line option overrides the spec: randomised leaves no milk-volume study to fit
    main_status(["sensitivity", str(spec), "--design", "randomised", "--out", str(tmp_path / "r"), "--quiet"])
    assert "milk volume: design randomised: 8 of 8 rows with an effect size left out" in " ".join(
        capsys.readouterr().out.split())
    with pytest.raises(ValueError, match="design 'rct' unknown"):
        Sensitivity(studies=MASSAGE, outcome="milk volume", design="rct")


def main_status(argv):
    return cli.main(argv)



def test_report_paragraph_gives_the_prepost_weight_share(massage):
    from evsynth.methods.analysis import run_analysis
    from evsynth.present.report import results_paragraph

    milk = group_by_outcome(compute_effects(massage))["milk volume"]
    result = run_analysis("milk volume", milk, model="random_effects", engine="exact", draws=500, chains=1, seed=1)
    tau = float(result.summary.loc["tau (between studies)", "q50"])
    share = prepost_weight_share(milk, tau)
    assert 0.5 < share < 0.8  # four pre/post rows of seven, the most precise among them
    text = results_paragraph(result)
    assert (f"4 of 7 studies are one-group pre/post designs, whose change includes time trends and regression to "
            f"the mean; they carry {share:.0%} of the weight (weights 1/(se² + tau²) at the posterior median tau "
            f"{tau:.2f})") in text
