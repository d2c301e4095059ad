"""``Idempotency-Key`` on POST requests, as Stripe documents it.

The first response under a key is saved (errors included, once the endpoint started executing) and replayed
for any later request with the same key and the same parameters, with ``Idempotent-Replayed: true``. The same
key with other parameters, or on another endpoint, is a 400 ``idempotency_error``. Keys longer than 255
characters are refused; saved responses are pruned after 24 hours.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.stripe.errors import StripeError

KEY_MAX_LENGTH = 255
TTL_S = 24 * 3600.0


@dataclass(frozen=True)
class Fingerprint:
    """What must match for a replay: the endpoint and the parameters (order-insensitive)."""

    method: str
    path: str
    params: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class SavedResponse:
    """The first response under a key, byte for byte, and the request id that produced it."""

    status: int
    body: bytes
    request_id: str
    saved_at: float


class IdempotencyCache:
    """Saved responses by key; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.time, ttl_s: float = TTL_S) -> None:
        self._clock = clock
        self._ttl_s = ttl_s
        self._saved: dict[str, tuple[Fingerprint, SavedResponse]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._saved)

    def clear(self) -> None:
        """Forget every key (``POST /_sandbox/reset``)."""
        with self._lock:
            self._saved.clear()

    def lookup(self, key: str, fingerprint: Fingerprint) -> SavedResponse | None:
        """The saved response to replay, ``None`` if the key is new; raises on reuse with other parameters."""
        if len(key) > KEY_MAX_LENGTH:
            raise StripeError(
                400,
                f"Invalid Idempotency-Key: the key must be at most {KEY_MAX_LENGTH} characters long.",
                type="idempotency_error",
                replayable=False,
            )
        with self._lock:
            self._prune()
            entry = self._saved.get(key)
        if entry is None:
            return None
        saved_fingerprint, response = entry
        if saved_fingerprint != fingerprint:
            raise StripeError(
                400,
                "Keys for idempotent requests can only be used with the same parameters they were first "
                f"used with. Try using a key other than '{key}' if you meant to execute a different request.",
                type="idempotency_error",
                replayable=False,
            )
        return response

    def save(self, key: str, fingerprint: Fingerprint, status: int, body: bytes, request_id: str) -> None:
        """Keep the response given under ``key`` for replay."""
        with self._lock:
            self._saved[key] = (fingerprint, SavedResponse(status, body, request_id, self._clock()))

    def _prune(self) -> None:
        """Drop saved responses older than the TTL; keys are held in insertion (= save time) order."""
        cutoff = self._clock() - self._ttl_s
        while self._saved:
            oldest = next(iter(self._saved))
            if self._saved[oldest][1].saved_at >= cutoff:
                return
            del self._saved[oldest]
