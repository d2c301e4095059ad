"""Stripe SDK exceptions translated, once, into the project's error tree (``sync.errors``).

    stripe.RateLimitError (429)                                → StripeRateLimited   (RateLimitedError)
    stripe.APIConnectionError (timeouts, dropped connections)  → StripeUnavailable   (RetryableError)
    stripe.APIError and any 5xx, and 409 lock conflicts        → StripeUnavailable   (RetryableError)
    stripe.AuthenticationError (401)                           → StripeAuthFailed    (FatalError)
    stripe.PermissionError (403)                               → StripeAuthFailed    (FatalError)
    stripe.InvalidRequestError, IdempotencyError, other 4xx    → StripeRequestFailed (FatalError), or a per-record
                                                                 failure where one record is concerned (push)

Messages carry the HTTP status, Stripe's error code and request id, and for request errors Stripe's message
and ``param``; never the API key (Stripe's own 401 message masks it, and it is not passed on anyway).
"""

from __future__ import annotations

import stripe

from sync.calls import ErrorTable
from sync.errors import CrmsyncError, FatalError, RateLimitedError, RetryableError
from sync.vendor import retry_after


class StripeRateLimited(RateLimitedError):
    """Stripe answered 429 (and, when it said to retry, the retries did not get through)."""


class StripeUnavailable(RetryableError):
    """A timeout, a dropped connection, a 5xx or a lock conflict: the same call may work later."""


class StripeAuthFailed(FatalError):
    """The API key is wrong, revoked, or lacks a permission this connector needs."""


class StripeRequestFailed(FatalError):
    """Stripe refused a request as invalid: a bug or a configuration that cannot work; retrying will not help."""

    def __init__(self, message: str, status: int | None, code: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def describe(error: stripe.StripeError) -> str:
    """A one-line, secret-free description: ``404 resource_missing (req_...): No such customer: 'cus_x'``."""
    parts = [str(error.http_status or "-")]
    code = error_code(error)
    if code:
        parts.append(code)
    if error.request_id:
        parts.append(f"({error.request_id})")
    text = " ".join(parts)
    if isinstance(error, stripe.AuthenticationError | stripe.PermissionError):
        return text
    message = error.user_message or ""
    param = getattr(error, "param", None)
    if param:
        message = f"{message} [param {param}]"
    return f"{text}: {message}" if message else text


def error_code(error: stripe.StripeError) -> str | None:
    """Stripe's error ``code`` (``rate_limit``, ``resource_missing``, ...), from the exception or its body."""
    if error.code:
        return str(error.code)
    body = error.json_body if isinstance(error.json_body, dict) else {}
    inner = body.get("error")
    code = inner.get("code") if isinstance(inner, dict) else None
    return str(code) if code else None


def translate(error: stripe.StripeError, action: str) -> CrmsyncError:
    """The project error for a Stripe SDK error raised while doing ``action`` (e.g. ``list customers``)."""
    what = f"stripe: {action}: {describe(error)}"
    status = error.http_status
    if isinstance(error, stripe.RateLimitError) or status == 429:
        return StripeRateLimited(what, retry_after=retry_after(error.headers))
    if isinstance(error, stripe.APIConnectionError):
        return StripeUnavailable(what)
    if isinstance(error, stripe.AuthenticationError | stripe.PermissionError) or status in (401, 403):
        return StripeAuthFailed(what)
    if isinstance(error, stripe.APIError) or (status is not None and (status >= 500 or status == 409)):
        return StripeUnavailable(what, retry_after=retry_after(error.headers))
    return StripeRequestFailed(what, status, error_code(error))


ERRORS = ErrorTable((((stripe.StripeError,), translate),))
"""Stripe's error table for the one call path (``sync.calls``): every SDK error through ``translate``."""


def missing(error: CrmsyncError) -> bool:
    """A translated 404 ``resource_missing``: the object never existed (or is gone for good)."""
    return isinstance(error, StripeRequestFailed) and (error.status == 404 or error.code == "resource_missing")


def described(error: CrmsyncError) -> str:
    """The secret-free description of the Stripe error behind a translated one (``describe``)."""
    cause = error.__cause__
    return describe(cause) if isinstance(cause, stripe.StripeError) else str(error)


def is_missing(error: stripe.StripeError) -> bool:
    """A 404 ``resource_missing``: the object never existed (or is gone for good)."""
    return error.http_status == 404 or error_code(error) == "resource_missing"
