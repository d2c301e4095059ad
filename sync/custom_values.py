"""Typed custom account property values: PostHog's coercion rules, applied before a value is sent.

A custom property definition has a ``display_type``; PostHog stores each value in one column per *data type*
(``products/customer_analytics/backend/models/custom_property_definition.py``: ``DATA_TYPE_BY_DISPLAY_TYPE``) and
coerces what a client sends (``logic/custom_property_values.py``: ``_coerce_to_column`` and its coercers):

| display type | data type | accepted | stored |
|---|---|---|---|
| number, currency, percent | numeric | an int, a float or a string ``float()`` parses, finite; never a bool | float |
| boolean | boolean | ``true``/``false``, or those words as text (any case, outer spaces ignored) | bool |
| date, datetime | datetime | ISO 8601 text (``fromisoformat``: date-only, trailing ``Z``) | datetime (naive → UTC) |
| text | string | text as is; an int or float as ``str(value)`` | str |
| link | string | text (or a number) that is an ``http``/``https`` URL | str |
| select | string | text equal to one option's **label** | str |

Before coercion, the value serializer (``api/serializers.py``) accepts only a string, a number or a boolean
("Value must be a string, number, or boolean.": ``null``, lists and objects are refused) and DRF's character
checks refuse NUL and lone surrogates in text. A datetime is stored as an instant: crmsync answers it in UTC, as
PostHog reads it back and as its change events carry it; one outside years 1..9999 in UTC is refused.

``coerce`` answers the value PostHog would
store, in its JSON form (a datetime as ISO 8601), or raises ``ValueTypeError`` saying what the definition
expects, in PostHog's own words. crmsync checks values with it before any request, so a value PostHog would
refuse never costs a request; the stand-in (``sandbox/posthog``) applies the same rules on its side, and a
property test holds the two together.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any


class DisplayType(StrEnum):
    TEXT = "text"
    LINK = "link"
    NUMBER = "number"
    CURRENCY = "currency"
    PERCENT = "percent"
    DATE = "date"
    DATETIME = "datetime"
    BOOLEAN = "boolean"
    SELECT = "select"


class DataType(StrEnum):
    STRING = "string"
    NUMERIC = "numeric"
    BOOLEAN = "boolean"
    DATETIME = "datetime"


DATA_TYPE: dict[DisplayType, DataType] = {
    DisplayType.TEXT: DataType.STRING,
    DisplayType.LINK: DataType.STRING,
    DisplayType.SELECT: DataType.STRING,
    DisplayType.NUMBER: DataType.NUMERIC,
    DisplayType.CURRENCY: DataType.NUMERIC,
    DisplayType.PERCENT: DataType.NUMERIC,
    DisplayType.BOOLEAN: DataType.BOOLEAN,
    DisplayType.DATE: DataType.DATETIME,
    DisplayType.DATETIME: DataType.DATETIME,
}

CoercedValue = float | bool | str


class ValueTypeError(ValueError):
    """A value that does not fit its definition; the message is what the definition expects."""


def _expects(name: str, what: str) -> ValueTypeError:
    return ValueTypeError(f"Custom property '{name}' expects {what}")


# An http(s) URL the way Django's URLValidator (schemes http, https) reads one: a host that is a domain with a
# top-level label, "localhost", or an IP literal; an optional port; no whitespace; at most 2048 characters.
_LABEL = r"[a-z0-9\u00a1-\uffff](?:[a-z0-9\u00a1-\uffff-]{0,61}[a-z0-9\u00a1-\uffff])?"
_URL_RE = re.compile(
    r"^(?:http|https)://"
    r"(?:[^\s:@/]+(?::[^\s:@/]*)?@)?"
    r"(?P<host>" + _LABEL + r"(?:\." + _LABEL + r")*\.(?:[a-z\u00a1-\uffff-]{2,63}|xn--[a-z0-9]{1,59})\.?"
    r"|localhost|\[[0-9a-f:.]+\]|\d{1,3}(?:\.\d{1,3}){3})"
    r"(?::\d{1,5})?"
    r"(?:[/?#][^\s]*)?\Z",
    re.IGNORECASE,
)
URL_MAX = 2048


def is_http_url(text: str) -> bool:
    """Whether ``text`` is an http or https URL PostHog's link type accepts."""
    if len(text) > URL_MAX or not text.isprintable():
        return False
    match = _URL_RE.match(text)
    if match is None:
        return False
    host = match.group("host")
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
    elif host[0].isdigit() and host.replace(".", "").isdigit():
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
    return True


def _numeric(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise _expects(name, "a numeric value")
    try:
        result = float(value)
    except (TypeError, ValueError, OverflowError):
        raise _expects(name, "a numeric value") from None
    if not math.isfinite(result):
        raise _expects(name, "a finite numeric value")
    return result


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and (word := value.strip().lower()) in ("true", "false"):
        return word == "true"
    raise _expects(name, "a boolean value")


def _datetime(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _expects(name, "an ISO-8601 datetime")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _expects(name, "an ISO-8601 datetime") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC).isoformat()
    except OverflowError:  # an offset pushing the instant outside years 1..9999: PostHog's database refuses it
        raise _expects(name, "an ISO-8601 datetime") from None


def _string(name: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise _expects(name, "a text value")


def coerce(display_type: DisplayType | str, value: Any, name: str = "", options: Sequence[str] = ()) -> CoercedValue:
    """The value PostHog stores for ``value`` under a definition (its JSON form), or ``ValueTypeError``.

    ``name`` is the definition's name (for the message); ``options`` a select's option labels."""
    kind = DisplayType(display_type)
    if isinstance(value, date):  # a connector's date or datetime goes out as its ISO 8601 text
        value = value.isoformat()
    if value is None or not isinstance(value, str | int | float):
        raise ValueTypeError("Value must be a string, number, or boolean.")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueTypeError("Null characters are not allowed.")
        if surrogate := next((c for c in value if 0xD800 <= ord(c) <= 0xDFFF), None):
            raise ValueTypeError(f"Surrogate characters are not allowed: U+{ord(surrogate):X}.")
    if kind is DisplayType.SELECT:
        if isinstance(value, str) and value in options:
            return value
        raise _expects(name, f"one of its options: {', '.join(options)}")
    if kind is DisplayType.LINK:
        link = _string(name, value)
        if not is_http_url(link):
            raise _expects(name, "an HTTP or HTTPS URL")
        return link
    data_type = DATA_TYPE[kind]
    if data_type is DataType.NUMERIC:
        return _numeric(name, value)
    if data_type is DataType.BOOLEAN:
        return _boolean(name, value)
    if data_type is DataType.DATETIME:
        return _datetime(name, value)
    return _string(name, value)


def same_value(display_type: DisplayType | str, a: Any, b: Any) -> bool:
    """Whether two stored values are equal as PostHog compares them (datetimes as instants)."""
    if DATA_TYPE[DisplayType(display_type)] is DataType.DATETIME and isinstance(a, str) and isinstance(b, str):
        try:
            return datetime.fromisoformat(a) == datetime.fromisoformat(b)
        except ValueError:
            return a == b
    return bool(a == b)


def type_name(value: Any) -> str:
    """The JSON-ish name of a value's type, for error messages (``text``, ``number``, ``boolean``, ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
