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
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from sync.connector import CrmRecord
from sync.custom_values import DisplayType, ValueTypeError, coerce, type_name
from sync.errors import BadRecordError, ConfigError
from sync.ledger_layout import compact_fp
from sync.posthog.models import ID_KEYS, ROLE_KEYS

NAME_MAX = 400
TAG_MAX = 255
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


# -- transforms ----------------------------------------------------------------------------------------------


class Constant(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    constant: str


class Template(BaseModel):
    """``{Name} ({Id})``: placeholders are dotted paths into the record."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    template: str

    @field_validator("template")
    @classmethod
    def _parses(cls, value: str) -> str:
        list(string.Formatter().parse(value))  # raises ValueError on a malformed template
        return value


Transform = Literal["strip", "lower", "upper", "domain"] | Constant | Template


def domain_of(value: str) -> str | None:
    """``ana@Acme.com`` → ``acme.com``; ``https://www.acme.com/x`` → ``acme.com``; junk → None."""
    value = value.strip().lower()
    if not value:
        return None
    if "@" in value and "://" not in value:
        host = value.rsplit("@", 1)[1]
    else:
        try:
            host = urlsplit(value if "://" in value else f"//{value}").hostname or ""
        except ValueError:  # e.g. an unbalanced "[" (IPv6 literal syntax)
            return None
    host = host.removeprefix("www.").strip(".")
    return host if "." in host and " " not in host else None


def get_path(record: Mapping[str, Any], path: str) -> Any:
    """Follow a dotted path through nested mappings; None where any step is missing."""
    current: Any = record
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


def set_path(record: Mapping[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``record`` with the dotted ``path`` set to ``value`` (nested mappings created as needed)."""
    head, _, rest = path.partition(".")
    copy = dict(record)
    if not rest:
        copy[head] = value
    else:
        inner = copy.get(head)
        copy[head] = set_path(inner if isinstance(inner, Mapping) else {}, rest, value)
    return copy


def _apply_transform(value: Any, transform: Transform, record: Mapping[str, Any]) -> Any:
    if isinstance(transform, Constant):
        return transform.constant
    if isinstance(transform, Template):
        names = [name for _, name, _, _ in string.Formatter().parse(transform.template) if name]
        values = {name: get_path(record, name) for name in names}
        if any(v is None for v in values.values()):
            return None
        for v in values.values():
            if isinstance(v, bool) or not isinstance(v, str | int | float):
                raise TypeError(f"expected text, got {type(v).__name__}")
        return transform.template.format_map({k: str(v) for k, v in values.items()})
    if value is None:
        return None
    if isinstance(value, list):
        return [v for v in (_apply_transform(item, transform, record) for item in value) if v is not None]
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    match transform:
        case "strip":
            return value.strip()
        case "lower":
            return value.lower()
        case "upper":
            return value.upper()
        case "domain":
            return domain_of(value)
    raise AssertionError(transform)


# -- configuration --------------------------------------------------------------------------------------------


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


class RuleKind(StrEnum):
    PRECEDENCE = "precedence"
    NEWEST_WINS = "newest_wins"
    POSTHOG_WINS = "posthog_wins"
    SET_IF_EMPTY = "set_if_empty"


class OwnerRule(BaseModel):
    """Who may write one account field.

    - ``precedence``: the sources in ``order`` (earlier wins); a source may overwrite a value set by itself or
      by a source ranked below it, never one ranked above. Sources not listed rank last. Without ``order``, the
      registered sources in their declared default precedence (given to ``load_mapping_config`` by the caller,
      which reads it from ``connectors.registry.default_precedence``).
    - ``newest_wins``: the record modified most recently wins (by the source's own modification time).
    - ``posthog_wins``: PostHog owns it; CRMs only fill it while empty, and it flows out to the CRMs.
    - ``set_if_empty``: any source may fill it while empty; nobody overwrites it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: RuleKind = RuleKind.PRECEDENCE
    order: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _default_order(cls, data: Any, info: ValidationInfo) -> Any:
        """Without ``order``, the registered sources' default precedence, when the loader was given it."""
        precedence = (info.context or {}).get("precedence")
        if isinstance(data, dict) and "order" not in data and precedence:
            return {**data, "order": tuple(precedence)}
        return data


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
        return _digest(self.model_dump(mode="json"))


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


# -- mapped records -------------------------------------------------------------------------------------------

AccountValue = Annotated[Any, "str | list[str] | None"]


@dataclass(frozen=True)
class AccountPatch:
    """What one CRM record says about its account: only the fields this source maps inbound."""

    source: str
    object: str
    record_id: str
    link_key: str
    values: dict[str, Any]  # target → value ("name", "external_id", "properties.x", "roles.csm" (email), "tags")
    version: int | None = None
    deleted: bool = False
    errors: tuple[BadRecordError, ...] = ()
    link_rank: int = 0
    merged_ids: tuple[str, ...] = ()

    @property
    def tags(self) -> tuple[str, ...]:
        value = self.values.get("tags")
        return tuple(value) if isinstance(value, list | tuple) else ()

    def fingerprint(self, mapping_fingerprint: str) -> str:
        """Changes when anything the engine acts on changes: mapped values, deletion, link rank, merges."""
        payload: dict[str, Any] = {
            "m": mapping_fingerprint,
            "v": self.values,
            "d": self.deleted,
            "l": self.link_key,
            "id": self.record_id,
        }
        if self.link_rank:
            payload["r"] = self.link_rank
        if self.merged_ids:
            payload["mi"] = sorted(self.merged_ids)
        return compact_fp(_digest(payload))


def normalise_tags(values: Sequence[str]) -> list[str]:
    """Tags as PostHog stores them: stripped, lowercased, de-duplicated (sorted for stable fingerprints)."""
    return sorted({v.strip().lower() for v in values if v and v.strip()})


def _check_value(target: str, value: Any) -> Any:
    """Validate a mapped value against PostHog's limits; raises ValueError with the reason."""
    if value is None:
        return None
    if target == "tags":
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in items):
            raise ValueError("tags must be text")
        tags = normalise_tags(items)
        if any(len(t) > TAG_MAX for t in tags):
            raise ValueError(f"a tag is longer than {TAG_MAX} characters")
        return tags
    if target == "churned_at":
        return churn_time(value)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected text, got {type(value).__name__}")
    text = str(value)
    if "\x00" in text or any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        raise ValueError("contains invalid characters")
    if target == "name":
        text = text.strip()
        if not text:
            return None
        if len(text) > NAME_MAX:
            raise ValueError(f"longer than {NAME_MAX} characters")
    elif target == "external_id" and len(text) > NAME_MAX:
        raise ValueError(f"longer than {NAME_MAX} characters")
    elif target.startswith("roles."):
        text = text.strip().lower()
        if not text:
            return None
        if not _EMAIL_RE.match(text):
            raise ValueError(f"not an email address: {text[:80]!r}")
    return text if text != "" else None


def churn_time(value: Any) -> str | None:
    """A ``churned_at`` value as the account field holds it: ISO 8601 in UTC with microseconds, from epoch
    seconds (Stripe's ``ended_at``) or an ISO 8601 string (a naive one is UTC); None when empty."""
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        raise ValueError("expected a time, got bool")
    if isinstance(value, int | float):
        when = datetime.fromtimestamp(float(value), UTC)
    elif isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"not an ISO 8601 time: {value[:80]!r}") from None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
    else:
        raise ValueError(f"expected a time, got {type(value).__name__}")
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def map_record(record: CrmRecord, mapping: ObjectMapping) -> AccountPatch:
    """Apply the inbound field mappings to one record. Bad fields are reported and left out; the rest stays."""
    values: dict[str, Any] = {}
    errors: list[BadRecordError] = []
    for fm in mapping.inbound:
        try:
            value = _mapped_value(record.fields, fm)
            value = _custom_value(fm, value) if fm.custom_name is not None else _check_value(fm.target, value)
        except (TypeError, ValueError) as exc:
            errors.append(BadRecordError(record.source, record.id, fm.paths[0] if fm.paths else fm.target, str(exc)))
            continue
        if value is None:
            continue
        if fm.target == "tags":
            values["tags"] = normalise_tags([*values.get("tags", []), *value])
        else:
            values.setdefault(fm.target, value)
    return AccountPatch(
        source=record.source,
        object=record.object,
        record_id=record.id,
        link_key=mapping.link,
        values=values,
        version=record.version,
        deleted=record.deleted,
        errors=tuple(errors),
        link_rank=record.link_rank,
        merged_ids=tuple(record.merged_ids),
    )


def _custom_value(fm: FieldMapping, value: Any) -> Any:
    """A custom target's value as PostHog would store it (None when empty), or ValueError naming the value's type
    and the definition."""
    if value in (None, ""):
        return None
    assert fm.type is not None and fm.custom_name is not None  # validated with the config
    try:
        return coerce(fm.type, value, fm.custom_name, fm.options)
    except ValueTypeError as exc:
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise ValueError(
            f"{type_name(value)} value {shown} does not fit custom property definition "
            f"'{fm.custom_name}' ({fm.type.value}): {exc}"
        ) from None


def _mapped_value(fields: Mapping[str, Any], fm: FieldMapping) -> Any:
    value: Any = None
    for path in fm.paths:
        candidate = get_path(fields, path)
        if candidate not in (None, "", []):
            value = candidate
            break
    for transform in fm.transforms:
        value = _apply_transform(value, transform, fields)
    return value


def _digest(payload: Any) -> str:
    raw = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def fingerprint_of(payload: Any) -> str:
    """A value's fingerprint as the ledger stores it (``compact_fp`` of its digest)."""
    return compact_fp(_digest(payload))


@dataclass
class Provenance:
    """Who set one account field last (as far as crmsync knows) and when, by the source's own clock."""

    source: str
    version: int | None = None
    value_fp: str = ""

    def dump(self) -> dict[str, Any]:
        return {"s": self.source, "v": self.version, "f": self.value_fp}

    @classmethod
    def load(cls, raw: Mapping[str, Any]) -> Provenance:
        return cls(source=str(raw["s"]), version=raw.get("v"), value_fp=str(raw.get("f", "")))


@dataclass
class Claim:
    """Whether a source may write a field now, and why not when it may not."""

    allowed: bool
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def may_write(
    rule: OwnerRule,
    source: str,
    version: int | None,
    current_value: Any,
    provenance: Provenance | None,
) -> Claim:
    """Decide whether ``source`` may set a field whose current PostHog value and provenance are given."""
    empty = current_value in (None, "", [], {})
    if rule.rule in (RuleKind.POSTHOG_WINS, RuleKind.SET_IF_EMPTY):
        return Claim(empty, "" if empty else f"{rule.rule.value}: already set")
    if empty or provenance is None:
        return Claim(True)
    if rule.rule is RuleKind.NEWEST_WINS:
        if provenance.source == source or provenance.version is None or version is None:
            return Claim(True)
        newer = version >= provenance.version
        return Claim(newer, "" if newer else f"newest_wins: {provenance.source} is newer")

    def rank(s: str) -> int:
        return rule.order.index(s) if s in rule.order else len(rule.order)

    ok = rank(source) <= rank(provenance.source)
    return Claim(ok, "" if ok else f"precedence: owned by {provenance.source}")
