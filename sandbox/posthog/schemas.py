"""OpenAPI models of the PostHog stand-in: what its requests accept and what it really answers.

These models only document; request bodies are parsed by ``validation`` (DRF-style, lenient about unknown
keys) and responses are built by ``store``. Response models are honest about lax inputs PostHog stores as
sent (a role ``id`` of ``"7"`` comes back as ``"7"``), so a schema-conformance check holds.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel


class ErrorBody(BaseModel):
    """drf-exceptions-hog's error: only the first error, ``attr`` names the field (or null)."""

    type: str = Field(examples=["validation_error"])
    code: str = Field(examples=["required"])
    detail: str = Field(examples=["This field is required."])
    attr: str | None = Field(examples=["name"])


class NotFoundBody(BaseModel):
    """A 404: drf-exceptions-hog's body, or on current PostHog a view's own ``{"detail": "Not found."}``."""

    detail: str = Field(examples=["Not found."])
    type: str | None = None
    code: str | None = None
    attr: str | None = None


class RoleAssignmentOut(BaseModel):
    """A role on an account. ``id`` is the PostHog user id, returned exactly as it was written."""

    model_config = ConfigDict(extra="allow")

    id: int | float | str | bool = Field(
        description='User id as sent; PostHog parses it laxly (``"7"`` is accepted) and stores it unchanged.'
    )
    email: str


class AccountPropertiesOut(BaseModel):
    """Known account property keys; absent keys are simply not there."""

    model_config = ConfigDict(extra="forbid")

    csm: RoleAssignmentOut | None = None
    account_executive: RoleAssignmentOut | None = None
    account_owner: RoleAssignmentOut | None = None
    stripe_customer_id: str | None = None
    hubspot_deal_id: str | None = None
    billing_id: str | None = None
    sfdc_id: str | None = None
    zendesk_id: str | None = None
    slack_channel_id: str | None = None
    usage_dashboard_link: str | None = None
    metabase_link: str | None = None
    email_domains: list[str] | None = None
    known_emails: list[str] | None = None


class Account(BaseModel):
    """An account as PostHog serialises it."""

    id: str = Field(description="UUIDv7", json_schema_extra={"format": "uuid"})
    name: str
    external_id: str | None
    properties: AccountPropertiesOut
    tags: list[str]
    created_at: str = Field(json_schema_extra={"format": "date-time"})
    created_by: int | None
    updated_at: str = Field(json_schema_extra={"format": "date-time"})
    notebooks: list[str]
    slack_summary_cadence: Literal["daily", "weekly", "monthly"] | None = Field(None, description="Current only.")
    churned_at: str | None = Field(None, description="Current only.", json_schema_extra={"format": "date-time"})
    ignored_at: str | None = Field(None, description="Current only.", json_schema_extra={"format": "date-time"})


class PaginatedAccountList(BaseModel):
    count: int
    next: str | None
    previous: str | None
    results: list[Account]


MetricFormat = Literal["numeric", "currency"]
MetricDisplay = Literal["number", "sparkline"]
MetricMath = Literal["count", "sum"]


class UsageMetric(BaseModel):
    """A group-type usage metric definition (its values are computed elsewhere in PostHog)."""

    id: str = Field(json_schema_extra={"format": "uuid"})
    name: str
    format: MetricFormat
    interval: int
    display: MetricDisplay
    filters: dict[str, Any]
    math: MetricMath
    math_property: str | None


class PaginatedUsageMetricList(BaseModel):
    count: int
    next: str | None
    previous: str | None
    results: list[UsageMetric]


class MemberUser(BaseModel):
    id: int
    uuid: str = Field(json_schema_extra={"format": "uuid"})
    distinct_id: str
    first_name: str
    last_name: str
    email: str
    is_email_verified: bool


class OrganizationMember(BaseModel):
    id: str = Field(json_schema_extra={"format": "uuid"})
    user: MemberUser
    level: int
    joined_at: str = Field(json_schema_extra={"format": "date-time"})
    updated_at: str = Field(json_schema_extra={"format": "date-time"})
    is_2fa_enabled: bool
    has_social_auth: bool


class PaginatedOrganizationMemberList(BaseModel):
    count: int
    next: str | None
    previous: str | None
    results: list[OrganizationMember]


class Project(BaseModel):
    id: int
    organization: str = Field(json_schema_extra={"format": "uuid"})
    name: str
    created_at: str = Field(json_schema_extra={"format": "date-time"})


class RelationshipDefinition(BaseModel):
    id: str = Field(json_schema_extra={"format": "uuid"})
    name: str
    description: str | None
    is_single_holder: bool


class PaginatedRelationshipDefinitionList(BaseModel):
    count: int
    next: str | None
    previous: str | None
    results: list[RelationshipDefinition]


class AssignedUser(BaseModel):
    id: int
    email: str


class Relationship(BaseModel):
    id: str = Field(json_schema_extra={"format": "uuid"})
    definition: RelationshipDefinition
    user: AssignedUser | None
    started_at: str = Field(json_schema_extra={"format": "date-time"})
    ended_at: str | None = Field(json_schema_extra={"format": "date-time"})


class RelationshipList(RootModel[list[Relationship]]):
    pass


# Request bodies (documented through ``openapi_extra``; parsed by ``validation``)


class RoleAssignmentInput(BaseModel):
    id: int = Field(description="PostHog user id (organisation member ``user.id``).")
    email: str


class AccountPropertiesInput(BaseModel):
    """Only these keys are accepted; ``properties`` is replaced whole on update."""

    model_config = ConfigDict(extra="forbid")

    csm: RoleAssignmentInput | None = None
    account_executive: RoleAssignmentInput | None = None
    account_owner: RoleAssignmentInput | None = None
    stripe_customer_id: str | None = None
    hubspot_deal_id: str | None = None
    billing_id: str | None = None
    sfdc_id: str | None = None
    zendesk_id: str | None = None
    slack_channel_id: str | None = None
    usage_dashboard_link: str | None = None
    metabase_link: str | None = Field(None, description="Current only.")
    email_domains: list[str] | None = Field(None, description="Current only; changing it needs an org admin.")
    known_emails: list[str] | None = Field(None, description="Current only; changing it needs an org admin.")


class AccountCreate(BaseModel):
    name: str = Field(min_length=1, max_length=400)
    external_id: str | None = Field(None, max_length=400, description="Unique per project when not null.")
    properties: AccountPropertiesInput | None = Field(
        None, description="On current PostHog the role keys are refused (400): roles live on relationships."
    )
    tags: list[str] = Field(default_factory=list, description="Normalised: stripped, lower-cased, de-duplicated.")
    slack_summary_cadence: Literal["daily", "weekly", "monthly"] | None = Field(None, description="Current only.")
    churned_at: str | None = Field(None, description="Current only.", json_schema_extra={"format": "date-time"})


class RelationshipDefinitionCreate(BaseModel):
    name: str = Field(min_length=1, max_length=400, description="Unique per project.")
    description: str | None = None
    is_single_holder: bool = True


class RelationshipAssign(BaseModel):
    definition: str = Field(json_schema_extra={"format": "uuid"})
    user: int = Field(description="User id of an organisation member.")


class UsageMetricCreate(BaseModel):
    name: str = Field(min_length=1, max_length=255)
    format: MetricFormat = "numeric"
    interval: int = Field(
        7, ge=-2_147_483_648, le=2_147_483_647, description="Window in days; no minimum (0 is accepted)."
    )
    display: MetricDisplay = "number"
    filters: dict[str, Any] = Field(description='Events filter, or ``{"source": "data_warehouse", ...}``.')
    math: MetricMath = "count"
    math_property: str | None = Field(None, max_length=255, description="Required for sum, empty for count.")


REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    AccountCreate,
    UsageMetricCreate,
    RelationshipDefinitionCreate,
    RelationshipAssign,
)

PATCH_MODELS = {
    "PatchedAccount": "AccountCreate",
    "PatchedUsageMetric": "UsageMetricCreate",
    "PatchedRelationshipDefinition": "RelationshipDefinitionCreate",
}
"""PATCH bodies: the create body with nothing required and no defaults (omitted fields stay unchanged)."""
