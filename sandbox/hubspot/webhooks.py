"""Webhook deliveries as HubSpot's Webhooks v3 sends them: a JSON array of events, signed.

Two formats, as HubSpot has (``WebhookPublisher.format``): ``legacy`` subscriptions name the object in the
subscription type (``deal.propertyChange``); ``generic`` ones, the only kind apps on HubSpot's current platform
get, send ``object.propertyChange`` with ``objectTypeId`` (``0-3`` deals, ``0-2`` companies) and otherwise the
same fields (HubSpot's changelog "Public Beta: Generic Webhook Subscriptions", August 2024).

Each store operation becomes one delivery (split into arrays of at most 100 events), e.g. a batch update
of 40 deals is one POST with one ``deal.propertyChange`` event per changed property. Event fields:
``eventId``, ``subscriptionId``, ``portalId``, ``appId``, ``occurredAt`` (ms), ``subscriptionType``
(``deal.creation``, ``deal.propertyChange``, ``deal.deletion``, ``deal.merge``, ``company.*``),
``attemptNumber``, ``objectId``, ``changeSource``, plus ``propertyName``/``propertyValue`` for property
changes and ``primaryObjectId``/``mergedObjectIds``/``newObjectId``/``numberOfPropertiesMoved`` for merges.

Signature: ``X-HubSpot-Signature-v3`` = base64(HMAC-SHA256(app secret, ``POST`` + full URL + raw body +
``X-HubSpot-Request-Timestamp``)), re-computed with a fresh timestamp at each retry; the legacy v1 header
(``X-HubSpot-Signature`` = hex SHA-256 of secret + body) is sent too, as HubSpot does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import threading
from collections.abc import Callable
from typing import Any, Literal

from sandbox.common import WebhookSender
from sandbox.hubspot.model import Change
from sandbox.hubspot.timefmt import now_ms

MAX_EVENTS_PER_DELIVERY = 100
WebhookFormat = Literal["legacy", "generic"]
OBJECT_TYPE_IDS = {"contact": "0-1", "company": "0-2", "deal": "0-3"}
_KINDS = ("creation", "propertyChange", "deletion", "merge", "restore")
SUBSCRIPTION_IDS: dict[str, int] = {
    f"{singular}.{kind}": 1_000 + n for n, (singular, kind) in enumerate(itertools.product(("deal", "company"), _KINDS))
}


def signature_v3(secret: str, method: str, uri: str, body: bytes, timestamp_ms: str) -> str:
    """HubSpot's v3 request signature (what a receiver recomputes and compares in constant time)."""
    message = method.encode() + uri.encode() + body + timestamp_ms.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def signature_v1(secret: str, body: bytes) -> str:
    """HubSpot's legacy v1 signature: hex SHA-256 of app secret followed by the body."""
    return hashlib.sha256(secret.encode() + body).hexdigest()


class WebhookPublisher:
    """Turns store changes into signed deliveries to ``url`` (nothing is sent while ``url`` is None)."""

    def __init__(
        self, portal_id: int, app_id: int, app_secret: str, url: str | None, webhook_format: WebhookFormat = "legacy"
    ) -> None:
        self.portal_id = portal_id
        self.app_id = app_id
        self.app_secret = app_secret
        self.url = url
        self.format: WebhookFormat = webhook_format
        self._configured_format: WebhookFormat = webhook_format
        self._event_ids = itertools.count(1)
        self._lock = threading.Lock()
        self._sender: WebhookSender | None = None

    @property
    def sender(self) -> WebhookSender:
        with self._lock:
            if self._sender is None:
                self._sender = WebhookSender()
            return self._sender

    def reset(self) -> None:
        with self._lock:
            self._event_ids = itertools.count(1)
            self.format = self._configured_format

    def events(self, changes: list[Change]) -> list[dict[str, Any]]:
        """The JSON events for ``changes``, numbered from this publisher's event counter."""
        with self._lock:
            return [self._event(change, next(self._event_ids)) for change in changes]

    def _event(self, change: Change, event_id: int) -> dict[str, Any]:
        legacy_type = f"{change.object_type.singular}.{change.kind}"
        event: dict[str, Any] = {
            "eventId": event_id,
            "subscriptionId": SUBSCRIPTION_IDS[legacy_type],
            "portalId": self.portal_id,
            "appId": self.app_id,
            "occurredAt": change.occurred_ms,
            "subscriptionType": legacy_type,
            "attemptNumber": 0,
            "objectId": change.object_id,
            "changeSource": change.source,
        }
        if self.format == "generic":
            event["subscriptionType"] = f"object.{change.kind}"
            event["objectTypeId"] = OBJECT_TYPE_IDS[change.object_type.singular]
        if change.kind == "propertyChange":
            event["propertyName"] = change.property_name
            event["propertyValue"] = change.property_value
        elif change.kind == "merge":
            event["primaryObjectId"] = change.object_id
            event["mergedObjectIds"] = list(change.merged_ids)
            event["newObjectId"] = change.object_id
            event["numberOfPropertiesMoved"] = change.properties_moved
        elif change.kind in ("creation", "deletion"):
            event["changeFlag"] = "CREATED" if change.kind == "creation" else "DELETED"
        return event

    def publish(self, changes: list[Change]) -> None:
        """Queue deliveries for ``changes`` (background thread, retried on failure)."""
        url = self.url
        if not url or not changes:
            return
        events = self.events(changes)
        for start in range(0, len(events), MAX_EVENTS_PER_DELIVERY):
            body = json.dumps(events[start : start + MAX_EVENTS_PER_DELIVERY], separators=(",", ":")).encode()
            self.sender.send(url, body, self._signer(url))

    def _signer(self, url: str) -> Callable[[bytes], dict[str, str]]:
        secret = self.app_secret

        def sign(body: bytes) -> dict[str, str]:
            timestamp = str(now_ms())
            return {
                "Content-Type": "application/json",
                "User-Agent": "HubSpot Connect 2.0 (http://dev.hubspot.com/)",
                "X-HubSpot-Request-Timestamp": timestamp,
                "X-HubSpot-Signature-v3": signature_v3(secret, "POST", url, body, timestamp),
                "X-HubSpot-Signature": signature_v1(secret, body),
                "X-HubSpot-Signature-Version": "v1",
            }

        return sign

    def stats(self) -> dict[str, Any]:
        sender = self._sender
        return {
            "url": self.url,
            "delivered": sender.delivered if sender else 0,
            "failed": sender.failed if sender else 0,
            "attempts": sender.attempts if sender else 0,
            "pending": sender.pending() if sender else 0,
        }

    def drain(self, timeout: float = 10.0) -> bool:
        return self._sender.drain(timeout) if self._sender else True

    def close(self) -> None:
        with self._lock:
            sender, self._sender = self._sender, None
        if sender is not None:
            sender.close()
