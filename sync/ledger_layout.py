"""How the ledger's per-record and per-account state is laid out in Redis (layout 2), and its encodings.

Most of a ledger is one small entry per CRM record (``rec``, ``out``), per index pair (``idx``) and per account
(``acct``, with the account as PostHog last showed it). Layout 1 kept each in a key of its own: about 1,410 bytes
per record after a full and an incremental sync, most of it Redis's own per-key overhead (the key's name, its
dictionary entry, its object header) and JSON with long keys and whole digests. Layout 2:

- **buckets**: per-record and per-index entries are fields of small hashes, ``BUCKETS`` of them per family and
  scope, chosen by a hash of the field (``bucket``). Redis keeps a hash in its compact *listpack* encoding while it
  has at most ``hash-max-listpack-entries`` fields (the compiled default is 512, the sample ``redis.conf`` says 128)
  of at most ``hash-max-listpack-value`` bytes (64 in both): about 12 bytes of overhead per field instead of about
  90 per key. So every value stored in a bucket is kept under 64 bytes (``encode_record``), and ``BUCKETS`` keeps
  buckets under 128 fields up to about 80,000 entries per scope (400,000 under 512); beyond that a bucket converts
  to Redis's hash table encoding, about as large as a key per entry. ``docs/performance.md`` has the measurements.
- **fingerprints** are 12 characters (72 bits of the blake2b digest, base64url: ``compact_fp``) instead of 32 hex
  characters: they only ever tell one state of a record or account from its previous one.
- **account ids** (PostHog's UUIDs) are stored in values as 23 characters (``~`` and the 16 bytes in base64url).
- **one key per account** (``acct``): what crmsync wrote and the account as PostHog last showed it, together:
  ``<updated_at in µs>\\n<account JSON>\\n<entry JSON>`` (JSON never holds a raw newline). The account JSON keeps
  what a PATCH starts from (name, external_id, properties, tags), not its id (the key has it) nor creation details.

Layout 1 ledgers are migrated once, at first use, guarded by ``<ns>:layout`` (``migrate_legacy``): their entries are
rewritten in layout 2 with the same values (a 32-hex digest becomes its 12-character prefix, which is what the
fingerprint functions now return), so nothing is re-applied or re-written to PostHog or a CRM.
"""

from __future__ import annotations

import base64
import json
import uuid
import zlib
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import redis

from sync.keys import FAMILIES as KEY_FAMILIES
from sync.keys import ProjectKeys
from sync.posthog.models import Account

if TYPE_CHECKING:
    from sync.ledger import AccountEntry, RecordEntry
    from sync.ledger_core import LedgerCore

LAYOUT = "2"
"""The layout version; ``<ns>:layout`` holds ``2:<buckets>`` once a ledger is in this layout."""
BUCKETS = 1024
"""Hashes per family and scope (per source and object for ``rec``, per kind for ``idx``) of a new ledger. A ledger
keeps the count it was created with (recorded in ``<ns>:layout``): every process addresses the same buckets."""
FP_BYTES = 9
"""Bytes of a digest kept as a fingerprint: 72 bits, 12 base64url characters."""

LEGACY_FAMILIES = tuple(f.prefix for f in KEY_FAMILIES if f.legacy)
"""Layout 1 key families (``sync.keys``): ``rec``, ``out``, ``idx``, ``acct``, ``seen``."""


def bucket(field: str, buckets: int) -> str:
    """The bucket of a field: CRC-32 of its UTF-8 bytes modulo ``buckets``, in hex."""
    return format(zlib.crc32(field.encode()) % buckets, "x")


def parse_layout(raw: str | None) -> int | None:
    """The bucket count of a layout 2 ledger from its ``<ns>:layout`` value; None for any other value."""
    version, _, buckets = (raw or "").partition(":")
    return int(buckets) if version == LAYOUT and buckets.isdigit() and int(buckets) > 0 else None


def compact_fp(digest: str) -> str:
    """A fingerprint in its stored form: a 32-hex digest becomes the base64url of its first ``FP_BYTES`` bytes;
    anything else (already compact, empty, a test's literal) is kept as it is."""
    if len(digest) == 32:
        try:
            raw = bytes.fromhex(digest)
        except ValueError:
            return digest
        return base64.urlsafe_b64encode(raw[:FP_BYTES]).decode()
    return digest


def encode_id(account_id: str) -> str:
    """An account id in a value: a UUID as ``~`` + 22 base64url characters, anything else as it is (``~`` doubled
    in front of an id that starts with one)."""
    try:
        parsed = uuid.UUID(account_id)
    except ValueError:
        return f"~{account_id}" if account_id.startswith("~") else account_id
    if str(parsed) != account_id:  # not in canonical form: kept exactly as given
        return f"~{account_id}" if account_id.startswith("~") else account_id
    return "~" + base64.urlsafe_b64encode(parsed.bytes).decode().rstrip("=")


def decode_id(raw: str) -> str:
    if raw.startswith("~~"):
        return raw[1:]
    if raw.startswith("~") and len(raw) == 23:
        return str(uuid.UUID(bytes=base64.urlsafe_b64decode(raw[1:] + "==")))
    return raw


def _b36(n: int) -> str:
    if n < 0:
        return "-" + _b36(-n)
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def encode_record(entry: RecordEntry) -> str:
    """``fp|account|version|echo|u`` (version in base 36, echo ``=`` when it equals fp, ``u`` when unlinked,
    trailing empty parts left out): under 64 bytes for a UUID account. A part holding ``|`` (never one crmsync
    makes) falls back to a JSON list."""
    fp = compact_fp(entry.fp)
    echo = compact_fp(entry.echo_fp) if entry.echo_fp is not None else None
    account = encode_id(entry.account_id) if entry.account_id is not None else ""
    if any(c in fp + account + (echo or "") for c in "|\t") or fp.startswith("["):
        return json.dumps([fp, entry.account_id, entry.version, echo, entry.unlinked], separators=(",", ":"))
    parts = [
        fp,
        account,
        _b36(entry.version) if entry.version is not None else "",
        "" if echo is None else "=" if echo == fp else echo,
        "u" if entry.unlinked else "",
    ]
    while len(parts) > 2 and parts[-1] == "":
        parts.pop()
    return "|".join(parts)  # at least ``fp|``: never empty (an empty part means "no entry" in a bucket value)


def decode_record(raw: str) -> RecordEntry:
    from sync.ledger import RecordEntry

    if raw.startswith("["):
        fp, account, version, echo, unlinked = json.loads(raw)
        return RecordEntry(fp, account, version, echo, bool(unlinked))
    parts = raw.split("|") + [""] * 4
    fp, account, version, echo, flags = parts[:5]
    return RecordEntry(
        fp,
        decode_id(account) if account else None,
        int(version, 36) if version else None,
        fp if echo == "=" else echo or None,
        flags == "u",
    )


def decode_legacy_record(raw: str) -> RecordEntry:
    """A layout 1 ``rec:`` value (JSON with long keys and 32-hex digests)."""
    from sync.ledger import RecordEntry

    data = json.loads(raw)
    echo = data.get("echo_fp")
    return RecordEntry(
        compact_fp(str(data["fp"])),
        data.get("account_id"),
        data.get("version"),
        compact_fp(echo) if echo is not None else None,
        bool(data.get("unlinked", False)),
    )


# -- accounts: one key, three lines -------------------------------------------------------------------------

_ENTRY_KEYS = {"written_fp": "w", "provenance": "p", "tags": "t"}
_ENTRY_NAMES = {short: name for name, short in _ENTRY_KEYS.items()}
_TARGETS = {"name": "n", "external_id": "e", "tags": "t"}
_TARGET_NAMES = {short: name for name, short in _TARGETS.items()}


def encode_entry(entry: AccountEntry) -> str:
    """The entry as compact JSON: short keys for the known fields, a field added later under its own name, empty
    values left out. Provenance is grouped by source and version (``{source: {version: {target: value}}}``,
    version in base 36, ``_`` for none), targets shortened (``_short_target``)."""
    out: dict[str, Any] = {}
    for f in fields(entry):
        value = getattr(entry, f.name)
        if not value:
            continue
        if f.name == "provenance":
            grouped: dict[str, dict[str, dict[str, Any]]] = {}
            for target, prov in value.items():
                version = prov.get("v")
                by_version = grouped.setdefault(str(prov.get("s")), {})
                by_version.setdefault("_" if version is None else _b36(int(version)), {})[_short_target(target)] = (
                    prov.get("f", "")
                )
            value = grouped
        elif f.name == "written_fp":
            value = compact_fp(value)
        out[_ENTRY_KEYS.get(f.name, f.name)] = value
    return json.dumps(out, separators=(",", ":"), ensure_ascii=False)


def decode_entry(raw: str) -> AccountEntry:
    from sync.ledger import AccountEntry

    if not raw:
        return AccountEntry()
    data = {_ENTRY_NAMES.get(k, k): v for k, v in json.loads(raw).items()}
    if "provenance" in data:
        data["provenance"] = {
            _long_target(target): {"s": source, "v": None if version == "_" else int(version, 36), "f": value}
            for source, by_version in data["provenance"].items()
            for version, targets in by_version.items()
            for target, value in targets.items()
        }
    known = {f.name for f in fields(AccountEntry)}
    return AccountEntry(**{k: v for k, v in data.items() if k in known})


def decode_legacy_entry(raw: str) -> AccountEntry:
    from sync.ledger import AccountEntry

    data = json.loads(raw)
    known = {f.name for f in fields(AccountEntry)}
    entry = AccountEntry(**{k: v for k, v in data.items() if k in known})
    entry.written_fp = compact_fp(entry.written_fp)
    return entry


def _short_target(target: str) -> str:
    """``properties.x`` → ``.x``, ``roles.x`` → ``@x``, ``name``/``external_id``/``tags`` → one letter."""
    if target.startswith("properties."):
        return "." + target.removeprefix("properties.")
    if target.startswith("roles."):
        return "@" + target.removeprefix("roles.")
    return _TARGETS.get(target, target)


def _long_target(short: str) -> str:
    if short.startswith("."):
        return "properties" + short
    if short.startswith("@"):
        return "roles." + short[1:]
    return _TARGET_NAMES.get(short, short)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def seen_ts(account: Account) -> str:
    """``updated_at`` as zero-padded microseconds since the epoch (16 digits: sorts as it compares), or ``""``."""
    if account.updated_at is None:
        return ""
    ts = account.updated_at if account.updated_at.tzinfo else account.updated_at.replace(tzinfo=UTC)
    return f"{(ts - _EPOCH) // _MICRO:016d}"


def encode_seen(account: Account) -> str:
    """``<seen_ts>\\n<account JSON>``: what a merge starts from (no id, no creation details, no updated_at: the
    first line has it)."""
    body = account.model_dump_json(exclude_unset=True, exclude={"id", "created_at", "created_by", "updated_at"})
    return f"{seen_ts(account)}\n{body}"


def decode_seen(account_id: str, ts: str, body: str) -> Account:
    data = json.loads(body)
    data["id"] = account_id
    if ts:
        data["updated_at"] = _EPOCH + int(ts) * _MICRO
    return Account.model_validate(data)


def split_account(raw: str | None) -> tuple[str, str, str]:
    """(seen ts, seen JSON, entry JSON) of an ``acct`` value; empty strings for what it does not hold."""
    if not raw:
        return "", "", ""
    ts, body, entry = [*raw.split("\n", 2), "", ""][:3]
    return ts, body, entry


def split_record(raw: str | None) -> tuple[str, str]:
    """(record entry, outbound fingerprint) of a ``rec`` bucket value (``<entry>\t<fp>``); empty where absent."""
    entry, _, out = (raw or "").partition("\t")
    return entry, out


RECORD_PARTS = """
-- KEYS: rec buckets; ARGV: per key the record id, 'r' (entry) or 'o' (outbound fingerprint), the part's value.
-- A bucket value is '<entry>\t<outbound fingerprint>': one part is set, the other kept.
for i, key in ipairs(KEYS) do
  local field, part, value = ARGV[3 * i - 2], ARGV[3 * i - 1], ARGV[3 * i]
  local current = redis.call('HGET', key, field) or ''
  local tab = string.find(current, '\t', 1, true)
  local entry, out = current, ''
  if tab then
    entry, out = string.sub(current, 1, tab - 1), string.sub(current, tab + 1)
  end
  if part == 'r' then entry = value else out = value end
  if entry == '' and out == '' then
    redis.call('HDEL', key, field)
  elseif out == '' then
    redis.call('HSET', key, field, entry)
  else
    redis.call('HSET', key, field, entry .. '\t' .. out)
  end
end
return #KEYS
"""

ACCOUNT_PARTS = """
-- KEYS: acct keys; ARGV: per key a mode ('b' both, 'e' entry only, 's' seen, 'n' seen if not older, 'f' forget
-- seen), its seen part ('<ts>\\n<json>') and its entry part. Returns how many keys were written.
local written = 0
for i, key in ipairs(KEYS) do
  local mode, seen, entry = ARGV[3 * i - 2], ARGV[3 * i - 1], ARGV[3 * i]
  local current = redis.call('GET', key)
  local ts, body, kept = '', '', ''
  if current then
    ts, body, kept = string.match(current, '^([^\\n]*)\\n([^\\n]*)\\n(.*)$')
    if ts == nil then ts, body, kept = '', '', '' end
  end
  local new_ts = string.match(seen, '^[^\\n]*')
  if mode == 'n' and current and body ~= '' and ts > new_ts then
    -- older than what is stored: a listing read before another worker's write
  elseif mode == 'f' then
    if current and kept ~= '' then
      redis.call('SET', key, '\\n\\n' .. kept)
    elseif current then
      redis.call('DEL', key)
    end
    written = written + 1
  else
    if mode == 'e' then seen = ts .. '\\n' .. body end
    if mode == 's' or mode == 'n' then entry = kept end
    redis.call('SET', key, seen .. '\\n' .. entry)
    written = written + 1
  end
end
return written
"""


# -- migration from layout 1 ----------------------------------------------------------------------------------


def legacy_keys(client: redis.Redis, ns: str) -> dict[str, list[str]]:
    """Layout 1 keys of the namespace by family (one SCAN of the namespace; string keys only: layout 2 families
    have other names)."""
    found: dict[str, list[str]] = {}
    for key in client.scan_iter(match=ProjectKeys(ns).match(), count=1000, _type="string"):
        family = str(key)[len(ns) + 1 :].split(":", 1)[0]
        if family in LEGACY_FAMILIES:
            found.setdefault(family, []).append(str(key))
    return found


def migrate_legacy(ledger: LedgerCore, batch: int = 500) -> dict[str, int]:
    """Rewrite every layout 1 entry of ``ledger`` in layout 2 and delete the layout 1 key; counts by family.

    Values are carried over as they are (digests in their compact form), so the first run after the migration
    finds every record unchanged. Runs under the caller's migration lock; safe to repeat (a key already moved is
    gone from the SCAN)."""
    from sync.ledger import RecordKey

    client, ns, names = ledger.redis, ledger.ns, ledger.keys
    found = legacy_keys(client, ns)
    counts = {family: len(keys) for family, keys in sorted(found.items())}
    for family in ("rec", "out", "idx"):
        keys = found.get(family, [])
        for start in range(0, len(keys), batch):
            chunk = keys[start : start + batch]
            values = cast(list[str | None], client.mget(chunk))
            pipe = client.pipeline(transaction=True)
            parts: list[tuple[str, str, str, str]] = []
            for key, raw in zip(chunk, values, strict=True):
                if raw is None:
                    continue
                rest = key[len(ns) + 1 :].split(":", 3)  # family, then source/kind, object/value, id
                if family == "idx":
                    kind, value = rest[1], key[len(names.prefix("idx", rest[1])) :]
                    pipe.hset(ledger.idx_bucket(kind, value), value, encode_id(raw))
                    continue
                record = RecordKey(rest[1], rest[2], rest[3])
                part = encode_record(decode_legacy_record(raw)) if family == "rec" else compact_fp(raw)
                parts.append((ledger.rec_bucket(record), record.id, family[0], part))
            if parts:
                pipe.eval(RECORD_PARTS, len(parts), *(p[0] for p in parts), *(x for p in parts for x in p[1:]))
            pipe.delete(*chunk)
            pipe.execute()
    accounts = sorted(
        {k[len(names.prefix("acct")) :] for k in found.get("acct", [])}
        | {k[len(names.prefix("seen")) :] for k in found.get("seen", [])}
    )
    for start in range(0, len(accounts), batch):
        chunk = accounts[start : start + batch]
        old = [names.prefix("acct") + a for a in chunk] + [names.prefix("seen") + a for a in chunk]
        values = cast(list[str | None], client.mget(old))
        pipe = client.pipeline(transaction=True)
        for n, account_id in enumerate(chunk):
            entry_raw, seen_raw = values[n], values[len(chunk) + n]
            entry = encode_entry(decode_legacy_entry(entry_raw)) if entry_raw else ""
            seen = "\n"
            if seen_raw:
                seen = encode_seen(Account.model_validate_json(seen_raw.split("\n", 1)[1]))
            pipe.set(ledger.acct_key(account_id), f"{seen}\n{entry}")
        pipe.delete(*old)
        pipe.execute()
    return counts
