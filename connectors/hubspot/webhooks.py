"""HubSpot webhooks (v3 signatures): verify a delivery, then turn its event array into refresh events.

Verification (HubSpot's "v3" request validation):
``X-HubSpot-Signature-v3 == base64(HMAC-SHA256(client secret, method + URI + raw body + timestamp))`` where the
timestamp is ``X-HubSpot-Request-Timestamp`` (epoch ms, ASCII digits) and the URI is the full URL HubSpot called
(scheme, host, path, query) with exactly the twelve escapes HubSpot's documentation lists decoded (``signature_uri``).
The comparison is constant-time; timestamps more than the allowed age (5 minutes) away from now are refused, so a
captured delivery cannot be replayed later.

A delivery is a JSON array of events, in HubSpot's legacy format (``deal.propertyChange``) or its generic one
(``object.propertyChange`` with ``objectTypeId`` ``0-3``). Deal events become ``WebhookEvent``s (refresh that deal by
id): creation, property and association changes and restores are upserts, a deletion is a delete, and a merge is a
merge of the surviving deal plus a delete of each merged-away id. A company event becomes one refresh of
``company:<id>``, which the connector's ``fetch`` expands into the company's deals. Contacts are ignored. Ids must
be ASCII digits, and each event is deduplicated on ``dedupe_key`` (HubSpot's ``eventId`` alone is not unique).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from typing import Any

from sync.connector import EventKind, MalformedWebhook, WebhookEvent, WebhookRejected, WebhookRequest

SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
_DECODED = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
"""HubSpot's table of the escapes a receiver decodes before signing (docs/connectors/hubspot.md cites it)."""
_SIGNED_ESCAPE = re.compile("|".join(_DECODED), re.IGNORECASE)
_TIMESTAMP = re.compile(r"[0-9]{1,16}")
_HUBSPOT_ID = re.compile(r"[0-9]{1,20}")
"""HubSpot object and event ids are ASCII digits (int64): anything else is refused before it reaches a queue."""


def signature_uri(uri: str) -> str:
    """The URI as HubSpot signs it (v3): exactly the percent-escapes HubSpot's documentation lists are decoded
    (``%3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C %3B``, either case); every other escape, ``%20`` included,
    stays as sent."""
    return _SIGNED_ESCAPE.sub(lambda m: _DECODED[m.group(0).upper()], uri)


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
    if not _TIMESTAMP.fullmatch(timestamp.strip()):
        raise WebhookRejected("X-HubSpot-Request-Timestamp is not epoch milliseconds")
    if abs(now_ms - int(timestamp.strip())) > max_age_s * 1000:
        raise WebhookRejected("X-HubSpot-Request-Timestamp is outside the allowed window")
    expected = sign_v3(secret, request.method, uri or request.url, request.body, timestamp.strip())
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise WebhookRejected("X-HubSpot-Signature-v3 does not match")


def _hubspot_id(value: object) -> str | None:
    """``value`` as a HubSpot id (ASCII digits) or None: a JSON integer or a string of digits, nothing else."""
    if isinstance(value, bool):
        return None
    text = str(value) if isinstance(value, int | str) else ""
    return text if _HUBSPOT_ID.fullmatch(text) else None


def _object_id(event: dict[str, Any], *keys: str) -> str:
    for key in keys:
        value = event.get(key)
        if value not in (None, ""):
            found = _hubspot_id(value)
            if found is None:
                raise MalformedWebhook(f"an event's {key} is not a HubSpot id")
            return found
    raise MalformedWebhook(f"an event has no {' or '.join(keys)}")


def _occurred(event: dict[str, Any]) -> int | None:
    value = event.get("occurredAt")
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    return int(text) if _TIMESTAMP.fullmatch(text) else None


def dedupe_key(event: dict[str, Any], subscription: str, object_id: str) -> str:
    """The key a delivery's event is deduplicated on: subscription type, ``eventId``, object and ``occurredAt``.

    HubSpot documents ``eventId`` as not guaranteed unique (a deletion may share one with an earlier change of the
    same record), so the id alone would drop real events; a redelivery repeats all four, so it is still caught."""
    event_id = _hubspot_id(event.get("eventId"))
    if event_id is None:
        raise MalformedWebhook("an event has no numeric eventId")
    occurred = _occurred(event)
    return f"{subscription}:{event_id}:{object_id}:{occurred if occurred is not None else '-'}"


def _load(body: bytes) -> list[dict[str, Any]]:
    try:
        events = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else "not JSON"
        raise MalformedWebhook(f"body is {reason}") from None
    if not isinstance(events, list):
        raise MalformedWebhook("body is not a JSON array of events")
    if not all(isinstance(event, dict) for event in events):
        raise MalformedWebhook("an event is not a JSON object")
    return events


OBJECT_TYPE_IDS = {"0-1": "contact", "0-2": "company", "0-3": "deal"}
"""HubSpot's object type ids, as the generic format names the object an event is about."""
_TYPE_NAMES = {name.upper(): type_id for type_id, name in OBJECT_TYPE_IDS.items()}
COMPANY_REF = "company:"
"""Prefix of a refresh id that stands for every deal of a company (``HubSpotConnector.fetch`` expands it)."""


def _kind(event: dict[str, Any]) -> tuple[str, str]:
    """``(object, action)`` of an event in either format: ``deal.merge`` → ``("deal", "merge")``;
    ``object.merge`` with ``objectTypeId`` ``0-3`` → the same. Unknown objects give ``""``."""
    subscription = event.get("subscriptionType")
    prefix, _, action = (subscription if isinstance(subscription, str) else "").partition(".")
    if prefix == "object":
        return OBJECT_TYPE_IDS.get(str(event.get("objectTypeId") or ""), ""), action
    return prefix, action


def _association_ends(event: dict[str, Any]) -> tuple[str, str] | None:
    """The object type ids at the two ends of an association change (``""`` for an end that is not a contact,
    company or deal): the generic format's ``fromObjectTypeId``/``toObjectTypeId``, else the legacy
    ``associationType`` (``DEAL_TO_COMPANY``, ``COMPANY_TO_DEAL_UNLABELED``, ...); None without either."""
    ends = event.get("fromObjectTypeId"), event.get("toObjectTypeId")
    if all(isinstance(end, str) and end for end in ends):
        return str(ends[0]), str(ends[1])
    from_name, sep, to_name = str(event.get("associationType") or "").upper().partition("_TO_")
    if not sep:
        return None

    def type_of(name: str) -> str:
        return next((tid for known, tid in _TYPE_NAMES.items() if name == known or name.startswith(known + "_")), "")

    return type_of(from_name), type_of(to_name)


def _refresh(event: dict[str, Any], source: str, stream: str, record_id: str, kind: EventKind) -> WebhookEvent:
    subscription = str(event.get("subscriptionType"))
    return WebhookEvent(source, stream, record_id, dedupe_key(event, subscription, record_id), kind, _occurred(event))


def _deal_events(event: dict[str, Any], action: str, source: str, stream: str) -> list[WebhookEvent]:
    if action == "deletion":
        return [_refresh(event, source, stream, _object_id(event, "objectId"), EventKind.DELETE)]
    if action != "merge":
        return [_refresh(event, source, stream, _object_id(event, "objectId"), EventKind.UPSERT)]
    survivor = _refresh(
        event, source, stream, _object_id(event, "newObjectId", "primaryObjectId", "objectId"), EventKind.MERGE
    )
    out = [survivor]
    merged = event.get("mergedObjectIds") or []
    if not isinstance(merged, list):
        raise MalformedWebhook("an event's mergedObjectIds is not a list")
    for value in merged:
        old = _hubspot_id(value)
        if old is None:
            raise MalformedWebhook("an event's mergedObjectIds holds something that is not a HubSpot id")
        if old != survivor.id:
            key = f"{survivor.event_id}:merged:{old}"
            out.append(WebhookEvent(source, stream, old, key, EventKind.DELETE, survivor.occurred_at_ms))
    return out


def _association_events(event: dict[str, Any], obj: str, source: str, stream: str) -> list[WebhookEvent]:
    """The deal at either end of an association change (none when neither end is a deal)."""
    ends = _association_ends(event)
    deal_type = _TYPE_NAMES["DEAL"]
    if ends is None:
        deal = _object_id(event, "fromObjectId", "objectId") if obj == "deal" else None
    elif ends[0] == deal_type:
        deal = _object_id(event, "fromObjectId", "objectId")
    elif ends[1] == deal_type:
        deal = _object_id(event, "toObjectId", "objectId")
    else:
        deal = None
    return [] if deal is None else [_refresh(event, source, stream, deal, EventKind.UPSERT)]


def _company_events(event: dict[str, Any], action: str, source: str, stream: str) -> list[WebhookEvent]:
    """A company's change (name, domain, merge, deletion) changes what its deals map to: refresh all of them,
    through one ``company:<id>`` reference (the deals are looked up when the refresh runs, not here)."""
    company = _object_id(event, "primaryObjectId", "objectId") if action == "merge" else _object_id(event, "objectId")
    return [_refresh(event, source, stream, COMPANY_REF + company, EventKind.UPSERT)]


def parse_events(body: bytes, source: str = "hubspot", stream: str = "deals") -> list[WebhookEvent]:
    """The refresh events of one (verified) delivery, in the legacy (``deal.*``, ``company.*``) or the generic
    (``object.*`` with ``objectTypeId``) format; raises ``MalformedWebhook`` on a body that is not one."""
    out: list[WebhookEvent] = []
    for event in _load(body):
        obj, action = _kind(event)
        if action == "associationChange":
            out.extend(_association_events(event, obj, source, stream))
        elif obj == "deal":
            out.extend(_deal_events(event, action, source, stream))
        elif obj == "company" and action in ("creation", "propertyChange", "deletion", "merge", "restore"):
            out.extend(_company_events(event, action, source, stream))
    return out
