"""Salesforce record ids: 15-character case-sensitive ids and their 18-character case-safe form.

A real id is a 3-character key prefix (``001`` Account, ``005`` User, ``00D`` organization, ``01g`` query
locator), a 2-character pod, a reserved character and a 9-character base-62 counter; the 18-character form
appends three checksum characters that encode which letters of the 15 are upper case, so the 18-character
id survives case-insensitive systems. The API always returns 18 characters and accepts either form; the
stand-in does the same, with the real checksum, so a connector that converts or compares ids is exercised.
"""

from __future__ import annotations

import re
import secrets

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_RE = re.compile(r"^[0-9A-Za-z]{15}(?:[0-9A-Za-z]{3})?$")

ACCOUNT_PREFIX = "001"
USER_PREFIX = "005"
ORG_PREFIX = "00D"
QUERY_LOCATOR_PREFIX = "01g"
OUTBOUND_ACTION_PREFIX = "04k"
OUTBOUND_NOTIFICATION_PREFIX = "04l"


def _base62(n: int, width: int) -> str:
    if n < 0:
        raise ValueError("id counter must be >= 0")
    digits = []
    while n:
        n, rem = divmod(n, 62)
        digits.append(_BASE62[rem])
    text = "".join(reversed(digits)) or "0"
    if len(text) > width:
        raise ValueError("id counter out of range")
    return text.rjust(width, "0")


def checksum(id15: str) -> str:
    """The three characters that turn a 15-character id into its 18-character form."""
    out = []
    for chunk in range(3):
        bits = 0
        for pos, char in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << pos
        out.append(_SUFFIX[bits])
    return "".join(out)


def make_id(prefix: str, pod: str, counter: int) -> str:
    """An 18-character id ``prefix + pod + '0' + base62(counter)`` with its checksum."""
    if len(prefix) != 3 or len(pod) != 2:
        raise ValueError("prefix must have 3 characters and pod 2")
    id15 = f"{prefix}{pod}0{_base62(counter, 9)}"
    return id15 + checksum(id15)


def random_org_id() -> str:
    """A fresh organisation id (``00D`` + a random pod and counter): each stand-in stack started without one is
    another org, as a refreshed sandbox org is."""
    pod = _BASE62[secrets.randbelow(62)] + _BASE62[secrets.randbelow(62)]
    return make_id(ORG_PREFIX, pod, secrets.randbelow(62**9))


def normalize_id(value: str) -> str | None:
    """The canonical 18-character form of ``value``, or None when it is not a well-formed id.

    15-character ids are case-sensitive and get their checksum appended; 18-character ids are matched
    case-insensitively (their letters' case is rebuilt from the checksum), as the real API does.
    """
    if not _ID_RE.match(value):
        return None
    if len(value) == 15:
        return value + checksum(value)
    suffix = value[15:].upper()
    chars = list(value[:15])
    for chunk, code in enumerate(suffix):
        bits = _SUFFIX.find(code)
        if bits < 0:
            return None
        for pos in range(5):
            i = chunk * 5 + pos
            chars[i] = chars[i].upper() if bits & (1 << pos) else chars[i].lower()
    id15 = "".join(chars)
    if checksum(id15) != suffix:
        return None
    return id15 + suffix
