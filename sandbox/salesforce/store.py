"""The stand-in org's state: records in memory, DML with Salesforce's validation, seeding, the API allowance.

Records are plain dicts keyed by canonical field names, with Python values (``datetime`` in UTC at one-second
precision, ``bool``, ``str`` or ``None``). Every write goes through ``Store`` under one lock, so the app's
event loop, admin calls and in-process tests can share it. What the real platform does and this mirrors:

- every save (even one that changes nothing) bumps ``LastModifiedDate``/``SystemModstamp`` and sets
  ``LastModifiedById`` to the acting user;
- an empty string stored in a text field becomes ``null``;
- a delete moves the record to the recycle bin (``IsDeleted = true``, modstamp bumped); ``purge`` empties it;
- External ID matching is case-insensitive and ignores records in the recycle bin.

Seeded data is deterministic: account ``i`` is ``sandbox.identities.company(i)`` with an id derived from ``i``
and timestamps relative to ``SEED_BASE_TIME``; user ``k`` is sales rep ``k``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sandbox.identities import company, sales_rep_email
from sandbox.salesforce import ids
from sandbox.salesforce.errors import ErrorItem, RecordError
from sandbox.salesforce.schema import ACCOUNT, INDUSTRIES, USER, FieldSpec, FieldType, ObjectSpec, now_utc, object_spec

Record = dict[str, Any]

SEED_BASE_TIME = datetime.fromisoformat("2024-01-01T00:00:00+00:00")
"""Seeded account ``i`` is created at ``SEED_BASE_TIME + i minutes`` and last modified one hour later."""

SEED_POD = "Sd"
API_POD = "5g"
ADMIN_POD = "Ad"


def account_id(index: int) -> str:
    """Id of seeded account ``index``."""
    return ids.make_id(ids.ACCOUNT_PREFIX, SEED_POD, index)


def user_id(index: int) -> str:
    """Id of seeded user ``index`` (sales rep ``index``)."""
    return ids.make_id(ids.USER_PREFIX, SEED_POD, index)


ADMIN_USER_ID = ids.make_id(ids.USER_PREFIX, ADMIN_POD, 1)


class ApiUsage:
    """The org's daily API request allowance, shared by every session (``Sforce-Limit-Info``)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def consume(self) -> bool:
        """Count one request; False (and nothing counted) once the allowance is spent."""
        with self._lock:
            if self.used >= self.limit:
                return False
            self.used += 1
            return True

    def set(self, used: int | None = None, limit: int | None = None) -> None:
        with self._lock:
            if used is not None:
                self.used = used
            if limit is not None:
                self.limit = limit

    def header(self) -> str:
        return f"api-usage={self.used}/{self.limit}"


@dataclass
class _Table:
    spec: ObjectSpec
    rows: dict[str, Record]
    deleted_at: dict[str, datetime]
    ext_index: dict[str, dict[str, set[str]]]

    @classmethod
    def empty(cls, spec: ObjectSpec) -> _Table:
        ext: dict[str, dict[str, set[str]]] = {f.name: {} for f in spec.fields if f.external_id}
        return cls(spec, {}, {}, ext)

    def index(self, record: Record) -> None:
        for name, index in self.ext_index.items():
            value = record.get(name)
            if value is not None:
                index.setdefault(value.casefold(), set()).add(record["Id"])

    def unindex(self, record: Record) -> None:
        for name, index in self.ext_index.items():
            value = record.get(name)
            if value is not None:
                bucket = index.get(value.casefold())
                if bucket is not None:
                    bucket.discard(record["Id"])
                    if not bucket:
                        del index[value.casefold()]


class MultipleMatches(Exception):
    """An External ID value matched several live records (the REST API answers 300 with their URLs)."""

    def __init__(self, record_ids: list[str]) -> None:
        super().__init__(f"{len(record_ids)} records match")
        self.record_ids = record_ids


def _error(code: str, message: str, *fields: str, status: int = 400) -> RecordError:
    return RecordError(ErrorItem(code, message, tuple(fields)), status)


class Store:
    """All records of the org, the acting users, and the DML rules. Thread-safe."""

    def __init__(self, username: str = "admin@sandbox.example", daily_api_limit: int = 15000) -> None:
        self.username = username
        self.usage = ApiUsage(daily_api_limit)
        self.lock = threading.RLock()
        self._tables: dict[str, _Table] = {}
        self._counter = 0
        self.reset()

    # --- basics --------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every record but the API user, and zero the API usage."""
        with self.lock:
            self._tables = {spec.name: _Table.empty(spec) for spec in (ACCOUNT, USER)}
            self._counter = 0
            self.usage.set(used=0)
            local, _, _ = self.username.partition("@")
            self._put(
                USER,
                {
                    "Id": ADMIN_USER_ID,
                    "Username": self.username,
                    "Email": self.username,
                    "FirstName": "Sandbox",
                    "LastName": local.capitalize() or "Admin",
                    "IsActive": True,
                    **self._stamps(SEED_BASE_TIME, SEED_BASE_TIME, ADMIN_USER_ID),
                },
            )

    def rows(self, spec: ObjectSpec) -> Mapping[str, Record]:
        """Live view of a table (id → record); hold ``lock`` while iterating."""
        return self._tables[spec.name].rows

    def deleted_at(self, spec: ObjectSpec, record_id: str) -> datetime | None:
        return self._tables[spec.name].deleted_at.get(record_id)

    def lookup(self, spec: ObjectSpec, raw_id: str) -> Record | None:
        """The record with id ``raw_id`` (15 or 18 characters; deleted ones included), or None."""
        canonical = ids.normalize_id(raw_id)
        if canonical is None:
            return None
        with self.lock:
            return self._tables[spec.name].rows.get(canonical)

    def user_by_username(self, username: str) -> Record | None:
        with self.lock:
            for user in self._tables[USER.name].rows.values():
                if user["Username"].casefold() == username.casefold():
                    return user
        return None

    def find_by_external_id(self, spec: ObjectSpec, field: FieldSpec, value: str) -> list[Record]:
        """Live (not deleted) records whose External ID ``field`` equals ``value``, case-insensitively."""
        with self.lock:
            table = self._tables[spec.name]
            matches = table.ext_index.get(field.name, {}).get(value.casefold(), set())
            return [table.rows[i] for i in sorted(matches) if not table.rows[i].get("IsDeleted")]

    def counts(self) -> dict[str, dict[str, int]]:
        with self.lock:
            return {
                name: {
                    "total": len(table.rows),
                    "deleted": sum(1 for r in table.rows.values() if r.get("IsDeleted")),
                }
                for name, table in self._tables.items()
            }

    # --- DML -----------------------------------------------------------------------------------------

    def insert(self, spec: ObjectSpec, values: Mapping[str, Any], actor: str) -> Record:
        """Create a record from request ``values``; raises ``RecordError`` for the first invalid field."""
        with self.lock:
            clean = self._validate(spec, values, creating=True)
            if spec is ACCOUNT and clean.get("OwnerId") is None:
                clean["OwnerId"] = actor
            self._check_required(spec, clean)
            self._counter += 1
            now = now_utc()
            record: Record = {f.name: None for f in spec.fields}
            record.update(clean)
            record["Id"] = ids.make_id(spec.key_prefix, API_POD, self._counter)
            if spec.has_is_deleted:
                record["IsDeleted"] = False
            if spec is USER:
                record.setdefault("IsActive", True)
                record["IsActive"] = bool(record["IsActive"]) if record["IsActive"] is not None else True
            record.update(self._stamps(now, now, actor, created_by=actor))
            self._put(spec, record)
            return dict(record)

    def check_insert(self, spec: ObjectSpec, values: Mapping[str, Any], actor: str) -> None:
        """Raise the ``RecordError`` ``insert`` would raise, changing nothing (for allOrNone batches)."""
        with self.lock:
            clean = self._validate(spec, values, creating=True)
            if spec is ACCOUNT and clean.get("OwnerId") is None:
                clean["OwnerId"] = actor
            self._check_required(spec, clean)

    def check_update(self, spec: ObjectSpec, record_id: str, values: Mapping[str, Any]) -> None:
        """Raise the ``RecordError`` ``update`` would raise, changing nothing."""
        with self.lock:
            record = self._live(spec, record_id)
            clean = self._validate(spec, values, creating=False)
            self._check_required(spec, {**record, **clean})

    def check_delete(self, spec: ObjectSpec, record_id: str) -> None:
        """Raise the ``RecordError`` ``delete`` would raise, changing nothing."""
        with self.lock:
            self._deletable(spec)
            self._live(spec, record_id)

    def update(self, spec: ObjectSpec, record_id: str, values: Mapping[str, Any], actor: str) -> Record:
        """Apply ``values`` to a live record; bumps its modification stamps even when nothing changes."""
        with self.lock:
            record = self._live(spec, record_id)
            clean = self._validate(spec, values, creating=False)
            self._check_required(spec, {**record, **clean})
            return self._save(spec, record, clean, actor)

    def upsert(
        self,
        spec: ObjectSpec,
        field: FieldSpec,
        value: str,
        values: Mapping[str, Any],
        actor: str,
        update_only: bool = False,
    ) -> tuple[Record, bool]:
        """Update the one live record whose External ID ``field`` is ``value``, or create it.

        Returns (record, created); several matches raise ``MultipleMatches``.
        """
        with self.lock:
            matches = self.find_by_external_id(spec, field, value)
            if len(matches) > 1:
                raise MultipleMatches([r["Id"] for r in matches])
            body = dict(values)
            for key in list(body):
                if key.lower() == field.name.lower():
                    if body[key] is not None and str(body[key]).casefold() != value.casefold():
                        raise _error(
                            "INVALID_FIELD",
                            f"The value of the external ID field {field.name} in the request body "
                            "doesn't match the value in the URL",
                            field.name,
                        )
                    del body[key]
            if matches:
                return self.update(spec, matches[0]["Id"], body, actor), False
            if update_only:
                raise _error("NOT_FOUND", "The requested resource does not exist", status=404)
            return self.insert(spec, {**body, field.name: value}, actor), True

    def delete(self, spec: ObjectSpec, record_id: str, actor: str) -> Record:
        """Move a live record to the recycle bin."""
        with self.lock:
            self._deletable(spec)
            record = self._live(spec, record_id)
            saved = self._save(spec, record, {"IsDeleted": True}, actor)
            self._tables[spec.name].deleted_at[record["Id"]] = saved["SystemModstamp"]
            return saved

    def undelete(self, spec: ObjectSpec, record_id: str, actor: str) -> Record:
        """Restore a record from the recycle bin."""
        with self.lock:
            record = self.lookup(spec, record_id)
            if record is None:
                raise _error("NOT_FOUND", "The requested resource does not exist", status=404)
            if not record.get("IsDeleted"):
                raise _error("UNDELETE_FAILED", "Entity is not in the recycle bin")
            self._tables[spec.name].deleted_at.pop(record["Id"], None)
            return self._save(spec, record, {"IsDeleted": False}, actor)

    def purge(self, spec: ObjectSpec, record_id: str) -> bool:
        """Remove a record for good (recycle bin emptied); True if it existed."""
        with self.lock:
            table = self._tables[spec.name]
            canonical = ids.normalize_id(record_id) or record_id
            record = table.rows.pop(canonical, None)
            if record is None:
                return False
            table.unindex(record)
            table.deleted_at.pop(canonical, None)
            return True

    def set_modstamp(
        self, spec: ObjectSpec, value: datetime, record_ids: Iterable[str] | None = None, limit: int | None = None
    ) -> list[str]:
        """Give many records one ``SystemModstamp`` (as a platform-side mass update does); returns their ids."""
        with self.lock:
            table = self._tables[spec.name]
            if record_ids is None:
                chosen = [i for i in sorted(table.rows) if not table.rows[i].get("IsDeleted")]
            else:
                chosen = []
                for raw in record_ids:
                    canonical = ids.normalize_id(raw)
                    if canonical is None or canonical not in table.rows:
                        raise _error("NOT_FOUND", f"no {spec.name} with id {raw}", status=404)
                    chosen.append(canonical)
            if limit is not None:
                chosen = chosen[:limit]
            stamp = value.replace(microsecond=0)
            for record_id in chosen:
                table.rows[record_id]["SystemModstamp"] = stamp
            return chosen

    # --- seeding -------------------------------------------------------------------------------------

    def seed(self, count: int, start: int = 0, users: int = 10) -> list[Record]:
        """Create (or restore) accounts ``start .. start+count-1`` and sales-rep users ``0 .. users-1``.

        Deterministic: the same arguments always give the same ids, values and timestamps. Account ``i``
        is owned by rep ``i % users``; every third account also has a CSM. Returns copies of the accounts.
        """
        if count < 0 or start < 0 or users < 0:
            raise ValueError("count, start and users must be >= 0")
        with self.lock:
            for k in range(users):
                email = sales_rep_email(k)
                first = email.split(".", 1)[0]
                stamp = SEED_BASE_TIME
                self._replace(
                    USER,
                    {
                        "Id": user_id(k),
                        "Username": email,
                        "Email": email,
                        "FirstName": first.capitalize(),
                        "LastName": f"Rep{k}",
                        "IsActive": True,
                        **self._stamps(stamp, stamp, ADMIN_USER_ID),
                    },
                )
            out = []
            for i in range(start, start + count):
                who = company(i)
                created = SEED_BASE_TIME + timedelta(minutes=i)
                owner = user_id(i % users) if users else ADMIN_USER_ID
                csm = user_id((i + 1) % users) if users and i % 3 == 0 else None
                record: Record = {
                    "Id": account_id(i),
                    "IsDeleted": False,
                    "Name": who.name,
                    "Website": who.website,
                    "Industry": INDUSTRIES[i % len(INDUSTRIES)] if i % 7 != 6 else None,
                    "OwnerId": owner,
                    "CSM__c": csm,
                    "PostHog_External_Id__c": who.external_id,
                    "PostHog_Account_Id__c": None,
                    "PostHog_CSM_Email__c": None,
                    "Legacy_Account_Ref__c": None,
                    "PostHog_Health_Score__c": None,
                    **self._stamps(created, created + timedelta(hours=1), ADMIN_USER_ID),
                }
                self._replace(ACCOUNT, record)
                out.append(dict(record))
            return out

    # --- internals -----------------------------------------------------------------------------------

    @staticmethod
    def _stamps(created: datetime, modified: datetime, by: str, created_by: str | None = None) -> Record:
        return {
            "CreatedDate": created,
            "CreatedById": created_by or by,
            "LastModifiedDate": modified,
            "LastModifiedById": by,
            "SystemModstamp": modified,
        }

    def _put(self, spec: ObjectSpec, record: Record) -> None:
        if spec is USER:
            record["Name"] = " ".join(p for p in (record.get("FirstName"), record.get("LastName")) if p)
        table = self._tables[spec.name]
        table.rows[record["Id"]] = record
        table.index(record)

    def _replace(self, spec: ObjectSpec, record: Record) -> None:
        table = self._tables[spec.name]
        old = table.rows.get(record["Id"])
        if old is not None:
            table.unindex(old)
        table.deleted_at.pop(record["Id"], None)
        self._put(spec, record)

    def _live(self, spec: ObjectSpec, record_id: str) -> Record:
        canonical = ids.normalize_id(record_id)
        if canonical is None or not canonical.startswith(spec.key_prefix):
            raise _error("MALFORMED_ID", f"{spec.name} ID: id value of incorrect type: {record_id}", "Id")
        record = self._tables[spec.name].rows.get(canonical)
        if record is None:
            raise _error("NOT_FOUND", "The requested resource does not exist", status=404)
        if record.get("IsDeleted"):
            raise _error("ENTITY_IS_DELETED", "entity is deleted", status=404)
        return record

    @staticmethod
    def _deletable(spec: ObjectSpec) -> None:
        if not spec.has_is_deleted:
            raise _error("INVALID_TYPE_FOR_OPERATION", f"entity type {spec.name} does not support delete")

    def _save(self, spec: ObjectSpec, record: Record, clean: Record, actor: str) -> Record:
        table = self._tables[spec.name]
        table.unindex(record)
        record.update(clean)
        now = now_utc()
        record["LastModifiedDate"] = now
        record["LastModifiedById"] = actor
        record["SystemModstamp"] = now
        self._put(spec, record)
        return dict(record)

    def _check_required(self, spec: ObjectSpec, record: Mapping[str, Any]) -> None:
        missing = [name for name in spec.required if record.get(name) is None]
        if missing:
            raise _error("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", *missing)

    def _validate(self, spec: ObjectSpec, values: Mapping[str, Any], creating: bool) -> Record:
        clean: Record = {}
        for key, raw in values.items():
            if key == "attributes":
                continue
            field = spec.field(key)
            if field is None:
                raise _error("INVALID_FIELD", f"No such column '{key}' on sobject of type {spec.name}")
            allowed = field.createable if creating else field.updateable
            if not allowed:
                raise _error(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {field.name}. Please check the security settings of this "
                    "field and verify that it is read/write for your profile or permission set.",
                    field.name,
                )
            clean[field.name] = self._coerce(spec, field, raw)
        return clean

    def _coerce(self, spec: ObjectSpec, field: FieldSpec, raw: Any) -> Any:
        if isinstance(raw, dict | list):
            kind = "START_OBJECT" if isinstance(raw, dict) else "START_ARRAY"
            raise _error("JSON_PARSER_ERROR", f"Cannot deserialize instance of {field.type.value} from {kind} value")
        if field.type is FieldType.BOOLEAN:
            if raw is None:
                return False
            if not isinstance(raw, bool):
                raise _error(
                    "JSON_PARSER_ERROR", f"Cannot deserialize instance of boolean from VALUE_STRING value {raw}"
                )
            return raw
        if raw is None or raw == "":
            return None
        text = ("true" if raw else "false") if isinstance(raw, bool) else str(raw)
        if field.type.is_id:
            return self._reference(spec, field, text)
        if field.length and len(text) > field.length:
            raise _error(
                "STRING_TOO_LONG",
                f"{field.label}: data value too large: {text[:40]} (max length={field.length})",
                field.name,
            )
        if field.type is FieldType.EMAIL and "@" not in text:
            raise _error("INVALID_EMAIL_ADDRESS", f"{field.label}: invalid email address: {text}", field.name)
        return text

    def _reference(self, spec: ObjectSpec, field: FieldSpec, text: str) -> str:
        target = object_spec(field.reference_to or "")
        canonical = ids.normalize_id(text)
        if target is None or canonical is None or not canonical.startswith(target.key_prefix):
            raise _error("MALFORMED_ID", f"{field.label}: id value of incorrect type: {text}", field.name)
        referenced = self._tables[target.name].rows.get(canonical)
        if referenced is None:
            raise _error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", field.name)
        if field.name == "OwnerId" and not referenced.get("IsActive"):
            raise _error(
                "INACTIVE_OWNER_OR_USER",
                f"operation performed with inactive user [{canonical}] as owner of {spec.name.lower()}",
                field.name,
            )
        return canonical

    def iter_live(self, spec: ObjectSpec) -> Iterator[Record]:
        """Records not in the recycle bin; hold ``lock`` while iterating."""
        return (r for r in self._tables[spec.name].rows.values() if not r.get("IsDeleted"))
