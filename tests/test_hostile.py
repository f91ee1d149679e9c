"""Hostile input (issue 15): every bad input is refused by name (exit 2, the study or spec key and
the field in the message), nothing is padded, renamed, ignored or altered on the way in, and valid
files in other shapes (byte-order mark, CRLF line ends, unicode labels) load exactly as before."""

import csv
import io
import math
import re

import pandas as pd
import pytest

from evsynth.cli import main as cli
from evsynth.effects import EffectSizeError, compute_effects
from evsynth.data.studies import StudyDataError, load_studies

from conftest import ROOT

MASSAGE = ROOT / "studies" / "massage.csv"
DEMO = ROOT / "studies" / "synthetic_demo.csv"
BASE = {"citation": "test", "source_level": "abstract", "technique": "oxytocin", "outcome": "milk volume"}
TWO_GROUP = dict(BASE, study_id="g1", design="two_group", n_treat="20", n_ctrl="21", mean_treat="12.0",
                 mean_ctrl="10.0", sd_treat="3.0", sd_ctrl="3.5")
PRE_POST = dict(BASE, study_id="p1", design="pre_post", n="30", mean_pre="20", mean_post="25", sd_change="6")
EFFECT = dict(BASE, study_id="e1", design="effect", yi="0.3", sei="0.1", measure="SMD")


def csv_text(rows: list[dict], header: list[str] | None = None) -> str:
    header = header or list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[row.get(k, "") for k in header] for row in rows])
    return buffer.getvalue()


def run(args, capsys) -> tuple[int, str]:
    """cli.main as a user runs it: (exit status, stderr); a traceback fails the test."""
    try:
        code = cli.main([str(a) for a in args])
    except SystemExit as exc:  # argparse errors
        code = exc.code
    return code, capsys.readouterr().err


def fit_refuses(tmp_path, capsys, text: str | bytes, *needles, code=2):
    path = tmp_path / "studies.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    status, err = run(["fit", path, "--out", tmp_path / "out", "--draws", 10, "--tune", 10, "--chains", 1], capsys)
    assert status == code, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


# ---- the file itself ----------------------------------------------------------------------------

def test_a_short_row_is_refused_naming_line_and_study_not_padded(tmp_path, capsys):
    synthetic = dict(TWO_GROUP, study_id="syn1", synthetic="true")
    text = csv_text([TWO_GROUP, synthetic])
    short = text.rstrip("\n").rsplit(",", 1)[0] + "\n"  # the last field (synthetic=true) lost
    err = fit_refuses(tmp_path, capsys, short, "line 3", "study 'syn1'", "fields, the header has")
    assert "missing" in err


def test_a_long_row_is_refused(tmp_path, capsys):
    text = csv_text([TWO_GROUP, dict(TWO_GROUP, study_id="g2")]).rstrip("\n") + ",extra\n"
    fit_refuses(tmp_path, capsys, text, "line 3", "study 'g2'", "extra fields")


def test_duplicate_header_is_refused_not_renamed(tmp_path, capsys):
    text = csv_text([TWO_GROUP]).replace("sd_ctrl\n", "sd_ctrl,sd_ctrl\n", 1).rstrip("\n") + ",9.9\n"
    fit_refuses(tmp_path, capsys, text, "column 'sd_ctrl' appears 2 times")


def test_unknown_column_is_refused_with_a_suggestion(tmp_path, capsys):
    row = {("sd_Treat" if k == "sd_treat" else k): v for k, v in TWO_GROUP.items()}
    fit_refuses(tmp_path, capsys, csv_text([row]), "column 'sd_Treat'", "did you mean 'sd_treat'")


def test_declared_extra_columns_are_kept_as_text(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text(csv_text([dict(TWO_GROUP, latitude="44")]))
    with pytest.raises(StudyDataError, match="'latitude' is not in the schema"):
        load_studies(path)
    table = load_studies(path, extra_columns=["latitude"])
    assert table.loc[0, "latitude"] == "44" and table.attrs["extra_columns"] == ("latitude",)
    with pytest.raises(StudyDataError, match="already in the schema"):
        load_studies(path, extra_columns=["n"])


@pytest.mark.parametrize("separator,word", [(";", "semicolon"), ("\t", "tab")])
def test_other_separators_are_named(tmp_path, capsys, separator, word):
    fit_refuses(tmp_path, capsys, csv_text([TWO_GROUP]).replace(",", separator), word, "expected commas")


@pytest.mark.parametrize("encoding,word", [("latin-1", "Latin-1"), ("utf-16", "UTF-16")])
def test_other_encodings_are_named(tmp_path, capsys, encoding, word):
    text = csv_text([dict(TWO_GROUP, technique="pijat oksitosin (Müller)")])
    fit_refuses(tmp_path, capsys, text.encode(encoding), word, "expected UTF-8")


def test_empty_file_and_directory_and_missing_file(tmp_path, capsys):
    fit_refuses(tmp_path, capsys, b"", "the file is empty", "expected a CSV")
    status, err = run(["fit", tmp_path, "--out", tmp_path / "out"], capsys)
    assert status == 2 and "is a directory" in err and "Traceback" not in err
    status, err = run(["fit", tmp_path / "nope.csv", "--out", tmp_path / "out"], capsys)
    assert status == 2 and "no such file" in err


def test_bom_crlf_and_unicode_labels_load_unchanged(tmp_path):
    reference = load_studies(MASSAGE)
    text = MASSAGE.read_text(encoding="utf-8")
    variant = tmp_path / "variant.csv"
    variant.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
    pd.testing.assert_frame_equal(load_studies(variant), reference)
    unicode_rows = [dict(TWO_GROUP, technique="pijat oksitosin — Müller ü", outcome="volume ASI (mL) ✓")]
    plain = tmp_path / "u.csv"
    plain.write_text(csv_text(unicode_rows), encoding="utf-8")
    table = load_studies(plain)
    assert table.loc[0, "technique"] == "pijat oksitosin — Müller ü"
    assert table.loc[0, "outcome"] == "volume ASI (mL) ✓"


def test_bundled_tables_load_and_round_trip_through_the_loader():
    for path in (MASSAGE, DEMO):
        table = load_studies(path)
        pd.testing.assert_frame_equal(load_studies(table), table)  # a loaded table validates as itself


# ---- labels ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("field,first,second", [
    ("technique", "Oxytocin", "oxytocin"),
    ("outcome", "Milk volume", "milk volume"),
    ("technique", "oxytocin", "oxy\u200btocin"),
])
def test_near_duplicate_labels_are_refused_naming_both_spellings(tmp_path, capsys, field, first, second):
    rows = [dict(TWO_GROUP, study_id="a", **{field: first}), dict(TWO_GROUP, study_id="b", **{field: second})]
    err = fit_refuses(tmp_path, capsys, csv_text(rows), f"field '{field}'", repr(first), repr(second))
    assert "study 'a'" in err and "study 'b'" in err


def test_study_ids_differing_by_case_or_zero_width_space(tmp_path, capsys):
    rows = [dict(TWO_GROUP, study_id="Smith2020"), dict(TWO_GROUP, study_id="smith2020")]
    fit_refuses(tmp_path, capsys, csv_text(rows), "field 'study_id'", "'Smith2020'", "'smith2020'")
    rows = [dict(TWO_GROUP, study_id="s1"), dict(TWO_GROUP, study_id="s\u200b1")]
    fit_refuses(tmp_path, capsys, csv_text(rows), "field 'study_id'", "U+200B")


# ---- numbers --------------------------------------------------------------------------------------

@pytest.mark.parametrize("row,study,field", [
    (dict(TWO_GROUP, mean_treat="1e308", mean_ctrl="-1e308"), "g1", "mean_treat/mean_ctrl"),
    (dict(EFFECT, sei="1e-300"), "e1", "sei"),
    (dict(EFFECT, sei="1e200"), "e1", "sei"),
    (dict(TWO_GROUP, sd_treat="1e-300", sd_ctrl="1e-300"), "g1", "sd_treat/sd_ctrl"),
    (dict(TWO_GROUP, sd_treat="", sd_ctrl="", t="1e-300"), "g1", "t"),  # MD only: see the next test
    (dict(TWO_GROUP, sd_treat="", sd_ctrl="", p="1"), "g1", "p"),
    (dict(TWO_GROUP, sd_treat="", sd_ctrl="", p_upper="1"), "g1", "p_upper"),
    (dict(TWO_GROUP, sd_treat="", sd_ctrl="", mean_ctrl="12.0", t="2.1"), "g1", "t"),
    (dict(TWO_GROUP, n_treat="1e20"), "g1", "n_treat"),
    (dict(TWO_GROUP, n_treat="100000000000000000000"), "g1", "n_treat"),
    (dict(TWO_GROUP, year="-1e25"), "g1", "year"),
    (dict(TWO_GROUP, year="-100000"), "g1", "year"),
])
def test_degenerate_numbers_are_refused_by_study_and_field(tmp_path, capsys, row, study, field):
    measures = ("SMD",) if row["design"] == "effect" else ("MD",) if field == "t" else ("SMD", "MD")
    for measure in measures:
        path = tmp_path / "studies.csv"
        path.write_text(csv_text([row]))
        status, err = run(["fit", path, "--measure", measure, "--out", tmp_path / "out"], capsys)
        assert status == 2 and "Traceback" not in err, err
        assert f"study '{study}'" in err and f"field '{field}'" in err, err


@pytest.mark.parametrize("measure", ["SMD", "MD"])
def test_a_vanishing_t_is_refused_the_same_for_every_measure(tmp_path, capsys, measure):
    # issue 25: t = 1e-300 gave a precise null SMD while MD overflowed; no printed t is that small
    # (t = 0 is refused too). At the limit, t = 1e-6, the row loads.
    rows = [dict(TWO_GROUP, study_id="tiny", sd_treat="", sd_ctrl="", t="1e-300"),
            dict(TWO_GROUP, study_id="small", sd_treat="", sd_ctrl="", t="1e-6")]
    path = _write(tmp_path, rows)
    status, err = run(["fit", path, "--measure", measure, "--out", tmp_path / "out"], capsys)
    assert status == 2 and "study 'tiny', field 't'" in err and "below 1e-06" in err and "study 'small'" not in err, err
    assert compute_effects(load_studies(_write(tmp_path, rows[1:])), measure="SMD")["used"].all()


def test_compute_effects_validates_a_hand_made_table():
    frame = pd.DataFrame([dict(TWO_GROUP, sd_treat=-3, n_ctrl=1)])
    with pytest.raises(EffectSizeError, match="study 'g1', field 'sd_treat'") as info:
        compute_effects(frame)
    assert "field 'n_ctrl'" in str(info.value) and "load_studies" in str(info.value)
    with pytest.raises(EffectSizeError, match="column 'sd_Treat'"):
        compute_effects(pd.DataFrame([{("sd_Treat" if k == "sd_treat" else k): v for k, v in TWO_GROUP.items()}]))
    good = compute_effects(pd.DataFrame([TWO_GROUP]))  # valid hand-made rows are validated, then used
    assert good["used"].all()


# ---- contradictions are flagged on the row --------------------------------------------------------

@pytest.mark.parametrize("row,words", [
    (dict(TWO_GROUP, sd_treat="", sd_ctrl="", p="0.071", t="10"), "p = 0.071 implies |t|"),
    (dict(TWO_GROUP, ci_low="3", ci_high="5"), "does not contain the mean difference 2"),
    (dict(PRE_POST, sd_pre="5", sd_post="5", sd_change="20"), "sd_change = 20 is impossible"),
    (dict(PRE_POST, sd_pre="5", sd_post="5", sd_change="2", r_prepost="0.2"), "disagrees with sd_pre"),
    (dict(TWO_GROUP, sd_treat="", sd_ctrl="", t="0.5", p_upper="0.001"), "above the printed bound"),
])
def test_contradictions_are_flagged_and_kept_visible(tmp_path, row, words):
    table = compute_effects(load_studies(_write(tmp_path, [row])))
    assert words in table.loc[0, "warnings"] and table.loc[0, "used"]


def test_consistent_rows_carry_no_warning(tmp_path):
    rows = [dict(TWO_GROUP, sd_treat="", sd_ctrl="", t="2.0", p="0.052"),  # t = 2.0 on 39 df: p = 0.052
            dict(TWO_GROUP, study_id="g2", ci_low="0.1", ci_high="3.9"),
            dict(PRE_POST, sd_pre="5", sd_post="5", sd_change="5", r_prepost="0.5")]
    table = compute_effects(load_studies(_write(tmp_path, rows)))
    assert (table["warnings"] == "").all(), table["warnings"].tolist()


def _write(tmp_path, rows):
    path = tmp_path / "rows.csv"
    path.write_text(csv_text(rows))
    return path


# ---- the command line -----------------------------------------------------------------------------

def test_header_only_csv_and_nothing_fittable_exit_4(tmp_path, capsys):
    header = ",".join(csv_text([TWO_GROUP]).splitlines()[0].split(","))
    err = fit_refuses(tmp_path, capsys, header + "\n", "nothing analysed", code=4)
    err = fit_refuses(tmp_path, capsys, csv_text([TWO_GROUP]), "nothing analysed", code=4)  # one study
    # the sweep says the same of a header-only table (valid input, nothing to analyse), not "bad input"
    empty = tmp_path / "empty.csv"
    empty.write_text(header + "\n")
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(studies=empty.as_posix()))
    status, err = sweep(tmp_path, capsys, spec)
    assert status == 4 and "no rows: nothing analysed" in err and "Traceback" not in err, err


def test_out_is_a_file(tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    path = _write(tmp_path, [TWO_GROUP])
    for command in ("fit", "report", "network"):
        status, err = run([command, path, "--out", tmp_path / "taken"], capsys)
        assert status == 2 and "--out" in err and "is a file" in err and "Traceback" not in err, (command, err)


def test_stale_files_in_out_are_listed(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "effects.csv").write_text("old")
    (out / "milk_volume_forest.png").write_text("old")
    status = cli.main(["fit", str(_write(tmp_path, [TWO_GROUP])), "--out", str(out)])
    printed = capsys.readouterr().out
    assert status == 4
    assert f"replaced in {out}: effects.csv" in printed
    assert "from an earlier run, not this one: milk_volume_forest.png" in " ".join(printed.split())
    assert (out / "effects.csv").read_text() != "old"


SPEC = """
[data]
studies = "{studies}"
outcome = "milk volume"
[effects]
p_bound = "conservative"
[model]
name = "random_effects"
engine = "exact"
priors = {{ mu = "normal(0, 1)" }}
[grid]
tau_prior = ["halfnormal(0.5)"]
exclude = ["", "design == 'pre_post'"]
"""


def write_spec(tmp_path, **replace):
    text = SPEC.format(studies=DEMO.as_posix())
    for old, new in replace.items():
        text = text.replace(old, new)
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return path


def sweep(tmp_path, capsys, spec, *extra):
    return run(["sensitivity", spec, "--out", tmp_path / "out", "--quiet", *extra], capsys)


@pytest.mark.parametrize("change,needles", [
    ({'mu = "normal(0, 1)"': 'tua_technique = "halfnormal(1)"'},
     ["[model] priors.tua_technique", "did you mean 'tau_technique'"]),
    ({'tau_prior = ["halfnormal(0.5)"]': 'tau_prior = ["normal(0, 1)"]'}, ["[grid] tau_prior", "positive numbers"]),
    ({'tau_prior = ["halfnormal(0.5)"]': 'tau_prior = ["uniform(-5, 5)"]'}, ["[grid] tau_prior", "positive numbers"]),
    ({'tau_prior = ["halfnormal(0.5)"]': 'tau_prior = ["halfnormal(1e-300)"]'}, ["[grid] tau_prior", "between 1e-08"]),
    ({'mu = "normal(0, 1)"': 'mu = "normal(0, 1e300)"'}, ["[model] priors.mu", "between 1e-08"]),
    ({"[grid]": "[grid]\nleave_one_ot = true"}, ["[grid] leave_one_ot", "did you mean 'leave_one_out'"]),
    ({"[effects]": "[efects]"}, ["'efects'", "did you mean 'effects'"]),
    ({"exclude = [": 'exclude = ["' + "not " * 40 + 'synthetic", '}, ["nested more than 32 levels"]),
    ({"exclude = [": 'exclude = ["' + " or ".join(["synthetic"] * 300) + '", '}, ["more than the limit of 2000"]),
])
def test_bad_specs_exit_2_at_load_time(tmp_path, capsys, change, needles):
    status, err = sweep(tmp_path, capsys, write_spec(tmp_path, **change))
    assert status == 2 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    assert not (tmp_path / "out" / "spec.jsonl").exists()  # refused before anything ran


def test_spec_directory_and_results_file_that_is_not_records(tmp_path, capsys):
    status, err = sweep(tmp_path, capsys, tmp_path)
    assert status == 2 and "is a directory" in err
    spec = write_spec(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "spec.jsonl").write_text('[1, 2, 3]\n')
    status, err = sweep(tmp_path, capsys, spec)
    assert status == 2 and "spec.jsonl line 1: not a result record" in err, err
    (tmp_path / "taken").write_text("x")
    status, err = run(["sensitivity", spec, "--out", tmp_path / "taken"], capsys)
    assert status == 2 and "is a file" in err


def test_a_rule_that_matches_nothing_is_warned_and_marked(tmp_path, capsys):
    spec = write_spec(tmp_path, **{"design == 'pre_post'": "design == 'prepost'"})
    with pytest.warns(UserWarning, match="leaves out no usable study"):
        status, err = sweep(tmp_path, capsys, spec)
    assert status == 0, err
    assert "exclusion rule \"design == 'prepost'\" leaves out no usable study of 'milk volume'" in err
    table = pd.read_csv(tmp_path / "out" / "spec.csv", keep_default_na=False)
    marked = table[table["exclude"] == "design == 'prepost'"]
    assert (marked["warnings"].str.contains("leaves out no usable study")).all()
    assert (table.loc[table["exclude"] == "", "warnings"] == "").all()


def test_prior_text_is_kept_as_given_in_scenario_ids(tmp_path, capsys):
    spec = write_spec(tmp_path, **{'"halfnormal(0.5)"': '"halfnormal(0.123456789)"'})
    status, err = sweep(tmp_path, capsys, spec)
    assert status == 0, err
    table = pd.read_csv(tmp_path / "out" / "spec.csv", keep_default_na=False)
    assert set(table["tau_prior"]) == {"halfnormal(0.123456789)"}
    assert table["scenario"].str.startswith("tau halfnormal(0.123456789) |").all()


def test_grid_size_is_capped_and_the_cap_can_be_raised(tmp_path, capsys):
    values = ", ".join(str(round(0.001 * i, 3)) for i in range(1, 700))
    spec = write_spec(tmp_path, **{"[grid]": f"[grid]\nr_prepost = [{values}]",
                                   'tau_prior = ["halfnormal(0.5)"]': 'tau_prior = ["halfnormal(0.5)", "halfnormal(1)"]'})
    status, err = sweep(tmp_path, capsys, spec, "--max-scenarios", "100")
    assert status == 2 and "more than max_scenarios = 100" in err, err
    text = spec.read_text() + "[run]\nmax_scenarios = 50\n"
    spec.write_text(text)
    status, err = sweep(tmp_path, capsys, spec)
    assert status == 2 and "more than max_scenarios = 50" in err, err


def test_no_fittable_scenario_exits_4(tmp_path, capsys):
    spec = write_spec(tmp_path, **{"exclude = [\"\", ": "exclude = [", "design == 'pre_post'": "synthetic"})
    status, err = sweep(tmp_path, capsys, spec)
    assert status == 4 and "nothing analysed" in err, err


# ---- property-based: the loader and the rule grammar (bounded: a few seconds each) ------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from evsynth.data.rules import RuleError, parse_rule  # noqa: E402

BOUNDED = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# Printable labels in any script, with commas, quotes and spaces inside (the CSV must quote them);
# no control or invisible characters, and no leading/trailing space (the loader strips cells).
LABEL = st.text(st.characters(categories=["L", "N", "P", "S", "Zs"], exclude_characters="\x85\xa0\u2028\u2029"),
                min_size=1, max_size=12).map(str.strip).filter(bool).filter(
    lambda s: s.lower() not in ("nan", "na", "inf", "-inf", "null"))  # refused in every cell: "not a value"
NUMBER = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(lambda x: float(f"{x:.6g}"))
POSITIVE = st.floats(min_value=1e-3, max_value=1e4).map(lambda x: float(f"{x:.6g}"))


@st.composite
def study_rows(draw):
    k = draw(st.integers(1, 6))
    techniques = draw(st.lists(LABEL, min_size=1, max_size=3, unique_by=lambda s: " ".join(s.casefold().split())))
    return [dict(BASE, study_id=f"s{i}", citation=draw(LABEL), design="two_group",
                 technique=draw(st.sampled_from(techniques)), n_treat=str(draw(st.integers(2, 500))),
                 n_ctrl=str(draw(st.integers(2, 500))), mean_treat=repr(draw(NUMBER)),
                 mean_ctrl=repr(draw(NUMBER)), sd_treat=repr(draw(POSITIVE)), sd_ctrl=repr(draw(POSITIVE)))
            for i in range(k)]


@BOUNDED
@given(rows=study_rows(), bom=st.booleans(), crlf=st.booleans())
def test_property_valid_files_load_exactly_as_written(tmp_path, rows, bom, crlf):
    text = csv_text(rows)
    data = (text.replace("\n", "\r\n") if crlf else text).encode("utf-8")
    path = tmp_path / "p.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    table = load_studies(path)
    assert list(table["study_id"]) == [r["study_id"] for r in rows]
    for field in ("citation", "technique"):
        assert list(table[field]) == [r[field] for r in rows]
    for field in ("mean_treat", "sd_ctrl", "n_treat"):
        assert list(table[field].astype(float)) == [float(r[field]) for r in rows]
    assert not table["synthetic"].any()


@BOUNDED
@given(rows=study_rows(), data=st.data())
def test_property_a_ragged_line_is_always_refused_by_line_and_study(tmp_path, rows, data):
    lines = csv_text(rows).splitlines()
    i = data.draw(st.integers(1, len(lines) - 1))
    fields = next(csv.reader([lines[i]]))
    if data.draw(st.booleans()):
        fields = fields[:-data.draw(st.integers(1, len(fields) - 1))]
    else:
        fields = fields + ["x"] * data.draw(st.integers(1, 3))
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(fields)
    lines[i] = buffer.getvalue()
    path = tmp_path / "r.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(StudyDataError) as info:
        load_studies(path)
    header = lines[0].split(",")
    named = rows[i - 1]["study_id"] if len(fields) > header.index("study_id") else "?"
    assert f"line {i + 1} (study {named!r})" in str(info.value)  # '?': the line ends before its study_id


@BOUNDED
@given(rows=study_rows(), name=st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True))
def test_property_unknown_columns_are_refused_by_name(tmp_path, rows, name):
    from evsynth.data.studies import StudyRow

    if name in StudyRow.model_fields:
        return
    path = tmp_path / "u.csv"
    path.write_text(csv_text([dict(r, **{name: "1"}) for r in rows]), encoding="utf-8")
    with pytest.raises(StudyDataError, match=f"column {name!r} is not in the schema"):
        load_studies(path)


EXTREME = st.sampled_from(["0", "-0", "1", "-1", "1e308", "-1e308", "1e-300", "1e200", "1e20", "-1e25",
                           "100000000000000000000", "0.5", "2", "nan", "inf", "1,5", " ", "abc", "\u200b"])
NUMERIC_FIELDS = ["n_treat", "n_ctrl", "mean_treat", "mean_ctrl", "sd_treat", "sd_ctrl", "p", "p_upper", "t",
                  "ci_low", "ci_high", "year"]


@BOUNDED
@given(changes=st.dictionaries(st.sampled_from(NUMERIC_FIELDS), EXTREME, min_size=1, max_size=4),
       measure=st.sampled_from(["SMD", "MD", "ROM", "SMCC"]))
def test_property_any_numbers_give_a_table_or_a_named_refusal(tmp_path, changes, measure):
    row = dict(TWO_GROUP, **changes)
    path = tmp_path / "n.csv"
    path.write_text(csv_text([row]), encoding="utf-8")
    try:
        effects = compute_effects(load_studies(path), measure=measure)
    except (StudyDataError, EffectSizeError) as exc:
        assert "study 'g1', field '" in str(exc), str(exc)
        return
    used = effects[effects["used"]]
    assert (used["yi"].map(math.isfinite) & used["sei"].gt(0) & used["sei"].map(math.isfinite)).all()


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=300))
def test_property_arbitrary_bytes_load_or_are_refused_by_name(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("bytes") / "b.csv"
    path.write_bytes(b"study_id,citation,source_level,design,technique,outcome\n" + data)
    try:
        studies = load_studies(path)
    except StudyDataError as exc:
        # a refusal names the file and where in it (a line, a study, the header or the encoding)
        message = str(exc)
        assert message.startswith(f"{path}: "), message
        assert re.search(r"line \d+|study '|header|encod|UTF|file", message), message
        return
    assert studies["study_id"].map(lambda v: isinstance(v, str) and v.strip() != "").all()


# Rules: random trees of the grammar, against an independent row-by-row evaluator (Kleene logic).
RULE_TABLE = pd.DataFrame({
    "study_id": list("abcdef"),
    "design": ["pre_post", "two_group", None, "two_group", "pre_post", "two_group"],
    "year": pd.array([2015, None, 2019, 2021, None, 2017], dtype="Int64"),
    "n": [12.0, 30.0, None, 40.0, 8.0, None],
    "synthetic": [True, False, None, True, False, False],
})
ATOMS = st.one_of(
    st.tuples(st.just("cmp"), st.sampled_from(["year", "n"]), st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
              st.integers(0, 2030).map(float)),
    st.tuples(st.just("cmp"), st.just("design"), st.sampled_from(["==", "!="]),
              st.sampled_from(["pre_post", "two_group", "x"])),
    st.tuples(st.just("flag"), st.just("synthetic")),
    st.tuples(st.just("in"), st.just("design"), st.lists(st.sampled_from(["pre_post", "two_group", "x"]),
                                                          min_size=1, max_size=3).map(tuple)),
)
TREES = st.recursive(ATOMS, lambda inner: st.one_of(
    st.tuples(st.just("not"), inner),
    st.tuples(st.sampled_from(["and", "or"]), inner, inner)), max_leaves=8)


def rule_text(node) -> str:
    kind = node[0]
    if kind == "not":
        return f"not ({rule_text(node[1])})"
    if kind in ("and", "or"):
        return f"({rule_text(node[1])}) {kind} ({rule_text(node[2])})"
    if kind == "flag":
        return node[1]
    if kind == "in":
        return f"{node[1]} in ({', '.join(repr(v) for v in node[2])})"
    value = repr(node[3]) if isinstance(node[3], str) else f"{node[3]:g}"
    return f"{node[1]} {node[2]} {value}"


def truth(node, row):
    """True / False / None (unknown) for one row, written without pandas."""
    kind = node[0]
    if kind == "not":
        inner = truth(node[1], row)
        return None if inner is None else not inner
    if kind in ("and", "or"):
        a, b = truth(node[1], row), truth(node[2], row)
        if kind == "and":
            return False if False in (a, b) else (None if None in (a, b) else True)
        return True if True in (a, b) else (None if None in (a, b) else False)
    value = row[node[1]]
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if kind == "flag":
        return bool(value)
    if kind == "in":
        return value in node[2]
    return {"==": value == node[3], "!=": value != node[3], "<": value < node[3], "<=": value <= node[3],
            ">": value > node[3], ">=": value >= node[3]}[node[2]]


@settings(max_examples=100, deadline=None)
@given(tree=TREES)
def test_property_rules_select_what_three_valued_logic_selects(tree):
    text = rule_text(tree)
    selected = list(RULE_TABLE["study_id"][parse_rule(text, RULE_TABLE.columns).select(RULE_TABLE)])
    rows = RULE_TABLE.astype(object).to_dict("records")
    assert selected == [r["study_id"] for r in rows if truth(tree, r) is True], text


@settings(max_examples=200, deadline=None)
@given(text=st.one_of(st.text(max_size=80), st.lists(st.sampled_from(
    ["not", "and", "or", "(", ")", "year", "design", "synthetic", "n", "<", "==", "in", "'x'", "3", ",", "true"]),
    max_size=30).map(" ".join)))
def test_property_any_text_is_a_rule_or_a_rule_error(text):
    try:
        rule = parse_rule(text, RULE_TABLE.columns)
        rule.select(RULE_TABLE)
    except RuleError as exc:
        assert "exclusion rule" in str(exc)


def test_a_flag_rule_on_an_all_empty_column_matches_nothing_and_is_marked(tmp_path, capsys):
    # the demo has no risk-of-bias judgements: `rob` is empty everywhere (was a TypeError)
    assert load_studies(DEMO)["rob"].isna().all()
    spec = write_spec(tmp_path, **{"design == 'pre_post'": "not rob"})
    with pytest.warns(UserWarning, match="leaves out no usable study"):
        status, err = sweep(tmp_path, capsys, spec)
    assert status == 0 and "Traceback" not in err and "scenario(s) marked" in err, err


@pytest.mark.parametrize("prior,needles", [
    ("tua=halfnormal(1)", ["unknown parameter 'tua'", "did you mean 'tau'"]),
    ("tau=normal(0, 1)", ["positive numbers"]),
    ("tau=halfnormal(1e-300)", ["between 1e-08"]),
    ("mu=normal(0)", ["normal takes 2 parameter(s)"]),
])
def test_bad_command_line_priors_exit_2_before_anything_runs(tmp_path, capsys, prior, needles):
    status, err = run(["fit", _write(tmp_path, [TWO_GROUP]), "--prior", prior, "--out", tmp_path / "o"], capsys)
    assert status == 2 and "Traceback" not in err, err
    assert all(n in err for n in needles), err
    assert not (tmp_path / "o").exists()


def test_r_prepost_keeps_every_digit_in_scenario_ids():
    from evsynth.methods.sensitivity import Scenario

    assert Scenario("halfnormal(0.5)", 0.3).id == "tau halfnormal(0.5) | r 0.3"
    assert Scenario("halfnormal(0.5)", 0.123456789).id == "tau halfnormal(0.5) | r 0.123456789"
    assert Scenario("halfnormal(0.5)", 0.1234567).id != Scenario("halfnormal(0.5)", 0.1234568).id


@pytest.mark.parametrize("option", [["--draws", "-5"], ["--chains", "0"], ["--tune", "-1"], ["--draws", "many"]])
def test_sampler_settings_out_of_range_exit_2(tmp_path, capsys, option):
    status, err = run(["fit", _write(tmp_path, [TWO_GROUP]), "--out", tmp_path / "o", *option], capsys)
    assert status == 2 and f"argument {option[0]}" in err and "Traceback" not in err, err


@pytest.mark.parametrize("change,needle", [
    ({"[effects]": "[fit]\ndraws = -5\n[effects]"}, "[fit] draws: -5 is below 1"),
    ({"[effects]": "[fit]\nchains = 0\n[effects]"}, "[fit] chains: 0 is below 1"),
    ({"[effects]": "[fit]\ntarget_accept = nan\n[effects]"}, "[fit] target_accept: nan must lie strictly"),
    ({"[grid]": "[grid]\nr_prepost = [nan]"}, "[grid] r_prepost: nan must lie strictly between -1 and 1"),
    ({'outcome = "milk volume"': 'outcome = ""'}, "[data] outcome: empty"),
])
def test_spec_fit_settings_out_of_range_exit_2(tmp_path, capsys, change, needle):
    status, err = sweep(tmp_path, capsys, write_spec(tmp_path, **change))
    assert status == 2 and needle in err and "Traceback" not in err, err


def test_the_same_prior_written_twice_is_a_repeat_and_a_non_path_is_named():
    from evsynth.methods.sensitivity import Sensitivity

    with pytest.raises(ValueError, match="without repeats"):
        Sensitivity(DEMO, tau_prior=["halfnormal(0.5)", "halfnormal(0.50)"], outcome="milk volume",
                    model="random_effects")
    with pytest.raises(StudyDataError, match="expected a path to a study CSV file or a DataFrame"):
        load_studies(42)
