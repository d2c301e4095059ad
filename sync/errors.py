"""The project's one error tree. Lower-layer errors (httpx, vendor SDKs) are translated once, at the boundary.

    CrmsyncError
    ├── RetryableError      try the same thing again later: rate limits, 5xx, timeouts, dropped connections
    │   │                   (``retry_after`` in seconds when the server said how long to wait)
    │   └── RateLimitedError  the vendor refused the request for its rate (429): the one call path
    │                       (``sync.calls``) counts it and drains the shared budget for every worker
    ├── FatalError          stop the run and report it: bad credentials, a missing scope, bad configuration
    │   └── ConfigError     configuration that cannot work, naming the offending key
    └── BadRecordError      this one record cannot be applied (source, id, field, reason); the batch goes on

Vendor-specific subclasses (``sync.posthog.errors``, ``connectors.*``) inherit from one of the three branches so
callers decide by branch, never by vendor. Messages never contain secrets.
"""

from __future__ import annotations


class CrmsyncError(Exception):
    """Base of every error crmsync raises on purpose."""


class RetryableError(CrmsyncError):
    """A transient failure: the same call may succeed later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimitedError(RetryableError):
    """The vendor refused the request for its rate limit (a 429, or its equivalent); the request was not run."""


class FatalError(CrmsyncError):
    """A failure no retry can fix; the run stops with this reason in its report."""


class ConfigError(FatalError):
    """Configuration that cannot work; ``key`` names the offending setting (e.g. ``connectors.hubspot.token``)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


class BadRecordError(CrmsyncError):
    """One record that cannot be applied. Reported with where it came from; the rest of the batch goes on."""

    def __init__(self, source: str, record_id: str | None, field: str | None, reason: str) -> None:
        super().__init__(f"{source} record {record_id or '<no id>'}: {field or '<record>'}: {reason}")
        self.source = source
        self.record_id = record_id
        self.field = field
        self.reason = reason

    def as_report(self) -> dict[str, str | None]:
        """The shape run reports use: ``{"source", "id", "field", "reason"}``."""
        return {"source": self.source, "id": self.record_id, "field": self.field, "reason": self.reason}
