"""Turn a CRM owner's email into a PostHog role ``{id, email}`` through the organisation's members (cached)."""

from __future__ import annotations

import time

from sync.posthog.client import PostHogClient
from sync.posthog.models import Role


class MemberDirectory:
    """Email → ``Role`` for the organisation's members, loaded once and refreshed after ``ttl_s``.

    An unknown email returns None (and triggers at most one refresh per ``ttl_s``): roles are never invented.
    """

    def __init__(self, client: PostHogClient, ttl_s: float = 600.0) -> None:
        self._client = client
        self._ttl_s = ttl_s
        self._by_email: dict[str, Role] = {}
        self._loaded_at: float | None = None

    def _load(self) -> None:
        self._by_email = {m.user.email.strip().lower(): m.role() for m in self._client.iter_members()}
        self._loaded_at = time.monotonic()

    def _stale(self) -> bool:
        return self._loaded_at is None or time.monotonic() - self._loaded_at > self._ttl_s

    def role_for(self, email: str) -> Role | None:
        key = email.strip().lower()
        if self._stale():
            self._load()
        return self._by_email.get(key)

    def roles_for(self, emails: set[str]) -> dict[str, Role]:
        """Resolve several emails with at most one refresh."""
        if self._stale():
            self._load()
        return {e: r for e in emails if (r := self._by_email.get(e.strip().lower()))}
