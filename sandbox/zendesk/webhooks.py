"""Zendesk's organization events as the stand-in sends them: one event per delivery, signed.

``X-Zendesk-Webhook-Signature`` is ``base64(HMAC-SHA256(secret, timestamp + body))`` and
``X-Zendesk-Webhook-Signature-Timestamp`` the timestamp (ISO 8601, UTC), signed afresh at each attempt. The body
follows Zendesk's organization event payloads: ``type`` (``zen:event-type:organization.created``, ``.deleted``,
``.name_changed``, ``.tags_changed``, ``.external_id_changed``, ``.custom_field_changed``), ``account_id``,
``subject`` (``zen:organization:<id>``), ``id`` (a UUID), ``time``, ``zendesk_event_version``, ``detail`` (the
organization: ids as strings) and ``event``. A change with no event type of its own (``domain_names``, ``notes``,
``details``) is sent as nothing, as Zendesk sends nothing for it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sandbox.common import WebhookSender

EVENT_OF = {
    "created": "zen:event-type:organization.created",
    "deleted": "zen:event-type:organization.deleted",
    "name": "zen:event-type:organization.name_changed",
    "tags": "zen:event-type:organization.tags_changed",
    "external_id": "zen:event-type:organization.external_id_changed",
    "custom_field": "zen:event-type:organization.custom_field_changed",
}
ACCOUNT_ID = 10_973_248


def signature(secret: str, timestamp: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()).decode()


def signed_headers(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    stamp = datetime.fromtimestamp(time.time() if now is None else now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "Content-Type": "application/json",
        "X-Zendesk-Webhook-Signature": signature(secret, stamp, body),
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
        "X-Zendesk-Webhook-Id": "01HSANDBOX000000000000000",
    }


def event_bodies(org: dict[str, Any], changes: list[str]) -> list[bytes]:
    """One body per change that has an event type."""
    detail = {
        "created_at": org.get("created_at"),
        "external_id": org.get("external_id"),
        "group_id": None if org.get("group_id") is None else str(org["group_id"]),
        "id": str(org["id"]),
        "name": org.get("name"),
        "shared_comments": org.get("shared_comments", False),
        "shared_tickets": org.get("shared_tickets", False),
        "updated_at": org.get("updated_at"),
    }
    bodies = []
    for change in changes:
        kind = EVENT_OF.get(change)
        if kind is None:
            continue
        event: dict[str, Any] = {}
        if change in ("name", "external_id", "tags"):
            event = {"current": org.get(change)}
        body = {
            "type": kind,
            "account_id": ACCOUNT_ID,
            "subject": f"zen:organization:{org['id']}",
            "id": str(uuid.uuid4()),
            "time": org.get("updated_at"),
            "zendesk_event_version": "2022-06-20",
            "detail": detail,
            "event": event,
        }
        bodies.append(json.dumps(body).encode())
    return bodies


class ZendeskWebhooks:
    """Sends the events of each change to ``url`` (when set), signed with ``secret``, in order, with retries."""

    def __init__(self, url: str | None, secret: str) -> None:
        self.url = url
        self.secret = secret
        self.sender = WebhookSender()

    def notify(self, org: dict[str, Any], changes: list[str]) -> None:
        url, secret = self.url, self.secret
        if not url:
            return
        for body in event_bodies(org, changes):
            self.sender.send(url, body, lambda b, s=secret: signed_headers(s, b))  # type: ignore[misc]

    def close(self) -> None:
        self.sender.close()
