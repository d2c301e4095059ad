"""Typed shapes of the PostHog Customer API: accounts, usage metrics, organisation members.

Response fields the models do not know (e.g. ``notebooks``) are ignored. Unknown keys inside an account's
``properties`` are the exception: PostHog replaces ``properties`` whole on PATCH, so they are kept on read and
written back untouched (``AccountProperties`` allows extra keys and ``payload()`` includes them).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

ROLE_KEYS: tuple[str, ...] = ("csm", "account_executive", "account_owner")
ID_KEYS: tuple[str, ...] = ("stripe_customer_id", "hubspot_deal_id", "billing_id", "sfdc_id", "zendesk_id")


class Role(BaseModel):
    """A role holder on an account: a PostHog user's integer id and email, both required."""

    model_config = ConfigDict(frozen=True)

    id: int
    email: str


class AccountProperties(BaseModel):
    """An account's ``properties``: the role holders, the links to other systems, and any key kept as-is."""

    model_config = ConfigDict(extra="allow")

    csm: Role | None = None
    account_executive: Role | None = None
    account_owner: Role | None = None
    stripe_customer_id: str | None = None
    hubspot_deal_id: str | None = None
    billing_id: str | None = None
    sfdc_id: str | None = None
    zendesk_id: str | None = None

    @field_validator("csm", "account_executive", "account_owner", mode="before")
    @classmethod
    def _empty_role_is_unassigned(cls, value: Any) -> Any:
        """A role stored as ``{}`` (PostHog stores what a client sent) means unassigned, not a broken account."""
        return None if value == {} else value

    def payload(self) -> dict[str, Any]:
        """The JSON object to send back: every key that was read or set, including unknown ones."""
        return self.model_dump(mode="json", exclude_unset=True)


class Account(BaseModel):
    """A PostHog account (customer company) as the API returns it."""

    model_config = ConfigDict(extra="ignore")

    id: str
    name: str
    external_id: str | None = None
    properties: AccountProperties = Field(default_factory=AccountProperties)
    tags: list[str] = Field(default_factory=list)
    created_at: datetime | None = None
    created_by: int | None = None
    updated_at: datetime | None = None
    churned_at: datetime | None = None  # current servers (migration 0032): when the customer churned, writable


def account_ts(account: Account) -> str:
    """``updated_at`` as a sortable string (ISO 8601 with microseconds, UTC): the unit of every watermark."""
    return account.updated_at.isoformat(timespec="microseconds") if account.updated_at else ""


class AccountOrdering(StrEnum):
    CREATED_AT = "created_at"
    CREATED_AT_DESC = "-created_at"
    NAME = "name"
    NAME_DESC = "-name"
    UPDATED_AT = "updated_at"
    UPDATED_AT_DESC = "-updated_at"


RoleFilter = int | Literal["unassigned"]
T = TypeVar("T")


class AccountFilter(BaseModel):
    """The list filters of ``GET .../accounts/``; all combine with AND. ``None`` leaves a filter out.

    The role filters (``csm``, ``account_executive``, ``account_owner``) exist on seed and transitional servers
    only: current ones dropped them and ignore unknown query parameters, so such a filter would silently list
    every account. Nothing in crmsync's sync path uses them (``sync.posthog.generation`` says where roles live)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    search: str | None = None
    tags: tuple[str, ...] | None = None
    csm: RoleFilter | None = None
    account_executive: RoleFilter | None = None
    account_owner: RoleFilter | None = None
    all_roles_unassigned: bool = False
    ordering: AccountOrdering | None = None
    # Current servers hide churned accounts from lists unless ``include_churned=true``; older ones ignore the
    # parameter. On by default: an index or reconciliation that missed churned accounts would think them gone.
    include_churned: bool = True

    def query_params(self) -> dict[str, str]:
        """Query parameters exactly as PostHog parses them (``tags`` is a JSON-encoded list)."""
        import json

        params: dict[str, str] = {}
        if self.search is not None:
            params["search"] = self.search
        if self.tags is not None:
            params["tags"] = json.dumps(list(self.tags))
        for role in ROLE_KEYS:
            value = getattr(self, role)
            if value is not None:
                params[role] = str(value)
        if self.all_roles_unassigned:
            params["all_roles_unassigned"] = "true"
        if self.ordering is not None:
            params["ordering"] = self.ordering.value
        if self.include_churned:
            params["include_churned"] = "true"
        return params


class MetricFormat(StrEnum):
    NUMERIC = "numeric"
    CURRENCY = "currency"


class MetricDisplay(StrEnum):
    NUMBER = "number"
    SPARKLINE = "sparkline"


class MetricMath(StrEnum):
    COUNT = "count"
    SUM = "sum"


class UsageMetricSpec(BaseModel):
    """The writable fields of a group type usage metric (what ``metrics apply`` files declare)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255)
    format: MetricFormat = MetricFormat.NUMERIC
    interval: int = Field(7, ge=1)
    display: MetricDisplay = MetricDisplay.NUMBER
    filters: dict[str, Any]
    math: MetricMath = MetricMath.COUNT
    math_property: str | None = Field(None, max_length=255)

    @field_validator("math_property")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

    def payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class UsageMetric(UsageMetricSpec):
    """A usage metric as PostHog returns it (the spec plus its id)."""

    model_config = ConfigDict(extra="ignore")

    id: str

    def spec(self) -> UsageMetricSpec:
        return UsageMetricSpec.model_validate(self.model_dump(exclude={"id"}))


class MemberUser(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: int
    email: str
    first_name: str = ""
    last_name: str = ""


class Member(BaseModel):
    """An organisation membership; ``user.id`` and ``user.email`` are what account roles carry."""

    model_config = ConfigDict(extra="ignore")

    id: str
    user: MemberUser
    level: int | None = None

    def role(self) -> Role:
        return Role(id=self.user.id, email=self.user.email)


class Page(BaseModel, Generic[T]):
    """One page of a limit/offset list: ``next``/``previous`` are absolute URLs or None."""

    count: int
    next: str | None = None
    previous: str | None = None
    results: list[T]
