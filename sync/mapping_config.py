"""Declarative field mappings: CRM record → the account fields one source claims (and back, for push-back).

Configured per source and object in ``crmsync.yaml`` (see ``examples/crmsync.yaml``)::

    mappings:
      salesforce:
        Account:
          link: sfdc_id                         # the account property holding this record's id
          fields:
            - {source: Name, target: name, transforms: [strip]}
            - {source: Website, target: domain, transforms: [domain]}
            - {source: Owner.Email, target: roles.account_owner, transforms: [strip, lower]}
            - {source: PostHog_External_Id__c, target: external_id}
            - {source: CSM_Email__c, target: roles.csm, direction: outbound}

A field's ``source`` is a dotted path into the record (``Owner.Email``), or a list of paths tried in order
(the first non-empty wins: a fallback). ``target`` is ``name``, ``external_id``, ``properties.<key>``,
``roles.<csm|account_executive|account_owner>`` (an email, resolved to ``{id, email}`` through PostHog's
members), ``tags``, ``domain`` (used only to match accounts, never written: PostHog has no such property), or
``custom.<Definition name>``: a typed custom account property, with its ``type`` (``text``, ``number``,
``currency``, ``percent``, ``date``, ``datetime``, ``boolean``, ``select`` with its ``options``, ``link``). A
custom value is coerced by PostHog's rules when the record is mapped (``sync/custom_values.py``); one that does
not fit is a per-record error naming the field, the value's type and the definition.
``direction`` is ``inbound`` (CRM → PostHog, the default), ``outbound`` (PostHog → CRM
field ``source``) or ``both``. Who may write each account field is said once, in ``ownership`` (see
``OwnerRule``). Everything is validated at start-up; a bad key fails naming it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sync.custom_values import DisplayType
from sync.errors import ConfigError
from sync.ownership import OwnerRule
from sync.posthog.models import ID_KEYS, ROLE_KEYS
from sync.transforms import Constant, Template, Transform


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    BOTH = "both"

    @property
    def inbound(self) -> bool:
        return self is not Direction.OUTBOUND

    @property
    def outbound(self) -> bool:
        return self is not Direction.INBOUND


_TARGET_RE = re.compile(
    r"^(name|external_id|churned_at|tags|domain|properties\.[A-Za-z_][A-Za-z0-9_]*|roles\.[a-z_]+|custom\.\S(?:.{0,398}\S)?)$"
)
CUSTOM_PREFIX = "custom."
WRITABLE_PROPERTIES: tuple[str, ...] = (*ID_KEYS, "slack_channel_id", "usage_dashboard_link")
"""Property keys PostHog accepts (it rejects unknown keys with a 400); roles are mapped as ``roles.<role>``."""


class FieldMapping(BaseModel):
    """One CRM field ↔ one account field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str | tuple[str, ...] | None = None
    target: str
    transforms: tuple[Transform, ...] = ()
    direction: Direction = Direction.INBOUND
    type: DisplayType | None = Field(None, description="a custom.<name> target's definition type")
    options: tuple[str, ...] = Field((), description="a select definition's option labels")

    @field_validator("target")
    @classmethod
    def _known_target(cls, value: str) -> str:
        if not _TARGET_RE.match(value):
            raise ValueError(
                "must be name, external_id, churned_at, tags, domain, properties.<key>, roles.<role> "
                "or custom.<Definition name>"
            )
        if value.startswith("roles.") and value.removeprefix("roles.") not in ROLE_KEYS:
            raise ValueError(f"unknown role; one of {', '.join(ROLE_KEYS)}")
        if value.startswith("properties.") and value.removeprefix("properties.") in ROLE_KEYS:
            raise ValueError("roles are mapped as roles.<role> (an email resolved to a PostHog user)")
        if value.startswith("properties.") and value.removeprefix("properties.") not in WRITABLE_PROPERTIES:
            raise ValueError(f"PostHog accepts only these properties: {', '.join(WRITABLE_PROPERTIES)}")
        return value

    @model_validator(mode="after")
    def _has_a_value(self) -> FieldMapping:
        produces = any(isinstance(t, Constant | Template) for t in self.transforms)
        if self.source is None and not produces:
            raise ValueError("needs a source path or a constant/template transform")
        if self.direction.outbound and not isinstance(self.source, str):
            raise ValueError("an outbound field needs one source path (the CRM field to write)")
        if self.custom_name is None:
            if self.type is not None or self.options:
                raise ValueError("type and options belong to custom.<Definition name> targets only")
        elif self.type is None:
            raise ValueError(f"{self.target}: needs a type ({', '.join(t.value for t in DisplayType)})")
        elif (self.type is DisplayType.SELECT) != bool(self.options):
            raise ValueError(f"{self.target}: options are required for type select, and only for it")
        return self

    @property
    def custom_name(self) -> str | None:
        """The custom property definition's name for a ``custom.<name>`` target, else None."""
        return self.target.removeprefix(CUSTOM_PREFIX) if self.target.startswith(CUSTOM_PREFIX) else None

    @property
    def paths(self) -> tuple[str, ...]:
        if self.source is None:
            return ()
        return (self.source,) if isinstance(self.source, str) else self.source


class ObjectMapping(BaseModel):
    """How one CRM object (e.g. HubSpot ``deals``) maps onto accounts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    link: str = Field(description="account property that holds this record's id, e.g. sfdc_id")
    fields: tuple[FieldMapping, ...] = ()
    account_id_field: str | None = Field(
        None, description="CRM field that receives the PostHog account id on push-back"
    )
    link_fields: dict[str, str] = Field(
        default_factory=dict, description="CRM fields that receive the other systems' ids, by account property"
    )
    unlink_tag: str | None = Field(None, description="tag added to an account when this record is deleted")

    @field_validator("link")
    @classmethod
    def _known_link(cls, value: str) -> str:
        if value not in ID_KEYS:
            raise ValueError(f"must be one of {', '.join(ID_KEYS)}")
        return value

    @field_validator("link_fields")
    @classmethod
    def _known_links(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if key not in ID_KEYS:
                raise ValueError(f"{key}: must be one of {', '.join(ID_KEYS)}")
        return value

    @property
    def inbound(self) -> tuple[FieldMapping, ...]:
        return tuple(f for f in self.fields if f.direction.inbound)

    @property
    def outbound(self) -> tuple[FieldMapping, ...]:
        return tuple(f for f in self.fields if f.direction.outbound)

    @property
    def written(self) -> tuple[str, ...]:
        """The CRM fields push-back writes, each once: ``account_id_field``, the ``link_fields`` targets and the
        outbound fields' source paths. The one place a connector learns what it writes (and must read back)."""
        names: list[str] = [self.account_id_field] if self.account_id_field else []
        names.extend(self.link_fields.values())
        names.extend(fm.source for fm in self.outbound if isinstance(fm.source, str))
        return tuple(dict.fromkeys(names))


class IdentityConfig(BaseModel):
    """How records find their account beyond their own links and ``external_id``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    match_domain: bool = Field(
        False, description="match records to accounts by exact domain; an ambiguous domain goes to review"
    )
    on_account_deleted: Literal["recreate", "unlink"] = Field(
        "recreate",
        description="an account a person deleted in PostHog: re-create it from its CRM records, or unlink them "
        "for good (they are not synced again)",
    )


class MappingConfig(BaseModel):
    """The ``mappings``, ``ownership`` and ``identity`` sections of ``crmsync.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mappings: dict[str, dict[str, ObjectMapping]]
    ownership: dict[str, OwnerRule] = Field(default_factory=dict)
    default_rule: OwnerRule = OwnerRule()
    identity: IdentityConfig = IdentityConfig()

    @model_validator(mode="before")
    @classmethod
    def _validate_default_rule(cls, data: Any) -> Any:
        """An absent ``default_rule`` is validated like a written one, so it gets the default precedence too."""
        if isinstance(data, dict) and "default_rule" not in data:
            return {**data, "default_rule": {}}
        return data

    @model_validator(mode="after")
    def _ownership_targets(self) -> MappingConfig:
        for target in self.ownership:
            if not _TARGET_RE.match(target):
                raise ValueError(f"ownership.{target}: not an account field")
        return self

    @model_validator(mode="after")
    def _custom_types_agree(self) -> MappingConfig:
        self.custom_definitions()
        return self

    def custom_definitions(self) -> dict[str, tuple[DisplayType, tuple[str, ...]]]:
        """Every custom property definition the mapping declares: name → (type, select options). Two fields
        naming one definition with different types fail, naming the second one's key."""
        found: dict[str, tuple[DisplayType, tuple[str, ...]]] = {}
        for source, objects in self.mappings.items():
            for obj, om in objects.items():
                for n, fm in enumerate(om.fields):
                    if fm.custom_name is None or fm.type is None:
                        continue
                    declared = (fm.type, tuple(fm.options))
                    if found.setdefault(fm.custom_name, declared) != declared:
                        raise ValueError(
                            f"mappings.{source}.{obj}.fields.{n}.type: {fm.target} is declared elsewhere as "
                            f"{found[fm.custom_name][0].value} {list(found[fm.custom_name][1]) or ''}".rstrip()
                        )
        return found

    def custom_key(self, name: str) -> str:
        """The config key of the first field that maps onto custom property ``name`` (for start-up errors)."""
        for source, objects in self.mappings.items():
            for obj, om in objects.items():
                for n, fm in enumerate(om.fields):
                    if fm.custom_name == name:
                        return f"mappings.{source}.{obj}.fields.{n}.target"
        return f"custom.{name}"

    def rule_for(self, target: str) -> OwnerRule:
        return self.ownership.get(target, self.default_rule)

    def object(self, source: str, obj: str) -> ObjectMapping:
        try:
            return self.mappings[source][obj]
        except KeyError:
            raise ConfigError(f"mappings.{source}.{obj}", "no mapping configured for this object") from None

    def fingerprint(self) -> str:
        """Changes when the mapping changes, so a new mapping re-applies records once."""
        return digest(self.model_dump(mode="json"))


def load_mapping_config(raw: Mapping[str, Any], precedence: Sequence[str] = ()) -> MappingConfig:
    """Validate the mapping sections; a bad entry raises ``ConfigError`` naming its key path. ``precedence`` is the
    order a ``precedence`` rule without ``order`` uses (the workers pass the registered sources' default)."""
    try:
        return MappingConfig.model_validate(raw, context={"precedence": tuple(precedence)})
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = ".".join(str(p) for p in error["loc"] if not str(p).startswith(("function-", "literal[")))
        msg = str(error["msg"]).removeprefix("Value error, ")
        if not loc and msg.startswith("mappings.") and ": " in msg:
            loc, msg = msg.split(": ", 1)
        raise ConfigError(loc or "mappings", msg) from None


def load_mapping_file(path: str | Path, precedence: Sequence[str] = ()) -> MappingConfig:
    """The mapping sections of a ``crmsync.yaml`` file (other sections are read by their own loaders)."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(str(path), f"cannot read config: {exc}") from None
    if not isinstance(raw, dict) or "mappings" not in raw:
        raise ConfigError(f"{path}: mappings", "missing")
    sections = ("mappings", "ownership", "default_rule", "identity")
    return load_mapping_config({k: raw[k] for k in sections if k in raw}, precedence)


def digest(payload: Any) -> str:
    """A stable digest of a JSON-able value: what the mapping's and the records' fingerprints are made of."""
    raw = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.blake2b(raw, digest_size=16).hexdigest()
