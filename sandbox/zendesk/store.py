"""The Zendesk stand-in's data: organizations, organization fields and bulk jobs, in memory, thread-safe.

Organizations carry what Zendesk's do (``url``, ``id``, ``name``, ``external_id``, ``domain_names``, ``tags``,
``details``, ``notes``, ``group_id``, ``shared_tickets``, ``shared_comments``, ``organization_fields``,
``created_at``, ``updated_at``); ids are large integers as Zendesk's are. Identity ``i`` of
``sandbox.identities`` is organization ``ORG_BASE + i`` with the company's name, ``external_id`` and domain.
``updated_at`` has whole seconds, as Zendesk's ISO 8601 times do; the incremental export orders by it.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sandbox.identities import company

ORG_BASE = 20_000_000_000
FIELD_BASE = 900_000

JSON = dict[str, Any]


def iso(ts: float) -> str:
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Unknown(KeyError):
    """No such organization."""


class Invalid(ValueError):
    """A write Zendesk would refuse with 422 ``RecordInvalid``."""


class ZendeskStore:
    def __init__(self, base_url: str = "", clock: Callable[[], float] = time.time) -> None:
        self.base_url = base_url
        self.clock = clock
        self._lock = threading.RLock()
        self.orgs: dict[int, JSON] = {}
        self.updated: dict[int, float] = {}
        self.fields: dict[str, JSON] = {}
        self.jobs: dict[str, JSON] = {}
        self._next_id = ORG_BASE + 10_000_000
        self.on_change: Callable[[JSON, list[str]], None] | None = None
        """Called with the organization and its changes (``created``, ``deleted``, ``name``, ``tags``,
        ``external_id``, ``custom_field``, ...) after each write: the webhooks follow it."""

    def _changed(self, org: JSON, changes: list[str]) -> None:
        if changes and self.on_change is not None:
            self.on_change(org, changes)

    # -- organizations --------------------------------------------------------------------------------------

    def _org(self, org_id: int, values: Mapping[str, Any], now: float) -> JSON:
        return {
            "url": f"{self.base_url}/api/v2/organizations/{org_id}.json",
            "id": org_id,
            "name": values["name"],
            "shared_tickets": False,
            "shared_comments": False,
            "external_id": values.get("external_id"),
            "created_at": iso(now),
            "updated_at": iso(now),
            "domain_names": list(values.get("domain_names") or []),
            "details": values.get("details") or "",
            "notes": values.get("notes") or "",
            "group_id": None,
            "tags": list(values.get("tags") or []),
            "organization_fields": {key: None for key in self.fields},
        }

    def create(self, values: Mapping[str, Any], org_id: int | None = None, notify: bool = True) -> JSON:
        with self._lock:
            if org_id is None:
                org_id = self._next_id
                self._next_id += 1
            now = self.clock()
            org = self._org(org_id, values, now)
            org["organization_fields"].update(self._check_fields(values.get("organization_fields") or {}))
            self.orgs[org_id] = org
            self.updated[org_id] = now
            if notify:
                self._changed(self.get(org_id), ["created"])
            return self.get(org_id)

    def seed(self, count: int, start: int) -> list[int]:
        """Identities ``start .. start+count-1`` as organizations (existing ones are left alone)."""
        made = []
        for i in range(start, start + count):
            if ORG_BASE + i in self.orgs:
                continue
            c = company(i)
            self.create(
                {
                    "name": c.name,
                    "external_id": c.external_id,
                    "domain_names": [c.domain],
                    "tags": [f"support-tier-{i % 3 + 1}"],
                },
                ORG_BASE + i,
                notify=False,
            )
            made.append(ORG_BASE + i)
        return made

    def get(self, org_id: int) -> JSON:
        with self._lock:
            org = self.orgs.get(org_id)
            if org is None:
                raise Unknown(org_id)
            return {**org, "organization_fields": dict(org["organization_fields"])}

    def _check_fields(self, values: Mapping[str, Any]) -> JSON:
        unknown = sorted(set(values) - set(self.fields))
        if unknown:
            raise Invalid(f"organization_fields: no such field: {', '.join(unknown)}")
        return dict(values)

    def update(self, org_id: int, values: Mapping[str, Any]) -> tuple[JSON, list[str]]:
        """Apply an update; the organization and the changes it made (``name``, ``tags``, ``external_id``,
        ``custom_field``...) for its webhook events."""
        with self._lock:
            org = self.orgs.get(org_id)
            if org is None:
                raise Unknown(org_id)
            changes = []
            fields = self._check_fields(values.get("organization_fields") or {})
            for key, value in fields.items():
                if org["organization_fields"].get(key) != value:
                    org["organization_fields"][key] = value
                    changes.append("custom_field")
            for key in ("name", "external_id", "domain_names", "tags", "details", "notes"):
                if key in values and org.get(key) != values[key]:
                    org[key] = values[key]
                    changes.append(key)
            if changes:
                now = self.clock()
                org["updated_at"] = iso(now)
                self.updated[org_id] = now
            changed = sorted(set(changes))
            self._changed(self.get(org_id), changed)
            return self.get(org_id), changed

    def delete(self, org_id: int) -> JSON:
        with self._lock:
            org = self.get(org_id)
            del self.orgs[org_id]
            del self.updated[org_id]
            self._changed(org, ["deleted"])
            return org

    def page(self, after: int | None, size: int) -> tuple[list[JSON], int | None]:
        """Organizations by id after ``after``; the next cursor position when there are more."""
        with self._lock:
            ids = sorted(i for i in self.orgs if after is None or i > after)
            chunk = ids[:size]
            return [self.get(i) for i in chunk], (chunk[-1] if len(ids) > size else None)

    def changed_since(self, start_time: int, limit: int) -> tuple[list[JSON], int, bool]:
        """The time-based export: organizations with ``updated_at >= start_time`` ordered by it, ``limit`` of them
        and then the rest of the last one's second (a page never splits a second, so paging cannot loop);
        ``end_time``, the next page's ``start_time``: past that second, but never past the current one (a change
        later in this second is then read again, not lost); and whether that was all."""
        with self._lock:
            ordered = sorted((int(ts), i) for i, ts in self.updated.items() if int(ts) >= start_time)
            chunk = ordered[:limit]
            if chunk:
                last = chunk[-1][0]
                chunk = [item for item in ordered if item[0] <= last]
            orgs = [self.get(i) for _, i in chunk]
            if not chunk:
                return orgs, start_time, True
            end_time = min(chunk[-1][0] + 1, int(self.clock()))
            return orgs, max(end_time, start_time), len(chunk) == len(ordered)

    def backdate(self, org_id: int, when: float) -> None:
        """Set an organization's ``updated_at`` (for tests of the export's paging by time)."""
        with self._lock:
            if org_id not in self.orgs:
                raise Unknown(org_id)
            self.orgs[org_id]["updated_at"] = iso(when)
            self.updated[org_id] = when

    # -- organization fields --------------------------------------------------------------------------------

    def add_field(self, key: str, title: str, kind: str = "text") -> JSON:
        with self._lock:
            if key in self.fields:
                raise Invalid(f"key: {key} is already taken")
            field = {
                "url": f"{self.base_url}/api/v2/organization_fields/{FIELD_BASE + len(self.fields)}.json",
                "id": FIELD_BASE + len(self.fields),
                "key": key,
                "type": kind,
                "title": title,
                "raw_title": title,
                "description": "",
                "raw_description": "",
                "position": len(self.fields),
                "active": True,
                "system": False,
                "regexp_for_validation": None,
                "created_at": iso(self.clock()),
                "updated_at": iso(self.clock()),
            }
            self.fields[key] = field
            for org in self.orgs.values():
                org["organization_fields"].setdefault(key, None)
            return dict(field)

    def list_fields(self) -> list[JSON]:
        with self._lock:
            return [dict(f) for f in self.fields.values()]

    # -- jobs -----------------------------------------------------------------------------------------------

    def queue_job(self, updates: Iterable[tuple[int | None, int, Mapping[str, Any]]], polls: int) -> JSON:
        """A queued ``update_many`` job of ``(id or None, index, values)`` items: it runs at its status read
        number ``polls + 1``."""
        with self._lock:
            job_id = secrets.token_hex(16)
            items = list(updates)
            self.jobs[job_id] = {"id": job_id, "items": items, "polls": polls, "results": None}
            return self.job_status(job_id, read=False)

    def job_status(self, job_id: str, read: bool = True) -> JSON:
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None:
                raise Unknown(job_id)
            total = len(job["items"])
            status = "queued"
            if read:
                if job["polls"] > 0:
                    job["polls"] -= 1
                    status = "working"
                elif job["results"] is None:
                    job["results"] = self._run(job["items"])
            if job["results"] is not None:
                status = "completed"
            return {
                "id": job_id,
                "url": f"{self.base_url}/api/v2/job_statuses/{job_id}.json",
                "job_type": "Bulk Update Organizations",
                "total": total,
                "progress": total if job["results"] is not None else 0,
                "status": status,
                "message": None,
                "results": job["results"],
            }

    def _run(self, items: list[tuple[int | None, int, Mapping[str, Any]]]) -> list[JSON]:
        results = []
        for org_id, index, values in items:
            if org_id is None:
                results.append({"index": index, "error": "OrganizationNotFound", "details": "id is required"})
                continue
            try:
                self.update(org_id, values)
            except Unknown:
                results.append({"index": index, "id": org_id, "error": "OrganizationNotFound", "details": "Not found"})
                continue
            except Invalid as exc:
                results.append({"index": index, "id": org_id, "error": "OrganizationUpdateFailed", "details": str(exc)})
                continue
            results.append({"index": index, "id": org_id, "action": "update", "status": "Updated", "success": True})
        return results
