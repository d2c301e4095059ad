"""Run reports: what one run did, in a stable shape for scripts (``--json``), the ledger and the CLI."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sync.errors import BadRecordError

STATUSES = ("running", "succeeded", "partial", "failed", "throttled", "skipped")
"""A run's status: ``partial`` is a run that finished but left ``counts["failed"]`` records unapplied."""

COUNT_KEYS = ("seen", "created", "updated", "unchanged", "unlinked", "pushed", "conflicts", "failed", "superseded")


@dataclass
class PlannedChange:
    """One field a dry run would change (or a real run changed) on one account."""

    account: str  # account id, or "new:<name>" for an account that would be created
    field: str
    before: Any
    after: Any
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "field": self.field,
            "before": self.before,
            "after": self.after,
            "source": self.source,
        }


@dataclass
class RunReport:
    source: str
    stream: str
    mode: str
    dry_run: bool = False
    status: str = "running"
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_KEYS, 0))
    errors: list[dict[str, str | None]] = field(default_factory=list)
    review: list[dict[str, Any]] = field(default_factory=list)
    plan: list[PlannedChange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    state_reset: list[dict[str, Any]] = field(default_factory=list)  # state dropped: recorded for another system
    reason: str | None = None
    max_errors_kept: int = 1000

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def error(self, error: BadRecordError, failed: bool = True) -> None:
        """Report a bad record or field; ``failed`` counts the record as not applied."""
        if failed:
            self.add("failed")
        if len(self.errors) < self.max_errors_kept:
            self.errors.append(error.as_report())

    def finish(self, status: str = "succeeded", reason: str | None = None) -> RunReport:
        """End the run. A run that would succeed but left records unapplied (parked for replay, or refused by a
        CRM on push-back) ends ``partial``, its reason saying how many: never ``succeeded``."""
        failed = self.counts.get("failed", 0)
        if status == "succeeded" and failed:
            status = "partial"
            reason = reason or partial_reason(failed, self.counts.get("seen", 0))
        self.status = status
        self.reason = reason
        self.finished_at = time.time()
        return self

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source,
            "stream": self.stream,
            "mode": self.mode,
            "dry_run": self.dry_run,
            "status": self.status,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at) if self.finished_at else None,
            "counts": dict(self.counts),
            "errors": list(self.errors),
            "notes": list(self.notes),
        }
        if self.reason:
            out["reason"] = self.reason
        if self.state_reset:
            out["state_reset"] = list(self.state_reset)
        if self.review:
            out["review"] = list(self.review)
        if self.dry_run:
            out["plan"] = [p.as_dict() for p in self.plan]
        return out


def partial_reason(failed: int, seen: int) -> str:
    """``268 of 314 records failed``: the reason a ``partial`` run carries (``seen`` 0 when the run did not read)."""
    of = f" of {seen}" if seen >= failed else ""
    noun = "record" if failed == 1 and not of else "records"
    return f"{failed}{of} {noun} failed (see errors; parked ones can be replayed)"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
