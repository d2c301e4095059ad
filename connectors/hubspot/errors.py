"""HubSpot failures in the project's error tree. Every SDK sub-package has its own ``ApiException`` (no shared
base), so ``ERRORS`` (the error table the one call path, ``sync.calls``, translates through) is the one place
that knows them all; nothing above this module sees an SDK exception.

    RetryableError
    ├── HubSpotUnavailable        5xx, timeouts, dropped connections
    └── HubSpotRateLimited        429 on the 10-second or the search budget (``retry_after`` when sent;
                                  a ``sync.errors.RateLimitedError``)
    FatalError
    ├── HubSpotAuthError          401: bad or revoked token
    ├── HubSpotForbidden          403: the token lacks a scope
    ├── HubSpotDailyLimit         429 with policy DAILY: no retry helps before tomorrow
    ├── HubSpotPagingLoop         a page token came back twice: stop instead of looping
    └── HubSpotRequestError       another 4xx: a request HubSpot refuses (``status``, ``category``)
        └── HubSpotNotFound       404

Messages carry the operation, status, HubSpot's category and message (truncated); never the token or headers.
"""

from __future__ import annotations

import json
from typing import Any

import urllib3
from hubspot.crm.associations.v4 import ApiException as AssociationsApiException
from hubspot.crm.companies import ApiException as CompaniesApiException
from hubspot.crm.deals import ApiException as DealsApiException
from hubspot.crm.owners import ApiException as OwnersApiException
from hubspot.crm.properties import ApiException as PropertiesApiException

from sync.calls import ErrorTable
from sync.errors import CrmsyncError, FatalError, RateLimitedError, RetryableError
from sync.paging import PagingLoop
from sync.vendor import retry_after

SDK_EXCEPTIONS: tuple[type[Exception], ...] = (
    DealsApiException,
    CompaniesApiException,
    OwnersApiException,
    AssociationsApiException,
    PropertiesApiException,
)
"""The ``ApiException`` of each SDK sub-package the connector calls."""

_MESSAGE_MAX = 300


class HubSpotUnavailable(RetryableError):
    """HubSpot did not answer usefully (5xx, timeout, connection error); the same call may work later."""

    def __init__(self, message: str, status: int = 0, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after)
        self.status = status


class HubSpotRateLimited(RateLimitedError):
    """A 429 on a rolling budget (``policy``: ``TEN_SECONDLY_ROLLING``, ``SECONDLY``, ...)."""

    def __init__(self, message: str, policy: str | None, retry_after: float | None) -> None:
        super().__init__(message, retry_after)
        self.policy = policy
        self.status = 429


class HubSpotFatal(FatalError):
    """Base of the HubSpot failures no retry fixes; ``status`` and ``category`` as HubSpot sent them."""

    def __init__(self, message: str, status: int = 0, category: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.category = category


class HubSpotAuthError(HubSpotFatal):
    """401: the access token is wrong, expired or revoked."""


class HubSpotForbidden(HubSpotFatal):
    """403: the private app lacks a scope this call needs."""


class HubSpotDailyLimit(HubSpotFatal):
    """429 with policy ``DAILY``: the portal's daily allowance is spent."""


class HubSpotPagingLoop(HubSpotFatal, PagingLoop):
    """A paging token repeated: HubSpot (or a stand-in) would make the read loop forever."""


class HubSpotRequestError(HubSpotFatal):
    """A 4xx other than auth and rate limits: HubSpot refuses this request as built."""


class HubSpotNotFound(HubSpotRequestError):
    """404: the object (or route) does not exist."""


def error_fields(body: Any) -> dict[str, Any]:
    """HubSpot's error JSON (``{"status": "error", "message", "category", ...}``) as a dict; {} if unparsable."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str) or not body:
        return {}
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


_STATUS_KINDS: dict[int, type[HubSpotFatal]] = {
    401: HubSpotAuthError,
    403: HubSpotForbidden,
    404: HubSpotNotFound,
}
"""Fatal statuses with an error of their own; any other 4xx is a ``HubSpotRequestError``."""


def _api_error(exc: Exception, operation: str) -> CrmsyncError:
    """An SDK ``ApiException``: 0 (no answer) and 5xx retryable, 429 rate limited (``DAILY``: fatal), else fatal."""
    status = int(getattr(exc, "status", 0) or 0)
    fields = error_fields(getattr(exc, "body", None))
    category = fields.get("category")
    detail = str(fields.get("message") or getattr(exc, "reason", "") or "")[:_MESSAGE_MAX]
    message = f"HubSpot {operation}: {status} {category or ''}: {detail}".replace("  ", " ")
    wait = retry_after(getattr(exc, "headers", None))
    if status == 0:
        return HubSpotUnavailable(f"HubSpot {operation}: connection failed: {detail}")
    if status == 429:
        policy = fields.get("policyName")
        if policy == "DAILY":
            return HubSpotDailyLimit(message, status, category)
        return HubSpotRateLimited(message, policy, wait)
    if status >= 500:
        return HubSpotUnavailable(message, status, wait)
    return _STATUS_KINDS.get(status, HubSpotRequestError)(message, status, category)


def _transport_error(exc: Exception, operation: str) -> CrmsyncError:
    cause = getattr(exc, "reason", None)  # MaxRetryError wraps the timeout or connection error
    name = type(cause).__name__ if isinstance(cause, BaseException) else type(exc).__name__
    return HubSpotUnavailable(f"HubSpot {operation}: {name}")


ERRORS = ErrorTable(
    (
        (SDK_EXCEPTIONS, _api_error),
        ((urllib3.exceptions.HTTPError, OSError), _transport_error),
    )
)
"""HubSpot's error table for the one call path (``sync.calls``): SDK answers, then urllib3 and socket errors."""


def translate(exc: BaseException, operation: str) -> CrmsyncError:
    """The project error for an SDK or urllib3 exception raised by ``operation`` (e.g. ``deals.search``)."""
    error = ERRORS.translate(exc, operation)
    if error is None:
        raise TypeError(f"not a HubSpot transport error: {type(exc).__name__}") from exc
    return error
