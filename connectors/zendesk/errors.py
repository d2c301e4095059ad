"""Zendesk's answers translated, once, into the project's error tree (``sync.errors``), through one table.

    429 (the account's or the export's per-minute limit)     → ZendeskRateLimited  (RetryableError, Retry-After)
    500, 502, 503, 504, and 409 (a concurrent update)        → ZendeskUnavailable  (RetryableError)
    httpx.TransportError (timeouts, refused, dropped)        → ZendeskUnavailable  (RetryableError)
    a bulk update job still queued or working (JobRunning)   → ZendeskJobUnfinished (RetryableError: the path reads
                                                               its status again, ``job_max_polls`` reads at most)
    401, 403                                                 → ZendeskAuthFailed   (FatalError)
    404                                                      → ZendeskNotFound     (FatalError; ``fetch`` reads a
                                                               missing organization as deleted, not as an error)
    400, 413, 422 and any other 4xx                          → ZendeskRequestFailed (FatalError), or a per-record
                                                               failure where one record is concerned (push)

Zendesk's error bodies are ``{"error": "RecordNotFound", "description": "Not found"}`` or
``{"error": "RecordInvalid", "description": ..., "details": {...}}``; messages carry the status, the ``error``
code and its description, never the token (it travels in the ``Authorization`` header only). ``ERRORS`` is the
table the one call path (``sync.calls``) translates with: an error answer (``httpx.HTTPStatusError``, raised for any
answer that is not 2xx) by its status, a transport error, and a job whose status read found it unfinished.
"""

from __future__ import annotations

from typing import Any

import httpx

from sync.calls import ErrorTable
from sync.errors import CrmsyncError, FatalError, RateLimitedError, RetryableError
from sync.vendor import retry_after


class ZendeskRateLimited(RateLimitedError):
    """Zendesk answered 429: a per-minute limit of the account or of the incremental export is spent."""


class ZendeskUnavailable(RetryableError):
    """A timeout, a dropped connection, a 5xx or a conflicting concurrent update: the same call may work later."""


class ZendeskJobUnfinished(RetryableError):
    """A bulk update job was still queued or working at its last status read: its organizations are not (yet)
    written."""


class JobRunning(Exception):
    """Raised by a job status read that found the job still queued or working, so the path reads it again."""

    def __init__(self, job: dict[str, Any]) -> None:
        super().__init__(f"job {job.get('id')} is {job.get('status')}")
        self.job = job


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


STATUS_ERRORS: dict[int, type[CrmsyncError]] = {
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
    kind = STATUS_ERRORS.get(status) or (ZendeskUnavailable if status >= 500 else ZendeskRequestFailed)
    if kind is ZendeskRequestFailed:
        return ZendeskRequestFailed(what, status, code)
    if issubclass(kind, RetryableError):
        return kind(what, retry_after=retry_after(response.headers))
    return kind(what)


def transport_error(error: httpx.TransportError, action: str) -> ZendeskUnavailable:
    """A request that got no answer (timeout, refused or dropped connection)."""
    return ZendeskUnavailable(f"zendesk: {action}: {type(error).__name__}")


def job_unfinished(error: JobRunning, action: str) -> ZendeskJobUnfinished:
    """A job still running after its last allowed status read."""
    return ZendeskJobUnfinished(f"zendesk: {action}: the update job did not finish ({error.job.get('status')})")


ERRORS = ErrorTable(
    (
        ((httpx.HTTPStatusError,), lambda exc, action: translate(exc.response, action)),
        ((httpx.TransportError,), transport_error),
        ((JobRunning,), job_unfinished),
    )
)
"""The table the one call path translates Zendesk's failures with (see the module docstring)."""
