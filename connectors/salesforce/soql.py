"""Small, safe pieces of SOQL and REST paths: record ids, literals, datetimes, the keyset condition, URL segments.

Nothing here talks to Salesforce. Values that reach a query are always quoted by ``literal`` (backslash escapes,
as SOQL defines them) and ids are checked by ``canonical_id`` first, so no caller can build a query from raw
text. Values placed in a URL path (External IDs) are percent-encoded by ``path_segment``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from urllib.parse import quote, quote_plus

_ID_RE = re.compile(r"^[0-9A-Za-z]{15}(?:[0-9A-Za-z]{3})?$")
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _checksum(id15: str) -> str:
    out = []
    for chunk in range(3):
        bits = 0
        for pos, char in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << pos
        out.append(_SUFFIX[bits])
    return "".join(out)


def canonical_id(value: str) -> str | None:
    """The 18-character form Salesforce returns for a 15- or 18-character record id; None when malformed.

    A 15-character id is case-sensitive and gains its checksum; an 18-character id is matched as the API matches
    it, case-insensitively, its letters' case restored from the checksum.
    """
    if not isinstance(value, str) or not _ID_RE.match(value):
        return None
    if len(value) == 15:
        return value + _checksum(value)
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
    return id15 + suffix if _checksum(id15) == suffix else None


def literal(value: str) -> str:
    """A quoted SOQL string literal for any text (quotes, backslashes and control characters escaped)."""
    return "'" + "".join(_ESCAPES.get(char, char) for char in value) + "'"


def id_list(ids: Sequence[str]) -> str:
    """``('001...', '001...')`` for canonical ids (checked again here: nothing else reaches the query)."""
    for value in ids:
        if canonical_id(value) != value:
            raise ValueError(f"not a canonical record id: {value!r}")
    return "(" + ", ".join(f"'{value}'" for value in ids) + ")"


def id_batches(ids: Sequence[str], max_count: int, max_encoded_bytes: int) -> Iterator[list[str]]:
    """``ids`` in consecutive groups of at most ``max_count`` whose ``id_list`` text, URL-encoded as a query
    parameter (``quote_plus``, as ``requests`` sends ``?q=``), takes at most ``max_encoded_bytes``.

    Salesforce refuses a request whose URI plus headers pass 16,384 bytes, so a batch of ids is bounded by the
    length it adds to the URL, not only by count. A group always holds at least one id.
    """
    empty = len(quote_plus("()"))
    separator = len(quote_plus(", "))
    chunk: list[str] = []
    size = empty
    for value in ids:
        cost = len(quote_plus(f"'{value}'"))
        if chunk and (len(chunk) >= max_count or size + separator + cost > max_encoded_bytes):
            yield chunk
            chunk, size = [], empty
        size += cost + (separator if chunk else 0)
        chunk.append(value)
    if chunk:
        yield chunk


def datetime_literal(epoch_ms: int) -> str:
    """A SOQL datetime literal in UTC with a ``Z`` suffix (``2024-05-01T10:00:00Z``); whole seconds."""
    moment = datetime.fromtimestamp(epoch_ms // 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def after(modstamp_ms: int, record_id: str | None) -> str:
    """The condition "strictly after this (SystemModstamp, Id) position" in ``ORDER BY SystemModstamp, Id``.

    ``record_id=None`` stands for every row at that instant (only later stamps qualify), ``""`` for none of them
    (the instant itself qualifies).
    """
    stamp = datetime_literal(modstamp_ms)
    if record_id is None:
        return f"SystemModstamp > {stamp}"
    if record_id == "":
        return f"SystemModstamp >= {stamp}"
    if canonical_id(record_id) != record_id:
        raise ValueError(f"not a canonical record id: {record_id!r}")
    return f"SystemModstamp >= {stamp} AND (SystemModstamp > {stamp} OR Id > '{record_id}')"


def select(fields: Sequence[str], sobject: str, where: str | None = None, ordered: bool = True) -> str:
    """``SELECT fields FROM sobject [WHERE ...] [ORDER BY SystemModstamp, Id]``."""
    text = f"SELECT {', '.join(fields)} FROM {sobject}"
    if where:
        text += f" WHERE {where}"
    if ordered:
        text += " ORDER BY SystemModstamp, Id"
    return text


def path_segment(value: str) -> str:
    """``value`` percent-encoded for one URL path segment: ``#``, ``/``, ``?``, ``%``, spaces and non-ASCII
    (as UTF-8) included, so an External ID never changes the URL's shape.

    Raises ``ValueError`` for values no URL path can carry: empty, or ``.`` and ``..`` (HTTP clients resolve
    those as relative segments, whatever their encoding).
    """
    if value in ("", ".", ".."):
        raise ValueError(f"an External ID of {value!r} cannot be placed in a URL")
    return quote(value, safe="")
