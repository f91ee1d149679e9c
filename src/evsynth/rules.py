"""Exclusion rules as data: a tiny grammar over the study table's columns, never Python.

A spec file (or a caller) says which studies to leave out with text such as

    design == 'pre_post'
    synthetic
    source_level != 'full text' and year < 2018
    not (technique in ('oxytocin', 'neck') or n < 20)

Grammar (keywords lower-case):

    rule       := or_expr
    or_expr    := and_expr ('or' and_expr)*
    and_expr   := not_expr ('and' not_expr)*
    not_expr   := 'not' not_expr | '(' or_expr ')' | test
    test       := COLUMN                      -- a true/false column, e.g. synthetic
                | COLUMN OP value             -- OP one of == != < <= > >=
                | COLUMN 'in' '(' value (',' value)* ')'
    value      := 'text' | "text" | number | true | false

COLUMN must be a column of the study table. The text is tokenized by a fixed regular
expression and evaluated by plain pandas comparisons: there is no eval, no attribute access, no
call, so a rule cannot run code. A missing cell never matches a comparison (a study whose year
is not reported is not excluded by `year < 2018`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

OPERATORS = ("==", "!=", "<=", ">=", "<", ">")
KEYWORDS = ("and", "or", "not", "in", "true", "false")

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>'[^']*'|"[^"]*")
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<op>==|!=|<=|>=|<|>)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[(),])
""", re.VERBOSE)


class RuleError(ValueError):
    """An exclusion rule that is not in the grammar or names something that is not a column."""


@dataclass(frozen=True)
class _Token:
    kind: str  # string, number, op, name, keyword, punct, end
    text: str
    pos: int


def _tokenize(text: str):
    """Tokens one at a time, so the first problem reported is the first one in reading order."""
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise RuleError(f"exclusion rule {text!r}: unexpected character {text[pos]!r} at position {pos}; "
                            "a rule is column comparisons joined by and/or/not (see evsynth.rules)")
        kind = match.lastgroup
        if kind != "space":
            word = match.group()
            if kind == "name" and word in KEYWORDS:
                kind = "keyword"
            yield _Token(kind, word, pos)
        pos = match.end()
    yield _Token("end", "", len(text))


# Parsed rules are small trees of tuples: ("or", a, b), ("and", a, b), ("not", a),
# ("flag", column), ("cmp", column, op, value), ("in", column, values).


class _Parser:
    def __init__(self, text: str, columns: list[str]):
        self.text, self.columns = text, columns
        self.stream, self.current = _tokenize(text), None
        self.advance()

    def advance(self) -> None:
        self.current = next(self.stream)

    def error(self, why: str, token: _Token | None = None) -> RuleError:
        token = token or self.current
        where = "at the end" if token.kind == "end" else f"at position {token.pos} ({token.text!r})"
        return RuleError(f"exclusion rule {self.text!r}: {why} {where}")

    def peek(self) -> _Token:
        return self.current

    def take(self, kind: str, text: str | None = None) -> _Token:
        token = self.peek()
        if token.kind != kind or (text is not None and token.text != text):
            raise self.error(f"expected {text or kind}")
        self.advance()
        return token

    def at(self, kind: str, text: str | None = None) -> bool:
        token = self.peek()
        return token.kind == kind and (text is None or token.text == text)

    def parse(self):
        if self.at("end"):
            raise self.error("empty rule")
        node = self.or_expr()
        if not self.at("end"):
            raise self.error("unexpected text")
        return node

    def or_expr(self):
        node = self.and_expr()
        while self.at("keyword", "or"):
            self.advance()
            node = ("or", node, self.and_expr())
        return node

    def and_expr(self):
        node = self.not_expr()
        while self.at("keyword", "and"):
            self.advance()
            node = ("and", node, self.not_expr())
        return node

    def not_expr(self):
        if self.at("keyword", "not"):
            self.advance()
            return ("not", self.not_expr())
        if self.at("punct", "("):
            self.advance()
            node = self.or_expr()
            self.take("punct", ")")
            return node
        return self.test()

    def column(self) -> str:
        token = self.peek()
        if token.kind != "name":
            raise self.error("expected a column name")
        if token.text not in self.columns:
            raise RuleError(f"exclusion rule {self.text!r}: {token.text!r} is not a column of the study table "
                            f"(columns: {', '.join(self.columns)})")
        self.advance()
        return token.text

    def value(self):
        token = self.peek()
        if token.kind == "string":
            value = token.text[1:-1]
        elif token.kind == "number":
            value = float(token.text)
        elif token.kind == "keyword" and token.text in ("true", "false"):
            value = token.text == "true"
        else:
            raise self.error("expected a value ('text', a number, true or false)")
        self.advance()
        return value

    def test(self):
        name = self.column()
        if self.at("op"):
            op = self.take("op").text
            return ("cmp", name, op, self.value())
        if self.at("keyword", "in"):
            self.advance()
            self.take("punct", "(")
            values = [self.value()]
            while self.at("punct", ","):
                self.advance()
                values.append(self.value())
            self.take("punct", ")")
            return ("in", name, tuple(values))
        if self.at("punct", "("):
            raise self.error("calls are not allowed")
        return ("flag", name)


@dataclass(frozen=True)
class Rule:
    """A parsed exclusion rule; `select(table)` gives the rows it excludes."""

    text: str
    tree: tuple

    def __str__(self) -> str:
        return self.text

    def select(self, table: pd.DataFrame) -> pd.Series:
        """Boolean Series, True for each row the rule excludes."""
        return pd.Series(_evaluate(self.tree, table, self.text), index=table.index, dtype=bool)


def parse_rule(text: str, columns) -> Rule:
    """Parse `text` against the study table's column names; refuse anything outside the grammar."""
    if not isinstance(text, str):
        raise RuleError(f"exclusion rule {text!r}: must be text")
    tree = _Parser(text, [str(c) for c in columns]).parse()
    return Rule(text.strip(), tree)


def _evaluate(node, table: pd.DataFrame, text: str) -> np.ndarray:
    kind = node[0]
    if kind == "or":
        return _evaluate(node[1], table, text) | _evaluate(node[2], table, text)
    if kind == "and":
        return _evaluate(node[1], table, text) & _evaluate(node[2], table, text)
    if kind == "not":
        return ~_evaluate(node[1], table, text)
    column = table[node[1]]
    present = column.notna().to_numpy()
    if kind == "flag":
        values = column[column.notna()]
        if not values.map(lambda v: isinstance(v, (bool, np.bool_))).all():
            raise RuleError(f"exclusion rule {text!r}: column {node[1]!r} is not true/false; "
                            f"compare it with a value, e.g. {node[1]} == 'something'")
        return present & column.fillna(False).astype(bool).to_numpy()
    values = [node[3]] if kind == "cmp" else list(node[2])
    op = node[2] if kind == "cmp" else "in"
    data = _comparable(column, values, node[1], text)
    if kind == "in":
        return present & data.isin(values).to_numpy()
    if isinstance(values[0], (str, bool)) and op not in ("==", "!="):
        raise RuleError(f"exclusion rule {text!r}: {op} needs a number; text and true/false compare "
                        "only with == or !=")
    compare = {"==": data.eq, "!=": data.ne, "<": data.lt, "<=": data.le, ">": data.gt, ">=": data.ge}[op]
    return present & compare(values[0]).fillna(False).to_numpy(bool)


def _comparable(column: pd.Series, values: list, name: str, text: str) -> pd.Series:
    """The column in the type of the rule's values, or a clear error when they cannot meet."""
    kinds = {type(v) for v in values}
    if len(kinds) > 1:
        raise RuleError(f"exclusion rule {text!r}: values for {name!r} mix types")
    kind = kinds.pop()
    observed = column.dropna()
    if kind is bool:
        if not observed.map(lambda v: isinstance(v, (bool, np.bool_))).all():
            raise RuleError(f"exclusion rule {text!r}: column {name!r} is not true/false")
        return column.astype(object)
    is_flag = len(observed) > 0 and observed.map(lambda v: isinstance(v, (bool, np.bool_))).all()
    if is_flag:
        raise RuleError(f"exclusion rule {text!r}: column {name!r} is true/false; write `{name}`, "
                        f"`not {name}` or `{name} == true`")
    if kind is float:
        numbers = pd.to_numeric(column, errors="coerce")
        if numbers[column.notna()].isna().any():
            raise RuleError(f"exclusion rule {text!r}: column {name!r} holds text, not numbers; "
                            "compare it with a quoted value")
        return numbers.astype(float)
    if pd.api.types.is_numeric_dtype(column):
        raise RuleError(f"exclusion rule {text!r}: column {name!r} holds numbers; compare it with an "
                        "unquoted number")
    return column.astype(object).where(column.notna(), None).map(lambda v: None if v is None else str(v))
