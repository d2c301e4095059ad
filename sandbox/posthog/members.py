"""The sandbox organisation's members, served by ``GET /api/organizations/{@current|<id>}/members/``.

Members come from the config (and ``POST /_sandbox/members``); they live in memory, not in SQLite, and a
reset goes back to the configured list. Ids, uuids and dates are derived from the user id, so a member
looks the same after every restart. Listed like PostHog: by ``level``, then newest ``joined_at`` first.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.posthog.clock import iso, stamp_of
from sandbox.posthog.config import Member

MEMBER_LEVEL = 1
_NAMESPACE = uuid.UUID("6f1f6a0e-5b5e-4c1e-9a53-0d2b6a0b7c11")
_JOINED_BASE = datetime(2024, 1, 1, tzinfo=UTC)


def member_out(member: Member, position: int) -> dict[str, Any]:
    """One membership in PostHog's shape; ``position`` (order of addition) sets ``joined_at``."""
    joined = iso(stamp_of(_JOINED_BASE + timedelta(minutes=position)))
    return {
        "id": str(uuid.uuid5(_NAMESPACE, f"membership:{member.id}")),
        "user": {
            "id": member.id,
            "uuid": str(uuid.uuid5(_NAMESPACE, f"user:{member.id}")),
            "distinct_id": str(uuid.uuid5(_NAMESPACE, f"distinct:{member.id}")),
            "first_name": member.first_name,
            "last_name": member.last_name,
            "email": member.email,
            "is_email_verified": True,
        },
        "level": member.level,
        "joined_at": joined,
        "updated_at": joined,
        "is_2fa_enabled": False,
        "has_social_auth": False,
    }


class MemberDirectory:
    """Thread-safe list of members, keyed by user id (a re-added id replaces its entry in place)."""

    def __init__(self, members: Iterable[Member], owner: Member | None = None) -> None:
        self.owner = owner
        self._configured = ((owner,) if owner is not None else ()) + tuple(members)
        self._lock = threading.Lock()
        self._members: dict[int, Member] = {m.id: m for m in self._configured}

    def put(self, member: Member) -> None:
        with self._lock:
            self._members[member.id] = member

    def reset(self) -> None:
        with self._lock:
            self._members = {m.id: m for m in self._configured}

    def get(self, user_id: int) -> Member | None:
        with self._lock:
            return self._members.get(user_id)

    def listing(self) -> list[dict[str, Any]]:
        """Every membership ordered as PostHog's ``OrganizationMemberViewSet``: ``level``, then newest
        ``joined_at`` first."""
        with self._lock:
            members = list(enumerate(self._members.values()))
        members.sort(key=lambda item: (item[1].level, -item[0]))
        return [member_out(m, position) for position, m in members]
