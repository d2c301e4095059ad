"""Settings of one Zendesk connector (one Zendesk Support account), validated at start-up with the bad key named.

Secrets are ``SecretStr`` and never printed. Zendesk's limits depend on the plan, so the budgets are settings:
``requests_per_minute`` (the account's Support API limit: 200 to 2,500 a minute by plan) and
``export_requests_per_minute`` (the incremental exports' own limit: 10 a minute, 30 with the High Volume API
add-on); see ``docs/connectors/zendesk.md`` for the sources.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from sync.errors import ConfigError
from sync.keys import crm_budget


class ZendeskConfig(BaseModel):
    """How to reach one Zendesk account and how much of it the connector may use.

    - ``url``: the account's API host, ``https://<subdomain>.zendesk.com`` (a stand-in in tests and the demo).
    - ``email`` / ``api_token``: API token authentication (basic auth as ``{email}/token`` with the token).
    - ``webhook_secret``: the signing secret of the webhook that posts organization events to crmsync;
      ``webhook_tolerance_s``: how far its signed timestamp may be from now (replay window).
    - ``page_size``: organizations per cursor-paginated page of the first full read (Zendesk allows 100).
    - ``requests_per_minute`` / ``export_requests_per_minute``: the shared budgets (Redis token buckets) all
      workers draw on; ``max_budget_wait_s``: how long one call may wait for a token before the run gives up with
      a retryable error.
    - ``full_read_overlap_s``: the incremental export after a full read starts this long before the full read's
      first answer, so a change made while it ran is read again (the ledger absorbs the repeat).
    - ``max_retries``, ``backoff_s``, ``max_backoff_s``, ``max_retry_total_s``: short retries of 429, 5xx and
      network errors (``sync.retry.RetryPolicy``); a longer ``Retry-After`` goes up for a job retry.
    - ``job_max_polls``: how many times a bulk update's job status is read before its records are reported as
      not (yet) written, retryable.
    - ``connect_timeout_s`` / ``read_timeout_s``: per HTTP attempt.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s/]+@[^@\s/]+$")
    api_token: SecretStr
    webhook_secret: SecretStr | None = None
    webhook_tolerance_s: int = Field(300, gt=0, le=86_400)
    page_size: int = Field(100, ge=1, le=100)
    requests_per_minute: int = Field(200, ge=1, le=100_000)
    export_requests_per_minute: int = Field(10, ge=1, le=1_000)
    max_budget_wait_s: float = Field(60.0, ge=0, le=3600)
    full_read_overlap_s: int = Field(120, ge=0, le=86_400)
    max_retries: int = Field(4, ge=0, le=10)
    backoff_s: float = Field(0.5, ge=0, le=60)
    max_backoff_s: float = Field(30.0, ge=0, le=600)
    max_retry_total_s: float = Field(120.0, ge=0, le=3600)
    job_max_polls: int = Field(30, ge=1, le=1000)
    connect_timeout_s: float = Field(10.0, gt=0, le=120)
    read_timeout_s: float = Field(60.0, gt=0, le=600)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/") or parts.query:
            raise ValueError("must be the account's URL such as https://acme.zendesk.com (no path)")
        return value.rstrip("/")

    @property
    def host(self) -> str:
        """The API host (``acme.zendesk.com``), with its port when not the default one."""
        return urlsplit(self.url).netloc.lower()

    @property
    def budget_key(self) -> str:
        """The Redis key stem of this account's budgets (the host: every worker of one account shares them)."""
        digest = hashlib.sha256(self.host.encode()).hexdigest()[:16]
        return crm_budget("zendesk", digest)


def load_zendesk_config(raw: Mapping[str, Any], prefix: str = "sources.zendesk.config") -> ZendeskConfig:
    """Validate a raw mapping (the ``sources.zendesk.config`` block of ``crmsync.yaml``).

    A bad entry raises ``ConfigError`` naming its key path, never echoing a secret value.
    """
    try:
        return ZendeskConfig.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = ".".join(str(part) for part in error["loc"])
        raise ConfigError(f"{prefix}.{loc}" if loc else prefix, error["msg"]) from None
