"""Property definitions (the ``crm/v3/properties`` schema) and the validation HubSpot applies to values.

Every record value is a string on the wire. A property's ``type`` decides how a written value is checked and
normalised (numbers must parse, datetimes are stored as ISO with milliseconds, enumerations must be one of
the options) and how search compares it. Writing a property that is not defined answers 400
``PROPERTY_DOESNT_EXIST``; writing a read-only one answers ``READ_ONLY_VALUE``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from sandbox.hubspot.errors import HubSpotError, bad_request
from sandbox.hubspot.timefmt import BASE_TIME_MS, DAY_MS, iso_date, iso_ms, parse_timestamp

PropertyType = Literal["string", "number", "date", "datetime", "enumeration", "bool"]
PROPERTY_TYPES: tuple[str, ...] = ("string", "number", "date", "datetime", "enumeration", "bool")
FIELD_TYPES: tuple[str, ...] = (
    "textarea",
    "text",
    "date",
    "file",
    "number",
    "select",
    "radio",
    "checkbox",
    "booleancheckbox",
    "calculation_equation",
    "phonenumber",
    "html",
)
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,99}$")
MAX_STRING_LENGTH = 65_536

DEAL_STAGES: tuple[tuple[str, str], ...] = (
    ("appointmentscheduled", "Appointment Scheduled"),
    ("qualifiedtobuy", "Qualified To Buy"),
    ("presentationscheduled", "Presentation Scheduled"),
    ("decisionmakerboughtin", "Decision Maker Bought-In"),
    ("contractsent", "Contract Sent"),
    ("closedwon", "Closed Won"),
    ("closedlost", "Closed Lost"),
)


@dataclass(frozen=True)
class Option:
    """One allowed value of an enumeration property."""

    value: str
    label: str
    display_order: int = 0
    hidden: bool = False
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "value": self.value,
            "displayOrder": self.display_order,
            "hidden": self.hidden,
            "description": self.description,
        }


@dataclass
class PropertyDef:
    """One property of one object type, as ``GET /crm/v3/properties/{objectType}`` describes it."""

    name: str
    label: str
    type: str
    field_type: str
    group_name: str
    description: str = ""
    options: list[Option] = field(default_factory=list)
    hubspot_defined: bool = True
    has_unique_value: bool = False
    read_only: bool = False
    calculated: bool = False
    references_owner: bool = False
    display_order: int = -1
    form_field: bool = True
    hidden: bool = False
    created_ms: int = BASE_TIME_MS
    updated_ms: int = BASE_TIME_MS

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "updatedAt": iso_ms(self.updated_ms),
            "createdAt": iso_ms(self.created_ms),
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "description": self.description,
            "groupName": self.group_name,
            "options": [option.to_json() for option in self.options],
            "displayOrder": self.display_order,
            "calculated": self.calculated,
            "externalOptions": self.references_owner,
            "hasUniqueValue": self.has_unique_value,
            "hidden": self.hidden,
            "hubspotDefined": self.hubspot_defined,
            "modificationMetadata": {
                "archivable": not self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only,
            },
            "formField": self.form_field,
            "archived": False,
        }
        if self.references_owner:
            body["referencedObjectType"] = "OWNER"
        return body


def _common(group: str) -> list[PropertyDef]:
    return [
        PropertyDef("createdate", "Create Date", "datetime", "date", group),
        PropertyDef("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", group, read_only=True),
        PropertyDef("hs_object_id", "Record ID", "number", "number", group, read_only=True),
        PropertyDef("hs_merged_object_ids", "Merged Record IDs", "enumeration", "checkbox", group, read_only=True),
        PropertyDef("hubspot_owner_id", "Owner", "enumeration", "select", group, references_owner=True),
        PropertyDef("description", "Description", "string", "textarea", group),
    ]


def default_deal_properties() -> list[PropertyDef]:
    """The deal properties a fresh portal has (the ones the sync and the seed use)."""
    stages = [Option(value, label, order) for order, (value, label) in enumerate(DEAL_STAGES)]
    return [
        PropertyDef("dealname", "Deal Name", "string", "text", "dealinformation"),
        PropertyDef("amount", "Amount", "number", "number", "dealinformation"),
        PropertyDef("dealstage", "Deal Stage", "enumeration", "radio", "dealinformation", options=stages),
        PropertyDef(
            "pipeline",
            "Pipeline",
            "enumeration",
            "select",
            "dealinformation",
            options=[Option("default", "Sales Pipeline")],
        ),
        PropertyDef("closedate", "Close Date", "datetime", "date", "dealinformation"),
        PropertyDef(
            "dealtype",
            "Deal Type",
            "enumeration",
            "radio",
            "dealinformation",
            options=[Option("newbusiness", "New Business", 0), Option("existingbusiness", "Existing Business", 1)],
        ),
        PropertyDef("closed_lost_reason", "Closed Lost Reason", "string", "textarea", "dealinformation"),
        *_common("dealinformation"),
    ]


def default_company_properties() -> list[PropertyDef]:
    """Company properties of a fresh portal, plus the custom ``posthog_external_id`` (unique) the seed uses."""
    return [
        PropertyDef("name", "Company name", "string", "text", "companyinformation"),
        PropertyDef("domain", "Company Domain Name", "string", "text", "companyinformation"),
        PropertyDef("website", "Website URL", "string", "text", "companyinformation"),
        PropertyDef("industry", "Industry", "string", "text", "companyinformation"),
        PropertyDef("phone", "Phone Number", "string", "phonenumber", "companyinformation"),
        PropertyDef("city", "City", "string", "text", "companyinformation"),
        PropertyDef("country", "Country/Region", "string", "text", "companyinformation"),
        *_common("companyinformation"),
        PropertyDef(
            "posthog_external_id",
            "PostHog external id",
            "string",
            "text",
            "companyinformation",
            description="Account id of this company in PostHog.",
            hubspot_defined=False,
            has_unique_value=True,
        ),
    ]


def property_from_create(body: dict[str, Any], existing: Iterable[str], now: int) -> PropertyDef:
    """Validate a ``PropertyCreate`` body into a new custom property; 409 if the name is taken."""
    missing = [key for key in ("name", "label", "type", "fieldType", "groupName") if not body.get(key)]
    if missing:
        raise bad_request(f"Missing required fields: {', '.join(missing)}")
    name = str(body["name"])
    if not _NAME_RE.match(name) or name.startswith("hs_"):
        raise bad_request(
            f"Property name '{name}' is invalid: use lowercase letters, digits and underscores, "
            "starting with a letter, and not the reserved prefix 'hs_'."
        )
    if name in existing:
        raise HubSpotError(409, "OBJECT_ALREADY_EXISTS", f"Property named '{name}' already exists.")
    if body["type"] not in PROPERTY_TYPES:
        raise bad_request(f"Invalid type '{body['type']}'; one of {', '.join(PROPERTY_TYPES)}.")
    if body["fieldType"] not in FIELD_TYPES:
        raise bad_request(f"Invalid fieldType '{body['fieldType']}'.")
    options = [
        Option(
            str(raw.get("value", "")),
            str(raw.get("label", "")),
            _int(raw.get("displayOrder"), order),
            bool(raw.get("hidden", False)),
            str(raw.get("description", "") or ""),
        )
        for order, raw in enumerate(body.get("options") or [])
        if isinstance(raw, dict)
    ]
    if body["type"] == "enumeration" and not options:
        raise bad_request(f"Enumeration property '{name}' needs at least one option.")
    return PropertyDef(
        name=name,
        label=str(body["label"]),
        type=str(body["type"]),
        field_type=str(body["fieldType"]),
        group_name=str(body["groupName"]),
        description=str(body.get("description") or ""),
        options=options,
        hubspot_defined=False,
        has_unique_value=bool(body.get("hasUniqueValue", False)),
        display_order=_int(body.get("displayOrder"), -1),
        form_field=bool(body.get("formField", True)),
        hidden=bool(body.get("hidden", False)),
        created_ms=now,
        updated_ms=now,
    )


def _int(raw: Any, default: int) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return default


@dataclass
class ValueIssue:
    """One invalid property value, rendered the way HubSpot lists them inside a 400 message."""

    name: str
    code: str
    message: str

    def to_json(self, portal_id: int) -> dict[str, Any]:
        return {
            "isValid": False,
            "message": self.message,
            "error": self.code,
            "name": self.name,
            "localizedErrorMessage": self.message,
            "portalId": portal_id,
        }


def stringify(raw: Any) -> str:
    """The string HubSpot stores for a JSON value (numbers and booleans are accepted, not only strings)."""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    return str(raw)


def normalize_value(
    definition: PropertyDef | None, name: str, raw: Any, is_owner: Callable[[str], bool]
) -> tuple[str | None, ValueIssue | None]:
    """The stored form of ``raw`` (None clears the value), or the issue that makes it invalid."""
    if definition is None:
        return None, ValueIssue(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
    if definition.read_only:
        return None, ValueIssue(name, "READ_ONLY_VALUE", f'Property "{name}" is a read only property')
    if raw is None:
        return None, None
    text = stringify(raw)
    if text == "":
        return None, None
    kind = definition.type
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            return None, ValueIssue(name, "INVALID_FLOAT", f"{text} was not a valid number.")
        return text.strip(), None
    if kind == "bool":
        lowered = text.strip().lower()
        if lowered not in ("true", "false"):
            return None, ValueIssue(name, "INVALID_BOOLEAN", f"{text} was not a valid boolean.")
        return lowered, None
    if kind in ("datetime", "date"):
        ms = parse_timestamp(text)
        if ms is None:
            return None, ValueIssue(name, "INVALID_DATE", f"{text} was not a valid date or timestamp.")
        if kind == "date":
            if ms % DAY_MS:
                return None, ValueIssue(name, "INVALID_DATE", f"{text} is not at midnight UTC.")
            return iso_date(ms), None
        return iso_ms(ms), None
    if kind == "enumeration":
        if definition.references_owner:
            if not is_owner(text):
                return None, ValueIssue(name, "INVALID_OWNER_ID", f"{text} is not a valid owner id")
            return text, None
        allowed = {option.value for option in definition.options}
        if allowed:
            chosen = text.split(";") if definition.field_type == "checkbox" else [text]
            bad = [value for value in chosen if value not in allowed]
            if bad:
                return None, ValueIssue(
                    name,
                    "INVALID_OPTION",
                    f"{bad[0]} was not one of the allowed options: [{', '.join(sorted(allowed))}]",
                )
        return text, None
    if len(text) > MAX_STRING_LENGTH:
        return None, ValueIssue(name, "INVALID_STRING", f"Value for {name} is longer than 65536 characters")
    return text, None
