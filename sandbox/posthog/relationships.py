"""Account relationships (roles such as "CSM" on an account), as PostHog's ``customer_analytics`` serves them.

Read in PostHog's source (cited in ``docs/posthog.md``): ``models/relationship.py`` (a definition per team with
a unique ``name`` ≤ 400 and ``is_single_holder`` default true; assignments with ``started_at``/``ended_at``),
``logic/relationships.py`` (``assign``: the current holder again is a no-op, a single-holder definition ends
the previous holder in the same transaction; ``end_relationship``; the transitional
``sync_from_account_properties`` with its ``SEEDED_DEFINITIONS``), ``facade/api.py`` (a definition name taken →
409 "A relationship definition with this name already exists for this team."; the assignee must be a member
of the project's organisation), ``presentation/views/views.py`` (bodies and status codes) and ``events.py``.

The stand-in's ``managed`` roles follow migration 0053 (``is_controlled`` on a definition, a per-account
control row): ``logic/relationships._enforce_managed_role_policy`` refuses only autonomous writers (workflow,
AI, Salesforce claim); a request made with a personal API key acts for its user, a person, so the REST path is
allowed and the control's timestamp advances. ``POST /_sandbox/relationship_controls`` starts control.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from sandbox.posthog.clock import iso, uuid7
from sandbox.posthog.events import Actor, relationship_changed
from sandbox.posthog.store import PostHogStore

SEEDED_DEFINITIONS: tuple[tuple[str, str], ...] = (
    ("csm", "CSM"),
    ("account_executive", "Account executive"),
    ("account_owner", "Account owner"),
)
"""Legacy JSON role key → the definition name PostHog's sync and backfill match it by."""
DEFINITION_NAME_TAKEN = "A relationship definition with this name already exists for this team."

_SCHEMA = """
CREATE TABLE IF NOT EXISTS account_relationship_definitions (
    id TEXT PRIMARY KEY,
    project_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    is_single_holder INTEGER NOT NULL,
    is_controlled INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    created_by INTEGER,
    UNIQUE (project_id, name)
);
CREATE TABLE IF NOT EXISTS account_relationships (
    id TEXT PRIMARY KEY,
    project_id INTEGER NOT NULL,
    account_id TEXT NOT NULL,
    definition_id TEXT NOT NULL,
    user_id INTEGER,
    user_email TEXT,
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    created_by INTEGER
);
CREATE INDEX IF NOT EXISTS account_relationships_active ON account_relationships (account_id, definition_id, ended_at);
CREATE TABLE IF NOT EXISTS account_relationship_controls (
    account_id TEXT NOT NULL,
    definition_id TEXT NOT NULL,
    controlled_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, definition_id)
);
"""
_ADVANCE_CONTROL = (
    "UPDATE account_relationship_controls SET controlled_at = ? WHERE account_id = ? AND definition_id = ?"
)
_DEF_COLUMNS = "id, name, description, is_single_holder"
_REL_COLUMNS = (
    "r.id, r.user_id, r.user_email, r.started_at, r.ended_at, d.id, d.name, d.description, d.is_single_holder"
)


class DuplicateDefinitionName(Exception):
    """Another relationship definition of the project has this name."""


def definition_out(row: tuple[Any, ...]) -> dict[str, Any]:
    return {"id": row[0], "name": row[1], "description": row[2], "is_single_holder": bool(row[3])}


def relationship_out(row: tuple[Any, ...]) -> dict[str, Any]:
    user = None if row[1] is None else {"id": row[1], "email": row[2]}
    return {
        "id": row[0],
        "definition": definition_out(row[5:9]),
        "user": user,
        "started_at": iso(row[3]),
        "ended_at": None if row[4] is None else iso(row[4]),
    }


class RelationshipStore:
    """Relationship definitions, assignments and controls, in the accounts' SQLite database."""

    def __init__(self, store: PostHogStore) -> None:
        self.store = store
        store.add_schema(_SCHEMA)
        store.on_reset.append(self._reset)
        store.on_delete_account.append(self._delete_account)

    @staticmethod
    def _reset(conn: sqlite3.Connection) -> None:
        for table in ("account_relationships", "account_relationship_definitions", "account_relationship_controls"):
            conn.execute(f"DELETE FROM {table}")

    @staticmethod
    def _delete_account(conn: sqlite3.Connection, account_id: str) -> None:
        conn.execute("DELETE FROM account_relationships WHERE account_id = ?", (account_id,))
        conn.execute("DELETE FROM account_relationship_controls WHERE account_id = ?", (account_id,))

    # Definitions

    def list_definitions(self, project_id: int, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """By name, like ``list_account_relationship_definitions``."""
        count = self.store.read(
            "SELECT count(*) FROM account_relationship_definitions WHERE project_id = ?", (project_id,)
        )[0][0]
        rows = self.store.read(
            f"SELECT {_DEF_COLUMNS} FROM account_relationship_definitions WHERE project_id = ?"
            " ORDER BY name, id LIMIT ? OFFSET ?",
            (project_id, min(limit, 2**63 - 1), min(offset, 2**63 - 1)),
        )
        return count, [definition_out(r) for r in rows]

    def get_definition(self, project_id: int, definition_id: str) -> dict[str, Any] | None:
        rows = self.store.read(
            f"SELECT {_DEF_COLUMNS} FROM account_relationship_definitions WHERE id = ? AND project_id = ?",
            (definition_id, project_id),
        )
        return definition_out(rows[0]) if rows else None

    def definitions_by_name(self, project_id: int, names: list[str]) -> dict[str, dict[str, Any]]:
        marks = ",".join("?" * len(names))
        rows = self.store.read(
            f"SELECT {_DEF_COLUMNS} FROM account_relationship_definitions WHERE project_id = ? AND name IN ({marks})",
            (project_id, *names),
        )
        return {row[1]: definition_out(row) for row in rows}

    def create_definition(self, project_id: int, fields: Mapping[str, Any], created_by: int) -> dict[str, Any]:
        with self.store.write() as conn:
            now = self.store.clock.now()
            definition_id = str(uuid7(now))
            try:
                conn.execute(
                    "INSERT INTO account_relationship_definitions (id, project_id, name, description,"
                    " is_single_holder, created_at, created_by) VALUES (?,?,?,?,?,?,?)",
                    (
                        definition_id,
                        project_id,
                        fields["name"],
                        fields.get("description"),
                        int(fields.get("is_single_holder", True)),
                        now,
                        created_by,
                    ),
                )
            except sqlite3.IntegrityError:
                raise DuplicateDefinitionName(fields["name"]) from None
        return definition_out(
            (definition_id, fields["name"], fields.get("description"), fields.get("is_single_holder", True))
        )

    def update_definition(
        self, project_id: int, definition_id: str, fields: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        sets = [f"{name} = ?" for name in ("name", "description", "is_single_holder") if name in fields]
        values = [fields[name] for name in ("name", "description", "is_single_holder") if name in fields]
        with self.store.write() as conn:
            if sets:
                try:
                    conn.execute(
                        f"UPDATE account_relationship_definitions SET {', '.join(sets)}"
                        " WHERE id = ? AND project_id = ?",
                        (*values, definition_id, project_id),
                    )
                except sqlite3.IntegrityError:
                    raise DuplicateDefinitionName(fields.get("name")) from None
        return self.get_definition(project_id, definition_id)

    def delete_definition(self, project_id: int, definition_id: str) -> bool:
        """Hard delete; its assignment history goes with it (``on_delete=CASCADE``)."""
        with self.store.write() as conn:
            cursor = conn.execute(
                "DELETE FROM account_relationship_definitions WHERE id = ? AND project_id = ?",
                (definition_id, project_id),
            )
            if cursor.rowcount == 0:
                return False
            conn.execute("DELETE FROM account_relationships WHERE definition_id = ?", (definition_id,))
            conn.execute("DELETE FROM account_relationship_controls WHERE definition_id = ?", (definition_id,))
            return True

    # Assignments

    def list_relationships(self, project_id: int, account_id: str, include_history: bool) -> list[dict[str, Any]]:
        """Active rows (or the whole timeline), ordered by definition name, newest ``started_at`` first."""
        active = "" if include_history else " AND r.ended_at IS NULL"
        rows = self.store.read(
            f"SELECT {_REL_COLUMNS} FROM account_relationships AS r JOIN account_relationship_definitions AS d"
            f" ON d.id = r.definition_id WHERE r.project_id = ? AND r.account_id = ?{active}"
            " ORDER BY d.name, r.started_at DESC, r.id DESC",
            (project_id, account_id),
        )
        return [relationship_out(r) for r in rows]

    def _active(self, conn: sqlite3.Connection, account_id: str, definition_id: str) -> list[tuple[Any, ...]]:
        return conn.execute(
            "SELECT id, user_id, user_email FROM account_relationships WHERE account_id = ? AND definition_id = ?"
            " AND ended_at IS NULL ORDER BY started_at, id",
            (account_id, definition_id),
        ).fetchall()

    def assign(
        self,
        project_id: int,
        account: Mapping[str, Any],
        definition: Mapping[str, Any],
        user: tuple[int, str],
        actor: Actor | None,
        *,
        emit: bool,
    ) -> dict[str, Any]:
        """``logic/relationships.assign``: a no-op for the current holder; a single holder hands off."""
        with self.store.write() as conn:
            active = self._active(conn, account["id"], definition["id"])
            existing = next((row for row in active if row[1] == user[0]), None)
            if existing is not None:
                relationship_id = existing[0]
                previous = None
                changed = False
            else:
                now = self.store.clock.now()
                previous = (active[0][1], active[0][2]) if definition["is_single_holder"] and active else None
                if definition["is_single_holder"] and active:
                    conn.executemany(
                        "UPDATE account_relationships SET ended_at = ? WHERE id = ?", [(now, row[0]) for row in active]
                    )
                relationship_id = str(uuid7(now))
                conn.execute(
                    "INSERT INTO account_relationships (id, project_id, account_id, definition_id, user_id,"
                    " user_email, started_at, created_by) VALUES (?,?,?,?,?,?,?,?)",
                    (relationship_id, project_id, account["id"], definition["id"], user[0], user[1], now,
                     actor.user_id if actor else None),
                )  # fmt: skip
                conn.execute(
                    _ADVANCE_CONTROL,
                    (now, account["id"], definition["id"]),
                )
                changed = True
        if changed and emit:
            relationship_changed(self.store.events, account, definition, previous, user, actor)
        return self._one(relationship_id)

    def end_active(self, account: Mapping[str, Any], definition: Mapping[str, Any]) -> int:
        """``end_active`` of the transitional sync: end every active holder (no event, as that sync emitted none)."""
        with self.store.write() as conn:
            now = self.store.clock.now()
            cursor = conn.execute(
                "UPDATE account_relationships SET ended_at = ? WHERE account_id = ? AND definition_id = ?"
                " AND ended_at IS NULL",
                (now, account["id"], definition["id"]),
            )
            return cursor.rowcount

    def end(
        self, project_id: int, account: Mapping[str, Any], relationship_id: str, actor: Actor | None
    ) -> dict[str, Any] | None:
        """``end_relationship``: None when no active row of this account has that id (→ 404)."""
        with self.store.write() as conn:
            row = conn.execute(
                "SELECT r.user_id, r.user_email, r.definition_id FROM account_relationships AS r WHERE r.id = ?"
                " AND r.account_id = ? AND r.project_id = ? AND r.ended_at IS NULL",
                (relationship_id, account["id"], project_id),
            ).fetchone()
            if row is None:
                return None
            now = self.store.clock.now()
            conn.execute("UPDATE account_relationships SET ended_at = ? WHERE id = ?", (now, relationship_id))
            conn.execute(
                _ADVANCE_CONTROL,
                (now, account["id"], row[2]),
            )
        ended = self._one(relationship_id)
        previous = None if row[0] is None else (row[0], row[1])
        relationship_changed(self.store.events, account, ended["definition"], previous, None, actor)
        return ended

    def _one(self, relationship_id: str) -> dict[str, Any]:
        rows = self.store.read(
            f"SELECT {_REL_COLUMNS} FROM account_relationships AS r JOIN account_relationship_definitions AS d"
            " ON d.id = r.definition_id WHERE r.id = ?",
            (relationship_id,),
        )
        return relationship_out(rows[0])

    def control(self, account_id: str, definition_id: str) -> str:
        """Start control of a role on an account (``enroll_role``); returns ``controlled_at``."""
        with self.store.write() as conn:
            now = self.store.clock.now()
            conn.execute("UPDATE account_relationship_definitions SET is_controlled = 1 WHERE id = ?", (definition_id,))
            conn.execute(
                "INSERT INTO account_relationship_controls (account_id, definition_id, controlled_at) VALUES (?,?,?)"
                " ON CONFLICT (account_id, definition_id) DO NOTHING",
                (account_id, definition_id, now),
            )
            row = conn.execute(
                "SELECT controlled_at FROM account_relationship_controls WHERE account_id = ? AND definition_id = ?",
                (account_id, definition_id),
            ).fetchone()
        return iso(row[0])

    def controls(self, account_id: str) -> dict[str, str]:
        rows = self.store.read(
            "SELECT definition_id, controlled_at FROM account_relationship_controls WHERE account_id = ?",
            (account_id,),
        )
        return {row[0]: iso(row[1]) for row in rows}

    def sync_from_properties(
        self, project_id: int, account: Mapping[str, Any], resolve: Any, actor: Actor | None
    ) -> None:
        """Transitional ``sync_from_account_properties``: for each seeded definition that exists, a JSON role with
        an id assigns that user (when the user exists; else skipped, the JSON stays authoritative); a role key
        absent or null ends the relationship. ``resolve(user_id)`` → ``(id, email)`` or None."""
        by_name = self.definitions_by_name(project_id, [name for _, name in SEEDED_DEFINITIONS])
        properties = account.get("properties") or {}
        for key, name in SEEDED_DEFINITIONS:
            definition = by_name.get(name)
            if definition is None:
                continue
            assignment = properties.get(key)
            user_id = assignment.get("id") if isinstance(assignment, dict) else None
            if user_id is None:
                self.end_active(account, definition)
                continue
            user = resolve(user_id)
            if user is not None:
                self.assign(project_id, account, definition, user, actor, emit=False)
