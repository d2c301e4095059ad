"""Which generation of PostHog's accounts API a server speaks, found once per PostHog system and remembered.

PostHog's ``products/customer_analytics/backend/`` moved in three steps (docs/posthog.md has the table):

- ``seed``: roles (``csm``, ``account_executive``, ``account_owner``) live in the account's ``properties``;
  there are no relationship routes.
- ``transitional`` (migration ``0013_relationships``): the relationship tables and their routes exist, and the
  JSON role keys are still accepted and are the source of truth (each write is mirrored into relationships).
- ``current``: the role keys are refused with a 400 on ``properties``; roles live on relationship endpoints only.
  The same servers answer a 404 with exactly ``{"detail": "Not found."}`` instead of drf-exceptions-hog's
  ``{type, code, detail, attr}``.

``detect`` asks at most two questions, both reads that change nothing:

1. ``GET /api/projects/:id/account_relationship_definitions/?limit=100``: a 404 means the route is not served:
   ``seed`` (one request). Its answer is kept: the definitions are what ``sync.roles`` would list next anyway.
2. ``GET /api/environments/:id/accounts/<nil uuid>/``: the 404 body tells ``current`` (``{"detail"}`` only, no
   ``code``) from ``transitional``.

The answer is stored with the PostHog system's identity in ``<ns>:system:posthog`` (``sync.state``), so each
process reads it from Redis and sends nothing; a PostHog of another identity is a new record and is detected
afresh. A server that refuses role keys on a write is ``current`` whatever the probe said (a proxy may rewrite
404 bodies): ``Generations.refused_roles`` re-detects once and settles on ``current``, so a record is never parked
for that refusal again and again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from sync.posthog.errors import PostHogError, PostHogForbidden, PostHogNotFound, PostHogValidationError
from sync.posthog.models import ROLE_KEYS

NIL_UUID = "00000000-0000-0000-0000-000000000000"


class Generation(StrEnum):
    SEED = "seed"
    TRANSITIONAL = "transitional"
    CURRENT = "current"


class Caller(Protocol):
    project_id: int

    def call(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
    ) -> Any: ...


class SystemRecords(Protocol):
    def system_record(self, name: str) -> dict[str, Any] | None: ...

    def note_system(self, name: str, identity: str, **facts: Any) -> bool: ...


def definitions_path(project_id: int) -> str:
    return f"/api/projects/{project_id}/account_relationship_definitions/"


@dataclass
class Detection:
    """What ``detect`` found: the generation, the requests it cost, and the relationship definitions it read."""

    generation: Generation
    requests: int
    definitions: list[dict[str, Any]] | None = None
    note: str = ""


def detect(client: Caller) -> Detection:
    """Probe the server (at most two reads); see the module docstring."""
    try:
        answer = client.call("GET", definitions_path(client.project_id), params={"limit": "100"})
    except PostHogNotFound:
        return Detection(Generation.SEED, 1, note="no relationship routes: roles live in properties")
    except PostHogForbidden as exc:
        if exc.scope is not None:
            raise
        # The product was flag-gated at PostHog (COMPROMISES.md): a route it has not enabled is refused.
        return Detection(Generation.SEED, 1, note=f"relationship routes refused ({exc.detail}): roles in properties")
    results = answer.get("results") if isinstance(answer, dict) else answer
    definitions = [d for d in results if isinstance(d, dict)] if isinstance(results, list) else []
    try:
        client.call("GET", f"/api/environments/{client.project_id}/accounts/{NIL_UUID}/")
    except PostHogNotFound as exc:
        current = exc.code is None  # {"detail": "Not found."} alone: the current server's 404
        generation = Generation.CURRENT if current else Generation.TRANSITIONAL
        return Detection(generation, 2, definitions, note=f"404 body {'without' if current else 'with'} a code")
    raise PostHogError("PostHog answered the nil account id: cannot tell its generation")  # pragma: no cover


def refuses_role_keys(exc: PostHogError) -> bool:
    """Whether a 400 says the server refuses role keys in ``properties`` (what current servers answer:
    "csm: Extra inputs are not permitted", or the serializer's "... live on account relationships ...")."""
    if not isinstance(exc, PostHogValidationError):
        return False
    detail = (exc.detail or "").lower()
    if exc.attr not in (None, "properties") and not (exc.attr or "").startswith(ROLE_KEYS):
        return False
    names_a_role = any(key in detail for key in ROLE_KEYS)
    return names_a_role and any(word in detail for word in ("extra inputs", "unknown", "relationship", "not permitted"))


@dataclass
class Generations:
    """The generation of one PostHog system: from this process's memory, else the system record, else ``detect``.

    ``requests`` counts what this process spent on detection (at most two per detection; a re-detection after a
    refused write happens at most once per process)."""

    client: Caller
    records: SystemRecords
    identity: str
    requests: int = 0
    notes: list[str] = field(default_factory=list)
    _generation: Generation | None = None
    _definitions: list[dict[str, Any]] | None = None
    _redetected: bool = False

    def get(self) -> Generation:
        if self._generation is None:
            record = self.records.system_record("posthog")
            known = str(record.get("generation")) if record and record.get("id") == self.identity else ""
            self._generation = Generation(known) if known in set(Generation) else self._detect()
        return self._generation

    @property
    def relationships(self) -> bool:
        """Whether roles live on relationship endpoints (``current``)."""
        return self.get() is Generation.CURRENT

    def take_definitions(self) -> list[dict[str, Any]] | None:
        """The definitions detection read (once; None when it read none in this process)."""
        found, self._definitions = self._definitions, None
        return found

    def refused_roles(self) -> bool:
        """A write with role keys was refused: re-detect (once per process) and settle on ``current``.
        True when the generation changed (the caller retries the write once), False when it already was current."""
        if self.get() is Generation.CURRENT:
            return False
        was = self._generation
        if not self._redetected:
            self._redetected = True
            self._detect()
        if self._generation is not Generation.CURRENT:
            self._store(Generation.CURRENT, "a write with role keys was refused with a 400")
        self.notes.append(f"PostHog refused role keys in properties: {was} → current (roles go to relationships)")
        return True

    def _detect(self) -> Generation:
        found = detect(self.client)
        self.requests += found.requests
        self._definitions = found.definitions
        self._store(found.generation, found.note)
        return found.generation

    def _store(self, generation: Generation, why: str) -> None:
        self._generation = generation
        self.records.note_system(
            "posthog", self.identity, generation=generation.value, detected=why, generation_at=time.time()
        )
