"""Moderator formulas cannot run code (issue 25): formulaic evaluates the Python inside {...} and calls,
so every formula goes through evsynth.model.formula's whitelist first; what it lets through builds the
same matrices as before, and what it refuses is refused by name, fast, with exit 2 from the CLI."""

import time

import numpy as np
import pandas as pd
import pytest

from evsynth.cli import main as cli
from evsynth.model.formula import MAX_TERMS, FormulaError, parse_formula
from evsynth.model.moderators import ModeratorError, design_matrix

from conftest import ROOT

BCG = ROOT / "studies" / "bcg.csv"


def exploits(marker) -> list[str]:
    """Formulas that, handed to formulaic as they are, write `marker` (one through each door)."""
    opener = f"__builtins__['open']({str(marker)!r}, 'w').write('x')"
    return [
        "~ {ablat.__class__.__init__.__globals__" + f"[{opener[:12]!r}]" + opener[12:] + "}",
        "~ ablat + {" + f"__import__('pathlib').Path({str(marker)!r}).touch()" + "}",
        f"~ I(__import__('pathlib').Path({str(marker)!r}).touch())",
        f"~ ablat.__class__.__init__.__globals__['__builtins__']['open']({str(marker)!r}, 'w')",
        f"~ C(ablat, levels=__import__('pathlib').Path({str(marker)!r}).touch())",
        f"~ log((lambda: __import__('pathlib').Path({str(marker)!r}).touch())())",
        f"~ np.lib.utils.source(ablat) + ablat[0]",
    ]


@pytest.fixture
def table():
    return pd.DataFrame({"study_id": [f"s{i}" for i in range(8)], "yi": np.linspace(-0.2, 0.5, 8),
                         "ablat": [44.0, 55, 42, 52, 13, 44, 19, 13], "year": [1948.0, 1949, 1960, 1977, 1973, 1953,
                                                                             1973, 1980],
                         "alloc": ["random", "random", "random", "alternate", "systematic", "alternate",
                                   "random", "systematic"]})


def test_no_exploit_runs_through_design_matrix(tmp_path, table):
    marker = tmp_path / "marker"
    for formula in exploits(marker):
        with pytest.raises(ModeratorError):
            design_matrix(table, formula)
        assert not marker.exists(), formula


def test_no_exploit_runs_from_the_cli_on_the_bundled_data(tmp_path, capsys):
    marker = tmp_path / "marker"
    for formula in exploits(marker)[:3]:
        code = cli.main(["fit", str(BCG), "--measure", "RR", "--engine", "exact", "--out", str(tmp_path / "out"),
                         "--mods", formula, "--extra-column", "alloc"])
        err = capsys.readouterr().err
        assert not marker.exists(), formula
        assert code == 2 and "Traceback" not in err and "mods formula" in err, err


@pytest.mark.parametrize("formula, needle", [
    ("~ {ablat}", "braces"), ("~ ablat.real", "attribute"), ("~ ablat[0]", "'['"),
    ("~ lambda_(ablat)", "function lambda_() is not allowed"), ("~ eval(ablat)", "eval() is not allowed"),
    ("~ I(ablat ^ 2)", "'^'"), ("~ I(ablat ** 1000)", "at most 10"), ("~ (ablat + year)**4", "from 1 to 3"),
    ("~ 2 + ablat", "not a term"), ("~ C(alloc, levels=open)", "expected '['"), ("~ C(alloc, levels=[open])", "quoted text or numbers"),
    ("~ C(alloc, contr=1)", "levels="), ("~ I('x')", "unexpected"), ("yi ~ ablat", "left-hand side"),
    ("~ poly(ablat, 9)", "from 1 to 3"), ("~ " + "(" * 30 + "ablat" + ")" * 30, "nested"),
    ("~ I(1_0 * ablat)", "'1'"), ("~ I(0x10 * ablat)", "'0'"), ("~ ablat " + "+ year " * 1000, "characters long"),
])
def test_outside_the_grammar_is_refused_by_name(formula, needle):
    with pytest.raises(FormulaError) as info:
        parse_formula(formula)
    assert needle in str(info.value) and "\x1b" not in str(info.value)


def test_expansion_is_bounded_before_formulaic_expands_it():
    names = " + ".join(f"x{i}" for i in range(12))
    start = time.perf_counter()
    for formula in ["~ (ablat + year)**50", f"~ ({names})**3", f"~ ({names}):({names}):({names})"]:
        with pytest.raises(FormulaError, match=rf"more than {MAX_TERMS} terms|from 1 to 3"):
            parse_formula(formula)
    assert time.perf_counter() - start < 1.0
    assert parse_formula("~ (a + b + c)**3").text == "~ (a + b + c)**3"  # 7 terms: within the bound


@pytest.mark.parametrize("formula, names", [
    ("~ ablat+year", ["intrcpt", "ablat", "year"]),
    ("~ ablat*year", ["intrcpt", "ablat", "year", "ablat:year"]),
    ("~ (ablat + year)^2", ["intrcpt", "ablat", "year", "ablat:year"]),
    ("~ 0 + C(alloc)", ["C(alloc)[alternate]", "C(alloc)[random]", "C(alloc)[systematic]"]),
    ("~ C(alloc, levels=['random', 'alternate', 'systematic'])",
     ["intrcpt", "C(alloc, levels=['random', 'alternate', 'systematic'])[T.alternate]",
      "C(alloc, levels=['random', 'alternate', 'systematic'])[T.systematic]"]),
    ("~ I(ablat ** 2 / 100) + log(year)", ["intrcpt", "I(ablat ** 2 / 100)", "log(year)"]),
    ("~ sqrt(ablat) + center(year)", ["intrcpt", "sqrt(ablat)", "center(year)"]),
    ("~ scale(ablat) - 1", ["scale(ablat)"]),
    ("~ poly(ablat, 2)", ["intrcpt", "poly(ablat, degree=2)[1]", "poly(ablat, degree=2)[2]"]),
    ("~ `ablat` : C(`alloc`)", ["intrcpt", "ablat:C(alloc)[alternate]", "ablat:C(alloc)[random]",
                               "ablat:C(alloc)[systematic]"]),
])
def test_the_allowed_grammar_builds_what_formulaic_builds(table, formula, names):
    X, got = design_matrix(table, formula)
    assert got == names
    if formula == "~ I(ablat ** 2 / 100) + log(year)":
        np.testing.assert_allclose(X[:, 1], table.ablat ** 2 / 100)
        np.testing.assert_allclose(X[:, 2], np.log(table.year))
    if formula == "~ sqrt(ablat) + center(year)":
        np.testing.assert_allclose(X[:, 1], np.sqrt(table.ablat))
        np.testing.assert_allclose(X[:, 2], table.year - table.year.mean())


def test_a_column_name_with_spaces_is_quoted_and_read(table):
    X, names = design_matrix(table.rename(columns={"ablat": "abs latitude"}), ["abs latitude"])
    assert names == ["intrcpt", "abs latitude"]
    np.testing.assert_array_equal(X[:, 1], table.ablat)
