"""`evsynth bias`: Egger, PET-PEESE, the funnel PNG and the RoBMA-PSMA ensemble per outcome, each with
its minimum number of studies (checked on both sides)."""

from evsynth.cli.main import main


def rows(yi, sei):
    return [{"study_id": f"s{i}", "citation": "made up for a test", "source_level": "synthetic", "design": "effect",
             "technique": "neck", "outcome": "milk volume", "yi": y, "sei": s, "measure": "SMD", "synthetic": "true"}
            for i, (y, s) in enumerate(zip(yi, sei))]


def test_below_the_minimum_nothing_is_computed(tmp_path, write_csv, capsys):
    path = write_csv(rows([0.3, 0.6], [0.1, 0.2]))
    assert main(["bias", str(path), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "Egger and PET-PEESE not computed: 2 uncensored studies, they need at least 3" in out
    assert "bias-adjusted estimate not computed: 2 studies; the ensemble needs at least 3" in out


def test_at_the_minimum_everything_is_computed_and_the_funnel_saved(tmp_path, write_csv, capsys):
    path = write_csv(rows([0.3, 0.6, 0.9], [0.1, 0.2, 0.3]))
    assert main(["bias", str(path), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "have little power below 10 studies" in out and "Egger regression test (lm): t(df = 1)" in out
    assert "PET-PEESE:" in out and "RoBMA-PSMA models" in out and "bias-adjusted " in out
    assert (tmp_path / "o" / "milk_volume_funnel.png").stat().st_size > 1000
    assert all(len(line) <= 100 for line in out.splitlines())


def test_fit_leads_each_outcome_with_effect_certainty_and_bias_adjusted_figure(tmp_path, capsys):
    """The issue's done criterion on the bundled data: the first lines for milk volume are the pooled
    effect with its interval, the certainty and the bias-adjusted estimate (whose interval includes 0
    on today's data), never P(>0) alone."""
    assert main(["fit", "--outcome", "milk volume", "--engine", "exact", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    block = out.split("== milk volume: the answer (details below) ==\n", 1)[1]
    lines = [line for line in block.splitlines() if not line.startswith("    ")][:5]
    assert lines[0].startswith("pooled effect SMD ") and "(median [95% CrI], unadjusted)" in lines[0]
    assert lines[1].startswith("certainty ") and "GRADE-style; started low" in lines[1]
    assert lines[2].startswith("bias-adjusted SMD ") and "includes no effect" in block.split("leave-one-out")[0]
    assert lines[3].startswith("leave-one-out (random effects, exact): most influential pratama2023")
    assert lines[4].startswith("without secondary-source rows (pratama2023)")
    assert "P(>0)" not in block.split("\n\n", 1)[0]
