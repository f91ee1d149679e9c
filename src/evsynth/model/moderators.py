"""Moderators of a meta-regression: the design matrix X from study-table columns (metafor's `mods`).

`mods` is a right-hand-side formula ("~ ablat + year", categorical with C(design)) or a list of
numeric column names. The formula is checked against evsynth.model.formula's whitelist first (formulaic
would run the Python inside braces and calls), then formulaic builds the matrix. The intercept comes
first and is named "intrcpt", as metafor names it; a formula may drop it ("~ 0 + C(rob)", one mean
per level) and then the names say so. Problems are refused with the moderator column (and the
study) named: a missing column, an empty cell in a study the model uses, a column that is constant
across those studies, a text cell in a numeric moderator (a categorical is declared with C()), a value
that is not finite, the outcome itself, or columns that duplicate each other (X not of full column rank).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .formula import STRICT_NUMBER, Formula, FormulaError, columns_formula, parse_formula

INTERCEPT = "intrcpt"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Study-table columns that carry the outcome (the effect size or the statistics it is computed from):
# never a moderator. sei, vi and n stay allowed (small-study moderators).
OUTCOME_COLUMNS = frozenset({"yi", "t", "p", "p_upper", "ci_low", "ci_high", "mean_treat", "mean_ctrl", "mean_pre",
                             "mean_post", "events_treat", "events_ctrl", "ratio"})


class ModeratorError(ValueError):
    """A moderator cannot enter the model; the message names the column (and the study)."""


def _formula(mods) -> Formula:
    """The checked formula of `mods` (evsynth.model.formula's whitelist: no code runs)."""
    try:
        if isinstance(mods, str) and mods.strip().lstrip("~").strip():
            return parse_formula(mods)
        if isinstance(mods, Sequence) and not isinstance(mods, str) and mods and all(
                isinstance(m, str) and m for m in mods):
            return columns_formula(list(mods))
    except FormulaError as exc:
        raise ModeratorError(str(exc)) from None
    raise ModeratorError(f"mods must be a formula string ('~ year + C(design)') or a non-empty list "
                         f"of column names, not {mods!r}")


def _study_labels(table: pd.DataFrame) -> list[str]:
    if "study_id" in table.columns:
        return table["study_id"].astype(str).tolist()
    return [f"row {i}" for i in range(len(table))]


def _is_empty(column: pd.Series) -> pd.Series:
    return column.isna() | column.astype(str).str.strip().eq("")


def _check_columns(table: pd.DataFrame, variables: set[str]) -> None:
    labels = _study_labels(table)
    for name in sorted(variables):
        column = table[name]
        empty = _is_empty(column).to_numpy()
        if empty.any():
            studies = ", ".join(repr(s) for s, e in zip(labels, empty) if e)
            raise ModeratorError(f"moderator column {name!r} is empty for used studies {studies}: fill it in "
                                 "or leave those studies out explicitly")
        if column.nunique() < 2:
            raise ModeratorError(f"moderator column {name!r} is constant ({column.iloc[0]!r}) across the "
                                 f"{len(table)} studies used: its effect cannot be estimated")


def _numbers(column: pd.Series, name: str, labels: list[str]) -> np.ndarray:
    """A numeric moderator's cells as floats: every cell a finite number (text in the strict decimal
    grammar, no hex, no underscores), else refused naming the study and the column. A text cell is
    never turned into a category: a categorical moderator is declared with C(column)."""
    values = np.empty(len(column))
    for i, (label, given) in enumerate(zip(labels, column)):
        cell = given
        if isinstance(cell, str):
            if not STRICT_NUMBER.fullmatch(cell.strip()):
                raise ModeratorError(f"moderator column {name!r}, study {label!r}: {cell!r} is not a number; a "
                                     f"categorical moderator is declared with C({name})")
            cell = float(cell)
        elif isinstance(cell, (bool, np.bool_)) or not isinstance(cell, (int, float, np.integer, np.floating)):
            raise ModeratorError(f"moderator column {name!r}, study {label!r}: {cell!r} is not a number; a "
                                 f"categorical moderator is declared with C({name})")
        if not math.isfinite(float(cell)):
            raise ModeratorError(f"moderator column {name!r}, study {label!r}: {given!r} is not a finite number")
        values[i] = float(cell)
    return values


def _clean(message: str) -> str:
    """formulaic's message without its terminal colour codes."""
    return ANSI.sub("", message)


def design_matrix(table: pd.DataFrame, mods) -> tuple[np.ndarray, list[str]]:
    """(X, column names) of a meta-regression on the rows of `table` (the studies the model uses).

    mods: a formula ("~ ablat + C(alloc)") in evsynth.model.formula's grammar (no code runs), or a
    list of numeric columns. X has one row per table row, in order; the intercept column "intrcpt"
    comes first unless the formula removes it. Raises ModeratorError naming the moderator column
    (and studies): a missing, empty, constant, non-numeric or non-finite column, the outcome itself,
    no moderator at all, a term that is not finite, or as many coefficients as studies.

    >>> import pandas as pd
    >>> design_matrix(pd.DataFrame({"yi": [.1, .2, .4], "x": [1, 2, 4]}), "~ x")[1]
    ['intrcpt', 'x']
    """
    if len(table) == 0:
        raise ModeratorError("no studies to build a moderator design matrix from")
    formula = _formula(mods)
    missing = [v for v in formula.columns if v not in table.columns]
    if missing:
        raise ModeratorError(f"moderator column(s) {', '.join(repr(m) for m in missing)} not in the study "
                             f"table (columns: {', '.join(map(str, table.columns))})")
    outcome = [v for v in formula.columns if v in OUTCOME_COLUMNS]
    if outcome:
        raise ModeratorError(f"moderator column(s) {', '.join(map(repr, outcome))} carry the outcome itself: "
                             "an effect cannot explain itself")
    _check_columns(table, set(formula.columns))
    labels = _study_labels(table)
    data = pd.DataFrame({name: (_numbers(table[name], name, labels) if name in formula.numeric
                                else table[name].to_numpy()) for name in formula.columns})
    if not isinstance(mods, str) and all(name.isidentifier() for name in formula.numeric):
        # a list of numeric columns: the intercept and the columns as given, what formulaic builds
        # from '~ a + b' (tests/test_moderators.py checks they agree), without its 0.4 s of imports
        matrix = pd.DataFrame({"Intercept": 1.0, **{name: data[name] for name in formula.numeric}})
    else:
        import formulaic  # here: only a formula needs it
        from formulaic.errors import FormulaicError

        try:
            with np.errstate(all="ignore"):
                matrix = formulaic.model_matrix(formula.text, data, na_action="ignore", context={"sqrt": np.sqrt})
        except (FormulaicError, ValueError, TypeError, ArithmeticError) as exc:
            raise ModeratorError(f"mods {formula.text!r} cannot be evaluated on the study table: "
                                 f"{_clean(str(exc))}") from None
    names = [INTERCEPT if c == "Intercept" else str(c) for c in matrix.columns]
    if INTERCEPT in names and names[0] != INTERCEPT:  # formulaic puts it first; keep that a contract
        order = [names.index(INTERCEPT)] + [i for i, n in enumerate(names) if n != INTERCEPT]
        matrix, names = matrix.iloc[:, order], [names[i] for i in order]
    X = np.asarray(matrix, dtype=float)
    if not [n for n in names if n != INTERCEPT]:
        raise ModeratorError(f"mods {formula.text!r} give no moderator column")
    for j, name in enumerate(names):
        bad = ~np.isfinite(X[:, j])
        if bad.any():
            studies = ", ".join(repr(s) for s, b in zip(labels, bad) if b)
            raise ModeratorError(f"moderator term {name!r} is not a finite number for studies {studies}")
    _check_rank(X, names)
    return X, names


def _check_rank(X: np.ndarray, names: list[str]) -> None:
    if X.shape[1] >= X.shape[0]:
        raise ModeratorError(f"{X.shape[1]} coefficients ({', '.join(names)}) but only {X.shape[0]} studies: a "
                             "meta-regression needs more studies than coefficients")
    if np.linalg.matrix_rank(X) == X.shape[1]:
        return
    # Name the first column that the columns before it already span.
    for j in range(1, X.shape[1] + 1):
        if np.linalg.matrix_rank(X[:, :j]) < j:
            raise ModeratorError(f"moderator term {names[j - 1]!r} is constant or a combination of "
                                 f"{', '.join(names[: j - 1])} across the studies used: it cannot be estimated")


def _as_numbers(column: pd.Series) -> pd.Series:
    """Numbers when every filled cell is one in the strict decimal grammar (the study table reads
    extra columns as text); else the text as it is (design_matrix refuses a text cell of a numeric
    moderator by study and column)."""
    filled = column[~_is_empty(column)]
    if len(filled) and all(isinstance(v, str) and STRICT_NUMBER.fullmatch(v.strip()) and math.isfinite(float(v))
                           for v in filled):
        return column.where(~_is_empty(column)).map(lambda v: float(v) if isinstance(v, str) else np.nan)
    return column


def with_study_columns(effects: pd.DataFrame, studies: pd.DataFrame) -> pd.DataFrame:
    """The effect table with every study-table column it lacks (year, latitude, dose...), matched by
    study_id, so moderators can name them. A column whose filled cells are all numbers becomes
    numeric (a continuous moderator); any other stays text (categorical, e.g. C(alloc)).

    Example:
        >>> import evsynth as es
        >>> studies = es.load_studies("studies/bcg.csv", extra_columns=["ablat", "alloc"])
        >>> table = with_study_columns(es.compute_effects(studies, measure="RR"), studies)
        >>> str(table["ablat"].dtype), table.loc[0, "alloc"]
        ('float64', 'random')
    """
    extra = [c for c in studies.columns if c not in effects.columns]
    lookup = studies.drop_duplicates("study_id").set_index("study_id")[extra]
    lookup = lookup.apply(_as_numbers)
    out = effects.join(lookup, on="study_id")
    out.attrs = dict(effects.attrs)
    return out


def parse_mods(text: str):
    """The CLI's --mods: a formula ("~ ablat + C(alloc)") as given, or comma-separated column names
    ("ablat, year") as a list."""
    text = (text or "").strip()
    if not text:
        raise ModeratorError("--mods is empty: give a formula ('~ ablat') or column names ('ablat,year')")
    if "~" in text:
        return text
    columns = [c.strip() for c in text.split(",")]
    if not all(columns):
        raise ModeratorError(f"--mods {text!r}: an empty column name between commas")
    return columns


def moderator_columns(mods) -> list[str]:
    """The study-table columns that `mods` reads, sorted."""
    return _formula(mods).columns
