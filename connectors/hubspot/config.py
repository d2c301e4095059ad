"""Settings of the HubSpot connector, validated at start-up (a bad key fails naming ``connectors.hubspot.<key>``).

Only the access token is required. Everything that touches the network is explicit: host, timeouts, page and
batch sizes, the shared rate budgets and the retry bounds. Defaults are a Professional portal's private-app limits
(190 requests per 10 s, about 5 searches per second); Free and Starter portals get 100 per 10 s.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from sync.errors import ConfigError

DEFAULT_DEAL_PROPERTIES: tuple[str, ...] = (
    "dealname",
    "dealstage",
    "pipeline",
    "amount",
    "closedate",
    "createdate",
    "hs_lastmodifieddate",
    "hs_is_closed",
    "hs_merged_object_ids",
    "hubspot_owner_id",
)
DEFAULT_PUSH_PROPERTIES: tuple[str, ...] = ("posthog_account_id", "posthog_csm_email")
"""The deal properties push-back writes when the connector is built without a mapping (a worker always passes one)."""


class LinkRule(StrEnum):
    """Which deal of a company holds the account's ``hubspot_deal_id`` when the company has several.

    - ``newest_open``: the most recently created open deal, else (no open deal) the most recently created one.
    - ``newest``: the most recently created deal, open or not.
    - ``oldest``: the first deal ever created for the company.
    """

    NEWEST_OPEN = "newest_open"
    NEWEST = "newest"
    OLDEST = "oldest"


class HubSpotConfig(BaseModel):
    """Everything the HubSpot connector needs; secrets are ``SecretStr`` and never printed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    access_token: SecretStr = Field(description="private-app access token (Bearer)")
    host: AnyHttpUrl = Field(AnyHttpUrl("https://api.hubapi.com"), description="API base URL (a stand-in in tests)")

    client_secret: SecretStr | None = Field(None, description="app client secret that signs webhooks (v3)")
    webhook_url: str | None = Field(
        None, description="public URL HubSpot posts webhooks to, when a proxy changes the URL the worker sees"
    )
    webhook_max_age_s: float = Field(300.0, gt=0, description="oldest X-HubSpot-Request-Timestamp accepted")

    connect_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(30.0, gt=0)

    page_size: int = Field(100, ge=1, le=100, description="deals per get_page request (full sync)")
    batch_size: int = Field(100, ge=1, le=100, description="ids per batch read / batch update request")
    search_page_size: int = Field(200, ge=1, le=200, description="results per search request (HubSpot's max)")
    search_min_page_size: int = Field(
        25, ge=1, le=200, description="smallest search page after halving on rate-limited searches"
    )
    lookback_ms: int = Field(300_000, ge=0, description="incremental reads start this long before the cursor")
    follow_company_changes: bool = Field(
        True, description="incremental runs also re-read the deals of companies changed since the cursor"
    )

    deal_properties: tuple[str, ...] = Field(DEFAULT_DEAL_PROPERTIES, description="deal properties read")
    push_properties: tuple[str, ...] | None = Field(
        None,
        description="legacy: the deal properties crmsync writes back are configured in mappings.hubspot.deals "
        "(account_id_field, link_fields, outbound fields); a value here naming others fails at start-up",
    )
    company_properties: tuple[str, ...] = Field(("name", "domain"), description="company properties read")
    external_id_property: str = Field("posthog_external_id", description="company property holding the external id")
    property_group: str = Field("dealinformation", description="property group for properties crmsync creates")
    closed_stages: tuple[str, ...] = Field(("closedwon", "closedlost"), description="deal stages that are closed")
    link_rule: LinkRule = LinkRule.NEWEST_OPEN

    app_limit_per_10s: int = Field(190, ge=1, description="HubSpot's per-app budget per rolling 10 s")
    search_limit_per_s: float = Field(5.0, gt=0, description="HubSpot's separate search budget per second")
    budget_share: float = Field(0.9, gt=0, le=1, description="share of each HubSpot budget crmsync may use")
    budget_burst: float = Field(0.1, gt=0, lt=1, description="share of a budget that may go in one burst")
    budget_name: str | None = Field(
        None, description="name of the shared budget (workers using one app share it); default: from the token"
    )
    budget_namespace: str = Field("crmsync:budget", description="Redis key prefix of the shared budgets")
    max_budget_wait_s: float = Field(60.0, gt=0, description="longest wait for a budget token before giving up")
    max_retries: int = Field(5, ge=0, le=20, description="retries of one call on 429, 5xx and network errors")
    backoff_s: float = Field(1.0, ge=0, description="first backoff when HubSpot sends no Retry-After")
    max_backoff_s: float = Field(30.0, ge=0)
    owners_ttl_s: float = Field(600.0, ge=0, description="how long the owner list (id → email) is reused")

    @model_validator(mode="after")
    def _budgets_usable(self) -> HubSpotConfig:
        if self.search_limit_per_s * self.budget_share < 2:
            raise ValueError("search_limit_per_s * budget_share must be at least 2 requests per second")
        if self.app_limit_per_10s * self.budget_share < 2:
            raise ValueError("app_limit_per_10s * budget_share must be at least 2 requests per 10 s")
        return self

    @property
    def base_url(self) -> str:
        return str(self.host).rstrip("/")

    @property
    def request_timeout(self) -> tuple[float, float]:
        """``_request_timeout`` for every SDK call: (connect, read) seconds."""
        return (self.connect_timeout_s, self.read_timeout_s)

    @property
    def budget_id(self) -> str:
        """The shared budget's name: ``budget_name``, or a digest of host and token (never the token itself)."""
        if self.budget_name:
            return self.budget_name
        raw = f"{self.base_url}|{self.access_token.get_secret_value()}".encode()
        return hashlib.blake2b(raw, digest_size=8).hexdigest()

    @property
    def company_read_properties(self) -> list[str]:
        return list(dict.fromkeys([*self.company_properties, self.external_id_property]))


def load_hubspot_config(raw: Mapping[str, Any], key: str = "connectors.hubspot") -> HubSpotConfig:
    """Validate ``raw``; a bad entry raises ``ConfigError`` naming ``<key>.<field>`` (never its value)."""
    try:
        return HubSpotConfig.model_validate(dict(raw))
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = ".".join(str(p) for p in error["loc"])
        raise ConfigError(f"{key}.{loc}" if loc else key, error["msg"]) from None
