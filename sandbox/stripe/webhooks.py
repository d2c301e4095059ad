"""Signed webhook deliveries, as Stripe sends them to a webhook endpoint.

Each event is POSTed as its JSON with ``Stripe-Signature: t=<unix s>,v1=<hex HMAC-SHA256(secret, "t.body")>``,
re-signed with a fresh timestamp at every attempt, through the shared ``WebhookSender`` (background thread,
retries with backoff on non-2xx). ``stripe.Webhook.construct_event(body, header, secret)`` accepts them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from sandbox.common import WebhookSender


def signature_header(secret: str, body: bytes, timestamp: int) -> str:
    """The ``Stripe-Signature`` value for ``body`` signed at ``timestamp``."""
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class StripeWebhooks:
    """Where events go: a URL and secret that may change at run time (``PUT /_sandbox/webhooks``)."""

    def __init__(
        self,
        url: str | None,
        secret: str,
        sender: WebhookSender | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.secret = secret
        self.sender = sender or WebhookSender()
        self._clock = clock
        self._lock = threading.Lock()

    def configure(self, url: str | None, secret: str | None = None) -> None:
        """Point deliveries at ``url`` (``None`` stops them), optionally with a new signing secret."""
        with self._lock:
            self.url = url
            if secret:
                self.secret = secret

    @property
    def enabled(self) -> bool:
        return self.url is not None

    def deliver(self, event: dict[str, Any]) -> None:
        """Queue one event for the configured URL, if any."""
        with self._lock:
            url, secret = self.url, self.secret
        if url is None:
            return
        body = json.dumps(event, indent=2).encode()

        def sign(payload: bytes) -> dict[str, str]:
            return {
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                "Stripe-Signature": signature_header(secret, payload, int(self._clock())),
            }

        self.sender.send(url, body, sign)

    def stats(self) -> dict[str, Any]:
        """The target URL and the sender's delivery counts."""
        return {
            "url": self.url,
            "delivered": self.sender.delivered,
            "failed": self.sender.failed,
            "attempts": self.sender.attempts,
            "pending": self.sender.pending(),
        }
