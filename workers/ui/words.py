"""Words for people: the status page's labels, units, states and times, never a Python key or ``True``.

Every label the page shows for a key of the status data comes from ``LABELS`` (or, for a key it does not know,
from the key itself made readable: ``webhook_ids_waiting`` → "Webhook ids waiting", a ``_s`` suffix read as a
duration). Values are shown with their unit ("Retry after 3 min"), booleans as the state they describe ("PostHog is
not throttling", "Tags are stored"), and every time both relative and absolute ("3 min ago, 2026-12-05 09:30 UTC").
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

NONE = "\u2013"
"""What an absent value shows: an en dash."""

LABELS: dict[str, str] = {
    "webhook_ids_waiting": "Webhook ids waiting",
    "posthog_requests": "PostHog requests still owed",
    "eta_s": "Done in about",
    "plans": "Plans being written",
    "accounts_left": "Accounts left to write",
    "chunks": "Chunks",
    "replay_backoff": "Replay backing off",
    "delay_s": "Retry after",
    "next_in_s": "Next replay in",
    "next_at": "Next replay at",
    "attempts": "Replays that left records parked",
    "blocked_for_s": "Paused for",
    "blocked_until": "Paused until",
    "waits": "Requests told to wait (all workers, ever)",
    "blocks": "429 answers that paused every worker (ever)",
    "age_s": "Age",
    "next_run_in_s": "Next run in",
    "dlq": "Dead letters",
    "dlq_total": "Dead letters in all",
    "total": "In all",
    "oldest": "Oldest",
    "system": "State recorded for",
    "posthog_system": "PostHog state recorded for",
    "posthog_budget": "PostHog request budget",
    "posthog_tags": "PostHog tags",
    "dead_letters": "Dead letters",
    "backlog": "Backlog",
    "used": "Used",
    "left": "Left",
    "limit": "Limit",
    "window": "Window",
    "seconds": "Window length",
}
"""Plain-English labels of the status data's keys."""

STATES: dict[str, tuple[str, str]] = {
    "blocked": ("PostHog is throttling: every worker is paused", "PostHog is not throttling"),
    "dropped": ("Tags are dropped by PostHog (no tagging feature): none are sent", "Tags are stored"),
    "enabled": ("Enabled", "Disabled"),
    "present": ("Cursor set", "No cursor yet: the next run reads everything"),
    "unthrottled": ("No request budget configured: PostHog requests are not paced", "Requests are paced"),
    "dry_run": ("Dry run: nothing written", "Real run"),
}
"""A boolean key → (what it means when true, when false)."""

STATUS_WORDS: dict[str, str] = {
    "succeeded": "succeeded",
    "partial": "partial",
    "failed": "failed",
    "throttled": "paused by PostHog's budget (continues)",
    "skipped": "skipped (another run was in progress)",
    "running": "running",
}


def label(key: Any) -> str:
    """The label of a status key: ``LABELS``, else the key made readable (``foo_bar_s`` → "Foo bar")."""
    text = str(key)
    if text in LABELS:
        return LABELS[text]
    words = text.removesuffix("_s").replace("_", " ").strip()
    return words[:1].upper() + words[1:] if words else text


def state(key: Any, value: Any) -> str:
    """A boolean as the state it describes (``STATES``), else "yes" / "no"."""
    true, false = STATES.get(str(key), ("yes", "no"))
    return true if value else false


def duration(seconds: Any) -> str:
    """``45 s``, ``3 min``, ``2.5 h``, ``3 days``: a span of time a person reads at a glance."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return NONE
    s = abs(float(seconds))
    if s < 60:
        return f"{s:.0f} s" if s >= 10 or s == int(s) else f"{s:.1f} s"
    if s < 3600:
        return f"{s / 60:.0f} min"
    if s < 2 * 86400:
        hours = s / 3600
        return f"{hours:.0f} h" if hours >= 10 else f"{hours:.1f} h"
    return f"{s / 86400:.0f} days"


def epoch_of(value: Any) -> float | None:
    """Epoch seconds from an epoch number or an ISO 8601 text (``2026-12-03T03:50:55Z``); None when neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    return None


def absolute(value: Any) -> str:
    """``2026-12-05 09:30:12 UTC``."""
    at = epoch_of(value)
    if at is None:
        return NONE if not value else str(value)
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(value: Any) -> str:
    """``2026-12-05T09:30:12Z``: a time for machines (``<time datetime>``)."""
    at = epoch_of(value)
    return "" if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def relative(value: Any, now: float | None = None) -> str:
    """``3 min ago``, ``in 2 h``, ``just now``."""
    at = epoch_of(value)
    if at is None:
        return NONE
    delta = (time.time() if now is None else now) - at
    if abs(delta) < 1:
        return "just now"
    return f"{duration(delta)} ago" if delta > 0 else f"in {duration(-delta)}"


def when(value: Any, now: float | None = None) -> str:
    """Both: ``3 min ago (2026-12-05 09:30:12 UTC)``; ``never`` for nothing."""
    if epoch_of(value) is None:
        return "never" if not value else str(value)
    return f"{relative(value, now)} ({absolute(value)})"


def count(n: Any, one: str, many: str | None = None) -> str:
    """``1 record``, ``268 records``, thousands separated."""
    number = int(n or 0)
    return f"{number:,} {one if number == 1 else (many or one + 's')}"


def run_status(run: dict[str, Any]) -> str:
    """A run's status in words; ``partial`` always with its count: ``partial: 268 of 314 records failed``."""
    status = str(run.get("status") or "")
    if status == "partial":
        counts = run.get("counts") or {}
        failed, seen = int(counts.get("failed") or 0), int(counts.get("seen") or 0)
        of = f" of {seen:,}" if seen >= failed else ""
        noun = "record" if failed == 1 and not of else "records"
        return f"partial: {failed:,}{of} {noun} failed"
    return STATUS_WORDS.get(status, status or NONE)


def human(key: Any, value: Any) -> str:
    """A scalar of the status data under ``key`` in words: booleans as states, ``*_s`` as durations, epochs and
    ISO times as times, numbers with separators."""
    name = str(key)
    if isinstance(value, bool):
        return state(name, value)
    if value is None:
        return NONE
    if name.endswith("_at") or name.endswith("_until") or name in ("since", "at"):
        return when(value)
    if name.endswith("_s") and isinstance(value, int | float):
        return duration(value)
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
