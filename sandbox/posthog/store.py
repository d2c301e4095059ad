"""SQLite persistence for the PostHog stand-in: accounts and group-type usage metrics, per project.

One ``sqlite3`` connection guarded by a lock, shared by uvicorn's worker threads; a file path keeps the
data across restarts (WAL journal), ``:memory:`` does not. ``properties``, ``tags`` and ``filters`` are JSON
columns; list filters run in SQL with SQLite's JSON functions, so a page only decodes the rows it returns.
Timestamps are integer microseconds from a ``MonotonicClock`` whose high-water mark is persisted too.

Rows come back already in PostHog's response shape (``account_out`` / ``metric_out``).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sandbox.identities import company
from sandbox.posthog.clock import MonotonicClock, iso, uuid7
from sandbox.posthog.config import SANDBOX_USER_ID
from sandbox.posthog.events import EventLog
from sandbox.posthog.query import AccountQuery, Page
from sandbox.posthog.validation import ROLE_KEYS

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY,
    project_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    external_id TEXT,
    properties TEXT NOT NULL,
    tags TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_by INTEGER,
    updated_at INTEGER NOT NULL,
    name_key TEXT NOT NULL,
    external_id_key TEXT,
    slack_summary_cadence TEXT,
    churned_at INTEGER,
    ignored_at INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS accounts_project_external_id
    ON accounts (project_id, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS accounts_project_created ON accounts (project_id, created_at, id);
CREATE INDEX IF NOT EXISTS accounts_project_updated ON accounts (project_id, updated_at, id);
CREATE TABLE IF NOT EXISTS usage_metrics (
    id TEXT PRIMARY KEY,
    project_id INTEGER NOT NULL,
    group_type_index INTEGER NOT NULL,
    name TEXT NOT NULL,
    format TEXT NOT NULL,
    interval INTEGER NOT NULL,
    display TEXT NOT NULL,
    filters TEXT NOT NULL,
    math TEXT NOT NULL,
    math_property TEXT,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS usage_metrics_unique_name
    ON usage_metrics (project_id, group_type_index, name);
CREATE TABLE IF NOT EXISTS clock (id INTEGER PRIMARY KEY CHECK (id = 1), last_us INTEGER NOT NULL);
"""

_ACCOUNT_COLUMNS = (
    "id, name, external_id, properties, tags, created_at, created_by, updated_at,"
    " slack_summary_cadence, churned_at, ignored_at"
)
_ADDED_ACCOUNT_COLUMNS = (("slack_summary_cadence", "TEXT"), ("churned_at", "INTEGER"), ("ignored_at", "INTEGER"))
_METRIC_COLUMNS = "id, name, format, interval, display, filters, math, math_property"
_ORDER_SQL = {
    "created_at": "created_at ASC, id ASC",
    "-created_at": "created_at DESC, id DESC",
    "name": "name ASC, id ASC",
    "-name": "name DESC, id DESC",
    "updated_at": "updated_at ASC, id ASC",
    "-updated_at": "updated_at DESC, id DESC",
}
_SQLITE_INT_MIN = -(2**63)
_SQLITE_INT_MAX = 2**63 - 1


class DuplicateExternalId(Exception):
    """Another account of the project already has this non-null ``external_id``."""


class DuplicateMetricName(Exception):
    """Another usage metric of the project and group type already has this name."""


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def account_out(row: tuple[Any, ...]) -> dict[str, Any]:
    """A row of ``_ACCOUNT_COLUMNS`` in PostHog's account response shape."""
    return {
        "id": row[0],
        "name": row[1],
        "external_id": row[2],
        "properties": json.loads(row[3]),
        "tags": json.loads(row[4]),
        "created_at": iso(row[5]),
        "created_by": row[6],
        "updated_at": iso(row[7]),
        "notebooks": [],
        "slack_summary_cadence": row[8],
        "churned_at": None if row[9] is None else iso(row[9]),
        "ignored_at": None if row[10] is None else iso(row[10]),
    }


def metric_out(row: tuple[Any, ...]) -> dict[str, Any]:
    """A row of ``_METRIC_COLUMNS`` in PostHog's usage-metric response shape (no timestamps)."""
    return {
        "id": row[0],
        "name": row[1],
        "format": row[2],
        "interval": row[3],
        "display": row[4],
        "filters": json.loads(row[5]),
        "math": row[6],
        "math_property": row[7],
    }


def _search_key(text: str | None) -> str | None:
    """Django's ``icontains`` compares ``UPPER()`` of both sides."""
    return None if text is None else text.upper()


def _sql_int(value: int) -> int:
    """LIMIT/OFFSET bind as 64-bit integers; DRF's pagination has no maximum, so clamp."""
    return min(value, _SQLITE_INT_MAX)


def _sql_number(value: int) -> int | float:
    """SQLite binds 64-bit integers only; a larger user id can only match a JSON number as a float."""
    return value if _SQLITE_INT_MIN <= value <= _SQLITE_INT_MAX else float(value)


class PostHogStore:
    """Accounts and usage metrics of every project, in one SQLite database."""

    def __init__(self, db_path: str = ":memory:") -> None:
        self.db_path = db_path
        self._conn = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        if db_path != ":memory:":
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        present = {row[1] for row in self._conn.execute("PRAGMA table_info(accounts)")}
        for column, kind in _ADDED_ACCOUNT_COLUMNS:
            if column not in present:  # a database file written before these columns existed
                self._conn.execute(f"ALTER TABLE accounts ADD COLUMN {column} {kind}")
        self.events = EventLog()
        self.on_reset: list[Callable[[sqlite3.Connection], None]] = []
        self.on_delete_account: list[Callable[[sqlite3.Connection, str], None]] = []
        row = self._conn.execute("SELECT last_us FROM clock WHERE id = 1").fetchone()
        self.clock = MonotonicClock(row[0] if row else 0)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def add_schema(self, script: str) -> None:
        """Tables of a sibling store (relationships, custom properties) in the same database."""
        with self._lock:
            self._conn.executescript(script)

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One transaction under the lock, for sibling stores."""
        with self._write() as conn:
            yield conn

    def read(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
        return self._read(sql, params)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction under the lock; the clock's high-water mark is saved with it."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute(
                    "INSERT INTO clock (id, last_us) VALUES (1, ?) "
                    "ON CONFLICT (id) DO UPDATE SET last_us = max(last_us, excluded.last_us)",
                    (self.clock.last,),
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _read(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def reset(self) -> None:
        """Delete every account and usage metric (the clock keeps counting up)."""
        with self._write() as conn:
            conn.execute("DELETE FROM accounts")
            conn.execute("DELETE FROM usage_metrics")
            for hook in self.on_reset:
                hook(conn)
        self.events.clear()

    # Accounts

    def create_account(self, project_id: int, fields: Mapping[str, Any], created_by: int | None) -> dict[str, Any]:
        """Insert an account from validated fields; raises ``DuplicateExternalId``."""
        external_id = fields.get("external_id")
        with self._write() as conn:
            now = self.clock.now()
            account_id = str(uuid7(now))
            try:
                conn.execute(
                    "INSERT INTO accounts (id, project_id, name, external_id, properties, tags, created_at,"
                    " created_by, updated_at, name_key, external_id_key, slack_summary_cadence, churned_at)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        account_id,
                        project_id,
                        fields["name"],
                        external_id,
                        _dumps(fields.get("properties", {})),
                        _dumps(fields.get("tags", [])),
                        now,
                        created_by,
                        now,
                        _search_key(fields["name"]),
                        _search_key(external_id),
                        fields.get("slack_summary_cadence"),
                        fields.get("churned_at"),
                    ),
                )
            except sqlite3.IntegrityError:
                raise DuplicateExternalId(external_id) from None
            row = conn.execute(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id = ?", (account_id,)).fetchone()
        return account_out(row)

    def get_account(self, project_id: int, account_id: str) -> dict[str, Any] | None:
        rows = self._read(
            f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id = ? AND project_id = ?", (account_id, project_id)
        )
        return account_out(rows[0]) if rows else None

    def update_account(self, project_id: int, account_id: str, fields: Mapping[str, Any]) -> dict[str, Any] | None:
        """Replace the given fields (``properties`` and ``tags`` whole) and bump ``updated_at``.

        Returns None when the account is not in the project; raises ``DuplicateExternalId``.
        """
        sets = ["updated_at = ?"]
        values: list[Any] = []
        if "name" in fields:
            sets += ["name = ?", "name_key = ?"]
            values += [fields["name"], _search_key(fields["name"])]
        if "external_id" in fields:
            sets += ["external_id = ?", "external_id_key = ?"]
            values += [fields["external_id"], _search_key(fields["external_id"])]
        if "properties" in fields:
            sets.append("properties = ?")
            values.append(_dumps(fields["properties"]))
        if "tags" in fields:
            sets.append("tags = ?")
            values.append(_dumps(fields["tags"]))
        for column in ("slack_summary_cadence", "churned_at"):
            if column in fields:
                sets.append(f"{column} = ?")
                values.append(fields[column])
        with self._write() as conn:
            values.insert(0, self.clock.now())
            try:
                cursor = conn.execute(
                    f"UPDATE accounts SET {', '.join(sets)} WHERE id = ? AND project_id = ?",
                    (*values, account_id, project_id),
                )
            except sqlite3.IntegrityError:
                raise DuplicateExternalId(fields.get("external_id")) from None
            if cursor.rowcount == 0:
                return None
            row = conn.execute(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id = ?", (account_id,)).fetchone()
        return account_out(row)

    def delete_account(self, project_id: int, account_id: str) -> bool:
        with self._write() as conn:
            cursor = conn.execute("DELETE FROM accounts WHERE id = ? AND project_id = ?", (account_id, project_id))
            if cursor.rowcount > 0:
                for hook in self.on_delete_account:  # ON DELETE CASCADE of relationships and custom values
                    hook(conn, account_id)
            return cursor.rowcount > 0

    def list_accounts(self, project_id: int, query: AccountQuery, page: Page) -> tuple[int, list[dict[str, Any]]]:
        """``(count, page of accounts)`` matching every filter of ``query``."""
        where = ["project_id = ?"]
        params: list[Any] = [project_id]
        if query.search:
            key = _search_key(query.search)
            where.append("(instr(name_key, ?) > 0 OR instr(coalesce(external_id_key, ''), ?) > 0)")
            params += [key, key]
        if query.tags:
            where.append(
                "EXISTS (SELECT 1 FROM json_each(accounts.tags) AS mine JOIN json_each(?) AS wanted"
                " ON mine.value = wanted.value)"
            )
            params.append(_dumps(list(query.tags)))
        if query.all_roles_unassigned and query.roles_in_relationships:
            where.append(
                "NOT EXISTS (SELECT 1 FROM account_relationships AS r WHERE r.account_id = accounts.id"
                " AND r.ended_at IS NULL AND r.user_id IS NOT NULL)"
            )
        elif query.all_roles_unassigned:
            where += [f"json_type(properties, '$.{role}.id') IS NULL" for role in ROLE_KEYS]
        if query.hide_churned:
            where.append("churned_at IS NULL")
        for role, wanted in query.roles.items():
            path = f"'$.{role}.id'"
            if wanted == "unassigned":
                where.append(f"json_type(properties, {path}) IS NULL")
            else:
                where.append(
                    f"json_type(properties, {path}) IN ('integer', 'real') AND json_extract(properties, {path}) = ?"
                )
                params.append(_sql_number(wanted))
        condition = " AND ".join(where)
        with self._lock:
            count = self._conn.execute(f"SELECT count(*) FROM accounts WHERE {condition}", params).fetchone()[0]
            rows = self._conn.execute(
                f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE {condition}"
                f" ORDER BY {_ORDER_SQL[query.ordering]} LIMIT ? OFFSET ?",
                (*params, _sql_int(page.limit), _sql_int(page.offset)),
            ).fetchall()
        return count, [account_out(row) for row in rows]

    def seed_accounts(self, project_id: int, start: int, count: int, tags: list[str]) -> int:
        """Insert the deterministic companies ``start .. start+count-1``; existing external ids are skipped."""
        created = 0
        with self._write() as conn:
            for index in range(start, start + count):
                identity = company(index)
                now = self.clock.now()
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO accounts (id, project_id, name, external_id, properties, tags,"
                    " created_at, created_by, updated_at, name_key, external_id_key)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        str(uuid7(now)),
                        project_id,
                        identity.name,
                        identity.external_id,
                        "{}",
                        _dumps(tags),
                        now,
                        SANDBOX_USER_ID,
                        now,
                        _search_key(identity.name),
                        _search_key(identity.external_id),
                    ),
                )
                created += cursor.rowcount
        return created

    # Usage metrics

    def create_metric(self, project_id: int, group_type_index: int, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Insert a usage metric from validated fields; raises ``DuplicateMetricName``."""
        with self._write() as conn:
            now = self.clock.now()
            metric_id = str(uuid7(now))
            try:
                conn.execute(
                    "INSERT INTO usage_metrics (id, project_id, group_type_index, name, format, interval, display,"
                    " filters, math, math_property, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        metric_id,
                        project_id,
                        group_type_index,
                        fields["name"],
                        fields["format"],
                        fields["interval"],
                        fields["display"],
                        _dumps(fields["filters"]),
                        fields["math"],
                        fields.get("math_property"),
                        now,
                    ),
                )
            except sqlite3.IntegrityError:
                raise DuplicateMetricName(fields["name"]) from None
            row = conn.execute(f"SELECT {_METRIC_COLUMNS} FROM usage_metrics WHERE id = ?", (metric_id,)).fetchone()
        return metric_out(row)

    def get_metric(self, project_id: int, group_type_index: int, metric_id: str) -> dict[str, Any] | None:
        rows = self._read(
            f"SELECT {_METRIC_COLUMNS} FROM usage_metrics WHERE id = ? AND project_id = ? AND group_type_index = ?",
            (metric_id, project_id, group_type_index),
        )
        return metric_out(rows[0]) if rows else None

    def update_metric(
        self, project_id: int, group_type_index: int, metric_id: str, fields: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Set the given fields; None when the metric is not there; raises ``DuplicateMetricName``."""
        columns = ("name", "format", "interval", "display", "filters", "math", "math_property")
        sets = [f"{column} = ?" for column in columns if column in fields]
        values = [_dumps(fields[c]) if c == "filters" else fields[c] for c in columns if c in fields]
        scope = "id = ? AND project_id = ? AND group_type_index = ?"
        with self._write() as conn:
            if sets:
                try:
                    cursor = conn.execute(
                        f"UPDATE usage_metrics SET {', '.join(sets)} WHERE {scope}",
                        (*values, metric_id, project_id, group_type_index),
                    )
                except sqlite3.IntegrityError:
                    raise DuplicateMetricName(fields.get("name")) from None
                if cursor.rowcount == 0:
                    return None
            row = conn.execute(
                f"SELECT {_METRIC_COLUMNS} FROM usage_metrics WHERE {scope}", (metric_id, project_id, group_type_index)
            ).fetchone()
        return metric_out(row) if row else None

    def delete_metric(self, project_id: int, group_type_index: int, metric_id: str) -> bool:
        with self._write() as conn:
            cursor = conn.execute(
                "DELETE FROM usage_metrics WHERE id = ? AND project_id = ? AND group_type_index = ?",
                (metric_id, project_id, group_type_index),
            )
            return cursor.rowcount > 0

    def list_metrics(self, project_id: int, group_type_index: int, page: Page) -> tuple[int, list[dict[str, Any]]]:
        where = "project_id = ? AND group_type_index = ?"
        with self._lock:
            count = self._conn.execute(
                f"SELECT count(*) FROM usage_metrics WHERE {where}", (project_id, group_type_index)
            ).fetchone()[0]
            rows = self._conn.execute(
                f"SELECT {_METRIC_COLUMNS} FROM usage_metrics WHERE {where} ORDER BY created_at, id LIMIT ? OFFSET ?",
                (project_id, group_type_index, _sql_int(page.limit), _sql_int(page.offset)),
            ).fetchall()
        return count, [metric_out(row) for row in rows]
