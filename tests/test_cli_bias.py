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
