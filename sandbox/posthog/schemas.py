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


DisplayType = Literal["text", "link", "number", "currency", "percent", "date", "datetime", "boolean", "select"]
OptionColor = Literal[
    "preset-1", "preset-2", "preset-3", "preset-4", "preset-5",
    "preset-6", "preset-7", "preset-8", "preset-9", "preset-10",
]  # fmt: skip


class CustomPropertyOption(BaseModel):
    id: str
    label: str
    color: OptionColor


class CustomPropertyDefinition(BaseModel):
    id: str = Field(json_schema_extra={"format": "uuid"})
    name: str
    description: str | None
    display_type: DisplayType
    target_type: Literal["account", "person", "group"]
    group_type_index: int | None
    is_big_number: bool
    is_canonical: bool
    options: list[CustomPropertyOption] | None
    source: dict[str, Any] | None = Field(
        description="The warehouse source feeding it; such a definition refuses API writes."
    )
    created_at: str = Field(json_schema_extra={"format": "date-time"})
    created_by: int | None
    updated_at: str = Field(json_schema_extra={"format": "date-time"})
    references: list[dict[str, Any]]


class PaginatedCustomPropertyDefinitionList(BaseModel):
    count: int
    next: str | None
    previous: str | None
    results: list[CustomPropertyDefinition]


class CustomPropertyValue(BaseModel):
    id: str = Field(json_schema_extra={"format": "uuid"})
    account_id: str = Field(json_schema_extra={"format": "uuid"})
    definition_id: str = Field(json_schema_extra={"format": "uuid"})
    value: bool | float | str = Field(description="Typed by the definition; datetimes as ISO 8601 text.")
    created_at: str = Field(json_schema_extra={"format": "date-time"})
    created_by_id: int | None


class CustomPropertyValueList(RootModel[list[CustomPropertyValue]]):
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


class CustomPropertyOptionInput(BaseModel):
    id: str | None = Field(None, description="Server-assigned; send it back unchanged when editing.")
    label: str = Field(max_length=400)
    color: OptionColor


class CustomPropertyDefinitionCreate(BaseModel):
    name: str = Field(min_length=1, max_length=400, description="Unique per project.")
    description: str | None = None
    display_type: DisplayType
    target_type: Literal["account"] = "account"
    is_big_number: bool = False
    options: list[CustomPropertyOptionInput] | None = Field(None, description="Required (non-empty) for select.")


class CustomPropertyValueSet(BaseModel):
    definition: str = Field(json_schema_extra={"format": "uuid"})
    value: bool | float | str = Field(description="Coerced by the definition's type; null is refused.")


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
    CustomPropertyDefinitionCreate,
    CustomPropertyValueSet,
)

PATCH_MODELS = {
    "PatchedAccount": "AccountCreate",
    "PatchedUsageMetric": "UsageMetricCreate",
    "PatchedRelationshipDefinition": "RelationshipDefinitionCreate",
    "PatchedCustomPropertyDefinition": "CustomPropertyDefinitionCreate",
}
"""PATCH bodies: the create body with nothing required and no defaults (omitted fields stay unchanged)."""
