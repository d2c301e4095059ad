"""Stripe webhook deliveries: verified on the raw body, then turned into "refresh this customer" events.

``Stripe-Signature: t=<unix s>,v1=<hex>[,v1=<hex>...]`` where each ``v1`` is HMAC-SHA256(secret, "<t>.<raw body>").
Stripe sends several ``v1`` values while an endpoint's secret is being rolled, and the receiver may itself hold
several secrets (old and new) during a rotation: a delivery is authentic if any configured secret matches any
``v1`` value. The HMAC comparison is the SDK's (``stripe.WebhookSignature``, constant time); freshness is
checked here, in both directions, against the connector's clock: ``|now - t| <= tolerance``.

A verified delivery is one event (or a JSON array of them, see ``parse``). ``customer.deleted`` becomes a
delete, other customer and subscription events an upsert (the engine then fetches the customer's current
state); events the connector caused itself (its idempotency key in ``request``) and other types give nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence

import stripe
from pydantic import SecretStr

from connectors.stripe.events import customer_of, is_echo
from connectors.stripe.records import SOURCE, STREAM
from sync.connector import EventKind, MalformedWebhook, WebhookEvent, WebhookRejected, WebhookRequest

SIGNATURE_HEADER = "Stripe-Signature"
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
CUSTOMER_ID = re.compile(r"cus_[A-Za-z0-9]{1,250}")
EVENT_ID = re.compile(r"evt_[A-Za-z0-9]{1,250}")
"""Stripe's object ids: a type prefix and ASCII letters and digits (anything else never reaches a queue)."""


def signed_timestamp(header: str) -> int:
    """The ``t=`` value of a ``Stripe-Signature`` header; ``WebhookRejected`` if it has none or several."""
    values = [part.split("=", 1)[1] for part in header.split(",") if part.strip().startswith("t=")]
    if len(values) != 1:
        raise WebhookRejected("stripe webhook: signature header needs exactly one timestamp")
    if not _TIMESTAMP.fullmatch(values[0].strip()):  # ASCII only: int() also reads "١٧٦٠..." (Arabic-Indic digits)
        raise WebhookRejected("stripe webhook: signature timestamp is not a number")
    return int(values[0].strip())


def verify(request: WebhookRequest, secrets: Sequence[SecretStr], tolerance_s: int, clock: Callable[[], float]) -> None:
    """Raise ``WebhookRejected`` unless the delivery is signed by one of ``secrets`` and fresh."""
    header = request.header(SIGNATURE_HEADER)
    if not header:
        raise WebhookRejected("stripe webhook: no Stripe-Signature header")
    if not secrets:
        raise WebhookRejected("stripe webhook: no signing secret configured")
    timestamp = signed_timestamp(header)
    if abs(clock() - timestamp) > tolerance_s:
        raise WebhookRejected(f"stripe webhook: timestamp {timestamp} is outside the {tolerance_s} s tolerance")
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(request.body, header, secret.get_secret_value(), tolerance=None)
        except stripe.SignatureVerificationError:
            continue
        except UnicodeDecodeError:
            raise WebhookRejected("stripe webhook: body is not UTF-8") from None
        return
    raise WebhookRejected("stripe webhook: no signature matches a configured secret")


def parse(request: WebhookRequest, echo_prefix: str) -> list[WebhookEvent]:
    """The refresh events of one verified delivery (none for unrelated types and for our own echoes).

    Stripe delivers one event per request; a JSON array of events (several deliveries relayed as one signed
    body, e.g. by a queue in front of the receiver) is accepted too, each event taken on its own.
    """
    try:
        payload = json.loads(request.body)
    except (ValueError, RecursionError):
        raise MalformedWebhook("stripe webhook: body is not JSON (or nested too deeply)") from None
    events = payload if isinstance(payload, list) else [payload]
    out: list[WebhookEvent] = []
    for event in events:
        parsed = _parse_event(event, echo_prefix)
        if parsed is not None:
            out.append(parsed)
    return out


def _parse_event(event: object, echo_prefix: str) -> WebhookEvent | None:
    if not isinstance(event, dict) or event.get("object") != "event":
        raise MalformedWebhook("stripe webhook: body is not a Stripe event")
    event_id, event_type, created = event.get("id"), event.get("type"), event.get("created")
    if not isinstance(event_id, str) or not isinstance(event_type, str) or not isinstance(created, int):
        raise MalformedWebhook("stripe webhook: event lacks id, type or created")
    if not EVENT_ID.fullmatch(event_id):
        raise MalformedWebhook("stripe webhook: the event id is not a Stripe event id (evt_...)")
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise MalformedWebhook("stripe webhook: the event has no data.object")
    if not event_type.startswith("customer.") or is_echo(event, echo_prefix):
        return None
    customer_id = customer_of(event)
    if customer_id is None:
        return None
    if not CUSTOMER_ID.fullmatch(customer_id):
        raise MalformedWebhook("stripe webhook: the customer is not a Stripe customer id (cus_...)")
    kind = EventKind.DELETE if event_type == "customer.deleted" else EventKind.UPSERT
    return WebhookEvent(SOURCE, STREAM, customer_id, event_id, kind, created * 1000)
