"""HubSpot webhooks (v3 signatures): verify a delivery, then turn its event array into refresh events.

Verification (HubSpot's "v3" request validation):
``X-HubSpot-Signature-v3 == base64(HMAC-SHA256(client secret, method + URI + raw body + timestamp))`` where the
timestamp is ``X-HubSpot-Request-Timestamp`` (epoch ms) and the URI is the full URL HubSpot called (scheme, host,
path, query), URL-decoded except for ``?``. The comparison is constant-time; timestamps more than the allowed age
(5 minutes) away from now are refused, so a captured delivery cannot be replayed later.

A delivery is a JSON array of events. Deal events become ``WebhookEvent``s (refresh that deal by id): creation,
property and association changes and restores are upserts, ``deal.deletion`` is a delete, and ``deal.merge`` is a
merge of the surviving deal plus a delete of each merged-away id. Other objects' events (``company.*``, contacts)
are ignored here: company changes reach deals through the incremental read's company pass.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from typing import Any
from urllib.parse import unquote

from connectors.base import EventKind, MalformedWebhook, WebhookEvent, WebhookRejected, WebhookRequest

SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
_QUESTION_MARK = re.compile("%3F", re.IGNORECASE)


def signature_uri(uri: str) -> str:
    """The URI as HubSpot signs it: percent-escapes decoded, except an encoded ``?`` (``%3F``) stays."""
    parts = _QUESTION_MARK.split(uri)
    return "%3F".join(unquote(part) for part in parts)


def sign_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """The v3 signature HubSpot would send for this request."""
    message = method.upper().encode() + signature_uri(uri).encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def verify_v3(
    request: WebhookRequest,
    secret: str,
    now_ms: int,
    max_age_s: float = 300.0,
    uri: str | None = None,
) -> None:
    """Raise ``WebhookRejected`` unless ``request`` carries a valid, fresh v3 signature.

    ``uri`` overrides the request's URL (when a proxy changed the URL the worker sees)."""
    signature = request.header(SIGNATURE_HEADER)
    timestamp = request.header(TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise WebhookRejected("missing X-HubSpot-Signature-v3 or X-HubSpot-Request-Timestamp")
    if not timestamp.strip().isdigit():
        raise WebhookRejected("X-HubSpot-Request-Timestamp is not epoch milliseconds")
    if abs(now_ms - int(timestamp)) > max_age_s * 1000:
        raise WebhookRejected("X-HubSpot-Request-Timestamp is outside the allowed window")
    expected = sign_v3(secret, request.method, uri or request.url, request.body, timestamp.strip())
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise WebhookRejected("X-HubSpot-Signature-v3 does not match")


def _event_id(event: dict[str, Any]) -> str:
    value = event.get("eventId")
    if value in (None, ""):
        raise MalformedWebhook("an event has no eventId")
    return str(value)


def _object_id(event: dict[str, Any], *keys: str) -> str:
    for key in keys:
        value = event.get(key)
        if value not in (None, ""):
            text = str(value)
            if not text.isdigit():
                raise MalformedWebhook(f"event {event.get('eventId')}: {key} is not a HubSpot id")
            return text
    raise MalformedWebhook(f"event {event.get('eventId')}: no {' or '.join(keys)}")


def _occurred(event: dict[str, Any]) -> int | None:
    value = event.get("occurredAt")
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else None


def parse_events(body: bytes, source: str = "hubspot", stream: str = "deals") -> list[WebhookEvent]:
    """The refresh events of one (verified) delivery; raises ``MalformedWebhook`` on a body that is not one."""
    try:
        events = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedWebhook(f"body is not JSON: {exc}") from None
    if not isinstance(events, list):
        raise MalformedWebhook("body is not a JSON array of events")
    out: list[WebhookEvent] = []
    for event in events:
        if not isinstance(event, dict):
            raise MalformedWebhook("an event is not a JSON object")
        kind = str(event.get("subscriptionType") or "")
        obj, _, action = kind.partition(".")
        if obj != "deal":
            continue
        event_id = _event_id(event)
        occurred = _occurred(event)
        if action == "deletion":
            out.append(
                WebhookEvent(source, stream, _object_id(event, "objectId"), event_id, EventKind.DELETE, occurred)
            )
        elif action == "merge":
            survivor = _object_id(event, "newObjectId", "primaryObjectId", "objectId")
            out.append(WebhookEvent(source, stream, survivor, event_id, EventKind.MERGE, occurred))
            merged = event.get("mergedObjectIds") or []
            if not isinstance(merged, list):
                raise MalformedWebhook(f"event {event_id}: mergedObjectIds is not a list")
            for old in merged:
                if str(old) != survivor:
                    out.append(
                        WebhookEvent(source, stream, str(old), f"{event_id}:merged:{old}", EventKind.DELETE, occurred)
                    )
        elif action == "associationChange":
            reverse = str(event.get("associationType") or "").upper().startswith("COMPANY_TO_DEAL")
            deal = (
                _object_id(event, "toObjectId", "objectId")
                if reverse
                else _object_id(event, "fromObjectId", "objectId")
            )
            out.append(WebhookEvent(source, stream, deal, event_id, EventKind.UPSERT, occurred))
        else:
            out.append(
                WebhookEvent(source, stream, _object_id(event, "objectId"), event_id, EventKind.UPSERT, occurred)
            )
    return out
