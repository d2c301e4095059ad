"""Zendesk webhooks: signature verification and organization events.

A Zendesk webhook subscribed to organization events posts one event per delivery, its body signed with the
webhook's signing secret: ``X-Zendesk-Webhook-Signature`` is ``base64(HMAC-SHA256(secret, timestamp + body))``,
where ``timestamp`` is the ``X-Zendesk-Webhook-Signature-Timestamp`` header as sent. A delivery is accepted only
with a valid signature (compared in constant time) and a timestamp within ``webhook_tolerance_s`` of now (the
replay window). The body: ``{"type": "zen:event-type:organization.<change>", "id": <event uuid>, "subject":
"zen:organization:<id>", "time": ..., "detail": {"id": "<id>", ...}, "event": {...}}``; every organization event
refreshes that organization by id (``organization.deleted`` as a delete).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

from sync.connector import EventKind, MalformedWebhook, WebhookEvent, WebhookRejected, WebhookRequest

SIGNATURE_HEADER = "X-Zendesk-Webhook-Signature"
TIMESTAMP_HEADER = "X-Zendesk-Webhook-Signature-Timestamp"
EVENT_PREFIX = "zen:event-type:organization."
EVENTS = frozenset(
    {
        "zen:event-type:organization.created",
        "zen:event-type:organization.custom_field_changed",
        "zen:event-type:organization.deleted",
        "zen:event-type:organization.external_id_changed",
        "zen:event-type:organization.name_changed",
        "zen:event-type:organization.tags_changed",
    }
)
"""Zendesk's organization event types (developer.zendesk.com, webhooks, organization events)."""
SUBJECT_PREFIX = "zen:organization:"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature Zendesk sends for ``body`` at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def timestamp_seconds(value: str) -> float | None:
    """The signed timestamp in epoch seconds: ISO 8601 (``2026-12-05T12:00:00Z``), or epoch seconds."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.timestamp() if when.tzinfo is not None else None


def verify(request: WebhookRequest, secret: str | None, tolerance_s: int, now: float) -> None:
    """Raise ``WebhookRejected`` unless the delivery is signed with ``secret`` and fresh."""
    if not secret:
        raise WebhookRejected("zendesk: no webhook_secret is configured")
    signature = request.header(SIGNATURE_HEADER)
    stamp = request.header(TIMESTAMP_HEADER)
    if not signature or not stamp:
        raise WebhookRejected("zendesk: missing signature or timestamp header")
    when = timestamp_seconds(stamp)
    if when is None:
        raise WebhookRejected("zendesk: unreadable signature timestamp")
    if abs(now - when) > tolerance_s:
        raise WebhookRejected("zendesk: stale or future signature timestamp")
    if not hmac.compare_digest(sign(secret, stamp, request.body), signature.strip()):
        raise WebhookRejected("zendesk: bad signature")


def parse(request: WebhookRequest) -> list[WebhookEvent]:
    """The organization event of a verified delivery (other event types: none)."""
    try:
        body: Any = json.loads(request.body)
    except ValueError as exc:
        raise MalformedWebhook("zendesk: body is not JSON") from exc
    if not isinstance(body, dict):
        raise MalformedWebhook("zendesk: body is not a JSON object")
    kind = body.get("type")
    if not isinstance(kind, str) or not kind.startswith(EVENT_PREFIX):
        return []
    detail = body.get("detail")
    detail = detail if isinstance(detail, dict) else {}
    subject = body.get("subject")
    org_id = str(detail.get("id") or "") or (
        subject[len(SUBJECT_PREFIX) :] if isinstance(subject, str) and subject.startswith(SUBJECT_PREFIX) else ""
    )
    event_id = body.get("id")
    if not org_id.isdigit() or not isinstance(event_id, str) or not event_id:
        raise MalformedWebhook("zendesk: organization event without an organization id or an event id")
    occurred = timestamp_seconds(str(body.get("time") or ""))
    return [
        WebhookEvent(
            source="zendesk",
            object="organizations",
            id=org_id,
            event_id=event_id,
            kind=EventKind.DELETE if kind.endswith(".deleted") else EventKind.UPSERT,
            occurred_at_ms=int(occurred * 1000) if occurred is not None else None,
        )
    ]
