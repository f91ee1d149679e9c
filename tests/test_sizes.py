"""Sizes (issue 25): a table the engines cannot hold is refused up front with the limit stated, exit 2,
never a MemoryError half way (100,000 rows x 8,000 draws needed 6 GB for theta alone; 10,000
techniques a 1.5 GB dense design). Both sides of each limit are tested."""

import pandas as pd
import pytest

from evsynth.engines.exact import MAX_DRAW_CELLS, check_draw_size
from evsynth.model.description import MAX_TECHNIQUES, by_technique

from test_hostile import TWO_GROUP, csv_text, run


def effects(n_rows: int, n_techniques: int) -> pd.DataFrame:
    from evsynth.data.studies import load_studies
    from evsynth.effects import compute_effects

    rows = [dict(TWO_GROUP, study_id=f"s{i}", technique=f"t{i % n_techniques}") for i in range(n_rows)]
    return compute_effects(load_studies(pd.DataFrame(rows)))


def test_the_draw_limit_on_both_sides():
    check_draw_size(MAX_DRAW_CELLS // 4000, 1000, 4)  # exactly at the limit
    with pytest.raises(ValueError, match=r"4 chains x 1,000 draws x 12,501 studies = 50,004,000 values .* limit of "
                                         r"50,000,000"):
        check_draw_size(12_501, 1000, 4)


def test_the_technique_limit_on_both_sides():
    assert len(by_technique(effects(2 * MAX_TECHNIQUES, MAX_TECHNIQUES)).parts[0].labels) == MAX_TECHNIQUES
    with pytest.raises(ValueError, match=rf"{MAX_TECHNIQUES + 1:,} techniques, more than the limit of "
                                         rf"{MAX_TECHNIQUES:,}"):
        by_technique(effects(2 * (MAX_TECHNIQUES + 1), MAX_TECHNIQUES + 1))


def test_a_large_table_is_refused_up_front_from_the_cli(tmp_path, capsys):  # before its rows are printed
    rows = [dict(TWO_GROUP, study_id=f"s{i}", technique="oxytocin") for i in range(13_000)]
    path = tmp_path / "big.csv"
    path.write_text(csv_text(rows))
    from evsynth.cli import main as cli

    code = cli.main([str(a) for a in ["fit", path, "--engine", "exact", "--draws", 1000, "--chains", 4,
                                      "--out", tmp_path / "o"]])
    out, err = capsys.readouterr()
    assert "s12999" not in out  # refused before the 13,000 rows' effect table is printed
    assert code == 2 and "13,000 studies" in err and "limit of 50,000,000" in err and "Traceback" not in err, err


def varied_effects(n_rows: int) -> pd.DataFrame:
    from evsynth.data.studies import load_studies
    from evsynth.effects import compute_effects

    rows = [dict(TWO_GROUP, study_id=f"s{i}", technique="oxytocin", mean_treat=f"{11 + 0.5 * i}",
                 n_treat=f"{15 + 7 * i}") for i in range(n_rows)]
    return compute_effects(load_studies(pd.DataFrame(rows)))


def test_the_bias_adjusted_limit_on_both_sides():
    from evsynth.methods.robma import MAX_STUDIES, bias_adjusted

    assert MAX_STUDIES == 100
    table = varied_effects(5)
    assert bias_adjusted(table, max_studies=5).ran  # exactly at the limit
    over = bias_adjusted(table, max_studies=4)
    assert not over.ran and over.reason.startswith("k = 5 > 4 studies")
    assert over.line().startswith("bias-adjusted estimate not computed: k = 5 > 4 studies")


def test_the_leave_one_out_limit_on_both_sides():
    from evsynth.methods.leave_out import MAX_STUDIES, leave_one_out

    assert MAX_STUDIES == 1000
    table = varied_effects(5)
    assert len(leave_one_out(table, max_studies=5).table) == 6  # exactly at the limit: all + 5 left out
    with pytest.raises(ValueError, match=r"k = 5 > 4 studies \(one refit per study"):
        leave_one_out(table, max_studies=4)


def test_an_overwhelming_inclusion_bayes_factor_is_infinite_not_an_overflow():
    import math

    from evsynth.methods.compare import inclusion_bf

    assert inclusion_bf(800.0) == math.inf and inclusion_bf(1.0) == pytest.approx(math.e)
    assert math.isnan(inclusion_bf(float("nan")))


def test_the_forest_limit_on_both_sides(tmp_path, capsys):
    from evsynth.cli.fit import forest_drawn
    from evsynth.methods.analysis import run_analysis

    table = varied_effects(4)
    result = run_analysis("milk", table, engine="exact", fit_options={"draws": 100, "chains": 2})
    assert forest_drawn("milk", result.idata, table, None, tmp_path / "f.png", max_studies=4)  # at the limit
    assert (tmp_path / "f.png").stat().st_size > 0 and capsys.readouterr().out == ""
    assert not forest_drawn("milk", result.idata, table, None, tmp_path / "g.png", max_studies=3)
    assert not (tmp_path / "g.png").exists()
    assert "milk: forest plot not drawn: k = 4 > 3 studies" in capsys.readouterr().out


def test_technique_coverage_with_many_techniques_matches_row_by_row():
    """technique_coverage marks used rows once for the table (it took > 2 minutes for 10,000 techniques
    x 20,000 rows when done per technique); each technique still lists exactly its used studies."""
    from evsynth.effects.techniques import technique_coverage

    table = effects(60, 30).iloc[::-1]  # a reversed index: positions, not labels, pick the rows
    table.loc[table["study_id"] == "s7", "used"] = False
    table.loc[table["study_id"] == "s7", "why_not"] = "a test exclusion"
    coverage = technique_coverage(table).set_index("technique")
    assert len(coverage) == 30
    assert coverage.loc["t7", "studies_used"] == "s37" and coverage.loc["t8", "studies_used"] == "s38, s8"
