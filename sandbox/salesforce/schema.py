"""The stand-in org's data model: which sObjects exist, their fields, and how values look on the wire.

Two objects, as a connector sees them in a real org with the PostHog fields added:

- ``Account`` (key prefix ``001``): ``Name``, ``Website``, ``Industry`` (a standard picklist: one of
  ``INDUSTRIES``), ``OwnerId`` → User (relationship ``Owner``),
  ``CSM__c`` → User (relationship ``CSM__r``), ``PostHog_External_Id__c`` (an External ID text field),
  ``PostHog_Account_Id__c``, ``PostHog_CSM_Email__c`` (an Email field crmsync writes the PostHog CSM into),
  ``Legacy_Account_Ref__c`` (a second text field, so a mapping can point ``account_id_field`` elsewhere),
  ``PostHog_Health_Score__c`` (a text field crmsync writes a PostHog-owned custom property into),
  and the system fields ``IsDeleted``, ``CreatedDate``, ``CreatedById``
  (``CreatedBy``), ``LastModifiedDate``, ``LastModifiedById`` (``LastModifiedBy``), ``SystemModstamp``.
- ``User`` (key prefix ``005``): ``Username``, ``Email``, ``FirstName``, ``LastName``, ``Name`` (computed),
  ``IsActive`` and the date fields. Users are never deleted (deactivated instead), so ``User`` has no
  ``IsDeleted`` column, as in a real org.

Field and object names are case-insensitive in SOQL and in request bodies; responses use the canonical case.
Datetimes are stored at one-second precision (as Salesforce does) and serialised as
``2024-05-01T10:00:00.000+0000``.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import UTC, datetime
from enum import Enum

from sandbox.salesforce import ids


class FieldType(Enum):
    """Salesforce field types the stand-in models (the ``type`` reported by describe)."""

    ID = "id"
    STRING = "string"
    URL = "url"
    EMAIL = "email"
    PICKLIST = "picklist"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    REFERENCE = "reference"

    @property
    def is_text(self) -> bool:
        return self in (FieldType.STRING, FieldType.URL, FieldType.EMAIL, FieldType.PICKLIST)

    @property
    def is_id(self) -> bool:
        return self in (FieldType.ID, FieldType.REFERENCE)


@dataclass(frozen=True)
class FieldSpec:
    """One field of an sObject, with the flags describe reports and DML enforces."""

    name: str
    type: FieldType
    label: str
    length: int = 0
    createable: bool = True
    updateable: bool = True
    nillable: bool = True
    external_id: bool = False
    reference_to: str | None = None
    relationship_name: str | None = None

    @property
    def custom(self) -> bool:
        return self.name.endswith("__c")


@dataclass(frozen=True)
class ObjectSpec:
    """One sObject type: its name, id prefix and fields (in describe order)."""

    name: str
    key_prefix: str
    fields: tuple[FieldSpec, ...]
    required: tuple[str, ...] = ()
    _by_lower: dict[str, FieldSpec] = dc_field(default_factory=dict, compare=False, repr=False)
    _by_relationship: dict[str, FieldSpec] = dc_field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for spec in self.fields:
            self._by_lower[spec.name.lower()] = spec
            if spec.relationship_name:
                self._by_relationship[spec.relationship_name.lower()] = spec

    def field(self, name: str) -> FieldSpec | None:
        """The field called ``name`` (any case), or None."""
        return self._by_lower.get(name.lower())

    def relationship(self, name: str) -> FieldSpec | None:
        """The lookup field whose relationship is called ``name`` (``Owner`` → ``OwnerId``), or None."""
        return self._by_relationship.get(name.lower())

    @property
    def has_is_deleted(self) -> bool:
        return "isdeleted" in self._by_lower


def _system_fields() -> tuple[FieldSpec, ...]:
    return (
        FieldSpec("CreatedDate", FieldType.DATETIME, "Created Date", createable=False, updateable=False),
        FieldSpec(
            "CreatedById",
            FieldType.REFERENCE,
            "Created By ID",
            length=18,
            createable=False,
            updateable=False,
            reference_to="User",
            relationship_name="CreatedBy",
        ),
        FieldSpec("LastModifiedDate", FieldType.DATETIME, "Last Modified Date", createable=False, updateable=False),
        FieldSpec(
            "LastModifiedById",
            FieldType.REFERENCE,
            "Last Modified By ID",
            length=18,
            createable=False,
            updateable=False,
            reference_to="User",
            relationship_name="LastModifiedBy",
        ),
        FieldSpec("SystemModstamp", FieldType.DATETIME, "System Modstamp", createable=False, updateable=False),
    )


INDUSTRIES: tuple[str, ...] = (
    "Agriculture",
    "Apparel",
    "Banking",
    "Biotechnology",
    "Chemicals",
    "Communications",
    "Construction",
    "Consulting",
    "Education",
    "Electronics",
    "Energy",
    "Engineering",
    "Entertainment",
    "Environmental",
    "Finance",
    "Food & Beverage",
    "Government",
    "Healthcare",
    "Hospitality",
    "Insurance",
    "Machinery",
    "Manufacturing",
    "Media",
    "Not For Profit",
    "Recreation",
    "Retail",
    "Shipping",
    "Technology",
    "Telecommunications",
    "Transportation",
    "Utilities",
    "Other",
)
"""The values of Salesforce's standard ``Account.Industry`` picklist in a new org."""

ACCOUNT = ObjectSpec(
    name="Account",
    key_prefix=ids.ACCOUNT_PREFIX,
    required=("Name",),
    fields=(
        FieldSpec("Id", FieldType.ID, "Account ID", length=18, createable=False, updateable=False),
        FieldSpec("IsDeleted", FieldType.BOOLEAN, "Deleted", createable=False, updateable=False, nillable=False),
        FieldSpec("Name", FieldType.STRING, "Account Name", length=255, nillable=False),
        FieldSpec("Website", FieldType.URL, "Website", length=255),
        FieldSpec("Industry", FieldType.PICKLIST, "Industry", length=255),
        FieldSpec(
            "OwnerId",
            FieldType.REFERENCE,
            "Owner ID",
            length=18,
            nillable=False,
            reference_to="User",
            relationship_name="Owner",
        ),
        FieldSpec("CSM__c", FieldType.REFERENCE, "CSM", length=18, reference_to="User", relationship_name="CSM__r"),
        FieldSpec("PostHog_External_Id__c", FieldType.STRING, "PostHog External Id", length=255, external_id=True),
        FieldSpec("PostHog_Account_Id__c", FieldType.STRING, "PostHog Account Id", length=255),
        FieldSpec("PostHog_CSM_Email__c", FieldType.EMAIL, "PostHog CSM Email", length=80),
        FieldSpec("Legacy_Account_Ref__c", FieldType.STRING, "Legacy Account Ref", length=255),
        FieldSpec("PostHog_Health_Score__c", FieldType.STRING, "PostHog Health Score", length=40),
        *_system_fields(),
    ),
)

USER = ObjectSpec(
    name="User",
    key_prefix=ids.USER_PREFIX,
    required=("Username", "Email", "LastName"),
    fields=(
        FieldSpec("Id", FieldType.ID, "User ID", length=18, createable=False, updateable=False),
        FieldSpec("Username", FieldType.STRING, "Username", length=80, nillable=False),
        FieldSpec("Email", FieldType.EMAIL, "Email", length=128, nillable=False),
        FieldSpec("FirstName", FieldType.STRING, "First Name", length=40),
        FieldSpec("LastName", FieldType.STRING, "Last Name", length=80, nillable=False),
        FieldSpec("Name", FieldType.STRING, "Full Name", length=121, createable=False, updateable=False),
        FieldSpec("IsActive", FieldType.BOOLEAN, "Active", nillable=False),
        *_system_fields(),
    ),
)

OBJECTS: dict[str, ObjectSpec] = {spec.name.lower(): spec for spec in (ACCOUNT, USER)}


def object_spec(name: str) -> ObjectSpec | None:
    """The sObject called ``name`` (any case), or None when the org has no such type."""
    return OBJECTS.get(name.lower())


def now_utc() -> datetime:
    """The current time, truncated to the second as Salesforce stores datetimes."""
    return datetime.now(UTC).replace(microsecond=0)


def format_datetime(value: datetime) -> str:
    """The REST API form of a datetime: ``2024-05-01T10:00:00.000+0000``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def format_soap_datetime(value: datetime) -> str:
    """The SOAP (Outbound Message) form of a datetime: ``2024-05-01T10:00:00.000Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def parse_api_datetime(text: str) -> datetime | None:
    """Parse the datetime forms the REST API accepts in parameters (``Z``, ``+hh:mm`` or ``+hhmm``)."""
    candidate = text.strip().replace(" ", "+")
    if candidate.endswith("Z"):
        candidate = candidate[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
