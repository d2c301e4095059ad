"""Configuration of the PostHog stand-in: projects, personal API keys, organisation members.

The CLI builds these from ``--key KEY=SCOPES[@PROJECT,...]``, ``--member ID:EMAIL`` and ``--throttle N/SECONDS``
specs through ``parse_key_spec``, ``parse_member_spec`` and ``throttle.parse_throttle_spec``; tests build them
directly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from sandbox.posthog.throttle import ThrottleRate

Generation = Literal["seed", "transitional", "current"]
GENERATIONS: tuple[Generation, ...] = ("seed", "transitional", "current")
"""PostHog's accounts API as it was served over time (``docs/posthog.md``, "Three generations of the accounts
API"): ``seed`` the public docs page, ``transitional`` from migration 0013 (2026-07-03, roles mirrored into
relationships), ``current`` after the relationship cutover (roles refused in ``properties``)."""

LEVEL_MEMBER = 1
LEVEL_ADMIN = 8
LEVEL_OWNER = 15
"""PostHog's ``OrganizationMembership.Level`` values."""
SANDBOX_ORGANIZATION_ID = "0190f3a5-7c00-7000-8000-000000000001"

SANDBOX_USER_ID = 1
"""The user that owns every configured key: ``created_by`` of everything created through the API."""

_SCOPE_RE = re.compile(r"^[a-z_]+:(read|write)$")
_KEY_RE = re.compile(r"^\S+$")


@dataclass(frozen=True)
class ApiKey:
    """A personal API key: its secret, its scopes (``*``, ``account:read``...), optionally its projects.

    ``projects=None`` means every project; empty ``scopes`` is a legacy key that may do anything (as in
    PostHog).
    """

    key: str
    scopes: tuple[str, ...]
    projects: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Member:
    """A member of the sandbox organisation: the user id that account role objects carry, and the email."""

    id: int
    email: str
    first_name: str = ""
    last_name: str = ""
    level: int = LEVEL_MEMBER


KEY_OWNER = Member(SANDBOX_USER_ID, "owner@posthog-sandbox.test", "Sandbox", "Owner", LEVEL_OWNER)
"""The user every configured key belongs to: an organisation owner unless ``key_owner_level`` says otherwise."""


@dataclass(frozen=True)
class PostHogSandboxConfig:
    """What one stand-in serves: its SQLite file (or ``:memory:``), project ids, keys and members, and the
    throttles every personal API key is held to (``()``: off; ``throttle.POSTHOG_RATES`` are PostHog's own)."""

    db_path: str = ":memory:"
    projects: tuple[int, ...] = (1,)
    keys: tuple[ApiKey, ...] = (ApiKey("phx_sandbox", ("*",)),)
    members: tuple[Member, ...] = ()
    throttle: tuple[ThrottleRate, ...] = ()
    tagging: bool = True  # False: an organisation without PostHog's paid tagging feature (tags dropped, [] shown)
    generation: Generation = "current"
    proxy_retry_after: bool = False  # True: act as a proxy in front of PostHog that adds Retry-After to a 429
    key_owner_level: int = LEVEL_OWNER  # the keys' user's membership level (8+ may change email matching lists)
    organization_id: str = SANDBOX_ORGANIZATION_ID

    def __post_init__(self) -> None:
        if self.generation not in GENERATIONS:
            raise ValueError(f"PostHogSandboxConfig.generation must be one of {', '.join(GENERATIONS)}")

    @property
    def key_owner(self) -> Member:
        return Member(KEY_OWNER.id, KEY_OWNER.email, KEY_OWNER.first_name, KEY_OWNER.last_name, self.key_owner_level)


def parse_key_spec(spec: str) -> ApiKey:
    """``"phx_p2=*@2,3"`` → ``ApiKey("phx_p2", ("*",), (2, 3))``; scopes comma-separated.

    Raises ``ValueError`` naming the spec when it is malformed.
    """
    key, sep, rest = spec.partition("=")
    if not sep or not key or not _KEY_RE.match(key):
        raise ValueError(f"bad key spec {spec!r}: expected KEY=SCOPES[@PROJECT,...]")
    scopes_part, at, projects_part = rest.partition("@")
    scopes = tuple(s.strip() for s in scopes_part.split(",") if s.strip())
    if not scopes:
        raise ValueError(f"bad key spec {spec!r}: no scopes (use * for all)")
    for scope in scopes:
        if scope != "*" and not _SCOPE_RE.match(scope):
            raise ValueError(f"bad key spec {spec!r}: scope {scope!r} is not * or <object>:read|write")
    projects: tuple[int, ...] | None = None
    if at:
        try:
            projects = tuple(int(p) for p in projects_part.split(","))
        except ValueError:
            raise ValueError(f"bad key spec {spec!r}: projects must be integers") from None
    return ApiKey(key=key, scopes=scopes, projects=projects)


def parse_member_spec(spec: str) -> Member:
    """``"7:ana@example.com"`` → ``Member(7, "ana@example.com")``.

    Raises ``ValueError`` naming the spec when it is malformed.
    """
    user_id, sep, email = spec.partition(":")
    if not sep or "@" not in email or not email.strip():
        raise ValueError(f"bad member spec {spec!r}: expected ID:EMAIL")
    try:
        number = int(user_id)
    except ValueError:
        raise ValueError(f"bad member spec {spec!r}: ID must be an integer") from None
    return Member(id=number, email=email.strip())
