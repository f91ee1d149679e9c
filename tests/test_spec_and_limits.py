"""Spec refusals name the file, the section and the key, every one (issue 25: 14 of 47 bad specs were
refused without them, e.g. "engine 'eval' unknown"); file-level limits are named (a NUL byte in
UTF-8 text is not called UTF-16; a field over the cell limit says so)."""

import pytest

from test_hostile import TWO_GROUP, csv_text, fit_refuses, sweep, write_spec


@pytest.mark.parametrize("change, key", [
    ({'engine = "exact"': 'engine = "eval"'}, "[model] engine"),
    ({'engine = "exact"': 'engine = "exat"'}, "[model] engine"),
    ({"[grid]": '[fit]\nsampler = "os.system"\n[grid]'}, "[fit] sampler"),
    ({'p_bound = "conservative"': 'p_bound = "upper"'}, "[effects] p_bound"),
    ({"[effects]": '[effects]\ndesign = "rct"'}, "[effects] design"),
    ({"[effects]": '[effects]\nmeasure = "smd"'}, "[effects] measure"),
    ({'name = "random_effects"': 'name = "__import__"'}, "[model] name"),
    ({"[grid]": "[grid]\nr_prepost = [1.5]"}, "[grid] r_prepost"),
    ({'outcome = "milk volume"': 'outcome = "no such outcome"'}, "[data] outcome"),
    ({"exclude = [": 'exclude = ["nosuchcolumn == 1", '}, "[grid] exclude"),
    ({"exclude = [": 'exclude = ["year <", '}, "[grid] exclude"),
    ({"[grid]": "[run]\nmax_scenarios = 1\n[grid]"}, "[grid] (its size; the cap is [run] max_scenarios)"),
    ({'tau_prior = ["halfnormal(0.5)"]': 'tau_prior = ["halfnormal(0.5)", "halfnormal(0.50)"]'},
     "[grid] tau_prior"),
])
def test_every_spec_refusal_names_file_section_and_key(tmp_path, capsys, change, key):
    spec = write_spec(tmp_path, **change)
    assert all(new in spec.read_text() for new in change.values())  # the change was made
    status, err = sweep(tmp_path, capsys, spec)
    assert status == 2 and "Traceback" not in err, err
    assert f"{spec}, {key}" in err, err


def test_the_template_spec_is_still_accepted(tmp_path, capsys):
    # the unchanged template passes every check above (a sweep that refuses everything proves nothing)
    from evsynth.methods.spec import load_spec

    assert load_spec(write_spec(tmp_path)).sensitivity["priors"]


def test_a_nul_byte_in_utf8_text_is_named_not_called_utf16(tmp_path, capsys):
    text = csv_text([TWO_GROUP, dict(TWO_GROUP, study_id="g2", note="a\x00b")])
    err = fit_refuses(tmp_path, capsys, text, "line 3: a NUL byte")
    assert "UTF-16" not in err
    fit_refuses(tmp_path, capsys, text.encode("utf-16-le"), "UTF-16")


@pytest.mark.parametrize("size", [200 * 1024, 50 * 1024 * 1024])
def test_a_field_over_the_cell_limit_is_named(tmp_path, capsys, size):
    text = csv_text([TWO_GROUP, dict(TWO_GROUP, study_id="g2", note="x" * size)])
    fit_refuses(tmp_path, capsys, text, "line 3: a field longer than 131,072 characters, the limit of one cell")
