"""The stand-in's data types: object types, records, owners, association types and change events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sandbox.hubspot.timefmt import iso_ms


@dataclass(frozen=True)
class ObjectType:
    """What differs between deals and companies: names, HubSpot's type id, defaults, id ranges."""

    plural: str
    singular: str
    type_id: str
    upper: str
    default_properties: tuple[str, ...]
    searchable: tuple[str, ...]
    seed_id_base: int
    api_id_base: int


DEALS = ObjectType(
    plural="deals",
    singular="deal",
    type_id="0-3",
    upper="DEAL",
    default_properties=(
        "amount",
        "closedate",
        "createdate",
        "dealname",
        "dealstage",
        "hs_lastmodifieddate",
        "hs_object_id",
        "pipeline",
    ),
    searchable=("dealname",),
    seed_id_base=9_000_000_000,
    api_id_base=9_900_000_000,
)
COMPANIES = ObjectType(
    plural="companies",
    singular="company",
    type_id="0-2",
    upper="COMPANY",
    default_properties=("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
    searchable=("name", "domain", "website"),
    seed_id_base=4_000_000_000,
    api_id_base=4_900_000_000,
)
OBJECT_TYPES: dict[str, ObjectType] = {t.plural: t for t in (DEALS, COMPANIES)}
_ALIASES: dict[str, ObjectType] = {
    **OBJECT_TYPES,
    **{t.singular: t for t in (DEALS, COMPANIES)},
    **{t.type_id: t for t in (DEALS, COMPANIES)},
}

ALWAYS_RETURNED = ("createdate", "hs_lastmodifieddate", "hs_object_id")
"""HubSpot adds these to every record it returns, whatever ``properties`` asked for."""


def object_type(name: str) -> ObjectType | None:
    """``deals``, ``deal`` or ``0-3`` (and the company equivalents) to the object type; None if unknown."""
    return _ALIASES.get(name.lower())


@dataclass(frozen=True)
class AssociationType:
    """One HubSpot-defined association type between deals and companies."""

    type_id: int
    label: str | None
    name: str

    def v4_json(self) -> dict[str, Any]:
        return {"category": "HUBSPOT_DEFINED", "typeId": self.type_id, "label": self.label}


DEAL_TO_COMPANY_PRIMARY = AssociationType(5, "Primary", "deal_to_company")
DEAL_TO_COMPANY = AssociationType(341, None, "deal_to_company_unlabeled")
COMPANY_TO_DEAL_PRIMARY = AssociationType(6, "Primary", "company_to_deal")
COMPANY_TO_DEAL = AssociationType(342, None, "company_to_deal_unlabeled")


def association_types(from_type: ObjectType, primary: bool) -> list[AssociationType]:
    """The types a deal-company link shows from ``from_type``'s side: unlabeled, plus Primary if it is."""
    if from_type is DEALS:
        return [DEAL_TO_COMPANY_PRIMARY, DEAL_TO_COMPANY] if primary else [DEAL_TO_COMPANY]
    return [COMPANY_TO_DEAL_PRIMARY, COMPANY_TO_DEAL] if primary else [COMPANY_TO_DEAL]


@dataclass
class Record:
    """One deal or company. ``values`` holds stored properties; id and modified date are derived."""

    id: int
    values: dict[str, str]
    created_ms: int
    updated_ms: int
    archived_ms: int | None = None

    @property
    def archived(self) -> bool:
        return self.archived_ms is not None

    def get(self, name: str) -> str | None:
        """A property value as HubSpot returns it (None when unset)."""
        if name == "hs_object_id":
            return str(self.id)
        if name == "hs_lastmodifieddate":
            return iso_ms(self.updated_ms)
        return self.values.get(name)


@dataclass
class Owner:
    """A HubSpot user who can own records (``crm/v3/owners``)."""

    id: int
    email: str
    first_name: str
    last_name: str
    user_id: int
    created_ms: int
    updated_ms: int
    archived: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "email": self.email,
            "type": "PERSON",
            "firstName": self.first_name,
            "lastName": self.last_name,
            "userId": self.user_id,
            "userIdIncludingInactive": self.user_id,
            "createdAt": iso_ms(self.created_ms),
            "updatedAt": iso_ms(self.updated_ms),
            "archived": self.archived,
            "teams": [],
        }


ChangeKind = Literal["creation", "propertyChange", "deletion", "merge", "restore"]


@dataclass(frozen=True)
class Change:
    """Something a webhook subscriber hears about: one event of a delivery."""

    kind: ChangeKind
    object_type: ObjectType
    object_id: int
    occurred_ms: int
    source: str
    property_name: str | None = None
    property_value: str | None = None
    merged_ids: tuple[int, ...] = field(default_factory=tuple)
    properties_moved: int = 0
