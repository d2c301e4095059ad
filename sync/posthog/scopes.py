"""Start-up check that the PostHog key holds every scope the worker needs, naming the first one missing.

PostHog has no endpoint that lists a personal API key's scopes to its holder, so each scope is probed with the
cheapest request that needs it and changes nothing:

| scope | probe | answer when the key has it |
|---|---|---|
| ``account:read`` | ``GET accounts/?limit=1`` | 200 |
| ``account:write`` | ``PATCH accounts/<nil uuid>/`` with ``{}`` | 404 (no such account) |
| ``usage_metric:read`` | ``GET groups_types/0/metrics/?limit=1`` | 200 |
| ``usage_metric:write`` | ``PATCH groups_types/0/metrics/<nil uuid>/`` with ``{}`` | 404 (no such metric) |
| ``project:read`` | ``GET projects/<id>/`` (its ``organization``, kept by the client) | 200 |
| ``organization_member:read`` | ``GET organizations/<that id>/members/?limit=1`` | 200 |

PostHog (``APIScopePermission``, and the stand-in after it) checks scopes before it looks the object up, so a write
probe answers 403 ``API key missing required scope 'account:write'`` without the scope and 404 with it: the nil
UUID never names a real object, and an empty PATCH would change nothing even if it did. A key with ``*`` or a
legacy key without scopes passes every probe. Six requests, once per process start.
"""

from __future__ import annotations

from collections.abc import Callable

from sync.errors import ConfigError
from sync.posthog.client import PostHogClient
from sync.posthog.errors import PostHogForbidden, PostHogNotFound, PostHogValidationError

REQUIRED_SCOPES = (
    "account:read",
    "account:write",
    "usage_metric:read",
    "usage_metric:write",
    "project:read",
    "organization_member:read",
)
NIL_UUID = "00000000-0000-0000-0000-000000000000"


def _probes(client: PostHogClient) -> dict[str, Callable[[], object]]:
    return {
        "account:read": lambda: client.list_accounts(limit=1),
        "account:write": lambda: client.update_account(NIL_UUID),  # PATCH {}: changes nothing
        "usage_metric:read": lambda: client.list_usage_metrics(0, limit=1),
        "usage_metric:write": lambda: client.update_usage_metric(0, NIL_UUID, {}),
        "project:read": client.organization_id,
        "organization_member:read": lambda: next(client.iter_members(page_size=1), None),
    }


def missing_scopes(client: PostHogClient) -> list[str]:
    """The required scopes the client's key lacks (empty when it has them all).

    Other errors (401 for a bad key, a project the key cannot see, PostHog unreachable) are raised as they come:
    they are not a scope problem and their own messages say what is wrong."""
    missing = []
    for scope, probe in _probes(client).items():
        try:
            probe()
        except (PostHogNotFound, PostHogValidationError):
            continue  # past the scope check: the key holds the scope
        except PostHogForbidden as exc:
            if exc.scope is None:
                raise
            named = exc.scope if exc.scope in REQUIRED_SCOPES else scope  # e.g. members need the project first
            if named not in missing:
                missing.append(named)
    return missing


def require_scopes(client: PostHogClient) -> None:
    """Raise ``ConfigError`` naming every missing scope (``posthog.personal_api_key``), else return."""
    missing = missing_scopes(client)
    if missing:
        raise ConfigError(
            "posthog.personal_api_key",
            f"the key lacks the scope{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(crmsync needs {', '.join(REQUIRED_SCOPES)})",
        )
