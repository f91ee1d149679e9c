"""The documentation (issue 27): the commands page is the parser's own help, and every public name
of `import evsynth as es` has a docstring with an example.

Names still without an example are listed in NO_EXAMPLE_YET; the test fails when one of them gets
an example (take it off the list) and when any other public name has none, so the list can only
shrink. `mkdocs build --strict` itself runs in .ci/run (it needs the docs extra)."""

import importlib.util
import inspect
import sys

import pytest

import evsynth as es

from conftest import ROOT

NO_EXAMPLE_YET: set[str] = set()  # every public name has an example now; keep it so


def _has_example(name: str) -> bool:
    doc = inspect.getdoc(getattr(es, name)) or ""
    return "Example" in doc or ">>>" in doc


@pytest.mark.parametrize("name", sorted(es.__all__))
def test_public_name_has_a_docstring_with_an_example(name):
    assert inspect.getdoc(getattr(es, name)), f"es.{name}: no docstring"
    if name in NO_EXAMPLE_YET:
        assert not _has_example(name), f"es.{name} has an example now: take it off NO_EXAMPLE_YET"
    else:
        assert _has_example(name), f"es.{name}: its docstring has no 'Example' / '>>>' section"


def test_sensitivity_docstring_says_what_it_takes_and_returns():
    doc = inspect.getdoc(es.Sensitivity)
    for word in ("tau_prior", "r_prepost", "exclude", "techniques", "leave_one_out", "engine", "verdict", ">>>"):
        assert word in doc


def test_commands_page_is_the_parsers_help():
    spec = importlib.util.spec_from_file_location("make_command_docs", ROOT / "scripts" / "make_command_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    page = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8")
    assert page == module.page(), "docs/commands.md is stale: python scripts/make_command_docs.py"
    for command in ("fit", "report", "sensitivity", "network"):
        assert f"## evsynth {command}\n" in page


def test_site_pages_exist_for_every_nav_entry():
    import re

    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = re.findall(r":\s+(\S+\.md)\s*$", config, flags=re.M)
    assert len(pages) >= 12
    for page in pages:
        assert (ROOT / "docs" / page).is_file(), page


# Public names whose examples are doctests (others' examples are illustrations, not yet runnable)
DOCTESTED = ["load_studies", "compute_effects", "used_effects", "not_used", "i2_h2",
             "parse_prior", "dersimonian_laird", "common_effect_fe", "split_by_outcome", "reml",
             "build_model", "Sensitivity", "shortest_interval", "StudyDataError", "egger_test",
             "pet_peese", "funnel_data", "cochran_mantel_haenszel", "median_control_risk",
             "with_study_columns", "shared_control_covariance", "network_table", "rob_formula",
             "rob_subgroups", "bayes_factors", "plots", "random_effects", "common_effect",
             "by_technique", "network", "selection", "network_summary", "node_split",
             "network_plot", "fit", "summarize", "diagnose", "heterogeneity_draws",
             "savage_dickey", "pareto_k_table", "loo_compare", "run_analysis",
             "fit_meta_regression", "summary_of_findings", "write_report", "BUILDERS", "PSMA"]


@pytest.mark.parametrize("name", DOCTESTED)
def test_docstring_examples_run(name, monkeypatch):
    """These examples give the output they show (run from the repository root, where their paths
    point)."""
    import doctest

    monkeypatch.chdir(ROOT)
    obj = getattr(es, name)
    module = sys.modules[obj.__module__] if hasattr(obj, "__module__") and obj.__module__ in sys.modules else None
    tests = doctest.DocTestFinder(recurse=False).find(obj, name, module=module,
                                                      globs=dict(vars(module)) if module else {})
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test)
    assert runner.failures == 0 and runner.tries > 0, f"es.{name}: {runner.failures} of {runner.tries} failed"
