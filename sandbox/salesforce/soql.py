"""A tokenizer and recursive-descent parser for the SOQL subset the stand-in serves.

Grammar (keywords case-insensitive)::

    query      := SELECT select FROM ident [WHERE cond] [ORDER BY order (',' order)*]
                  [LIMIT int] [OFFSET int]
    select     := COUNT '(' ')' | path (',' path)*
    path       := ident ('.' ident)*
    cond       := unary (AND unary)* | unary (OR unary)*     -- mixing AND/OR needs parentheses
    unary      := NOT unary | '(' cond ')' | predicate
    predicate  := path op value | path [NOT] IN '(' value (',' value)* ')' | path LIKE string
    op         := '=' | '!=' | '<>' | '<' | '<=' | '>' | '>='
    value      := string | number | TRUE | FALSE | NULL | datetime | date | date_literal
    date_literal := TODAY | YESTERDAY | TOMORROW | LAST_N_DAYS ':' int | NEXT_N_DAYS ':' int
    order      := path [ASC | DESC] [NULLS (FIRST | LAST)]

Literals follow SOQL: strings in single quotes with backslash escapes; datetimes unquoted
(``2024-05-01T10:00:00Z``, ``...T10:00:00.000+01:00``); dates ``2024-05-01``. As in real SOQL, ``a AND b OR c``
is rejected: the parser does not guess precedence. Errors are ``SoqlSyntaxError`` with a 1-based position,
rendered by the query layer as ``MALFORMED_QUERY``. This module knows nothing about objects or fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from enum import Enum

KEYWORDS = frozenset(
    {
        "SELECT",
        "FROM",
        "WHERE",
        "AND",
        "OR",
        "NOT",
        "IN",
        "LIKE",
        "ORDER",
        "BY",
        "ASC",
        "DESC",
        "NULLS",
        "FIRST",
        "LAST",
        "LIMIT",
        "OFFSET",
        "TRUE",
        "FALSE",
        "NULL",
    }
)
DATE_LITERALS = frozenset({"TODAY", "YESTERDAY", "TOMORROW"})
DATE_N_LITERALS = frozenset({"LAST_N_DAYS", "NEXT_N_DAYS"})
COMPARISON_OPS = ("=", "!=", "<>", "<", "<=", ">", ">=")

_DATETIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:(Z)|([+-])(\d{2}):(\d{2}))(?![\w:+.-])"
)
_DATE_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?![\w:+.-])")
_DATEISH_RE = re.compile(r"\d{4}-\d{2}-\d{2}[\w:+.-]*")
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?(?![\w.])")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}


@dataclass(frozen=True)
class Pos:
    """1-based row and column of a token in the query text."""

    row: int
    col: int


class SoqlSyntaxError(Exception):
    """The query is not valid SOQL; ``pos`` points at the offending token."""

    def __init__(self, message: str, pos: Pos) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos


class Kind(Enum):
    IDENT = "ident"
    STRING = "string"
    NUMBER = "number"
    DATETIME = "datetime"
    DATE = "date"
    OP = "op"
    PUNCT = "punct"
    EOF = "eof"


@dataclass(frozen=True)
class Token:
    kind: Kind
    text: str
    pos: Pos
    value: object = None

    def is_keyword(self, *words: str) -> bool:
        return self.kind is Kind.IDENT and self.text.upper() in words


# --- AST -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldPath:
    """``Name`` or ``Owner.Email``: the dotted path as written."""

    parts: tuple[str, ...]
    pos: Pos


@dataclass(frozen=True)
class StringValue:
    """A quoted string; ``raw`` keeps the escapes (LIKE gives ``\\%`` and ``\\_`` a meaning)."""

    value: str
    raw: str


@dataclass(frozen=True)
class NumberValue:
    text: str


@dataclass(frozen=True)
class BoolValue:
    value: bool


@dataclass(frozen=True)
class NullValue:
    pass


@dataclass(frozen=True)
class DateTimeValue:
    value: datetime
    text: str


@dataclass(frozen=True)
class DateValue:
    value: date
    text: str


@dataclass(frozen=True)
class DateLiteral:
    """A relative range such as ``TODAY`` or ``LAST_N_DAYS:7`` (``n`` is None for the fixed ones)."""

    name: str
    n: int | None = None

    def bounds(self, now: datetime) -> tuple[datetime, datetime]:
        """The half-open UTC range [start, end) the literal stands for at ``now``."""
        today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        day = timedelta(days=1)
        if self.name == "TODAY":
            return today, today + day
        if self.name == "YESTERDAY":
            return today - day, today
        if self.name == "TOMORROW":
            return today + day, today + 2 * day
        n = self.n or 0
        if self.name == "LAST_N_DAYS":
            return today - n * day, today + day
        return today + day, today + (n + 1) * day


Value = StringValue | NumberValue | BoolValue | NullValue | DateTimeValue | DateValue | DateLiteral


@dataclass(frozen=True)
class Comparison:
    path: FieldPath
    op: str
    value: Value
    value_pos: Pos


@dataclass(frozen=True)
class InList:
    path: FieldPath
    negated: bool
    values: tuple[Value, ...]
    value_pos: Pos


@dataclass(frozen=True)
class Like:
    path: FieldPath
    pattern: StringValue
    value_pos: Pos


@dataclass(frozen=True)
class Not:
    operand: Condition


@dataclass(frozen=True)
class And:
    operands: tuple[Condition, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Condition, ...]


Condition = Comparison | InList | Like | Not | And | Or


@dataclass(frozen=True)
class OrderItem:
    path: FieldPath
    descending: bool = False
    nulls_first: bool | None = None

    @property
    def effective_nulls_first(self) -> bool:
        """SOQL default: nulls first when ascending, last when descending."""
        return (not self.descending) if self.nulls_first is None else self.nulls_first


@dataclass(frozen=True)
class Query:
    fields: tuple[FieldPath, ...]
    count_only: bool
    sobject: str
    sobject_pos: Pos
    where: Condition | None = None
    order_by: tuple[OrderItem, ...] = ()
    limit: int | None = None
    offset: int | None = None


# --- tokenizer -------------------------------------------------------------------------------------------


def _pos(text: str, offset: int) -> Pos:
    row = text.count("\n", 0, offset) + 1
    line_start = text.rfind("\n", 0, offset) + 1
    return Pos(row, offset - line_start + 1)


def _read_string(text: str, start: int) -> tuple[StringValue, int]:
    i = start + 1
    out: list[str] = []
    while i < len(text):
        char = text[i]
        if char == "'":
            return StringValue("".join(out), text[start + 1 : i]), i + 1
        if char == "\\":
            if i + 1 >= len(text):
                break
            nxt = text[i + 1]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
            elif nxt in "%_":
                out.append(nxt)
            else:
                raise SoqlSyntaxError(
                    f"Invalid string literal '{text[start : i + 2]}'. Illegal character sequence '\\{nxt}' "
                    "in string literal.",
                    _pos(text, i),
                )
            i += 2
            continue
        out.append(char)
        i += 1
    raise SoqlSyntaxError("unexpected token: <EOF>", _pos(text, len(text)))


def _datetime_token(text: str, match: re.Match[str], pos: Pos) -> Token:
    year, month, day, hour, minute, second, frac, zulu, sign, off_h, off_m = match.groups()
    try:
        tz = UTC
        if not zulu:
            delta = timedelta(hours=int(off_h), minutes=int(off_m))
            tz = timezone(delta if sign == "+" else -delta)
        micro = int((frac or "0")[:6].ljust(6, "0"))
        value = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=tz)
    except ValueError as exc:
        raise SoqlSyntaxError(f"unexpected token: '{match.group(0)}'", pos) from exc
    return Token(Kind.DATETIME, match.group(0), pos, DateTimeValue(value.astimezone(UTC), match.group(0)))


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with an EOF token; raises ``SoqlSyntaxError``."""
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char.isspace():
            i += 1
            continue
        pos = _pos(text, i)
        if char == "'":
            value, i = _read_string(text, i)
            tokens.append(Token(Kind.STRING, f"'{value.raw}'", pos, value))
            continue
        if char.isdigit():
            if match := _DATETIME_RE.match(text, i):
                tokens.append(_datetime_token(text, match, pos))
                i = match.end()
                continue
            if match := _DATE_RE.match(text, i):
                try:
                    day = date(*(int(g) for g in match.groups()))
                except ValueError as exc:
                    raise SoqlSyntaxError(f"unexpected token: '{match.group(0)}'", pos) from exc
                tokens.append(Token(Kind.DATE, match.group(0), pos, DateValue(day, match.group(0))))
                i = match.end()
                continue
            if match := _DATEISH_RE.match(text, i):
                raise SoqlSyntaxError(f"unexpected token: '{match.group(0)}'", pos)
        if char.isdigit() or (char == "-" and i + 1 < len(text) and text[i + 1].isdigit()):
            match = _NUMBER_RE.match(text, i)
            if not match:
                end = i + 1
                while end < len(text) and (text[end].isalnum() or text[end] in "._"):
                    end += 1
                raise SoqlSyntaxError(f"unexpected token: '{text[i:end]}'", pos)
            tokens.append(Token(Kind.NUMBER, match.group(0), pos, NumberValue(match.group(0))))
            i = match.end()
            continue
        if match := _IDENT_RE.match(text, i):
            tokens.append(Token(Kind.IDENT, match.group(0), pos))
            i = match.end()
            continue
        two = text[i : i + 2]
        if two in ("!=", "<>", "<=", ">="):
            tokens.append(Token(Kind.OP, two, pos))
            i += 2
            continue
        if char in "=<>":
            tokens.append(Token(Kind.OP, char, pos))
            i += 1
            continue
        if char in "(),.:":
            tokens.append(Token(Kind.PUNCT, char, pos))
            i += 1
            continue
        raise SoqlSyntaxError(f"unexpected token: '{char}'", pos)
    tokens.append(Token(Kind.EOF, "<EOF>", _pos(text, len(text))))
    return tokens


# --- parser ----------------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        token = self.tokens[self.i]
        if token.kind is not Kind.EOF:
            self.i += 1
        return token

    def unexpected(self) -> SoqlSyntaxError:
        token = self.tok
        text = "<EOF>" if token.kind is Kind.EOF else f"'{token.text}'"
        return SoqlSyntaxError(f"unexpected token: {text}", token.pos)

    def expect_keyword(self, word: str) -> Token:
        if not self.tok.is_keyword(word):
            raise self.unexpected()
        return self.advance()

    def expect_punct(self, char: str) -> Token:
        if self.tok.kind is not Kind.PUNCT or self.tok.text != char:
            raise self.unexpected()
        return self.advance()

    def at_punct(self, char: str) -> bool:
        return self.tok.kind is Kind.PUNCT and self.tok.text == char

    def ident(self) -> Token:
        if self.tok.kind is not Kind.IDENT or self.tok.text.upper() in KEYWORDS:
            raise self.unexpected()
        return self.advance()

    def integer(self) -> int:
        token = self.tok
        if token.kind is not Kind.NUMBER or not token.text.isdigit():
            raise self.unexpected()
        self.advance()
        return int(token.text)

    # query
    def query(self) -> Query:
        self.expect_keyword("SELECT")
        fields: list[FieldPath] = []
        count_only = False
        if self.tok.is_keyword("COUNT") and self.tokens[self.i + 1].text == "(":
            self.advance()
            self.expect_punct("(")
            self.expect_punct(")")
            count_only = True
        else:
            fields.append(self.path())
            while self.at_punct(","):
                self.advance()
                fields.append(self.path())
        self.expect_keyword("FROM")
        sobject = self.ident()
        where = None
        if self.tok.is_keyword("WHERE"):
            self.advance()
            where = self.condition()
        order: list[OrderItem] = []
        if self.tok.is_keyword("ORDER"):
            self.advance()
            self.expect_keyword("BY")
            order.append(self.order_item())
            while self.at_punct(","):
                self.advance()
                order.append(self.order_item())
        limit = offset = None
        if self.tok.is_keyword("LIMIT"):
            self.advance()
            limit = self.integer()
        if self.tok.is_keyword("OFFSET"):
            self.advance()
            offset = self.integer()
        if self.tok.kind is not Kind.EOF:
            raise self.unexpected()
        return Query(
            fields=tuple(fields),
            count_only=count_only,
            sobject=sobject.text,
            sobject_pos=sobject.pos,
            where=where,
            order_by=tuple(order),
            limit=limit,
            offset=offset,
        )

    def path(self) -> FieldPath:
        first = self.ident()
        parts = [first.text]
        while self.at_punct("."):
            self.advance()
            parts.append(self.ident().text)
        return FieldPath(tuple(parts), first.pos)

    def order_item(self) -> OrderItem:
        path = self.path()
        descending = False
        if self.tok.is_keyword("ASC", "DESC"):
            descending = self.advance().text.upper() == "DESC"
        nulls_first = None
        if self.tok.is_keyword("NULLS"):
            self.advance()
            if not self.tok.is_keyword("FIRST", "LAST"):
                raise self.unexpected()
            nulls_first = self.advance().text.upper() == "FIRST"
        return OrderItem(path, descending, nulls_first)

    # conditions
    def condition(self) -> Condition:
        first = self.unary()
        if not self.tok.is_keyword("AND", "OR"):
            return first
        joiner = self.tok.text.upper()
        operands = [first]
        while self.tok.is_keyword(joiner):
            self.advance()
            operands.append(self.unary())
        if self.tok.is_keyword("AND", "OR"):
            raise self.unexpected()
        return And(tuple(operands)) if joiner == "AND" else Or(tuple(operands))

    def unary(self) -> Condition:
        if self.tok.is_keyword("NOT"):
            self.advance()
            return Not(self.unary())
        if self.at_punct("("):
            self.advance()
            inner = self.condition()
            self.expect_punct(")")
            return inner
        return self.predicate()

    def predicate(self) -> Condition:
        path = self.path()
        token = self.tok
        if token.kind is Kind.OP:
            self.advance()
            value_pos = self.tok.pos
            return Comparison(path, "!=" if token.text == "<>" else token.text, self.value(), value_pos)
        if token.is_keyword("LIKE"):
            self.advance()
            value_pos = self.tok.pos
            if self.tok.kind is not Kind.STRING:
                raise self.unexpected()
            pattern = self.advance().value
            assert isinstance(pattern, StringValue)
            return Like(path, pattern, value_pos)
        negated = False
        if token.is_keyword("NOT"):
            self.advance()
            negated = True
            if not self.tok.is_keyword("IN"):
                raise self.unexpected()
        if self.tok.is_keyword("IN"):
            self.advance()
            value_pos = self.tok.pos
            self.expect_punct("(")
            values = [self.value()]
            while self.at_punct(","):
                self.advance()
                values.append(self.value())
            self.expect_punct(")")
            return InList(path, negated, tuple(values), value_pos)
        raise self.unexpected()

    def value(self) -> Value:
        token = self.tok
        if token.kind in (Kind.STRING, Kind.NUMBER, Kind.DATETIME, Kind.DATE):
            self.advance()
            assert isinstance(token.value, StringValue | NumberValue | DateTimeValue | DateValue)
            return token.value
        if token.is_keyword("TRUE", "FALSE"):
            self.advance()
            return BoolValue(token.text.upper() == "TRUE")
        if token.is_keyword("NULL"):
            self.advance()
            return NullValue()
        if token.is_keyword(*DATE_LITERALS):
            self.advance()
            return DateLiteral(token.text.upper())
        if token.is_keyword(*DATE_N_LITERALS):
            self.advance()
            self.expect_punct(":")
            return DateLiteral(token.text.upper(), self.integer())
        raise self.unexpected()


def parse(text: str) -> Query:
    """Parse one SOQL query; raises ``SoqlSyntaxError`` with the position of the first bad token."""
    return _Parser(text).query()


# --- rendering (the inverse of parse, used by tests and error messages) --------------------------------


def render_value(value: Value) -> str:
    if isinstance(value, StringValue):
        return f"'{value.raw}'"
    if isinstance(value, NumberValue):
        return value.text
    if isinstance(value, BoolValue):
        return "TRUE" if value.value else "FALSE"
    if isinstance(value, NullValue):
        return "NULL"
    if isinstance(value, DateTimeValue | DateValue):
        return value.text
    return value.name if value.n is None else f"{value.name}:{value.n}"


def render_condition(cond: Condition) -> str:
    if isinstance(cond, Comparison):
        return f"{'.'.join(cond.path.parts)} {cond.op} {render_value(cond.value)}"
    if isinstance(cond, InList):
        values = ", ".join(render_value(v) for v in cond.values)
        return f"{'.'.join(cond.path.parts)} {'NOT IN' if cond.negated else 'IN'} ({values})"
    if isinstance(cond, Like):
        return f"{'.'.join(cond.path.parts)} LIKE {render_value(cond.pattern)}"
    if isinstance(cond, Not):
        return f"NOT ({render_condition(cond.operand)})"
    joiner = " AND " if isinstance(cond, And) else " OR "
    return joiner.join(f"({render_condition(op)})" for op in cond.operands)


def render(query: Query) -> str:
    """SOQL text for ``query``; ``parse(render(q))`` equals ``q`` up to positions."""
    select = "COUNT()" if query.count_only else ", ".join(".".join(f.parts) for f in query.fields)
    out = f"SELECT {select} FROM {query.sobject}"
    if query.where is not None:
        out += f" WHERE {render_condition(query.where)}"
    if query.order_by:
        items = []
        for item in query.order_by:
            text = ".".join(item.path.parts) + (" DESC" if item.descending else " ASC")
            if item.nulls_first is not None:
                text += " NULLS FIRST" if item.nulls_first else " NULLS LAST"
            items.append(text)
        out += " ORDER BY " + ", ".join(items)
    if query.limit is not None:
        out += f" LIMIT {query.limit}"
    if query.offset is not None:
        out += f" OFFSET {query.offset}"
    return out
