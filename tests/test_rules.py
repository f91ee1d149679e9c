"""Exclusion-rule grammar: what it selects (checked against plain pandas masks written by hand)
and what it refuses (anything that is not a comparison of study-table columns)."""

import pandas as pd
import pytest

from evsynth.data.rules import RuleError, parse_rule


@pytest.fixture
def table():
    return pd.DataFrame({
        "study_id": ["a", "b", "c", "d", "e"],
        "design": ["pre_post", "two_group", "two_group", "pre_post", "two_group"],
        "technique": ["oxytocin", "neck", "marmet", "oxytocin", "neck"],
        "year": pd.array([2015, 2019, None, 2021, 2017], dtype="Int64"),
        "n": [12.0, None, None, 40.0, None],
        "synthetic": [True, False, False, True, False],
        "source_level": ["abstract", "full text", None, "secondary", "abstract"],
    })


def excluded(rule, table):
    return list(table["study_id"][parse_rule(rule, table.columns).select(table)])


@pytest.mark.parametrize("rule, expected", [
    ("design == 'pre_post'", lambda t: t["design"] == "pre_post"),
    ('design != "pre_post"', lambda t: t["design"] != "pre_post"),
    ("synthetic", lambda t: t["synthetic"]),
    ("not synthetic", lambda t: ~t["synthetic"]),
    ("synthetic == false", lambda t: ~t["synthetic"]),
    ("year < 2018", lambda t: t["year"].fillna(9999) < 2018),
    ("year >= 2019 and design == 'two_group'", lambda t: (t["year"].fillna(0) >= 2019) & (t["design"] == "two_group")),
    ("synthetic or technique == 'neck'", lambda t: t["synthetic"] | (t["technique"] == "neck")),
    ("technique in ('neck', 'marmet')", lambda t: t["technique"].isin(["neck", "marmet"])),
    ("not (design == 'pre_post' or year > 2018)",  # study c (no year, two_group): unknown, not excluded
     lambda t: ~((t["design"] == "pre_post") | (t["year"].fillna(0) > 2018)) & t["year"].notna()),
    ("n < 20", lambda t: t["n"].fillna(1e9) < 20),
    ("year == 2.017e3", lambda t: t["year"].fillna(0) == 2017),
])
def test_rule_selects_what_pandas_selects(table, rule, expected):
    assert excluded(rule, table) == list(table["study_id"][expected(table).astype(bool)])


def test_and_binds_tighter_than_or(table):
    # a or (b and c), as in Python and SQL
    assert excluded("technique == 'marmet' or synthetic and year > 2020", table) == ["c", "d"]


def test_missing_cells_never_match(table):
    # study c has no year and no source_level: no comparison excludes it
    for rule in ("year < 3000", "year > 0", "year != 2015", "source_level != 'abstract'", "not (year < 2018)",
                 "not year < 3000", "not (year > 0) or synthetic"):
        assert "c" not in excluded(rule, table), rule


@pytest.mark.parametrize("rule, message", [
    ("__import__('os').system('x')", "'__import__' is not a column of the study table"),
    ("open('/etc/passwd')", "'open' is not a column"),
    ("design.upper() == 'X'", "unexpected character '.'"),
    ("design == 'a'; import os", "unexpected character ';'"),
    ("lambda: 1", "'lambda' is not a column"),
    ("design()", "calls are not allowed"),
    ("[x for x in ()]", "unexpected character '['"),
    ("foo == 1", "'foo' is not a column"),
    ("design", "column 'design' is not true/false"),
    ("design < 3", "column 'design' holds text"),
    ("year == '2017'", "column 'year' holds numbers"),
    ("synthetic == 1", "column 'synthetic' is true/false"),
    ("design < 'x'", "< needs a number"),
    ("", "empty rule"),
    ("year <", "expected a value"),
    ("design == 'x' and", "expected a column name"),
    ("(year > 1", "expected )"),
    ("year > 1 year", "unexpected text"),
    ("technique in ('a', 1)", "mix types"),
])
def test_refused_with_a_clear_error(table, rule, message):
    with pytest.raises(RuleError, match="exclusion rule") as info:
        excluded(rule, table)
    assert message in str(info.value)


def test_malicious_rule_runs_nothing(table, monkeypatch):
    import os

    calls = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a) or 0)
    with pytest.raises(RuleError, match="not a column"):
        parse_rule("__import__('os').system('touch /tmp/evsynth_pwned')", table.columns)
    assert calls == []


def test_rule_text_is_kept_for_tables(table):
    rule = parse_rule("  design == 'pre_post'  ", table.columns)
    assert str(rule) == "design == 'pre_post'"


def test_a_known_answer_needs_no_missing_cell(table):
    # SQL's three-valued logic: c has no year but is not synthetic, so "year > 0 and synthetic" is
    # known to be false for it and its negation known to be true
    assert "c" in excluded("not (year > 0 and synthetic)", table)
    assert "c" in excluded("year > 0 or technique == 'marmet'", table)


@pytest.mark.parametrize("rule, message", [
    ("n>1 or " * 250 + "n>1", "more than 200 column tests"),
    ("not " * 40 + "synthetic", "nested more than 32 levels"),
    ("(" * 40 + "synthetic" + ")" * 40, "nested more than 32 levels"),
    ("design == '" + "x" * 3000 + "'", "more than the limit of 2000"),
])
def test_size_limits_refuse_before_any_work(table, rule, message):
    with pytest.raises(RuleError, match="exclusion rule") as info:
        excluded(rule, table)
    assert message in str(info.value)


def test_long_chains_within_the_limits_evaluate_without_recursion(table):
    rule = " or ".join(f"year=={2000 + i}" for i in range(140))
    assert excluded(rule, table) == ["a", "b", "d", "e"]


def test_flag_test_of_an_all_empty_column_matches_nothing(table):
    empty = table.assign(flagged=pd.Series([None] * 5, dtype=object), blank=float("nan"))
    assert excluded("flagged", empty) == [] and excluded("not blank", empty) == []
