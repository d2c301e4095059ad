"""Stripe's error bodies: ``{"error": {"type", "code", "message", "param", "doc_url"}}``.

Handlers raise ``StripeError``; the app turns it into the JSON body and status Stripe would send, so the SDK
raises the same exception class it raises against the real API (404 → ``InvalidRequestError``, 401 →
``AuthenticationError``, 400 with type ``idempotency_error`` → ``IdempotencyError``, 429 → ``RateLimitError``).
"""

from __future__ import annotations

from typing import Any


class StripeError(Exception):
    """An API error in Stripe's shape.

    ``replayable`` says whether an idempotent request that failed this way saves its response for replay:
    Stripe saves results once an endpoint started executing (a missing resource, say), but not when the
    parameters failed validation, so a corrected retry with the same key is not stuck on the old error.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        replayable: bool = True,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.replayable = replayable
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON body Stripe sends: only the keys that apply, as Stripe omits null ones."""
        error: dict[str, Any] = {"message": self.message, "type": self.type}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param is not None:
            error["param"] = self.param
        return {"error": error}


def invalid_param(message: str, param: str, code: str | None = None) -> StripeError:
    """A 400 for a parameter that failed validation (not saved under an idempotency key)."""
    return StripeError(400, message, code=code, param=param, replayable=False)


def unknown_param(name: str) -> StripeError:
    """Stripe's answer to a parameter the endpoint does not take."""
    return invalid_param(f"Received unknown parameter: {name}", name, "parameter_unknown")


def no_such(kind: str, object_id: str, param: str = "id") -> StripeError:
    """Stripe's 404 for an id that names nothing (``No such customer: 'cus_x'``)."""
    return StripeError(404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param)


def masked_key(key: str) -> str:
    """How Stripe echoes a bad key: its prefix (``sk_test_``), stars, and the last four characters."""
    prefix_end = 0
    for part in key.split("_")[:2]:
        if part in {"sk", "rk", "pk", "test", "live"}:
            prefix_end += len(part) + 1
    prefix = key[:prefix_end]
    hidden = max(len(key) - prefix_end - 4, 0)
    return prefix + "*" * hidden + key[prefix_end + hidden :]
