"""simple-salesforce and ``requests`` exceptions translated, once, into the project's error tree (``sync.errors``).

    403 REQUEST_LIMIT_EXCEEDED "TotalRequests ..."      → AllowanceExhausted       (FatalError; never retried)
    other REQUEST_LIMIT_EXCEEDED (concurrent requests)  → SalesforceRateLimited    (RetryableError; not retried
                                                          here, the job retries after ``retry_after``)
    5xx, timeouts, dropped connections                  → SalesforceUnavailable    (RetryableError; after the
                                                          client's short retries)
    401 (after the one session refresh), login refused  → SalesforceAuthFailed     (FatalError)
    403 (permissions, disabled API access)               → SalesforcePermissionDenied (FatalError)
    300, 400, 404 (bad SOQL, unknown field, bad id)      → SalesforceRequestFailed  (FatalError): a bug or a
    and TLS verification failures                         configuration that cannot work, e.g. a configured
                                                          field the org does not have, or a wrong ca_bundle

Per-record failures of a push are not exceptions: they come back as ``PushResult(ok=False)``.
Messages carry the HTTP status, Salesforce's ``errorCode`` and its message; never a password, secret, private
key or session id (Salesforce's own error bodies contain none, and the URLs the SDK calls carry none).
"""

from __future__ import annotations

from typing import Any

import requests
from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceError

from sync.errors import CrmsyncError, FatalError, RateLimitedError, RetryableError

MESSAGE_MAX = 300


class SalesforceUnavailable(RetryableError):
    """A 5xx, a timeout or a dropped connection, still failing after the client's short retries."""


class SalesforceRateLimited(RateLimitedError):
    """Salesforce refused the call for too many concurrent long requests; try the job again later."""


class SalesforceAuthFailed(FatalError):
    """The login was refused, or the session expired and could not be refreshed."""


class SalesforcePermissionDenied(FatalError):
    """The API user may not do this (missing permission, field-level security, API access disabled)."""


class AllowanceExhausted(FatalError):
    """The org's daily API request allowance is spent; nothing works until it recovers, so nothing retries."""


class SalesforceRequestFailed(FatalError):
    """Salesforce refused a request as invalid (``MALFORMED_QUERY``, ``INVALID_FIELD``...)."""

    def __init__(self, message: str, status: int | None, code: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def error_items(content: Any) -> list[tuple[str, str]]:
    """``[(errorCode, message), ...]`` from a REST error body (a list of ``{"errorCode", "message"}``)."""
    items = content if isinstance(content, list) else [content]
    out: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, dict):
            code = item.get("errorCode") or item.get("statusCode") or item.get("error") or ""
            message = item.get("message") or item.get("error_description") or ""
            out.append((str(code), str(message)))
    return out


def first_error(content: Any) -> tuple[str, str]:
    """The first ``(errorCode, message)`` of an error body, or ``("", <text>)`` for a body that is not JSON."""
    items = error_items(content)
    if items:
        return items[0]
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content or "")
    return "", text


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_MAX else text[: MESSAGE_MAX - 1] + "…"


def is_total_allowance(code: str, message: str) -> bool:
    """True for the daily allowance refusal (as opposed to a concurrent-request refusal)."""
    return code == "REQUEST_LIMIT_EXCEEDED" and "totalrequests" in message.replace(" ", "").lower()


def translate(exc: Exception, what: str, rate_limited_retry_after_s: float = 30.0) -> CrmsyncError:
    """The project error for an SDK or transport exception raised while doing ``what``."""
    if isinstance(exc, SalesforceAuthenticationFailed):
        return SalesforceAuthFailed(f"{what}: login refused ({exc.code or 'no code'}): {_short(exc.auth_message)}")
    if isinstance(exc, requests.exceptions.SSLError):
        return SalesforceRequestFailed(f"{what}: TLS verification failed (check ca_bundle)", None, "TLS")
    if isinstance(exc, requests.Timeout):
        return SalesforceUnavailable(f"{what}: timed out ({type(exc).__name__})")
    if isinstance(exc, requests.ConnectionError):
        return SalesforceUnavailable(f"{what}: connection failed ({type(exc).__name__})")
    if isinstance(exc, SalesforceError):
        status = int(exc.status)
        code, message = first_error(exc.content)
        text = f"{what}: HTTP {status} {code or '-'}: {_short(message)}"
        if code == "REQUEST_LIMIT_EXCEEDED" or status == 429:
            if is_total_allowance(code, message):
                return AllowanceExhausted(f"{text} (the org's daily API allowance is spent)")
            return SalesforceRateLimited(text, retry_after=rate_limited_retry_after_s)
        if status >= 500:
            return SalesforceUnavailable(text)
        if status == 401:
            return SalesforceAuthFailed(text)
        if status == 403:
            return SalesforcePermissionDenied(text)
        return SalesforceRequestFailed(text, status, code or None)
    if isinstance(exc, requests.RequestException):
        return SalesforceUnavailable(f"{what}: {type(exc).__name__}")
    if isinstance(exc, CrmsyncError):
        return exc
    return SalesforceRequestFailed(f"{what}: unexpected {type(exc).__name__}", None, None)


def is_transient(exc: Exception) -> bool:
    """Whether the client's short retries should try ``exc``'s call again: 5xx, timeouts, dropped connections.

    ``REQUEST_LIMIT_EXCEEDED`` (any status) is never transient here: the allowance refusal must not be retried,
    and a concurrent-request refusal is left to the job's own, slower retry.
    """
    if isinstance(exc, requests.exceptions.SSLError):
        return False
    if isinstance(exc, requests.Timeout | requests.ConnectionError):
        return True
    if isinstance(exc, SalesforceError) and not isinstance(exc, SalesforceAuthenticationFailed):
        code, _ = first_error(exc.content)
        return int(exc.status) >= 500 and code != "REQUEST_LIMIT_EXCEEDED"
    return False
