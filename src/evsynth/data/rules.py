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
call, so a rule cannot run code. A missing cell never matches: a test on it is unknown, `not`
of unknown is unknown, `and`/`or` follow SQL's three-valued logic, and only a rule that is known to
hold excludes a study (a study whose year is not reported is excluded neither by `year < 2018`
nor by `not (year < 2018)`). A rule is at most MAX_RULE_LENGTH characters, MAX_TERMS tests and
MAX_DEPTH nested parentheses/`not`s deep; longer ones are refused before any work is done.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

OPERATORS = ("==", "!=", "<=", ">=", "<", ">")
MAX_RULE_LENGTH = 2000  # characters
MAX_TERMS = 200  # column tests
MAX_DEPTH = 32  # nested parentheses and `not`s
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
                            "a rule is column comparisons joined by and/or/not (see evsynth.data.rules)")
        kind = match.lastgroup
        if kind != "space":
            word = match.group()
            if kind == "name" and word in KEYWORDS:
                kind = "keyword"
            yield _Token(kind, word, pos)
        pos = match.end()
    yield _Token("end", "", len(text))


# Parsed rules are small trees of tuples: ("or", a, b, ...), ("and", a, b, ...), ("not", a),
# ("flag", column), ("cmp", column, op, value), ("in", column, values).


class _Parser:
    def __init__(self, text: str, columns: list[str]):
        self.text, self.columns = text, columns
        self.stream, self.current = _tokenize(text), None
        self.depth, self.terms = 0, 0
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
        nodes = [self.and_expr()]
        while self.at("keyword", "or"):
            self.advance()
            nodes.append(self.and_expr())
        return nodes[0] if len(nodes) == 1 else ("or", *nodes)

    def and_expr(self):
        nodes = [self.not_expr()]
        while self.at("keyword", "and"):
            self.advance()
            nodes.append(self.not_expr())
        return nodes[0] if len(nodes) == 1 else ("and", *nodes)

    def nested(self, parse):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"nested more than {MAX_DEPTH} levels deep (parentheses and not)")
        node = parse()
        self.depth -= 1
        return node

    def not_expr(self):
        if self.at("keyword", "not"):
            self.advance()
            return ("not", self.nested(self.not_expr))
        if self.at("punct", "("):
            self.advance()
            node = self.nested(self.or_expr)
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
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise self.error(f"more than {MAX_TERMS} column tests; split the rule")
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
        """Boolean Series, True for each row the rule is known to hold for (the rows it excludes)."""
        holds, known = _evaluate(self.tree, table, self.text)
        return pd.Series(holds & known, index=table.index, dtype=bool)


def parse_rule(text: str, columns) -> Rule:
    """Parse `text` against the study table's column names; refuse anything outside the grammar."""
    if not isinstance(text, str):
        raise RuleError(f"exclusion rule {text!r}: must be text")
    if len(text) > MAX_RULE_LENGTH:
        raise RuleError(f"exclusion rule {text[:40]!r}...: {len(text)} characters, more than the limit of "
                        f"{MAX_RULE_LENGTH}; split it into several rules")
    tree = _Parser(text, [str(c) for c in columns]).parse()
    return Rule(text.strip(), tree)


def _evaluate(node, table: pd.DataFrame, text: str) -> tuple[np.ndarray, np.ndarray]:
    """(holds, known) per row: SQL's three-valued logic, a missing cell making a test unknown."""
    kind = node[0]
    if kind in ("or", "and"):
        parts = [_evaluate(child, table, text) for child in node[1:]]
        true = [h & k for h, k in parts]
        false = [~h & k for h, k in parts]
        if kind == "or":
            holds, refuted = np.logical_or.reduce(true), np.logical_and.reduce(false)
        else:
            holds, refuted = np.logical_and.reduce(true), np.logical_or.reduce(false)
        return holds, holds | refuted
    if kind == "not":
        holds, known = _evaluate(node[1], table, text)
        return ~holds & known, known
    return _test(node, table, text), table[node[1]].notna().to_numpy(bool)


def _test(node, table: pd.DataFrame, text: str) -> np.ndarray:
    kind = node[0]
    column = table[node[1]]
    present = column.notna().to_numpy(bool)
    if kind == "flag":
        values = column[column.notna()]
        if not values.map(lambda v: isinstance(v, (bool, np.bool_))).all():
            raise RuleError(f"exclusion rule {text!r}: column {node[1]!r} is not true/false; "
                            f"compare it with a value, e.g. {node[1]} == 'something'")
        return np.array([bool(v) if p else False for v, p in zip(column.to_numpy(object), present)], dtype=bool)
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
