"""How every run ends: one scope that finishes its reports and records them, and the cursors runs advance.

Every run (``SyncEngine.run``, ``refresh``, ``replay_dead_letters``, ``reconcile_deletes``, ``reconcile_accounts``,
``push_back_pass``, a plan's staging) opens ``reported`` around its work. Leaving it normally, each report still
running finishes ``succeeded`` (``partial`` when it left records unapplied); a ``FatalError`` ends it ``failed`` with
the reason and stops there; a retryable error (a throttle among them: ``THROTTLES``) propagates, so the task is
re-queued. Either way the reports are recorded in the runs stream, except a dry run's (it wrote nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sync.connector import Connector, Cursor
from sync.errors import FatalError, RetryableError
from sync.ledger import Ledger
from sync.posthog.errors import PostHogRateLimited
from sync.ratelimit import BudgetExhausted
from sync.report import RunReport

THROTTLES = (PostHogRateLimited, BudgetExhausted)
"""Errors that mean "PostHog's budget is spent for now": they stop a run (re-queued later), never park a record."""


def record(ledger: Ledger, report: RunReport) -> RunReport:
    """Add a finished report to the runs stream; a dry run's is not added (``workers/dry_runs.py`` keeps it)."""
    if not report.dry_run:
        ledger.append_run(report.as_dict())
    return report


@contextmanager
def reported(
    ledger: Ledger,
    reports: RunReport | list[RunReport],
    retryable: bool = False,
    on_error: Callable[[], object] | None = None,
) -> Iterator[None]:
    """The scope of one run. ``reports``: its report, or a list the run fills as it goes (a plan's streams).

    A ``FatalError`` ends the reports still running ``failed`` and is not raised further. A retryable error
    propagates; with ``retryable``, the reports still running first end ``throttled`` (``THROTTLES``) or ``failed``
    and are recorded, else they are left unrecorded (the retry records its own). ``on_error`` runs first on either
    (a plan releases its locks and drops what it staged)."""
    group = reports if isinstance(reports, list) else [reports]
    try:
        yield
    except FatalError as exc:
        if on_error is not None:
            on_error()
        _end(group, "failed", str(exc))
    except RetryableError as exc:
        if on_error is not None:
            on_error()
        if retryable:
            if isinstance(exc, THROTTLES):
                _end(group, "throttled", f"PostHog budget spent ({exc}); continues from its cursor when re-queued")
            else:
                _end(group, "failed", f"retryable: {exc}")
            for report in group:
                record(ledger, report)
        raise
    else:
        _end(group, "succeeded")
    for report in group:
        record(ledger, report)


def _end(reports: list[RunReport], status: str, reason: str | None = None) -> None:
    for report in reports:
        if report.status == "running":
            report.finish(status, reason)


def committed_cursor(ledger: Ledger, connector: Connector, stream: str) -> Cursor | None:
    """The cursor of ``stream`` the last committed page left, None before the first."""
    raw = ledger.get_cursor(connector.source, stream)
    return connector.cursor_type.load(raw) if raw else None


def advance_cursor(ledger: Ledger, connector: Connector, stream: str, cursor: Cursor) -> None:
    """Store ``cursor`` unless it would move the committed one backwards."""
    current = committed_cursor(ledger, connector, stream)
    if current is None or cursor.sort_key() >= current.sort_key():
        ledger.set_cursor(connector.source, stream, cursor.dump())
