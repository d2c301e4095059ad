"""Zendesk's answers translated, once, into the project's error tree (``sync.errors``), through one table.

    429 (the account's or the export's per-minute limit)     → ZendeskRateLimited  (RetryableError, Retry-After)
    500, 502, 503, 504, and 409 (a concurrent update)        → ZendeskUnavailable  (RetryableError)
    httpx.TransportError (timeouts, refused, dropped)        → ZendeskUnavailable  (RetryableError)
    401, 403                                                 → ZendeskAuthFailed   (FatalError)
    404                                                      → ZendeskNotFound     (FatalError; ``fetch`` reads a
                                                               missing organization as deleted, not as an error)
    400, 413, 422 and any other 4xx                          → ZendeskRequestFailed (FatalError), or a per-record
                                                               failure where one record is concerned (push)

Zendesk's error bodies are ``{"error": "RecordNotFound", "description": "Not found"}`` or
``{"error": "RecordInvalid", "description": ..., "details": {...}}``; messages carry the status, the ``error``
code and its description, never the token (it travels in the ``Authorization`` header only).
"""

from __future__ import annotations

from typing import Any

import httpx

from sync.errors import CrmsyncError, FatalError, RetryableError
from sync.vendor import retry_after


class ZendeskRateLimited(RetryableError):
    """Zendesk answered 429: a per-minute limit of the account or of the incremental export is spent."""


class ZendeskUnavailable(RetryableError):
    """A timeout, a dropped connection, a 5xx or a conflicting concurrent update: the same call may work later."""


class ZendeskAuthFailed(FatalError):
    """The email/token pair is wrong or revoked, or the user lacks a permission this connector needs."""


class ZendeskNotFound(FatalError):
    """The route or the record does not exist."""


class ZendeskRequestFailed(FatalError):
    """Zendesk refused a request as invalid: a bug or a configuration that cannot work; retrying will not help."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


ERRORS: dict[int, type[CrmsyncError]] = {
    429: ZendeskRateLimited,
    409: ZendeskUnavailable,
    500: ZendeskUnavailable,
    502: ZendeskUnavailable,
    503: ZendeskUnavailable,
    504: ZendeskUnavailable,
    401: ZendeskAuthFailed,
    403: ZendeskAuthFailed,
    404: ZendeskNotFound,
}
"""Status → error class; a status not listed is ``ZendeskUnavailable`` from 500 up, else ``ZendeskRequestFailed``."""


def error_code(body: Any) -> tuple[str | None, str]:
    """Zendesk's ``error`` code and its description (or message) from an error body."""
    if not isinstance(body, dict):
        return None, ""
    code = body.get("error")
    if isinstance(code, dict):  # some routes nest it: {"error": {"title", "message"}}
        return str(code.get("title") or "") or None, str(code.get("message") or "")
    return (str(code) if code else None), str(body.get("description") or body.get("message") or "")


def translate(response: httpx.Response, action: str) -> CrmsyncError:
    """The project error for Zendesk's error answer to ``action`` (e.g. ``show organizations``)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    code, description = error_code(body)
    status = response.status_code
    what = f"zendesk: {action}: {status}" + (f" {code}" if code else "") + (f": {description}" if description else "")
    kind = ERRORS.get(status) or (ZendeskUnavailable if status >= 500 else ZendeskRequestFailed)
    if kind is ZendeskRequestFailed:
        return ZendeskRequestFailed(what, status, code)
    if issubclass(kind, RetryableError):
        return kind(what, retry_after=retry_after(response.headers))
    return kind(what)


def transport_error(error: httpx.TransportError, action: str) -> ZendeskUnavailable:
    """A request that got no answer (timeout, refused or dropped connection)."""
    return ZendeskUnavailable(f"zendesk: {action}: {type(error).__name__}")
