"""Runs a parsed SOQL query against the store: name resolution, type checks, filtering, ordering, projection.

Semantics copied from the real platform:

- object and field names are case-insensitive; results use canonical names, in SELECT order, each record
  opening with ``attributes: {type, url}``; relationship fields nest (``"Owner": {"attributes", "Email"}``)
  and a null lookup gives ``"Owner": null``;
- text comparisons (``=``, ``IN``, ``<``..., ``LIKE``) are case-insensitive; ids compare in 18-character form
  and 15-character literals are accepted; ``!=`` and ``NOT IN`` match nulls;
- literals must fit the field type: a quoted datetime or a date on a datetime field, a quoted boolean, an
  unquoted value on a text field or a malformed id are refused with the real error codes;
- ``query`` hides recycle-bin rows, ``queryAll`` includes them; without ORDER BY rows come in Id order.

Errors raise ``SalesforceError`` (400) whose message points at the token, as Salesforce formats it:
``"\\nSELECT Foo FROM Account\\n       ^\\nERROR at Row:1:Column:8\\nNo such column 'Foo' ..."``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sandbox.salesforce import ids, soql
from sandbox.salesforce.errors import SalesforceError
from sandbox.salesforce.schema import USER, FieldSpec, FieldType, ObjectSpec, format_datetime, object_spec
from sandbox.salesforce.store import Record, Store

MAX_OFFSET = 2000

Getter = Callable[[Record], Any]
Predicate = Callable[[Record], bool]


@dataclass(frozen=True)
class QueryResult:
    """Every row of a query, already projected to its JSON form (a cursor pages through it).

    A ``SELECT COUNT()`` query has no records, only ``total_size``.
    """

    sobject: str
    records: list[dict[str, Any]]
    total_size: int
    count_only: bool = False


@dataclass(frozen=True)
class _Column:
    """A resolved field path: a field of the queried object, or of the User behind one of its lookups."""

    field: FieldSpec
    lookup: FieldSpec | None

    @property
    def key(self) -> tuple[str, str]:
        return (self.lookup.name if self.lookup else "", self.field.name)


def located_error(text: str, code: str, pos: soql.Pos, detail: str) -> SalesforceError:
    """A 400 whose message quotes the query line with a caret under ``pos``, as Salesforce does."""
    lines = text.splitlines() or [""]
    line = lines[pos.row - 1] if pos.row - 1 < len(lines) else ""
    message = f"\n{line}\n{' ' * (pos.col - 1)}^\nERROR at Row:{pos.row}:Column:{pos.col}\n{detail}"
    return SalesforceError.one(400, code, message)


class _Compiler:
    def __init__(self, text: str, spec: ObjectSpec, store: Store, now: datetime) -> None:
        self.text = text
        self.spec = spec
        self.store = store
        self.now = now

    def error(self, code: str, pos: soql.Pos, detail: str) -> SalesforceError:
        return located_error(self.text, code, pos, detail)

    # names
    def column(self, path: soql.FieldPath) -> _Column:
        parts = path.parts
        if len(parts) == 1:
            field = self.spec.field(parts[0])
            if field is None:
                raise self.error(
                    "INVALID_FIELD",
                    path.pos,
                    f"No such column '{parts[0]}' on entity '{self.spec.name}'. If you are attempting to use a "
                    "custom field, be sure to append the '__c' after the custom field name. Please reference "
                    "your WSDL or the describe call for the appropriate names.",
                )
            return _Column(field, None)
        lookup = self.spec.relationship(parts[0])
        if lookup is None or len(parts) > 2:
            bad = parts[0] if lookup is None else parts[1]
            raise self.error(
                "INVALID_FIELD",
                path.pos,
                f"Didn't understand relationship '{bad}' in field path. If you are attempting to use a custom "
                "relationship, be sure to append the '__r' after the custom relationship name. Please "
                "reference your WSDL or the describe call for the appropriate names.",
            )
        field = USER.field(parts[1])
        if field is None:
            raise self.error(
                "INVALID_FIELD",
                path.pos,
                f"No such column '{parts[1]}' on entity '{USER.name}'. If you are attempting to use a custom "
                "field, be sure to append the '__c' after the custom field name. Please reference your WSDL "
                "or the describe call for the appropriate names.",
            )
        return _Column(field, lookup)

    def getter(self, column: _Column) -> Getter:
        name = column.field.name
        if column.lookup is None:
            return lambda record: record.get(name)
        lookup_name = column.lookup.name
        users = self.store.rows(USER)

        def related(record: Record) -> Any:
            target = users.get(record.get(lookup_name) or "")
            return None if target is None else target.get(name)

        return related

    # literals
    def literal(self, column: _Column, value: soql.Value, pos: soql.Pos) -> Any:
        """The comparable Python value of ``value`` for ``column`` (text casefolded, ids canonical)."""
        field = column.field
        if isinstance(value, soql.NullValue):
            return None
        if field.type.is_text:
            if not isinstance(value, soql.StringValue):
                raise self.type_error(field, pos, "string", quoted=True)
            return value.value.casefold()
        if field.type.is_id:
            if not isinstance(value, soql.StringValue):
                raise self.type_error(field, pos, "id", quoted=True)
            canonical = ids.normalize_id(value.value)
            if canonical is None:
                raise self.error("INVALID_QUERY_FILTER_OPERATOR", pos, f"invalid ID field: {value.value}")
            return canonical
        if field.type is FieldType.BOOLEAN:
            if not isinstance(value, soql.BoolValue):
                raise self.type_error(field, pos, "boolean", quoted=False)
            return value.value
        if isinstance(value, soql.DateTimeValue):
            return value.value
        if isinstance(value, soql.DateLiteral):
            return value
        raise self.type_error(field, pos, "dateTime", quoted=False)

    def type_error(self, field: FieldSpec, pos: soql.Pos, type_name: str, quoted: bool) -> SalesforceError:
        quotes = "should be enclosed in quotes" if quoted else "should not be enclosed in quotes"
        return self.error(
            "INVALID_FIELD",
            pos,
            f"value of filter criterion for field '{field.name}' must be of type {type_name} and {quotes}",
        )

    # conditions
    def condition(self, cond: soql.Condition) -> Predicate:
        if isinstance(cond, soql.And):
            parts = [self.condition(c) for c in cond.operands]
            return lambda record: all(p(record) for p in parts)
        if isinstance(cond, soql.Or):
            parts = [self.condition(c) for c in cond.operands]
            return lambda record: any(p(record) for p in parts)
        if isinstance(cond, soql.Not):
            inner = self.condition(cond.operand)
            return lambda record: not inner(record)
        column = self.column(cond.path)
        get = self.comparable_getter(column)
        if isinstance(cond, soql.Like):
            return self.like(column, get, cond)
        if isinstance(cond, soql.InList):
            values = [self.literal(column, v, cond.value_pos) for v in cond.values]
            ranges = [v for v in values if isinstance(v, soql.DateLiteral)]
            plain = {v for v in values if not isinstance(v, soql.DateLiteral)}
            bounds = [r.bounds(self.now) for r in ranges]

            def member(record: Record) -> bool:
                current = get(record)
                return current in plain or any(lo <= current < hi for lo, hi in bounds if current is not None)

            return (lambda record: not member(record)) if cond.negated else member
        return self.comparison(column, get, cond)

    def comparable_getter(self, column: _Column) -> Getter:
        raw = self.getter(column)
        if column.field.type.is_text:
            return lambda record: None if (v := raw(record)) is None else v.casefold()
        return raw

    def comparison(self, column: _Column, get: Getter, cond: soql.Comparison) -> Predicate:
        literal = self.literal(column, cond.value, cond.value_pos)
        op = cond.op
        if column.field.type is FieldType.BOOLEAN and op not in ("=", "!="):
            raise self.error("INVALID_QUERY_FILTER_OPERATOR", cond.value_pos, "invalid operator on boolean field")
        if isinstance(literal, soql.DateLiteral):
            lo, hi = literal.bounds(self.now)
            range_tests: dict[str, Callable[[Any], bool]] = {
                "=": lambda v: lo <= v < hi,
                "!=": lambda v: not lo <= v < hi,
                "<": lambda v: v < lo,
                "<=": lambda v: v < hi,
                ">": lambda v: v >= hi,
                ">=": lambda v: v >= lo,
            }
            test = range_tests[op]
            if op == "!=":
                return lambda record: (v := get(record)) is None or test(v)
            return lambda record: (v := get(record)) is not None and test(v)
        if op == "=":
            return lambda record: get(record) == literal
        if op == "!=":
            return lambda record: get(record) != literal
        if literal is None:
            return lambda record: False
        ordering: dict[str, Callable[[Any], bool]] = {
            "<": lambda v: v < literal,
            "<=": lambda v: v <= literal,
            ">": lambda v: v > literal,
            ">=": lambda v: v >= literal,
        }
        test = ordering[op]
        return lambda record: (v := get(record)) is not None and test(v)

    def like(self, column: _Column, get: Getter, cond: soql.Like) -> Predicate:
        if not column.field.type.is_text:
            raise self.error(
                "INVALID_QUERY_FILTER_OPERATOR",
                cond.value_pos,
                f"invalid operator on {column.field.type.value} field",
            )
        pattern = like_regex(cond.pattern.raw)
        return lambda record: (v := get(record)) is not None and pattern.fullmatch(v) is not None

    # ordering
    def sort(self, rows: list[Record], order: tuple[soql.OrderItem, ...]) -> None:
        for item in reversed(order):
            get = self.comparable_getter(self.column(item.path))
            nulls_first = item.effective_nulls_first
            null_rank = 0 if nulls_first != item.descending else 2

            def key(record: Record, get: Getter = get, null_rank: int = null_rank) -> tuple[Any, ...]:
                value = get(record)
                return (null_rank,) if value is None else (1, value)

            rows.sort(key=key, reverse=item.descending)


def like_regex(raw: str) -> re.Pattern[str]:
    """Compile a LIKE pattern (raw string body, escapes intact): ``%`` any run, ``_`` one character."""
    out: list[str] = []
    i = 0
    escapes = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}
    while i < len(raw):
        char = raw[i]
        if char == "\\" and i + 1 < len(raw):
            nxt = raw[i + 1]
            out.append(re.escape(escapes.get(nxt, nxt)))
            i += 2
            continue
        out.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        i += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


def _wire(value: Any) -> Any:
    return format_datetime(value) if isinstance(value, datetime) else value


def _project(
    spec: ObjectSpec, columns: list[_Column], users: dict[str, Record], version: str
) -> Callable[[Record], dict[str, Any]]:
    def attributes(type_name: str, record_id: str) -> dict[str, str]:
        return {"type": type_name, "url": f"/services/data/v{version}/sobjects/{type_name}/{record_id}"}

    def project(record: Record) -> dict[str, Any]:
        out: dict[str, Any] = {"attributes": attributes(spec.name, record["Id"])}
        for column in columns:
            if column.lookup is None:
                out[column.field.name] = _wire(record.get(column.field.name))
                continue
            rel = column.lookup.relationship_name or column.lookup.name
            target = users.get(record.get(column.lookup.name) or "")
            if target is None:
                out[rel] = None
                continue
            nested = out.get(rel)
            if nested is None:
                nested = out[rel] = {"attributes": attributes(USER.name, target["Id"])}
            nested[column.field.name] = _wire(target.get(column.field.name))
        return out

    return project


def execute(store: Store, text: str, include_deleted: bool, version: str, now: datetime) -> QueryResult:
    """Parse and run ``text``; raises ``SalesforceError`` (MALFORMED_QUERY, INVALID_FIELD, INVALID_TYPE...)."""
    try:
        query = soql.parse(text)
    except soql.SoqlSyntaxError as exc:
        raise located_error(text, "MALFORMED_QUERY", exc.pos, exc.message) from exc
    spec = object_spec(query.sobject)
    if spec is None:
        raise located_error(
            text,
            "INVALID_TYPE",
            query.sobject_pos,
            f"sObject type '{query.sobject}' is not supported. If you are attempting to use a custom object, be "
            "sure to append the '__c' after the entity name. Please reference your WSDL or the describe call "
            "for the appropriate names.",
        )
    compiler = _Compiler(text, spec, store, now)
    columns: list[_Column] = []
    for path in query.fields:
        column = compiler.column(path)
        if column.key in {c.key for c in columns}:
            raise compiler.error("INVALID_FIELD", path.pos, f"duplicate field selected: {'.'.join(path.parts)}")
        columns.append(column)
    if query.offset is not None and query.offset > MAX_OFFSET:
        raise SalesforceError.one(400, "NUMBER_OUTSIDE_VALID_RANGE", f"Maximum SOQL offset allowed is {MAX_OFFSET}")
    with store.lock:
        predicate = compiler.condition(query.where) if query.where is not None else None
        table = store.rows(spec)
        rows = [
            table[record_id]
            for record_id in sorted(table)
            if (include_deleted or not table[record_id].get("IsDeleted"))
            and (predicate is None or predicate(table[record_id]))
        ]
        if query.count_only:
            return QueryResult(spec.name, [], len(rows), count_only=True)
        compiler.sort(rows, query.order_by)
        start = query.offset or 0
        end = None if query.limit is None else start + query.limit
        project = _project(spec, columns, dict(store.rows(USER)), version)
        records = [project(r) for r in rows[start:end]]
        return QueryResult(spec.name, records, len(records))
