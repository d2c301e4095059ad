"""What changes between the three generations of PostHog's accounts API (``PostHogSandboxConfig.generation``).

Read in PostHog's ``products/customer_analytics/backend/`` (cited in ``docs/posthog.md``, "Three generations of
the accounts API"):

- ``seed``: the public docs page. Role keys ``csm``/``account_executive``/``account_owner`` live in ``properties``.
- ``transitional`` (migration 0013, 2026-07-03): the relationship tables exist, but the JSON role keys stay the
  source of truth; every account write copies them into relationship rows (``sync_from_account_properties``),
  and a role key absent from the JSON ends that relationship. Custom property definitions are served.
- ``current`` (after the cutover): ``models/account.py``'s ``AccountProperties`` forbids the role keys (a 400
  such as ``"csm: Extra inputs are not permitted"``) and hides old stored ones on read (``RETIRED_ROLE_KEYS``);
  the role list filters are gone; accounts carry ``slack_summary_cadence``, ``churned_at`` and ``ignored_at``;
  a view's own 404 is ``{"detail": "Not found."}``; custom property values are served.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from sandbox.posthog.clock import stamp_of
from sandbox.posthog.config import Generation
from sandbox.posthog.errors import ApiError, validation_error
from sandbox.posthog.validation import (
    MISSING,
    ROLE_KEYS,
    AccountPropertiesModel,
    check_json_characters,
    choice_field,
    validate_account,
)

SLACK_SUMMARY_CADENCES = ("daily", "weekly", "monthly")
MATCHING_KEYS = ("email_domains", "known_emails")
"""Properties only an organisation admin may change (``allow_matching_updates`` in ``views.py``)."""
CURRENT_ONLY_FIELDS = ("slack_summary_cadence", "churned_at", "ignored_at")
DATETIME_FORMAT_ERROR = (
    "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
)


class CurrentAccountProperties(BaseModel):
    """``AccountProperties`` of current PostHog: no role keys; email matching lists and more link keys."""

    model_config = ConfigDict(extra="forbid")

    email_domains: list[str] = []
    known_emails: list[str] = []
    stripe_customer_id: str | None = None
    hubspot_deal_id: str | None = None
    billing_id: str | None = None
    sfdc_id: str | None = None
    zendesk_id: str | None = None
    slack_channel_id: str | None = None
    usage_dashboard_link: str | None = None
    metabase_link: str | None = None


_PROPERTY_MODELS: dict[Generation, type[BaseModel]] = {
    "seed": AccountPropertiesModel,
    "transitional": AccountPropertiesModel,
    "current": CurrentAccountProperties,
}


def has_relationships(generation: Generation) -> bool:
    return generation != "seed"


def roles_in_json(generation: Generation) -> bool:
    return generation != "current"


def validate_properties(value: Any, generation: Generation) -> dict[str, Any]:
    """``properties``: null → ``{}``; an object checked by this generation's pydantic model, stored as sent."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise validation_error("properties", "invalid", "properties must be a JSON object.")
    try:
        _PROPERTY_MODELS[generation].model_validate(value)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(part) for part in first["loc"])
        raise validation_error("properties", "invalid", f"{path}: {first['msg']}") from None
    check_json_characters("properties", value)
    return value


def _datetime_field(value: Any, attr: str) -> int | None:
    """DRF ``DateTimeField(allow_null=True)``: ISO 8601; a naive time is UTC (PostHog's ``TIME_ZONE``)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise validation_error(attr, "invalid", DATETIME_FORMAT_ERROR)
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise validation_error(attr, "invalid", DATETIME_FORMAT_ERROR) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    if not dt.datetime(1970, 1, 2, tzinfo=dt.UTC) <= parsed <= dt.datetime(9999, 12, 30, tzinfo=dt.UTC):
        raise validation_error(attr, "invalid", DATETIME_FORMAT_ERROR)
    return stamp_of(parsed)


def validate_account_body(data: object, *, partial: bool, generation: Generation) -> dict[str, Any]:
    """The account serializer of ``generation``: the shared fields, its ``properties`` model, and on current
    ``slack_summary_cadence`` and ``churned_at`` (``ignored_at`` is read-only there: dropped like any unknown key).
    """
    raw_properties = data.get("properties", MISSING) if isinstance(data, dict) else MISSING
    body = {k: v for k, v in data.items() if k != "properties"} if isinstance(data, dict) else data
    out = validate_account(body, partial=partial)
    if raw_properties is not MISSING:
        out["properties"] = validate_properties(raw_properties, generation)
    if generation == "current" and isinstance(data, dict):
        if "slack_summary_cadence" in data:
            cadence = data["slack_summary_cadence"]
            out["slack_summary_cadence"] = (
                None if cadence is None else choice_field(cadence, "slack_summary_cadence", SLACK_SUMMARY_CADENCES)
            )
        if "churned_at" in data:
            out["churned_at"] = _datetime_field(data["churned_at"], "churned_at")
    return out


def matching_lists_changed(stored: Mapping[str, Any], sent: Mapping[str, Any]) -> bool:
    """Whether a properties write changes ``email_domains`` or ``known_emails`` (missing counts as ``[]``)."""
    return any((stored.get(key) or []) != (sent.get(key) or []) for key in MATCHING_KEYS)


def shown(account: dict[str, Any], generation: Generation) -> dict[str, Any]:
    """An account in this generation's response shape: current hides stored role keys, older ones lack the
    current-only fields."""
    if generation == "current":
        properties = {k: v for k, v in account["properties"].items() if k not in ROLE_KEYS}
        return {**account, "properties": properties}
    return {k: v for k, v in account.items() if k not in CURRENT_ONLY_FIELDS}


def forbidden_matching_update() -> ApiError:
    """``ResourceForbiddenError`` → DRF ``PermissionDenied()`` with its default message."""
    return ApiError(
        403, "authentication_error", "permission_denied", "You do not have permission to perform this action."
    )
