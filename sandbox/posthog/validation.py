"""Request-body validation with PostHog's (Django REST Framework's) rules and messages.

Each ``validate_*`` takes the decoded JSON body and returns only the fields that were sent (DRF drops
unknown and read-only keys silently); the first problem raises a 400 ``ApiError`` naming the field in
``attr``, in the serializer's field order, exactly like DRF + drf-exceptions-hog report it.

Where PostHog itself would fail with a 500 (a value its database cannot store), this module answers a
400 instead, in the same shape; each such place says so in its docstring.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from sandbox.posthog.errors import ApiError, validation_error

ACCOUNT_NAME_MAX = 400
EXTERNAL_ID_MAX = 400
TAG_MAX = 255
METRIC_NAME_MAX = 255
MATH_PROPERTY_MAX = 255
INTERVAL_MIN = -2_147_483_648  # PostHog's IntegerField has no minimum; Postgres' integer range bounds it
INTERVAL_MAX = 2_147_483_647
ROLE_KEYS = ("csm", "account_executive", "account_owner")

METRIC_FORMATS = ("numeric", "currency")
METRIC_DISPLAYS = ("number", "sparkline")
METRIC_MATHS = ("count", "sum")
DATA_WAREHOUSE_FIELDS = ("table_name", "timestamp_field", "key_field")
METRIC_DEFAULTS: dict[str, Any] = {"format": "numeric", "interval": 7, "display": "number", "math": "count"}


class _Missing:
    """The key was not in the body (distinct from an explicit ``null``)."""


MISSING = _Missing()
_RE_DECIMAL = re.compile(r"\.0*\s*$")


class RoleAssignment(BaseModel):
    """``{"id": <user id>, "email": ...}`` on an account; PostHog validates it and stores what was sent."""

    id: int
    email: str


class AccountPropertiesModel(BaseModel):
    """The keys PostHog knows inside ``properties``; any other key is rejected."""

    model_config = ConfigDict(extra="forbid")

    csm: RoleAssignment | None = None
    account_executive: RoleAssignment | None = None
    account_owner: RoleAssignment | None = None
    stripe_customer_id: str | None = None
    hubspot_deal_id: str | None = None
    billing_id: str | None = None
    sfdc_id: str | None = None
    zendesk_id: str | None = None
    slack_channel_id: str | None = None
    usage_dashboard_link: str | None = None


def _type_name(value: object) -> str:
    return type(value).__name__


def require_object(data: object) -> dict[str, Any]:
    """The body must be a JSON object (DRF: ``non_field_errors``, reported with ``attr: null``)."""
    if data is None:
        raise validation_error(None, "null", "This field may not be null.")
    if not isinstance(data, dict):
        raise validation_error(None, "invalid", f"Invalid data. Expected a dictionary, but got {_type_name(data)}.")
    return data


def _present(data: Mapping[str, Any], field: str, *, required: bool) -> Any:
    """The raw value of ``field``; ``MISSING`` if absent and optional; ``required`` error otherwise."""
    if field in data:
        return data[field]
    if required:
        raise validation_error(field, "required", "This field is required.")
    return MISSING


def _check_characters(attr: str, text: str) -> None:
    """DRF's CharField validators: no NUL characters, no lone surrogates."""
    if "\x00" in text:
        raise validation_error(attr, "null_characters_not_allowed", "Null characters are not allowed.")
    for char in text:
        if 0xD800 <= ord(char) <= 0xDFFF:
            detail = f"Surrogate characters are not allowed: U+{ord(char):X}."
            raise validation_error(attr, "surrogate_characters_not_allowed", detail)


def check_json_characters(attr: str, value: object) -> None:
    """Reject NUL characters and lone surrogates anywhere inside a JSON value (keys included).

    Deviation: PostHog's Postgres ``jsonb`` cannot store these, so PostHog fails with a 500; the stand-in
    answers a 400 with DRF's character messages instead.
    """
    if isinstance(value, str):
        _check_characters(attr, value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_characters(attr, key)
            check_json_characters(attr, item)
    elif isinstance(value, list):
        for item in value:
            check_json_characters(attr, item)


def char_field(
    value: Any,
    attr: str,
    *,
    max_length: int,
    allow_null: bool = False,
    allow_blank: bool = False,
) -> str | None:
    """DRF ``CharField`` (``trim_whitespace=True``): numbers coerced to text, bools and containers rejected."""
    if value is None:
        if allow_null:
            return None
        raise validation_error(attr, "null", "This field may not be null.")
    if value == "" or str(value).strip() == "":
        if not allow_blank:
            raise validation_error(attr, "blank", "This field may not be blank.")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise validation_error(attr, "invalid", "Not a valid string.")
    text = str(value).strip()
    if len(text) > max_length:
        raise validation_error(attr, "max_length", f"Ensure this field has no more than {max_length} characters.")
    _check_characters(attr, text)
    return text


def choice_field(value: Any, attr: str, choices: tuple[str, ...]) -> str:
    """DRF ``ChoiceField``: the value's ``str()`` (Python's, for bools and containers too) must be a choice."""
    if value is None:
        raise validation_error(attr, "null", "This field may not be null.")
    text = str(value)
    if text not in choices:
        raise validation_error(attr, "invalid_choice", f'"{text}" is not a valid choice.')
    return text


def integer_field(value: Any, attr: str, *, min_value: int, max_value: int) -> int:
    """DRF ``IntegerField`` (``"7"``, ``7.0`` accepted), bounded.

    Deviation: PostHog's serializer declares no bounds and an out-of-range value fails in the database
    (a 500); the stand-in answers DRF's ``min_value`` / ``max_value`` 400 instead.
    """
    if value is None:
        raise validation_error(attr, "null", "This field may not be null.")
    if isinstance(value, str) and len(value) > 1000:
        raise validation_error(attr, "max_string_length", "String value too large.")
    try:
        number = int(_RE_DECIMAL.sub("", str(value)))
    except (TypeError, ValueError):
        raise validation_error(attr, "invalid", "A valid integer is required.") from None
    if number < min_value:
        raise validation_error(attr, "min_value", f"Ensure this value is greater than or equal to {min_value}.")
    if number > max_value:
        raise validation_error(attr, "max_value", f"Ensure this value is less than or equal to {max_value}.")
    return number


def dict_field(value: Any, attr: str) -> dict[str, Any]:
    """DRF ``DictField``: an object, not null."""
    if value is None:
        raise validation_error(attr, "null", "This field may not be null.")
    if not isinstance(value, dict):
        detail = f'Expected a dictionary of items but got type "{_type_name(value)}".'
        raise validation_error(attr, "not_a_dict", detail)
    check_json_characters(attr, value)
    return value


def validate_properties(value: Any) -> dict[str, Any]:
    """``properties``: null → ``{}``; an object of known keys, checked by PostHog's pydantic model.

    The stored value is what was sent (a role id ``"7"`` stays a string), not the model's normalised copy.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise validation_error("properties", "invalid", "properties must be a JSON object.")
    try:
        AccountPropertiesModel.model_validate(value)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(part) for part in first["loc"])
        raise validation_error("properties", "invalid", f"{path}: {first['msg']}") from None
    check_json_characters("properties", value)
    return value


def normalise_tags(value: Any) -> list[str]:
    """``tags``: a list; each tag stripped and lower-cased, duplicates dropped (first occurrence kept).

    Deviation: PostHog's ``ListField`` does not type its items and its tag table caps names at 255
    characters, so a non-string tag or a longer one fails with a 500 there; here both are 400s
    (``attr`` ``tags__<index>``, DRF's messages).
    """
    if value is None:
        raise validation_error("tags", "null", "This field may not be null.")
    if not isinstance(value, list):
        detail = f'Expected a list of items but got type "{_type_name(value)}".'
        raise validation_error("tags", "not_a_list", detail)
    seen: dict[str, None] = {}
    for index, raw in enumerate(value):
        attr = f"tags__{index}"
        if not isinstance(raw, str):
            raise validation_error(attr, "invalid", "Not a valid string.")
        tag = raw.strip().lower()
        if len(tag) > TAG_MAX:
            raise validation_error(attr, "max_length", f"Ensure this field has no more than {TAG_MAX} characters.")
        _check_characters(attr, tag)
        seen.setdefault(tag, None)
    return list(seen)


def validate_account(data: object, *, partial: bool) -> dict[str, Any]:
    """Validate an account create (``partial=False``: ``name`` required) or PATCH body.

    Returns the sent writable fields among ``name``, ``external_id``, ``properties``, ``tags``.
    """
    body = require_object(data)
    out: dict[str, Any] = {}
    name = _present(body, "name", required=not partial)
    if name is not MISSING:
        out["name"] = char_field(name, "name", max_length=ACCOUNT_NAME_MAX)
    external_id = _present(body, "external_id", required=False)
    if external_id is not MISSING:
        out["external_id"] = char_field(
            external_id, "external_id", max_length=EXTERNAL_ID_MAX, allow_null=True, allow_blank=True
        )
    properties = _present(body, "properties", required=False)
    if properties is not MISSING:
        out["properties"] = validate_properties(properties)
    tags = _present(body, "tags", required=False)
    if tags is not MISSING:
        out["tags"] = normalise_tags(tags)
    return out


_MetricField = Callable[[Any], Any]

_METRIC_FIELDS: tuple[tuple[str, bool, _MetricField], ...] = (
    ("name", True, lambda v: char_field(v, "name", max_length=METRIC_NAME_MAX)),
    ("format", False, lambda v: choice_field(v, "format", METRIC_FORMATS)),
    ("interval", False, lambda v: integer_field(v, "interval", min_value=INTERVAL_MIN, max_value=INTERVAL_MAX)),
    ("display", False, lambda v: choice_field(v, "display", METRIC_DISPLAYS)),
    ("filters", True, lambda v: dict_field(v, "filters")),
    ("math", False, lambda v: choice_field(v, "math", METRIC_MATHS)),
    (
        "math_property",
        False,
        lambda v: char_field(v, "math_property", max_length=MATH_PROPERTY_MAX, allow_null=True, allow_blank=True),
    ),
)


def validate_metric(data: object, *, partial: bool, instance: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate a usage-metric create (``instance=None``), PUT (``partial=False``) or PATCH body.

    Create and PUT fill ``format``/``interval``/``display``/``math`` with their defaults when absent (DRF
    applies defaults except on partial updates); ``math_property`` absent keeps the stored value. Then the
    serializer's cross-field rules run against the merged values, as PostHog's ``validate()`` does.
    """
    body = require_object(data)
    out: dict[str, Any] = {}
    for field, required, parse in _METRIC_FIELDS:
        raw = _present(body, field, required=required and not partial)
        if raw is not MISSING:
            out[field] = parse(raw)
        elif not partial and field in METRIC_DEFAULTS:
            out[field] = METRIC_DEFAULTS[field]
    _validate_metric_rules(out, instance)
    return out


def _validate_metric_rules(data: Mapping[str, Any], instance: Mapping[str, Any] | None) -> None:
    def current(field: str, fallback: Any) -> Any:
        if field in data:
            return data[field]
        return instance[field] if instance is not None else fallback

    math = current("math", "count")
    math_property = current("math_property", None)
    filters = current("filters", None)
    source = (filters or {}).get("source") if isinstance(filters, dict) else None
    if source == "data_warehouse":
        assert isinstance(filters, dict)
        _validate_data_warehouse(filters, math, math_property)
    elif source is None or source == "events":
        if math == "sum" and not math_property:
            raise validation_error("math_property", "invalid", "math_property is required when math is 'sum'.")
        if math == "count" and math_property:
            raise validation_error("math_property", "invalid", "math_property must be empty when math is 'count'.")
    else:
        raise validation_error("filters", "invalid", f"Unknown source: {source!r}")


def _validate_data_warehouse(filters: Mapping[str, Any], math: str, math_property: str | None) -> None:
    """Data-warehouse metrics need a synced table; the stand-in has none, so the last check always fails."""
    if any(not filters.get(field) for field in DATA_WAREHOUSE_FIELDS):
        detail = f"Data warehouse metrics require {', '.join(DATA_WAREHOUSE_FIELDS)}."
        raise validation_error("filters", "invalid", detail)
    if math == "sum" and not math_property:
        detail = "math_property (column to sum) is required when math is 'sum'."
        raise validation_error("math_property", "invalid", detail)
    if math == "count" and math_property:
        raise validation_error("math_property", "invalid", "math_property must be empty when math is 'count'.")
    raise validation_error("filters", "invalid", f"Data warehouse table {filters['table_name']!r} does not exist.")


def metric_name_taken() -> ApiError:
    """Deviation: PostHog lets the unique (project, group type, name) constraint fail as a 500."""
    return validation_error("name", "unique", "A usage metric with this name already exists for this group type.")
