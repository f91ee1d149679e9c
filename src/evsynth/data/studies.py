"""Load and validate a study table (one row per comparison).

Every cell is read as text and validated by a pydantic row model, so a bad cell is refused with
an error naming the study id and the field instead of being coerced to NaN or silently dropped.
The file itself is checked first, so nothing is padded, renamed or ignored on the way in: it must
be UTF-8 (a byte-order mark and CRLF line ends are fine), comma-separated, every line must have as
many fields as the header, header names must be unique and known (a column outside the schema is
accepted only when declared with `extra_columns`, e.g. a moderator), and labels that differ only
by case, spacing or an invisible character (`Oxytocin` / `oxytocin`) are refused rather than
becoming separate groups. The schema is documented in studies/README.md.
"""

from __future__ import annotations

import csv
import difflib
import io
import re
import unicodedata
from pathlib import Path
from typing import Annotated, Literal, Optional

import pandas as pd
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

DESIGNS = ("pre_post", "two_group", "effect")
SOURCE_LEVELS = ("abstract", "full text", "secondary", "synthetic")
# Which way is better for the outcome: more milk is good ("higher"), a later first milk or a higher
# depression score is bad ("lower"). Effects keep their sign; only a pooled SMD across outcomes flips.
DIRECTIONS = ("higher", "lower")
COMPONENT_SEPARATOR = ";"  # components = "breast care; oxytocin" for a combination technique
# Risk-of-bias judgements as the tools word them: RoB 2 (randomized) and ROBINS-I (non-randomized).
ROB_LEVELS = ("low", "some concerns", "high", "moderate", "serious", "critical", "no information")
ROB_DOMAINS = ("rob_d1", "rob_d2", "rob_d3", "rob_d4", "rob_d5")
# Whether the comparison was randomised, as its source says ("unclear" when it does not say).
RANDOMISED = ("yes", "no", "unclear")
# The test behind a printed p or statistic: "t" two-sample t-test, "paired-t" paired (dependent) t-test,
# "wilcoxon" Wilcoxon signed-rank (pre/post) or rank-sum (two-group, = Mann-Whitney), "mann-whitney",
# "kruskal-wallis", "chi-square", "fisher", "other". Empty = the source does not name it.
TESTS = ("t", "paired-t", "wilcoxon", "mann-whitney", "kruskal-wallis", "chi-square", "fisher", "other")
RANK_TESTS = ("wilcoxon", "mann-whitney", "kruskal-wallis")
# Two-group means that are pre-to-post changes ("change") or values after treatment ("final").
MEANS_KINDS = ("change", "final")
# The printed direction of a difference whose means are not printed (treatment - comparator, post - pre).
EFFECT_SIGNS = ("positive", "negative")

# Numeric fields each design needs before an effect size can be attempted.
REQUIRED_BY_DESIGN = {
    "pre_post": ("n", "mean_pre", "mean_post"),
    "two_group": ("n_treat", "n_ctrl", "mean_treat", "mean_ctrl"),
    "effect": ("yi", "sei", "measure"),
}
# Without means: a printed direction (effect_sign) and a test statistic give a standardised effect.
SIGN_REQUIRED_BY_DESIGN = {"pre_post": ("n", "effect_sign"), "two_group": ("n_treat", "n_ctrl", "effect_sign")}
STATISTICS = ("t", "p", "p_upper")  # what a p-derived (sign-only) row needs one of
# Binary outcomes: a 2x2 table (events out of n in each arm), or a ratio reported with its 95% CI.
BINARY_REQUIRED = ("n_treat", "n_ctrl", "events_treat", "events_ctrl")
RATIO_REQUIRED = ("ratio", "ci_low", "ci_high", "measure")
RATIO_MEASURES = ("RR", "OR")
# Numeric fields a design never reads (a value there would be ignored: refused, issue 25).
_PRE_POST = ("n", "mean_pre", "mean_post", "sd_pre", "sd_post", "sd_change", "r_prepost")
_TWO_GROUP = ("n_treat", "n_ctrl", "mean_treat", "mean_ctrl", "sd_treat", "sd_ctrl")
UNUSED_BY_DESIGN = {
    "pre_post": _TWO_GROUP + ("yi", "sei"),
    "two_group": _PRE_POST + ("yi", "sei"),
    "effect": _PRE_POST + _TWO_GROUP + ("t",),
}
# Any one of these lets the standard error be obtained (checked in compute_effects order).
SE_SOURCES_BY_DESIGN = {
    # sd_pre alone (with r): enough for the SMD (metafor's SMCR); other measures then report why not
    "pre_post": ("sd_change", "sd_pre+sd_post", "t", "ci_low+ci_high", "p", "p_upper", "sd_pre"),
    "two_group": ("sd_treat+sd_ctrl", "t", "ci_low+ci_high", "p", "p_upper"),
    "effect": ("sei",),
}

# Numbers as a person writes them: digits with one optional '.', an optional sign and exponent.
# Python (and pydantic) would also read '5_0.86' as 50.86, '0x10' or '1_0' as a count: refused here.
DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
WHOLE = re.compile(r"[+-]?\d+(?:\.0*)?", re.ASCII)  # 15.0 is 15 (a table that went through floats)


def _decimal(value):
    if isinstance(value, str) and value.strip() and not DECIMAL.fullmatch(value.strip()):
        raise ValueError(f"{value!r} is not a decimal number (digits with one '.', e.g. 50.86 or 1.2e-3; no "
                         "'_', hex or words)")
    return value


def _whole(value):
    if isinstance(value, str) and value.strip() and not WHOLE.fullmatch(value.strip()):
        raise ValueError(f"{value!r} is not a whole number (digits only; no '_', hex, fractions or words)")
    return value


Positive = Annotated[float, BeforeValidator(_decimal), Field(gt=0, allow_inf_nan=False)]
Finite = Annotated[float, BeforeValidator(_decimal), Field(allow_inf_nan=False)]
MIN_T = 1e-6  # a smaller |t| is not a printed value (t = 1e-300 gave a null SMD and an MD overflow)
MAX_COUNT = 10**9  # more participants than this is a typo, and would overflow the arithmetic downstream
Count = Annotated[int, BeforeValidator(_whole), Field(ge=2, le=MAX_COUNT)]
Events = Annotated[int, BeforeValidator(_whole), Field(ge=0, le=MAX_COUNT)]
Year = Annotated[int, BeforeValidator(_whole), Field(ge=1000, le=2100)]
RobJudgement = Optional[Literal[ROB_LEVELS]]
Probability = Annotated[float, BeforeValidator(_decimal), Field(gt=0, le=1, allow_inf_nan=False)]


class StudyDataError(ValueError):
    """Study table refused; the message lists every problem with its study id and field.

    Example:
        >>> import evsynth as es
        >>> try:
        ...     es.load_studies("studies/bcg.csv")     # its moderator columns are not declared
        ... except es.StudyDataError as error:
        ...     print("column 'ablat' is not in the schema" in str(error))
        True
    """


class StudyRow(BaseModel):
    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    study_id: str = Field(min_length=1)
    citation: str = Field(min_length=1)
    source: Optional[str] = None
    source_level: Literal[SOURCE_LEVELS]
    year: Optional[Year] = None
    design: Literal[DESIGNS]
    technique: str = Field(min_length=1)
    components: Optional[str] = None
    comparator: Optional[str] = None
    outcome: str = Field(min_length=1)
    unit: Optional[str] = None
    direction: Literal[DIRECTIONS] = "higher"
    n: Optional[Count] = None
    mean_pre: Optional[Finite] = None
    mean_post: Optional[Finite] = None
    sd_pre: Optional[Positive] = None
    sd_post: Optional[Positive] = None
    sd_change: Optional[Positive] = None
    r_prepost: Optional[Annotated[float, BeforeValidator(_decimal), Field(gt=-1, lt=1, allow_inf_nan=False)]] = None
    n_treat: Optional[Count] = None
    n_ctrl: Optional[Count] = None
    mean_treat: Optional[Finite] = None
    mean_ctrl: Optional[Finite] = None
    sd_treat: Optional[Positive] = None
    sd_ctrl: Optional[Positive] = None
    events_treat: Optional[Events] = None
    events_ctrl: Optional[Events] = None
    ratio: Optional[Positive] = None
    p: Optional[Probability] = None
    p_upper: Optional[Probability] = None
    t: Optional[Finite] = None
    ci_low: Optional[Finite] = None
    ci_high: Optional[Finite] = None
    yi: Optional[Finite] = None
    sei: Optional[Positive] = None
    measure: Optional[str] = None
    randomised: Optional[Literal[RANDOMISED]] = None
    sample_id: Optional[str] = None
    test: Optional[Literal[TESTS]] = None
    means: Optional[Literal[MEANS_KINDS]] = None
    effect_sign: Optional[Literal[EFFECT_SIGNS]] = None
    rob: RobJudgement = None
    rob_d1: RobJudgement = None
    rob_d2: RobJudgement = None
    rob_d3: RobJudgement = None
    rob_d4: RobJudgement = None
    rob_d5: RobJudgement = None
    synthetic: bool = False
    note: Optional[str] = None
    unusable_reason: Optional[str] = None

    @field_validator("p", "p_upper", "t", mode="before")
    @classmethod
    def _no_inequalities(cls, value):
        if isinstance(value, str) and value.strip()[:1] in "<>≤≥=":
            raise ValueError(
                f"{value!r} is an inequality, not a number; record a bound as p_upper "
                "(e.g. 'p < 0.001' -> p_upper = 0.001, 'p = 0.000' -> p_upper = 0.0005)"
            )
        return value

    @field_validator("components")
    @classmethod
    def _components_listed(cls, value):
        if value is not None and not all(part.strip() for part in value.split(COMPONENT_SEPARATOR)):
            raise ValueError(f"{value!r}: list the techniques separated by '{COMPONENT_SEPARATOR}', none empty "
                             "(e.g. 'breast care; oxytocin')")
        return value

    @field_validator("t")
    @classmethod
    def _t_nonzero(cls, value):
        if value is not None and value == 0:
            raise ValueError("t = 0 carries no standard error; leave it empty")
        if value is not None and abs(value) < MIN_T:  # the same refusal for every measure (issue 25)
            raise ValueError(f"|t| = {abs(value):g} is below {MIN_T:g}: a printed t that small rounds to 0, which "
                             "carries no standard error; check the source")
        return value

    @property
    def has_counts(self) -> bool:
        """A binary-outcome row: events out of n per arm (a 2x2 table)."""
        return self.events_treat is not None or self.events_ctrl is not None

    @property
    def sign_only(self) -> bool:
        """A row that prints a direction and a test statistic but no means (a p-derived SMD)."""
        return self.effect_sign is not None

    def _required(self) -> tuple[str, ...]:
        if self.sign_only and self.design in SIGN_REQUIRED_BY_DESIGN:
            return SIGN_REQUIRED_BY_DESIGN[self.design]
        if self.has_counts and self.design == "two_group":
            return BINARY_REQUIRED
        if self.ratio is not None and self.design == "effect":
            return RATIO_REQUIRED
        return REQUIRED_BY_DESIGN[self.design]

    def _binary_problems(self) -> list[tuple[str, str]]:
        problems = []
        if self.has_counts and self.design == "pre_post" and not self.unusable_reason:
            field = "events_treat" if self.events_treat is not None else "events_ctrl"
            problems.append((field, "binary pre/post counts cannot be analysed: the paired before/after table "
                             "(who changed) is not reported; keep the row with an unusable_reason"))
        if self.has_counts and self.design == "two_group":
            problems += [(f, "a row gives counts (events_*) or means (mean_*), not both: one outcome per row")
                         for f in ("mean_treat", "mean_ctrl") if getattr(self, f) is not None]
            for events, n in (("events_treat", "n_treat"), ("events_ctrl", "n_ctrl")):
                if None not in (getattr(self, events), getattr(self, n)) and getattr(self, events) > getattr(self, n):
                    problems.append((events, f"{getattr(self, events)} events exceed {n} = {getattr(self, n)}"))
        if self.has_counts and self.design == "effect":
            problems.append(("events_treat", "counts belong to design 'two_group'; design 'effect' takes yi/sei "
                             "or a reported ratio"))
        if self.ratio is not None:
            if self.design != "effect":
                problems.append(("ratio", "a reported ratio belongs to design 'effect'"))
            elif (self.measure or "").upper() not in RATIO_MEASURES:
                problems.append(("measure", f"a reported ratio needs measure {' or '.join(RATIO_MEASURES)}"))
            if self.yi is not None or self.sei is not None:
                problems.append(("yi", "give a ready-made effect as yi/sei (log scale) or as ratio with its CI, "
                                 "not both"))
            if self.ci_low is not None and self.ci_high is not None and not (
                    0 < self.ci_low < self.ratio < self.ci_high):
                problems.append(("ratio", f"ratio {self.ratio} must lie inside its CI ({self.ci_low}, "
                                 f"{self.ci_high}) with ci_low > 0"))
        return problems

    def _evidence_problems(self) -> list[tuple[str, str]]:
        """randomised, test, means and effect_sign against the design and each other."""
        problems = []
        if self.design == "pre_post" and self.randomised == "yes":
            problems.append(("randomised", "a one-group pre/post row has no randomised comparison; "
                             "use 'no' (or design two_group for the randomised between-arm comparison)"))
        if self.test == "paired-t" and self.design == "two_group":
            problems.append(("test", "a paired t-test compares one group with itself; a two-group row's p comes "
                             "from 't', 'mann-whitney', ... (put a within-group p on a pre_post row)"))
        if self.test in ("t", "mann-whitney", "kruskal-wallis") and self.design == "pre_post":
            better = "'paired-t'" if self.test == "t" else "'wilcoxon' (signed-rank)"
            problems.append(("test", f"{self.test!r} compares independent groups; a pre/post row's test is "
                             f"paired: {better}"))
        if self.means is not None and self.design != "two_group":
            problems.append(("means", f"'change' or 'final' describes two-group means; design {self.design!r} "
                             "has none (a pre/post row is a change by construction)"))
        if self.effect_sign is not None:
            means = {"pre_post": ("mean_pre", "mean_post"), "two_group": ("mean_treat", "mean_ctrl")}
            if self.design not in means:
                problems.append(("effect_sign", f"a printed direction without means belongs to design pre_post "
                                 f"or two_group, not {self.design!r}"))
            else:
                given = [f for f in means[self.design] if getattr(self, f) is not None]
                if given:
                    problems.append(("effect_sign", f"the means ({', '.join(given)}) already give the sign; "
                                     "effect_sign is for rows whose means are not printed"))
                if not self.unusable_reason and all(getattr(self, f) is None for f in STATISTICS):
                    problems.append(("effect_sign", "a row without means needs a test statistic for its size: "
                                     f"one of {', '.join(STATISTICS)}"))
                for field in ("sd_pre", "sd_post", "sd_change", "sd_treat", "sd_ctrl", "ci_low", "ci_high"):
                    if getattr(self, field) is not None:
                        problems.append((field, "without means an SD or CI cannot be used; record the means "
                                         "(then leave effect_sign empty)"))
        return problems

    def _unused_problems(self) -> list[tuple[str, str]]:
        """A field the row's design does not read would be ignored without a word (n on a two-group
        row, means beside a ready-made yi): refused, unless the row is kept as unusable (it records
        what the source printed). The synthetic flag must agree with source_level."""
        problems = []
        if self.source_level == "synthetic" and not self.synthetic:
            problems.append(("synthetic", "source_level 'synthetic' needs synthetic = true: invented numbers are "
                             "never evidence"))
        if self.unusable_reason:
            return problems
        for field in UNUSED_BY_DESIGN[self.design]:
            if getattr(self, field) is not None:
                problems.append((field, f"design {self.design!r} does not use {field}; it would be ignored: "
                                 "remove it (or put it in note)"))
        return problems

    def design_problems(self) -> list[tuple[str, str]]:
        """(field, why) for what the design needs but the row lacks or contradicts."""
        problems = self._binary_problems() + self._evidence_problems() + self._unused_problems()
        missing = [f for f in self._required() if getattr(self, f) is None]
        hint = "; if the source does not report it, keep the row and say so in unusable_reason"
        if not self.unusable_reason:
            problems += [(f, f"required for design {self.design!r}{hint}") for f in missing]
            if (not missing and not (self.has_counts or self.ratio is not None or self.sign_only)
                    and not self._has_se_source()):
                options = ", ".join(SE_SOURCES_BY_DESIGN[self.design])
                problems.append((options.split(",")[0], f"design {self.design!r} needs one of {options} "
                                 f"to obtain a standard error{hint}"))
        if self.ci_low is not None and self.ci_high is not None and self.ci_low >= self.ci_high:
            problems.append(("ci_low", "must be below ci_high"))
        if (self.ci_low is None) != (self.ci_high is None):
            problems.append(("ci_high" if self.ci_high is None else "ci_low", "ci_low and ci_high come together"))
        if self.p is not None and self.p_upper is not None:
            problems.append(("p_upper", "give either an exact p or a bound p_upper, not both"))
        return problems

    def _has_se_source(self) -> bool:
        if self.sign_only:
            return any(getattr(self, f) is not None for f in STATISTICS)
        for option in SE_SOURCES_BY_DESIGN[self.design]:
            if all(getattr(self, f) is not None for f in option.split("+")):
                return True
        return False


# Labels that name groups: spellings that differ only by case, spacing or invisible characters are
# refused (technique and comparator together: a comparator can name a technique in head-to-head rows).
LABEL_GROUPS = {"study_id": ("study_id",), "technique": ("technique", "comparator"), "outcome": ("outcome",),
                "sample_id": ("sample_id",)}
# how a column of one's own is declared in Python (the CLI says --extra-column NAME instead)
EXTRA_COLUMNS_PYTHON = "with load_studies(..., extra_columns=[...])"
SEPARATORS = {";": "semicolon", "\t": "tab", "|": "vertical bar"}


def _strip(cell: str) -> str:
    """A cell without surrounding spaces, tabs and line ends; any other space at its edges (a
    no-break space) stays, to be refused by name rather than stripped in silence."""
    return cell.strip(" \t\r\n")


def _label_key(text: str) -> str:
    """What two spellings of one label share: NFKC, no invisible characters, case-folded, single spaces."""
    visible = "".join(c for c in unicodedata.normalize("NFKC", text) if unicodedata.category(c) != "Cf")
    return " ".join(visible.casefold().split())


def _invisible(text: str) -> list[str]:
    return [f"U+{ord(c):04X}" for c in text if unicodedata.category(c) == "Cf"]


def _decode(data: bytes, name: str) -> str:
    """The file's text; UTF-8 (with or without a byte-order mark) is expected, anything else is named."""
    if not data.strip():
        raise StudyDataError(f"{name}: the file is empty; expected a CSV whose first line is the header "
                             "(study_id,citation,source_level,...)")
    head = data[:4096]
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or head.count(b"\x00") > len(head) // 4:
        raise StudyDataError(f"{name}: the file is UTF-16 encoded (found a UTF-16 byte-order mark or NUL bytes); "
                             "expected UTF-8: save it as 'CSV UTF-8'")
    if b"\x00" in data:  # UTF-8 text with a NUL byte in it: not text a spreadsheet writes
        line = data[:data.index(b"\x00")].count(b"\n") + 1
        raise StudyDataError(f"{name}: line {line}: a NUL byte (0x00); a study table is text: remove it")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise StudyDataError(f"{name}: line {line}: byte 0x{data[exc.start]:02x} is not UTF-8 (the file looks "
                             "Latin-1 / Windows-1252 encoded); expected UTF-8: save it as 'CSV UTF-8'") from None


def _read_csv_text(source) -> tuple[list[str], list[list[str]], list[int], str]:
    """(header, rows, line number of each row, name) from a CSV path, as text, nothing padded."""
    name = str(source)
    if not isinstance(source, (str, Path)) and not hasattr(source, "__fspath__"):
        raise StudyDataError(f"{source!r}: expected a path to a study CSV file or a DataFrame")
    path = Path(source)
    if path.is_dir():
        raise StudyDataError(f"{name}: is a directory; expected a study CSV file")
    if not path.is_file():
        raise StudyDataError(f"{name}: no such file; expected a study CSV file")
    text = _decode(path.read_bytes(), name)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header, rows, lines, start = None, [], [], 1
    try:
        for record in reader:
            line, start = start, reader.line_num + 1
            if not record or (len(record) == 1 and not record[0].strip()):
                continue  # a blank line
            if header is None:
                header = [cell.strip() for cell in record]
                continue
            rows.append(record)
            lines.append(line)
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            raise StudyDataError(f"{name}: line {start}: a field longer than {csv.field_size_limit():,} characters, "
                                 "the limit of one cell (a misplaced quote can make the rest of the file one "
                                 "field)") from None
        raise StudyDataError(f"{name}: line {reader.line_num}: not a well-formed CSV line ({exc})") from None
    if header is None:
        raise StudyDataError(f"{name}: the file has no header line; expected study_id,citation,...")
    if len(header) == 1:
        found = [f"{word} ({sep!r})" for sep, word in SEPARATORS.items() if sep in header[0]]
        if found:
            raise StudyDataError(f"{name}: the header line is separated by {' and '.join(found)}; expected commas "
                                 "(export as 'CSV (comma delimited)')")
    return header, rows, lines, name


def _check_header(header: list[str], extra: tuple[str, ...], name: str) -> None:
    known = list(StudyRow.model_fields)
    problems = []
    if "" in header:
        problems.append(f"column {header.index('') + 1} has no name; every column needs a header")
    repeated = sorted({h for h in header if h and header.count(h) > 1})
    problems += [f"column {h!r} appears {header.count(h)} times; each column must appear once" for h in repeated]
    for column in dict.fromkeys(h for h in header if h and h not in known and h not in extra):
        close = difflib.get_close_matches(column.lower(), known, n=1, cutoff=0.6)
        close = close or [k for k in known if k.lower() == column.lower()]
        hint = f"; did you mean {close[0]!r}?" if close else ""
        problems.append(f"column {column!r} is not in the schema (studies/README.md){hint}; declare a column "
                        f"of your own (a moderator, notes) {EXTRA_COLUMNS_PYTHON}")
    if problems:
        raise StudyDataError(f"{name}: {len(problems)} problem(s) in the header:\n  " + "\n  ".join(problems))


def _read_text_table(source, extra: tuple[str, ...]) -> tuple[pd.DataFrame, list[str]]:
    """The table as stripped text, and where each row is (for messages)."""
    if isinstance(source, pd.DataFrame):
        _check_header([str(c) for c in source.columns], extra, "DataFrame")
        frame = source.astype(object).where(source.notna(), "").astype(str).map(_strip)
        frame.columns = [str(c) for c in source.columns]
        return frame.reset_index(drop=True), [f"row {i}" for i in range(len(frame))]
    header, rows, lines, name = _read_csv_text(source)
    _check_header(header, extra, name)
    ragged = []
    for line, row in zip(lines, rows):
        if len(row) != len(header):
            study = row[header.index("study_id")].strip() if "study_id" in header and len(row) > header.index(
                "study_id") else "?"  # the line ends before its study_id
            ragged.append(f"line {line} (study {study!r}): {len(row)} fields, the header has {len(header)}; "
                          f"{'a field is missing' if len(row) < len(header) else 'there are extra fields'} "
                          "(quote text that contains commas)")
    if ragged:
        raise StudyDataError(f"{name}: {len(ragged)} line(s) do not match the header:\n  " + "\n  ".join(ragged))
    frame = pd.DataFrame([[_strip(cell) for cell in row] for row in rows], columns=header, dtype=object)
    return frame, [f"line {line}" for line in lines]


def _field_of(error: dict) -> str:
    return ".".join(str(x) for x in error["loc"]) or "row"


# What a required field holds, for the message when a row leaves it empty (studies/README.md, Columns).
REQUIRED_FIELDS = {
    "study_id": "a unique id of the comparison (e.g. hesti2017)",
    "citation": "who/where the numbers were read, as printed (e.g. 'Hesti KY et al. 2017, Belitung Nurs J')",
    "source_level": "where the figures were read: abstract, full text, secondary or synthetic",
    "design": "pre_post, two_group or effect",
    "technique": "the label of the intervention (e.g. oxytocin)",
    "outcome": "the outcome label (e.g. milk volume)",
}


def _message(error: dict) -> str:
    """pydantic's message, with what to write when a required field is missing."""
    field = _field_of(error)
    if error["type"] == "missing":
        what = REQUIRED_FIELDS.get(field, "see the column table in studies/README.md")
        return f"required but empty or missing: give {what} (column table: studies/README.md)"
    return error["msg"]


def _label_problems(raw: pd.DataFrame) -> list[str]:
    """Invisible characters in labels, and labels that differ only by case/spacing/invisible characters."""
    problems = []
    for group, fields in LABEL_GROUPS.items():
        spellings: dict[str, dict[str, str]] = {}  # key -> spelling -> first study using it
        for field in (f for f in fields if f in raw.columns):
            for study, value in zip(raw["study_id"], raw[field]):
                if not value:
                    continue
                if _invisible(value):
                    problems.append(f"study {study!r}, field {field!r}: {value!r} contains invisible character(s) "
                                    f"{', '.join(_invisible(value))}; retype the label")
                spellings.setdefault(_label_key(value), {}).setdefault(value, study)
        for variants in spellings.values():
            if len(variants) > 1:
                shown = " vs ".join(f"{v!r} (study {s!r})" for v, s in variants.items())
                first = next(iter(variants.values()))
                problems.append(f"study {first!r}, field {fields[0]!r}: labels differ only by case, spacing or "
                                f"invisible characters: {shown}; spell them the same")
    return problems


def load_studies(source, extra_columns=()) -> pd.DataFrame:
    """Read a study CSV (path) or DataFrame, validate every row, return a typed DataFrame.

    extra_columns: columns outside the schema to keep as text (moderators, notes); any other
    unknown column is refused, with the nearest schema name as a suggestion.
    Raises StudyDataError listing every problem as "study <id>, field <name>: <why>".

    Example:
        >>> table = load_studies("studies/synthetic_demo.csv")
        >>> len(table), table["study_id"].iloc[0]
        (18, 'syn_oxytocin_1')
    """
    extra = tuple(str(c) for c in extra_columns)
    clash = [c for c in extra if c in StudyRow.model_fields]
    if clash:
        raise StudyDataError(f"extra_columns {clash}: already in the schema; list only columns of your own")
    raw, where = _read_text_table(source, extra)
    if "study_id" not in raw.columns:
        raise StudyDataError("study table has no 'study_id' column")
    problems, rows = [], []
    for position, record in zip(where, raw.to_dict("records")):
        study = record.get("study_id") or f"<{position}, no study_id>"
        cells = {k: v for k, v in record.items() if v != ""}
        for key, value in cells.items():
            if isinstance(value, str) and value != value.strip():
                edge = [f"U+{ord(c):04X} ({unicodedata.name(c, 'unnamed')})" for c in (value[0], value[-1])
                        if c.isspace()]
                problems.append(f"study {study!r}, field {key!r}: {value!r} begins or ends with {edge[0]}: "
                                "remove it (it would be stripped, and the label merged with another)")
        for key, value in cells.items():
            if isinstance(value, str) and value.lower() in ("nan", "na", "inf", "-inf", "null"):
                problems.append(f"study {study!r}, field {key!r}: {value!r} is not a value; leave it empty if not reported")
        try:
            row = StudyRow.model_validate(cells)
        except ValidationError as exc:
            problems += [f"study {study!r}, field {_field_of(err)!r}: {_message(err)}" for err in exc.errors()]
            continue
        problems += [f"study {study!r}, field {field!r}: {why}" for field, why in row.design_problems()]
        rows.append(row.model_dump())
    seen = raw["study_id"][raw["study_id"].duplicated() & (raw["study_id"] != "")]
    problems += [f"study {sid!r}, field 'study_id': duplicate study id" for sid in seen.unique()]
    problems += _label_problems(raw)
    if problems:
        unique = list(dict.fromkeys(problems))
        raise StudyDataError(f"{len(unique)} problem(s) in the study table:\n  " + "\n  ".join(unique))
    columns = list(StudyRow.model_fields) + [c for c in raw.columns if c in extra]
    table = _typed(pd.DataFrame(rows, columns=columns))
    table.attrs.update(source=str(source) if not isinstance(source, pd.DataFrame) else "DataFrame",
                       validated=True, extra_columns=extra)
    return table


def is_validated(table: pd.DataFrame) -> bool:
    """Whether `table` came from load_studies (its attrs say so; pandas keeps attrs through slicing)."""
    return bool(table.attrs.get("validated"))


def _typed(table: pd.DataFrame) -> pd.DataFrame:
    """Numbers as numeric dtypes (missing = NA) so the table reads naturally in a notebook."""
    for name, field in StudyRow.model_fields.items():
        kind = field.annotation
        if kind in (Optional[int], Optional[Count], Optional[Year]):
            table[name] = table[name].astype("Int64")
        elif kind in (Optional[float], Optional[Finite], Optional[Positive], Optional[Probability]) or name == "r_prepost":
            table[name] = table[name].astype("float64")
    return table
