"""The moderator formula grammar: a whitelist in front of formulaic, which would otherwise run the
Python inside `{...}` and inside calls (a formula is user input: it must not run code).

Allowed: column names (plain or `backtick quoted`), 0 and 1 (the intercept), + - * / : and ** (or ^)
with an integer degree of at most MAX_DEGREE, brackets, C(column) and C(column, levels=[literals]),
poly(column, degree), I(arithmetic), and log, exp, sqrt, center, scale of arithmetic. Arithmetic is
+ - * / over columns and decimal numbers, with ** to a number of at most MAX_POWER in size.
Anything else (braces, attributes, subscripts, lambdas, other calls, strings outside C's levels) is
refused by name before formulaic sees the text. The parsed formula is written back in one canonical
spelling, so formulaic evaluates only what was checked; the expansion ((a + b)**3) is bounded by
MAX_TERMS before formulaic expands it.
"""

from __future__ import annotations

import keyword
import math
import re
from dataclasses import dataclass

MAX_LENGTH = 2000     # characters of a formula
MAX_DEPTH = 20        # nested brackets and calls
MAX_DEGREE = 3        # (a + b)**3: interactions of at most three terms
MAX_TERMS = 64        # terms after expansion (an upper bound computed before formulaic expands)
MAX_POWER = 10        # I(x ** 10): the largest exponent inside arithmetic
TRANSFORMS = ("log", "exp", "sqrt", "center", "scale")  # of arithmetic; also C, I and poly

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>""" + _NUMBER + r""")(?![A-Za-z0-9_.])
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<quoted>`[^`\x00-\x1f\x7f]+`)
  | (?P<string>'[^'\\\x00-\x1f\x7f]*'|"[^"\\\x00-\x1f\x7f]*")
  | (?P<op>\*\*|[~+\-*/:^(),=\[\]])
""", re.VERBOSE | re.ASCII)
STRICT_NUMBER = re.compile(r"[+-]?" + _NUMBER, re.ASCII)


class FormulaError(ValueError):
    """A moderator formula outside the grammar; the message names what is not allowed."""


@dataclass(frozen=True)
class Formula:
    """A checked formula: its canonical text (what formulaic receives) and the columns it reads,
    split into those read as numbers and those declared categorical with C()."""
    text: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]

    @property
    def columns(self) -> list[str]:
        return sorted(set(self.numeric) | set(self.categorical))


def _tokens(text: str) -> list[tuple[str, str]]:
    out, i = [], 0
    while i < len(text):
        match = _TOKEN.match(text, i)
        if not match:
            char = text[i]
            what = {"{": "braces {...} (Python code)", "}": "braces {...} (Python code)", ".": "'.' (an attribute)",
                    "`": "an unclosed or empty `quote`"}.get(char, f"the character {char!r}")
            raise FormulaError(f"mods formula {text!r}: {what} at position {i + 1} is not allowed; a formula has "
                               "column names, + - * / : ** and C(), I(), poly(), " + ", ".join(TRANSFORMS) + "()")
        if match.lastgroup != "space":
            out.append((match.lastgroup, match.group()))
        i = match.end()
    return out + [("end", "")]


def _column(token: tuple[str, str]) -> tuple[str, str]:
    """(column name, its canonical spelling: bare when a plain identifier, else `quoted`)."""
    kind, value = token
    name = value[1:-1] if kind == "quoted" else value
    plain = name.isidentifier() and name.isascii() and not keyword.iskeyword(name) and not name.startswith("__")
    return name, name if plain else f"`{name}`"


class _Parser:
    def __init__(self, text: str):
        self.source = text
        self.tokens = _tokens(text)
        self.at = 0
        self.depth = 0
        self.numeric: list[str] = []
        self.categorical: list[str] = []

    # -- helpers ------------------------------------------------------------------------------
    def peek(self) -> tuple[str, str]:
        return self.tokens[self.at]

    def take(self) -> tuple[str, str]:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def fail(self, what: str):
        raise FormulaError(f"mods formula {self.source!r}: {what}")

    def expect(self, op: str) -> None:
        kind, value = self.take()
        if (kind, value) != ("op", op):
            self.fail(f"expected {op!r}, found {value or 'the end'!r}")

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"more than {MAX_DEPTH} nested brackets or calls")

    def is_op(self, *ops: str) -> bool:
        kind, value = self.peek()
        return kind == "op" and value in ops

    # -- the formula level: (text, upper bound on the number of terms) -------------------------
    def formula(self) -> str:
        if not self.is_op("~"):
            if any(t == ("op", "~") for t in self.tokens):
                self.fail("has a left-hand side; give only the moderators ('~ ablat'): the outcome is always "
                          "the effect size yi")
            self.fail("must start with '~'")
        self.take()
        text, terms = self.sum()
        if self.peek()[0] != "end":
            self.fail(f"unexpected {self.peek()[1]!r}")
        if terms > MAX_TERMS:
            self.fail(f"expands to more than {MAX_TERMS} terms")
        return "~ " + text

    def sum(self) -> tuple[str, int]:
        text, terms = self.product()
        while self.is_op("+", "-"):
            op = self.take()[1]
            right, n = self.product()
            text, terms = f"{text} {op} {right}", terms + (n if op == "+" else 0)
            self.limit(terms)
        return text, terms

    def product(self) -> tuple[str, int]:
        text, terms = self.interaction()
        while self.is_op("*", "/"):
            op = self.take()[1]
            right, n = self.interaction()
            text, terms = f"{text} {op} {right}", terms + n + terms * n if op == "*" else terms + terms * n
            self.limit(terms)
        return text, terms

    def interaction(self) -> tuple[str, int]:
        text, terms = self.power()
        while self.is_op(":"):
            self.take()
            right, n = self.power()
            text, terms = f"{text}:{right}", terms * n
            self.limit(terms)
        return text, terms

    def power(self) -> tuple[str, int]:
        text, terms = self.atom()
        if self.is_op("**", "^"):
            self.take()
            kind, value = self.take()
            if kind != "number" or not value.isdigit() or not 1 <= int(value) <= MAX_DEGREE:
                self.fail(f"the degree after ** must be a whole number from 1 to {MAX_DEGREE}, not {value!r}")
            degree = int(value)
            terms = sum(math.comb(terms, j) for j in range(1, degree + 1))
            self.limit(terms)
            text = f"{text}**{degree}"
        return text, terms

    def limit(self, terms: int) -> None:
        if terms > MAX_TERMS:
            self.fail(f"expands to more than {MAX_TERMS} terms")

    def atom(self) -> tuple[str, int]:
        kind, value = self.peek()
        if kind == "op" and value == "(":
            self.take()
            self.nest()
            text, terms = self.sum()
            self.expect(")")
            self.depth -= 1
            return f"({text})", terms
        if kind == "number":
            self.take()
            if value not in ("0", "1"):
                self.fail(f"the number {value} is not a term (only 0 and 1, the intercept; arithmetic goes in I())")
            return value, 0
        if kind == "name" and self.tokens[self.at + 1] == ("op", "("):
            return self.call(), 1
        if kind in ("name", "quoted"):
            self.take()
            name, text = _column((kind, value))
            self.numeric.append(name)
            return text, 1
        self.fail(f"unexpected {value or 'end of formula'!r}")

    # -- calls ------------------------------------------------------------------------------
    def call(self) -> str:
        function = self.take()[1]
        if function not in ("C", "I", "poly", *TRANSFORMS):
            self.fail(f"the function {function}() is not allowed; use C(), I(), poly(), {', '.join(TRANSFORMS)}()")
        self.expect("(")
        self.nest()
        if function == "C":
            inner = self.categorical_call()
        elif function == "poly":
            inner = self.poly_call()
        else:
            inner = self.arith()
        self.expect(")")
        self.depth -= 1
        return f"{function}({inner})"

    def column_argument(self, function: str) -> str:
        kind, value = self.take()
        if kind not in ("name", "quoted") or self.is_op("("):
            self.fail(f"{function}() takes a column name first, not {value or 'nothing'!r}")
        name, text = _column((kind, value))
        (self.categorical if function == "C" else self.numeric).append(name)
        return text

    def keyword_argument(self, allowed: tuple[str, ...], function: str) -> str:
        kind, value = self.take()
        if kind != "name" or value not in allowed:
            self.fail(f"{function}() takes {', '.join(a + '=' for a in allowed)} after the column, not {value!r}")
        self.expect("=")
        return value

    def categorical_call(self) -> str:
        column = self.column_argument("C")
        if not self.is_op(","):
            return column
        self.take()
        self.keyword_argument(("levels",), "C")
        self.expect("[")
        levels = []
        while True:
            kind, value = self.take()
            if kind == "string":
                levels.append(repr(value[1:-1]))
            elif kind == "number":
                levels.append(value)
            else:
                self.fail(f"C()'s levels are quoted text or numbers, not {value or 'nothing'!r}")
            if self.is_op("]"):
                self.take()
                break
            self.expect(",")
        if len(set(levels)) != len(levels):
            self.fail(f"C()'s levels repeat a level: {', '.join(levels)}")
        return f"{column}, levels=[{', '.join(levels)}]"

    def poly_call(self) -> str:
        column = self.column_argument("poly")
        degree, raw = 1, None
        while self.is_op(","):
            self.take()
            kind, value = self.peek()
            if kind == "number":
                self.take()
                key = "degree"
            else:
                key = self.keyword_argument(("degree", "raw"), "poly")
                kind, value = self.take()
            if key == "degree":
                if kind != "number" or not value.isdigit() or not 1 <= int(value) <= MAX_DEGREE:
                    self.fail(f"poly()'s degree is a whole number from 1 to {MAX_DEGREE}, not {value!r}")
                degree = int(value)
            elif value in ("True", "False"):
                raw = value
            else:
                self.fail(f"poly()'s raw= is True or False, not {value!r}")
        return f"{column}, degree={degree}" + (f", raw={raw}" if raw else "")

    # -- arithmetic inside I() and the transforms ----------------------------------------------
    def arith(self) -> str:
        text = self.arith_product()
        while self.is_op("+", "-"):
            op = self.take()[1]
            text = f"{text} {op} {self.arith_product()}"
        return text

    def arith_product(self) -> str:
        text = self.arith_unary()
        while self.is_op("*", "/"):
            op = self.take()[1]
            text = f"{text} {op} {self.arith_unary()}"
        return text

    def arith_unary(self) -> str:
        if self.is_op("-", "+"):
            op = self.take()[1]
            self.nest()
            text = f"{op}{self.arith_unary()}"
            self.depth -= 1
            return text
        return self.arith_power()

    def arith_power(self) -> str:
        text = self.arith_atom()
        if self.is_op("^"):
            self.fail("inside I() and the transforms, a power is ** ('^' is Python's exclusive or)")
        if self.is_op("**"):
            self.take()
            sign = self.take()[1] if self.is_op("-") else ""
            kind, value = self.take()
            if kind != "number" or float(value) > MAX_POWER:
                self.fail(f"the exponent after ** is a number of at most {MAX_POWER}, not {sign + value!r}")
            text = f"{text} ** {sign}{value}"
        return text

    def arith_atom(self) -> str:
        kind, value = self.peek()
        if kind == "op" and value == "(":
            self.take()
            self.nest()
            text = self.arith()
            self.expect(")")
            self.depth -= 1
            return f"({text})"
        if kind == "number":
            self.take()
            if not math.isfinite(float(value)):
                self.fail(f"the number {value} is not finite")
            return value
        if kind == "name" and self.tokens[self.at + 1] == ("op", "("):
            if value not in ("log", "exp", "sqrt"):
                self.fail(f"inside arithmetic only log(), exp() and sqrt() are allowed, not {value}()")
            return self.call()
        if kind in ("name", "quoted"):
            self.take()
            name, text = _column((kind, value))
            self.numeric.append(name)
            return text
        self.fail(f"unexpected {value or 'end of formula'!r} in arithmetic")


def parse_formula(text: str) -> Formula:
    """The checked, canonical formula of `text` (a right-hand side, "~ ablat + C(alloc)").

    >>> parse_formula("~ ablat+C(alloc)").text
    '~ ablat + C(alloc)'
    """
    if not isinstance(text, str):
        raise FormulaError(f"mods formula must be text, not {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise FormulaError(f"mods formula is {len(text)} characters long; the limit is {MAX_LENGTH}")
    parser = _Parser(text)
    canonical = parser.formula()
    return Formula(canonical, tuple(dict.fromkeys(parser.numeric)), tuple(dict.fromkeys(parser.categorical)))


def columns_formula(columns: list[str]) -> Formula:
    """The formula of a list of column names: each column a numeric moderator."""
    names = [_column(("quoted", f"`{c}`")) if "`" not in c and c.isprintable() else None for c in columns]
    if None in names:
        raise FormulaError(f"mods column names {columns!r}: a name with a backtick or a control character")
    return Formula("~ " + " + ".join(t for _, t in names), tuple(dict.fromkeys(columns)), ())
