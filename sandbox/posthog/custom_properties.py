"""Custom account properties: typed definitions and append-only per-account values, as PostHog keeps them.

Read in PostHog's source (cited in ``docs/posthog.md``): ``models/custom_property_definition.py`` (display types
and the data type each maps to; a unique name per team), ``logic/custom_property_definitions.py`` (select options
``{id, label, color}``: at least one, labels not blank and unique, colours ``preset-1``..``preset-10``, ids
assigned by the server; ``is_big_number`` only on numeric types), ``logic/custom_property_values.py`` (coercion
per data type, the soft-delete + insert history, no event when the value does not change), ``facade/api.py``
(a source-backed definition refuses manual writes) and ``events.py``.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.posthog.clock import iso, stamp_of, uuid7
from sandbox.posthog.events import Actor, custom_property_changed
from sandbox.posthog.store import PostHogStore

DATA_TYPE_BY_DISPLAY_TYPE = {
    "text": "string",
    "link": "string",
    "number": "numeric",
    "currency": "numeric",
    "percent": "numeric",
    "date": "datetime",
    "datetime": "datetime",
    "boolean": "boolean",
    "select": "string",
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
COLUMN_BY_DATA_TYPE = {"string": "value_str", "numeric": "value_num", "boolean": "value_bool", "datetime": "value_dt"}
OPTION_COLORS = tuple(f"preset-{n}" for n in range(1, 11))
NAME_TAKEN = "A custom property with this name already exists for this team."
SOURCE_MANAGED = "This custom property is managed by a data warehouse source and can't be set manually."
# Django's ``ipv4_re`` (validators.py): no leading zeros, each part at most 255 ("http://00.0.0.0" is refused).
_IPV4 = (
    r"(?:0|25[0-5]|2[0-4][0-9]|1[0-9]?[0-9]?|[1-9][0-9]?)(?:\.(?:0|25[0-5]|2[0-4][0-9]|1[0-9]?[0-9]?|[1-9][0-9]?)){3}"
)
# Django's URLValidator, reduced to what a stand-in needs: http(s), a host (name, IPv4 or [IPv6]), port, path.
_LINK = re.compile(
    r"^https?://(?:[^\s:@/]+(?::[^\s:@/]*)?@)?"
    r"(?:localhost|(?:[a-z0-9\u00a1-\uffff](?:[a-z0-9\u00a1-\uffff-]{0,61}[a-z0-9\u00a1-\uffff])?\.)+"
    r"(?:[a-z\u00a1-\uffff-]{2,63}\.?)|" + _IPV4 + r"|\[[0-9a-f:.]+\])"
    r"(?::\d{1,5})?(?:[/?#][^\s]*)?$",
    re.IGNORECASE,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS custom_property_definitions (
    id TEXT PRIMARY KEY,
    project_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    display_type TEXT NOT NULL,
    target_type TEXT NOT NULL,
    group_type_index INTEGER,
    is_big_number INTEGER NOT NULL,
    options TEXT,
    source TEXT,
    created_at INTEGER NOT NULL,
    created_by INTEGER,
    updated_at INTEGER NOT NULL,
    UNIQUE (project_id, name)
);
CREATE TABLE IF NOT EXISTS custom_property_values (
    id TEXT PRIMARY KEY,
    project_id INTEGER NOT NULL,
    account_id TEXT NOT NULL,
    definition_id TEXT NOT NULL,
    value_str TEXT,
    value_num REAL,
    value_bool INTEGER,
    value_dt INTEGER,
    is_deleted INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    created_by_id INTEGER
);
CREATE INDEX IF NOT EXISTS custom_property_values_active
    ON custom_property_values (account_id, definition_id, is_deleted);
"""
_DEF_COLUMNS = (
    "id, name, description, display_type, target_type, group_type_index, is_big_number, options, source,"
    " created_at, created_by, updated_at"
)
_VALUE_COLUMNS = "id, account_id, definition_id, value_str, value_num, value_bool, value_dt, created_at, created_by_id"


class InvalidValue(ValueError):
    """The value does not fit the definition (PostHog's ``InvalidCustomPropertyValue``)."""


class InvalidOptions(ValueError):
    """A select definition's options are not valid (PostHog's ``InvalidCustomPropertyOptions``)."""


class DuplicateName(Exception):
    """Another custom property definition of the project has this name."""


def data_type(definition: Mapping[str, Any]) -> str:
    return DATA_TYPE_BY_DISPLAY_TYPE[definition["display_type"]]


def definition_out(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "id": row[0],
        "name": row[1],
        "description": row[2],
        "display_type": row[3],
        "target_type": row[4],
        "group_type_index": row[5],
        "is_big_number": bool(row[6]),
        "is_canonical": row[1] == "Last Slack message at",
        "options": None if row[7] is None else json.loads(row[7]),
        "source": None if row[8] is None else json.loads(row[8]),
        "created_at": iso(row[9]),
        "created_by": row[10],
        "updated_at": iso(row[11]),
        "references": [],
    }


def _moment(stamp: int) -> datetime:
    return _EPOCH + timedelta(microseconds=stamp)


def drf_datetime(stamp: int) -> str:
    """A datetime as DRF's JSON encoder writes it: milliseconds at most, ``Z`` for UTC."""
    moment = _moment(stamp)
    text = moment.isoformat()
    if moment.microsecond:
        text = text[:23] + text[26:]
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _event_value(kind: str, value: Any) -> Any:
    """``_json_value``: a datetime as ``isoformat()`` (UTC, ``+00:00``), anything else as stored."""
    if kind == "datetime" and value is not None:
        return _moment(value).isoformat()
    return value


def _expects(definition: Mapping[str, Any], what: str) -> InvalidValue:
    return InvalidValue(f"Custom property '{definition['name']}' expects {what}")


def coerce(definition: Mapping[str, Any], value: Any) -> tuple[str, Any]:
    """``_coerce_to_column``: the column and the coerced value (datetimes as UTC microseconds)."""
    display = definition["display_type"]
    if display == "select":
        labels = [option["label"] for option in definition["options"] or []]
        if isinstance(value, str) and value in labels:
            return "value_str", value
        raise _expects(definition, f"one of its options: {', '.join(labels)}")
    if display == "link":
        link = _coerce_string(definition, value)
        if not _LINK.match(link) or len(link) > 2048:
            raise _expects(definition, "an HTTP or HTTPS URL")
        return "value_str", link
    kind = data_type(definition)
    if kind == "numeric":
        if isinstance(value, bool):
            raise _expects(definition, "a numeric value")
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise _expects(definition, "a numeric value") from None
        if not math.isfinite(number):
            raise _expects(definition, "a finite numeric value")
        return "value_num", number
    if kind == "boolean":
        if isinstance(value, bool):
            return "value_bool", value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return "value_bool", value.strip().lower() == "true"
        raise _expects(definition, "a boolean value")
    if kind == "datetime":
        return "value_dt", _coerce_datetime(definition, value)
    return "value_str", _coerce_string(definition, value)


def _coerce_string(definition: Mapping[str, Any], value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise _expects(definition, "a text value")


def _coerce_datetime(definition: Mapping[str, Any], value: Any) -> int:
    """``datetime.fromisoformat`` (a date alone, a trailing ``Z``); a naive time is UTC."""
    if not isinstance(value, str):
        raise _expects(definition, "an ISO-8601 datetime")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _expects(definition, "an ISO-8601 datetime") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    stamp = stamp_of(parsed)
    try:
        _moment(stamp)
    except OverflowError:  # an offset pushing the instant outside years 1..9999: PostHog's database refuses it
        raise _expects(definition, "an ISO-8601 datetime") from None
    return stamp


def normalize_options(
    display_type: str, options: list[dict[str, Any]] | None, existing_ids: frozenset[str] = frozenset()
) -> list[dict[str, Any]] | None:
    """``normalize_options``: None unless select; then at least one, labels stripped, unique, known colours."""
    if display_type != "select":
        return None
    if not options:
        raise InvalidOptions("A select property needs at least one option.")
    normalized = []
    seen: set[str] = set()
    for option in options:
        label = (option.get("label") or "").strip()
        if not label:
            raise InvalidOptions("Option labels can't be blank.")
        color = option.get("color")
        if color not in OPTION_COLORS:
            raise InvalidOptions(f"Invalid option color: '{color}'.")
        option_id = option.get("id")
        if option_id and option_id not in existing_ids:
            raise InvalidOptions("Option ids are assigned by the server; omit them for new options.")
        if label in seen:
            raise InvalidOptions(f"Duplicate option label: '{label}'.")
        seen.add(label)
        normalized.append({"id": option_id or str(uuid.uuid4()), "label": label, "color": color})
    return normalized


class CustomPropertyStore:
    """Definitions and values in the accounts' SQLite database; changes emit PostHog's event on the store."""

    def __init__(self, store: PostHogStore) -> None:
        self.store = store
        store.add_schema(_SCHEMA)
        store.on_reset.append(self._reset)
        store.on_delete_account.append(self._delete_account)

    @staticmethod
    def _reset(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM custom_property_values")
        conn.execute("DELETE FROM custom_property_definitions")

    @staticmethod
    def _delete_account(conn: sqlite3.Connection, account_id: str) -> None:
        conn.execute("DELETE FROM custom_property_values WHERE account_id = ?", (account_id,))

    # Definitions

    def list_definitions(self, project_id: int, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        count = self.store.read("SELECT count(*) FROM custom_property_definitions WHERE project_id = ?", (project_id,))
        rows = self.store.read(
            f"SELECT {_DEF_COLUMNS} FROM custom_property_definitions WHERE project_id = ? ORDER BY name, id"
            " LIMIT ? OFFSET ?",
            (project_id, min(limit, 2**63 - 1), min(offset, 2**63 - 1)),
        )
        return count[0][0], [definition_out(r) for r in rows]

    def get_definition(self, project_id: int, definition_id: str) -> dict[str, Any] | None:
        rows = self.store.read(
            f"SELECT {_DEF_COLUMNS} FROM custom_property_definitions WHERE id = ? AND project_id = ?",
            (definition_id, project_id),
        )
        return definition_out(rows[0]) if rows else None

    def create_definition(self, project_id: int, fields: Mapping[str, Any], created_by: int) -> dict[str, Any]:
        options = normalize_options(fields["display_type"], fields.get("options"))
        big = bool(fields.get("is_big_number")) and data_type(fields) == "numeric"
        with self.store.write() as conn:
            now = self.store.clock.now()
            definition_id = str(uuid7(now))
            try:
                conn.execute(
                    "INSERT INTO custom_property_definitions (id, project_id, name, description, display_type,"
                    " target_type, group_type_index, is_big_number, options, created_at, created_by, updated_at)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (definition_id, project_id, fields["name"], fields.get("description"), fields["display_type"],
                     fields.get("target_type", "account"), None, int(big),
                     None if options is None else json.dumps(options), now, created_by, now),
                )  # fmt: skip
            except sqlite3.IntegrityError:
                raise DuplicateName(fields["name"]) from None
        created = self.get_definition(project_id, definition_id)
        assert created is not None
        return created

    def update_definition(
        self, project_id: int, definition_id: str, fields: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """The sent fields; ``is_big_number`` and ``options`` re-derived against the effective display type;
        a select's removed options clear their values and renamed ones rewrite them (PostHog does both inline)."""
        previous = self.get_definition(project_id, definition_id)
        if previous is None:
            return None
        merged = {**previous, **fields}
        existing = frozenset(option["id"] for option in previous["options"] or [])
        options = normalize_options(merged["display_type"], merged["options"], existing)
        big = bool(merged["is_big_number"]) and data_type(merged) == "numeric"
        with self.store.write() as conn:
            try:
                conn.execute(
                    "UPDATE custom_property_definitions SET name = ?, description = ?, display_type = ?,"
                    " is_big_number = ?, options = ?, updated_at = ? WHERE id = ?",
                    (merged["name"], merged["description"], merged["display_type"], int(big),
                     None if options is None else json.dumps(options), self.store.clock.now(), definition_id),
                )  # fmt: skip
            except sqlite3.IntegrityError:
                raise DuplicateName(merged["name"]) from None
            if merged["display_type"] == "select":
                self._option_side_effects(conn, definition_id, previous["options"] or [], options or [])
        return self.get_definition(project_id, definition_id)

    @staticmethod
    def _option_side_effects(
        conn: sqlite3.Connection, definition_id: str, before: list[dict[str, Any]], after: list[dict[str, Any]]
    ) -> None:
        new_by_id = {option["id"]: option["label"] for option in after}
        for option in before:
            if option["id"] not in new_by_id:
                conn.execute(
                    "UPDATE custom_property_values SET is_deleted = 1 WHERE definition_id = ? AND value_str = ?"
                    " AND is_deleted = 0",
                    (definition_id, option["label"]),
                )
            elif new_by_id[option["id"]] != option["label"]:
                conn.execute(
                    "UPDATE custom_property_values SET value_str = ? WHERE definition_id = ? AND value_str = ?",
                    (new_by_id[option["id"]], definition_id, option["label"]),
                )

    def delete_definition(self, project_id: int, definition_id: str) -> bool:
        with self.store.write() as conn:
            cursor = conn.execute(
                "DELETE FROM custom_property_definitions WHERE id = ? AND project_id = ?", (definition_id, project_id)
            )
            if cursor.rowcount:
                conn.execute("DELETE FROM custom_property_values WHERE definition_id = ?", (definition_id,))
            return cursor.rowcount > 0

    def set_source(self, definition_id: str, source: dict[str, Any] | None) -> bool:
        """Bind (or unbind) a warehouse source: such a definition refuses manual writes."""
        with self.store.write() as conn:
            cursor = conn.execute(
                "UPDATE custom_property_definitions SET source = ? WHERE id = ?",
                (None if source is None else json.dumps(source), definition_id),
            )
            return cursor.rowcount > 0

    # Values

    @staticmethod
    def _value_out(row: tuple[Any, ...], kind: str) -> dict[str, Any]:
        column = {"value_str": 3, "value_num": 4, "value_bool": 5, "value_dt": 6}[COLUMN_BY_DATA_TYPE[kind]]
        raw = row[column]
        value = bool(raw) if kind == "boolean" and raw is not None else raw
        if kind == "datetime" and raw is not None:
            value = drf_datetime(raw)
        return {
            "id": row[0],
            "account_id": row[1],
            "definition_id": row[2],
            "value": value,
            "created_at": iso(row[7]),
            "created_by_id": row[8],
        }

    def list_values(self, project_id: int, account_id: str) -> list[dict[str, Any]]:
        """The account's active values, newest first."""
        rows = self.store.read(
            f"SELECT v.{_VALUE_COLUMNS.replace(', ', ', v.')}, d.display_type FROM custom_property_values AS v"
            " JOIN custom_property_definitions AS d ON d.id = v.definition_id"
            " WHERE v.project_id = ? AND v.account_id = ? AND v.is_deleted = 0 ORDER BY v.created_at DESC, v.id DESC",
            (project_id, account_id),
        )
        return [self._value_out(row[:9], DATA_TYPE_BY_DISPLAY_TYPE[row[9]]) for row in rows]

    def set_value(
        self,
        project_id: int,
        account: Mapping[str, Any],
        definition: Mapping[str, Any],
        value: Any,
        actor: Actor | None,
    ) -> dict[str, Any]:
        """``_set_value``: coerce (``InvalidValue``), soft-delete the active row, insert the new one; the event
        only when the stored value changes."""
        column, coerced = coerce(definition, value)
        kind = data_type(definition)
        with self.store.write() as conn:
            previous = conn.execute(
                f"SELECT {COLUMN_BY_DATA_TYPE[kind]} FROM custom_property_values WHERE account_id = ?"
                " AND definition_id = ? AND is_deleted = 0 ORDER BY created_at DESC LIMIT 1",
                (account["id"], definition["id"]),
            ).fetchone()
            conn.execute(
                "UPDATE custom_property_values SET is_deleted = 1 WHERE account_id = ? AND definition_id = ?"
                " AND is_deleted = 0",
                (account["id"], definition["id"]),
            )
            now = self.store.clock.now()
            value_id = str(uuid7(now))
            conn.execute(
                f"INSERT INTO custom_property_values (id, project_id, account_id, definition_id, {column},"
                " created_at, created_by_id) VALUES (?,?,?,?,?,?,?)",
                (value_id, project_id, account["id"], definition["id"], coerced, now, actor.user_id if actor else None),
            )
            row = conn.execute(f"SELECT {_VALUE_COLUMNS} FROM custom_property_values WHERE id = ?", (value_id,))
            created = row.fetchone()
        before = None if previous is None else previous[0]
        if kind == "boolean" and before is not None:
            before = bool(before)
        if before != coerced:
            custom_property_changed(
                self.store.events,
                account,
                definition,
                kind,
                _event_value(kind, before),
                _event_value(kind, coerced),
                actor,
            )
        return self._value_out(created, kind)

    def history(self, account_id: str, definition_id: str) -> int:
        """How many rows (active and superseded) the account has for the definition: the history is append-only."""
        return int(
            self.store.read(
                "SELECT count(*) FROM custom_property_values WHERE account_id = ? AND definition_id = ?",
                (account_id, definition_id),
            )[0][0]
        )
