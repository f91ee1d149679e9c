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


@pytest.mark.slow  # loads and prints 13,000 rows (~20 s)
def test_a_large_table_is_refused_up_front_from_the_cli(tmp_path, capsys):
    rows = [dict(TWO_GROUP, study_id=f"s{i}", technique="oxytocin") for i in range(13_000)]
    path = tmp_path / "big.csv"
    path.write_text(csv_text(rows))
    code, err = run(["fit", path, "--engine", "exact", "--draws", 1000, "--chains", 4, "--quiet",
                     "--out", tmp_path / "o"], capsys)
    assert code == 2 and "13,000 studies" in err and "limit of 50,000,000" in err and "Traceback" not in err, err
