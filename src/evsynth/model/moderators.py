"""Moderators of a meta-regression: the design matrix X from study-table columns (metafor's `mods`).

`mods` is a right-hand-side formula ("~ ablat + year", categorical with C(design)) or a list of
column names; formulaic builds the matrix (we never parse a formula by hand). The intercept comes
first and is named "intrcpt", as metafor names it; a formula may drop it ("~ 0 + C(rob)", one mean
per level) and then the names say so. Problems are refused with the moderator column (and the
study) named: a missing column, an empty cell in a study the model uses, a column that is constant
across those studies, or columns that duplicate each other (X not of full column rank).
"""

from __future__ import annotations

from collections.abc import Sequence

import formulaic
import numpy as np
import pandas as pd
from formulaic.errors import FormulaicError

INTERCEPT = "intrcpt"


class ModeratorError(ValueError):
    """A moderator cannot enter the model; the message names the column (and the study)."""


def _formula(mods) -> formulaic.Formula:
    if isinstance(mods, str) and mods.strip().lstrip("~").strip():
        text = mods
    elif isinstance(mods, Sequence) and mods and all(isinstance(m, str) and m for m in mods):
        # Backticks quote any column name (spaces, dots) for formulaic.
        text = "~ " + " + ".join(f"`{m}`" for m in mods)
    else:
        raise ModeratorError(f"mods must be a formula string ('~ year + C(design)') or a non-empty list "
                             f"of column names, not {mods!r}")
    try:
        formula = formulaic.Formula(text)
    except FormulaicError as exc:
        raise ModeratorError(f"mods formula {text!r} cannot be parsed: {exc}") from None
    if not isinstance(formula, formulaic.formula.SimpleFormula):
        raise ModeratorError(f"mods formula {text!r} has a left-hand side; give only the moderators "
                             "('~ ablat'): the outcome is always the effect size yi")
    return formula


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


def design_matrix(table: pd.DataFrame, mods) -> tuple[np.ndarray, list[str]]:
    """(X, column names) of a meta-regression on the rows of `table` (the studies the model uses).

    X has one row per table row, in order; the intercept column "intrcpt" comes first unless the
    formula removes it. Raises ModeratorError naming the moderator column (and studies).
    """
    if len(table) == 0:
        raise ModeratorError("no studies to build a moderator design matrix from")
    formula = _formula(mods)
    variables = set(formula.required_variables)
    missing = sorted(v for v in variables if v not in table.columns)
    if missing:
        raise ModeratorError(f"moderator column(s) {', '.join(repr(m) for m in missing)} not in the study "
                             f"table (columns: {', '.join(map(str, table.columns))})")
    _check_columns(table, {v for v in variables if v in table.columns})
    data = table.reset_index(drop=True)
    try:
        matrix = formulaic.model_matrix(formula, data, na_action="raise")
    except FormulaicError as exc:
        raise ModeratorError(f"mods {str(formula)!r} cannot be evaluated on the study table: {exc}") from None
    names = [INTERCEPT if c == "Intercept" else str(c) for c in matrix.columns]
    if INTERCEPT in names and names[0] != INTERCEPT:  # formulaic puts it first; keep that a contract
        order = [names.index(INTERCEPT)] + [i for i, n in enumerate(names) if n != INTERCEPT]
        matrix, names = matrix.iloc[:, order], [names[i] for i in order]
    X = np.asarray(matrix, dtype=float)
    _check_rank(X, names)
    return X, names


def _check_rank(X: np.ndarray, names: list[str]) -> None:
    if X.shape[1] > X.shape[0]:
        raise ModeratorError(f"{X.shape[1]} coefficients ({', '.join(names)}) but only {X.shape[0]} studies")
    if np.linalg.matrix_rank(X) == X.shape[1]:
        return
    # Name the first column that the columns before it already span.
    for j in range(1, X.shape[1] + 1):
        if np.linalg.matrix_rank(X[:, :j]) < j:
            raise ModeratorError(f"moderator term {names[j - 1]!r} is constant or a combination of "
                                 f"{', '.join(names[: j - 1])} across the studies used: it cannot be estimated")


def _as_numbers(column: pd.Series) -> pd.Series:
    """Numbers when every filled cell is one (the study table reads extra columns as text)."""
    filled = column[~_is_empty(column)]
    numbers = pd.to_numeric(filled, errors="coerce")
    if len(filled) and numbers.notna().all():
        return pd.to_numeric(column.where(~_is_empty(column)), errors="coerce")
    return column


def with_study_columns(effects: pd.DataFrame, studies: pd.DataFrame) -> pd.DataFrame:
    """The effect table with every study-table column it lacks (year, latitude, dose...), matched by
    study_id, so moderators can name them. A column whose filled cells are all numbers becomes
    numeric (a continuous moderator); any other stays text (categorical, e.g. C(alloc))."""
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
    """The study-table columns that `mods` reads (formulaic's required variables), sorted."""
    return sorted(str(v) for v in _formula(mods).required_variables)
