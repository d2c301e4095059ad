"""Stripe's search query language, for ``GET /v1/customers/search``.

Supported, as Stripe documents it for customers (fields ``email``, ``name``, ``phone``, ``created``,
``metadata['key']``):

- ``email:'jane@x.com'`` / ``email:"jane@x.com"`` exact match, case-insensitive;
- ``name~"acme"`` substring match (at least 3 characters);
- ``created>1700000000`` (also ``<``, ``>=``, ``<=``, ``:``) on unquoted integers;
- ``metadata['posthog_external_id']:'acct-00042'`` (keys case-sensitive), ``metadata['k']:null`` for "unset";
- ``-clause`` negates; clauses join with ``AND`` or ``OR`` (not both in one query), at most 10 clauses.

A malformed query is Stripe's 400 with ``param: "query"``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sandbox.stripe.errors import invalid_param

FIELDS = ("created", "email", "metadata", "name", "phone")
MAX_CLAUSES = 10

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<connective>AND|OR)(?=\s)
      | (?P<clause>
            (?P<negate>-)?
            (?P<field>[A-Za-z_]+)
            (?:\[(?P<kq>['"])(?P<key>.*?)(?P=kq)\])?
            (?P<op>>=|<=|:|~|>|<)
            (?:(?P<vq>['"])(?P<quoted>(?:\\.|(?!(?P=vq)).)*)(?P=vq)|(?P<bare>[^\s'"]+))
        )
    )""",
    re.VERBOSE,
)


def _bad(message: str) -> Exception:
    return invalid_param(message, "query", "parameter_invalid_search_query")


@dataclass(frozen=True)
class Clause:
    """One ``field op value`` term; ``value`` is ``None`` for an unquoted ``null``."""

    field: str
    key: str | None
    op: str
    value: str | int | None
    negate: bool

    def matches(self, obj: dict[str, Any]) -> bool:
        """Whether ``obj`` (a customer) satisfies this clause, negation included."""
        return self._test(obj) != self.negate

    def _test(self, obj: dict[str, Any]) -> bool:
        if self.field == "metadata":
            actual: Any = (obj.get("metadata") or {}).get(self.key)
        else:
            actual = obj.get(self.field)
        if self.value is None:
            return actual is None or actual == ""
        if isinstance(self.value, int):
            if not isinstance(actual, int):
                return False
            return {
                ":": actual == self.value,
                ">": actual > self.value,
                "<": actual < self.value,
                ">=": actual >= self.value,
                "<=": actual <= self.value,
            }[self.op]
        if not isinstance(actual, str):
            return False
        if self.op == "~":
            return self.value.lower() in actual.lower()
        return actual.lower() == self.value.lower()


@dataclass(frozen=True)
class Query:
    """A parsed query: clauses joined by one connective."""

    clauses: tuple[Clause, ...]
    connective: str

    def matches(self, obj: dict[str, Any]) -> bool:
        """Whether ``obj`` (a customer) satisfies the whole query."""
        results = (clause.matches(obj) for clause in self.clauses)
        return all(results) if self.connective == "AND" else any(results)

    def exact_clauses(self) -> Iterator[Clause]:
        """Positive exact-match string clauses: the ones an index can answer."""
        for clause in self.clauses:
            if clause.op == ":" and not clause.negate and isinstance(clause.value, str):
                yield clause


def _clause(match: re.Match[str]) -> Clause:
    field, key, op = match.group("field"), match.group("key"), match.group("op")
    if field not in FIELDS:
        raise _bad(f"Field '{field}' is an unsupported search field for resource `customers`.")
    if (field == "metadata") != (key is not None):
        raise _bad(f"Invalid query: use metadata['key'] to search metadata (near '{match.group(0).strip()}').")
    quoted, bare = match.group("quoted"), match.group("bare")
    value: str | int | None
    if quoted is not None:
        value = re.sub(r"\\(.)", r"\1", quoted)
        if field == "created":
            raise _bad("Invalid query: created takes an unquoted integer.")
        if op not in (":", "~"):
            raise _bad(f"Invalid query: {op} only applies to numeric fields.")
        if op == "~" and len(value) < 3:
            raise _bad("Substring search (~) needs at least 3 characters.")
    elif bare == "null":
        if op != ":":
            raise _bad("Invalid query: null only works with ':'.")
        value = None
    elif field == "created" and re.fullmatch(r"-?\d+", bare or ""):
        value = int(bare or "0")
    else:
        raise _bad(f"Invalid query: string values must be quoted (near '{match.group(0).strip()}').")
    return Clause(field, key, op, value, match.group("negate") is not None)


def parse(query: str) -> Query:
    """Parse a customer search query or raise Stripe's 400."""
    position, clauses, connectives = 0, [], set()
    expect_clause = True
    text = query.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise _bad(f"Invalid query syntax near position {position}: '{text[position : position + 20]}'")
        position = match.end()
        if match.group("connective"):
            if expect_clause:
                raise _bad(f"Invalid query: unexpected {match.group('connective')}.")
            connectives.add(match.group("connective"))
            expect_clause = True
            continue
        if not expect_clause:
            raise _bad("Invalid query: clauses must be joined by AND or OR.")
        clauses.append(_clause(match))
        expect_clause = False
    if not clauses or expect_clause:
        raise _bad("Invalid query: the query is empty or ends with a connective.")
    if len(connectives) > 1:
        raise _bad("Invalid query: AND and OR cannot be combined in one query.")
    if len(clauses) > MAX_CLAUSES:
        raise _bad(f"Invalid query: at most {MAX_CLAUSES} clauses are allowed.")
    return Query(tuple(clauses), connectives.pop() if connectives else "AND")
