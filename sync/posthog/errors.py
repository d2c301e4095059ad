"""Errors of the PostHog Customer API, as the client raises them.

    PostHogError                        every failed call; ``status``, ``code``, ``detail``, ``attr`` from the body
    ├── PostHogValidationError   (400)  ``attr`` names the field, ``detail`` says why        (not retried)
    ├── PostHogUnauthorized      (401)  missing or invalid personal API key          FatalError (not retried)
    ├── PostHogForbidden         (403)  missing scope (``scope``) or project access  FatalError (not retried)
    ├── PostHogNotFound          (404)                                                        (not retried)
    ├── PostHogConflict          (409)  e.g. duplicate ``external_id``                        (not retried)
    ├── PostHogRateLimited       (429)  ``retry_after`` seconds when sent           RateLimitedError
    ├── PostHogServerError       (5xx)                                              RetryableError
    └── PostHogTransportError           timeout, refused or dropped connection      RetryableError

PostHog's error body is ``{"type", "code", "detail", "attr"}``; only the first error is reported.
"""

from __future__ import annotations

import re
from typing import Any

from sync.errors import CrmsyncError, FatalError, RateLimitedError, RetryableError

_SCOPE_RE = re.compile(r"required scope '([^']+)'")


class PostHogError(CrmsyncError):
    """A PostHog API call failed."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        detail: str | None = None,
        attr: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.detail = detail
        self.attr = attr
        self.method = method
        self.path = path


class PostHogValidationError(PostHogError):
    """400: the request was invalid; ``attr`` names the field and ``detail`` the reason."""


class PostHogUnauthorized(PostHogError, FatalError):
    """401: no personal API key, or an invalid one."""


class PostHogForbidden(PostHogError, FatalError):
    """403: the key lacks a scope (``scope`` names it) or access to the project."""

    @property
    def scope(self) -> str | None:
        match = _SCOPE_RE.search(self.detail or "")
        return match.group(1) if match else None


class PostHogNotFound(PostHogError):
    """404: no such object in this project."""


class PostHogConflict(PostHogError):
    """409: e.g. an account with this ``external_id`` already exists."""


class PostHogRateLimited(PostHogError, RateLimitedError):
    """429: throttled; ``retry_after`` is the server's hint in seconds, if it sent one."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        PostHogError.__init__(self, message, **kwargs)
        self.retry_after = retry_after


class PostHogServerError(PostHogError, RetryableError):
    """5xx: PostHog failed; the call may succeed later."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        PostHogError.__init__(self, message, **kwargs)
        self.retry_after = None


class PostHogTransportError(PostHogError, RetryableError):
    """The request did not get an HTTP answer: timeout, refused or dropped connection."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        PostHogError.__init__(self, message, **kwargs)
        self.retry_after = None


_BY_STATUS: dict[int, type[PostHogError]] = {
    400: PostHogValidationError,
    401: PostHogUnauthorized,
    403: PostHogForbidden,
    404: PostHogNotFound,
    409: PostHogConflict,
}


def error_for_response(status: int, body: Any, method: str, path: str, retry_after: float | None) -> PostHogError:
    """Translate one non-2xx response into the tree above."""
    fields = body if isinstance(body, dict) else {}
    code = fields.get("code") if isinstance(fields.get("code"), str) else None
    detail = fields.get("detail") if isinstance(fields.get("detail"), str) else None
    attr = fields.get("attr") if isinstance(fields.get("attr"), str) else None
    where = f"{method} {path}"
    message = f"PostHog {status} on {where}: {detail or 'no detail'}" + (f" (attr {attr})" if attr else "")
    kwargs: dict[str, Any] = {
        "status": status,
        "code": code,
        "detail": detail,
        "attr": attr,
        "method": method,
        "path": path,
    }
    if status == 429:
        return PostHogRateLimited(message, retry_after=retry_after, **kwargs)
    if status >= 500:
        return PostHogServerError(message, **kwargs)
    return _BY_STATUS.get(status, PostHogError)(message, **kwargs)
