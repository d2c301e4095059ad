"""Account search and the account page: "why does this account say that?", answered from Redis only.

**Search** (``search``) finds accounts by

- an exact id: the PostHog account id, an ``external_id`` or any CRM id the account index holds
  (``Ledger.lookup`` for every kind: one round trip);
- part of an id (case as typed): the account index's buckets scanned with ``MATCH *<q>*`` (``Ledger.search_index``);
- part of the name (any case): the accounts as PostHog last showed them (``Ledger.iter_seen``), read in batches of
  ``SCAN_BATCH`` until ``SEARCH_LIMIT`` accounts are found.

**The account page** (``account_detail``) shows, for each field crmsync manages (each source's link, name,
external id, roles, custom properties, tags): the value PostHog holds as the ledger last saw it (the account key
``a:<id>``), the value each source last sent (``AccountEntry.sent`` keeps a source's value while it differs from
the account's; otherwise the source agrees, or sent nothing), the system the value came from and the rule that
decided it (the ``ownership`` config and the provenance in the account's entry), when crmsync last changed it
(``AccountEntry.changed``), and links to the CRM records and to the account in PostHog. The linked records'
pending webhook refreshes (in a ``pending:`` set, or claimed by a refresh task) and their dead letters are listed
too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, cast

from sync.apply import AccountState
from sync.engine import AMBIGUOUS
from sync.identity import index_pairs
from sync.ledger import AccountEntry, RecordKey
from sync.mapping import Provenance, RuleKind
from sync.posthog.models import ID_KEYS
from workers.runtime import Runtime
from workers.ui import words
from workers.ui.links import RecordLinks

ACCOUNT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
"""What an account id in a URL may look like (PostHog's are UUIDs); anything else is a 404, never a key read."""

SEARCH_LIMIT = 50
SCAN_BATCH = 500
INDEX_KINDS = ("external_id", *ID_KEYS, "domain")


@dataclass
class Match:
    account_id: str
    matched: list[str] = field(default_factory=list)  # how it was found: "name", "sfdc_id 001A..."
    name: str | None = None
    external_id: str | None = None


def _glob(text: str) -> str:
    """``text`` with Redis glob characters escaped, for a ``MATCH`` pattern."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def search(runtime: Runtime, query: str, limit: int = SEARCH_LIMIT) -> list[Match]:
    """Accounts whose id, external id, CRM id or name matches ``query`` (see the module docstring)."""
    q = query.strip()
    if not q:
        return []
    ledger, client = runtime.ledger, runtime.redis
    found: dict[str, Match] = {}

    def hit(account_id: str, how: str) -> None:
        if account_id == AMBIGUOUS:  # a domain two accounts share: the index names neither
            return
        if account_id and (account_id in found or len(found) < limit):
            found.setdefault(account_id, Match(account_id)).matched.append(how)

    exact = ledger.lookup([(kind, q) for kind in INDEX_KINDS])
    if client.exists(ledger.acct_key(q)):
        hit(q, "account id")
    for kind, account_id in zip(INDEX_KINDS, exact, strict=True):
        if account_id:
            hit(account_id, f"{words.label(kind)} {q}")
    for kind, value, account_id in ledger.search_index(f"*{_glob(q)}*", limit * 4):
        if value != q:  # exact matches are reported above
            hit(account_id, f"{words.label(kind)} {value}")
    needle = q.casefold()
    for accounts in ledger.iter_seen(SCAN_BATCH):
        for account in accounts:
            if needle in (account.name or "").casefold():
                hit(account.id, "name")
        if len(found) >= limit:
            break
    for match, shown in zip(found.values(), ledger.get_seen(list(found)), strict=True):
        if shown is not None:
            match.name, match.external_id = shown.name, shown.external_id
    return list(found.values())


# -- the account page ----------------------------------------------------------------------------------


def rule_words(runtime: Runtime, target: str) -> str:
    """The ownership rule of ``target`` as a sentence."""
    rule = runtime.config.mapping.rule_for(target)
    if rule.rule is RuleKind.PRECEDENCE:
        return f"precedence: {', then '.join(rule.order)} (a source never overwrites one ranked above it)"
    if rule.rule is RuleKind.NEWEST_WINS:
        return "newest wins: the most recently modified record sets it"
    if rule.rule is RuleKind.POSTHOG_WINS:
        return "PostHog wins: a CRM only fills it while it is empty, and PostHog's value flows out to the CRMs"
    return "set if empty: the first value stays; nobody overwrites it"


def _why_not(runtime: Runtime, target: str, provenance: Provenance | None) -> str:
    """Why a source's differing value is not the account's, by the field's rule and who set it."""
    rule = runtime.config.mapping.rule_for(target)
    holder = provenance.source if provenance else None
    if rule.rule in (RuleKind.POSTHOG_WINS, RuleKind.SET_IF_EMPTY):
        return f"not applied: {rule.rule.value.replace('_', ' ')}, and the field was already set"
    if holder is None:
        return "not applied: the value was set in PostHog"
    if rule.rule is RuleKind.NEWEST_WINS:
        return f"not applied: {holder}'s record is newer"
    return f"not applied: {holder} ranks above it"


def _managed(runtime: Runtime) -> list[tuple[str, list[tuple[str, str]]]]:
    """Every account field a mapping writes, in page order, each with the (source, object) pairs that map it."""
    targets: dict[str, list[tuple[str, str]]] = {}
    for source, objects in runtime.config.mapping.mappings.items():
        for obj, om in objects.items():
            targets.setdefault(f"properties.{om.link}", []).append((source, obj))
            for fm in om.inbound:
                if fm.target != "domain":
                    pairs = targets.setdefault(fm.target, [])
                    if (source, obj) not in pairs:
                        pairs.append((source, obj))

    def order(target: str) -> tuple[int, str]:
        group = 0 if target.removeprefix("properties.") in ID_KEYS else 1
        if target in ("name", "external_id"):
            group = 2
        elif target.startswith("roles."):
            group = 3
        elif target.startswith("properties."):
            group = 4 if group else 0
        elif target == "tags":
            group = 5
        return group, target

    return [(t, targets[t]) for t in sorted(targets, key=order)]


def field_label(target: str) -> str:
    name = target.split(".", 1)[1] if "." in target else target
    if target.startswith("roles."):
        return f"Role: {words.label(name)}"
    if target.startswith("properties.") and name in ID_KEYS:
        return f"Link: {words.label(name)}"
    if target.startswith("properties."):
        return f"Property: {name}"
    return words.label(name)


def _shown(value: Any) -> Any:
    """A value as the page shows it: a role's user as its email, an empty one as nothing."""
    if isinstance(value, dict) and "email" in value:
        return value.get("email")
    return None if value in (None, "", [], {}) else value


def account_detail(runtime: Runtime, account_id: str, links: RecordLinks) -> dict[str, Any] | None:
    """Everything the account page shows (see the module docstring), or None for an id the ledger does not know.
    Redis only: a handful of round trips whatever the account, no PostHog or CRM request."""
    if not ACCOUNT_ID.match(account_id):
        return None
    ledger = runtime.ledger
    (entry,) = ledger.get_accounts([account_id])
    (account,) = ledger.get_seen([account_id])
    if account is None and entry == AccountEntry():
        return None
    state = AccountState.of(account) if account else AccountState.empty()
    records = _linked_records(runtime, account_id, entry, state, links)
    rows = []
    for target, pairs in _managed(runtime):
        rows.append(_field_row(runtime, target, pairs, entry, state, records))
    mine = {(r["source"], r["object"], r["id"]) for r in records}
    parked = [
        {**e, "entry": entry_id, "crm_url": links.crm(str(e.get("source")), str(e.get("object")), e.get("id"))}
        for entry_id, e in ledger.dead_letters(100_000)
        if (str(e.get("source")), str(e.get("object")), str(e.get("id"))) in mine
    ]
    return {
        "id": account_id,
        "name": account.name if account else None,
        "external_id": account.external_id if account else None,
        "seen_at": account.updated_at.isoformat() if account and account.updated_at else None,
        "posthog_url": links.posthog(account_id),
        "known_to_posthog": account is not None,
        "fields": rows,
        "records": records,
        "pending": [r for r in records if r["pending"] or r["claimed"]],
        "dead_letters": parked,
        "index": [{"kind": words.label(k), "value": v} for k, v in index_pairs(state.external_id, state.properties)],
    }


def _linked_records(
    runtime: Runtime, account_id: str, entry: AccountEntry, state: AccountState, links: RecordLinks
) -> list[dict[str, Any]]:
    """The CRM records linked to the account (its link properties; a link the ledger remembers but PostHog no
    longer shows counts too), with their ledger entry and whether a webhook refresh waits for them."""
    wanted: list[tuple[str, str, str]] = []
    for source, objects in runtime.config.mapping.mappings.items():
        for obj, om in objects.items():
            record_id = state.properties.get(om.link)
            prov = entry.provenance.get(f"properties.{om.link}") or {}
            for rid in dict.fromkeys([record_id, prov.get("f") if prov.get("s") == source else None]):
                if isinstance(rid, str) and rid:
                    wanted.append((source, obj, rid))
    if not wanted:
        return []
    keys, client = runtime.ledger.keys, runtime.redis
    ledger_entries = runtime.ledger.get_records([RecordKey(*w) for w in wanted])
    pipe = client.pipeline(transaction=False)
    for source, obj, rid in wanted:
        pipe.sismember(keys.pending(source, obj), rid)
        pipe.smembers(keys.claims(source, obj))
    answers = pipe.execute()
    claims = client.pipeline(transaction=False)  # the claim sets of the tasks holding claims on these objects
    for n, (source, obj, rid) in enumerate(wanted):
        for task in sorted(cast(set[str], answers[2 * n + 1])):
            claims.sismember(keys.claim(source, obj, task), rid)
    claimed = claims.execute() if len(claims) else []
    out = []
    at = 0
    for n, ((source, obj, rid), rec) in enumerate(zip(wanted, ledger_entries, strict=True)):
        tasks = len(cast(set[str], answers[2 * n + 1]))
        held = any(bool(x) for x in claimed[at : at + tasks])
        at += tasks
        out.append(
            {
                "source": source,
                "object": obj,
                "id": rid,
                "crm_url": links.crm(source, obj, rid),
                "linked_here": rec is not None and rec.account_id == account_id,
                "ledger_account": rec.account_id if rec else None,
                "version": rec.version if rec else None,
                "unlinked": bool(rec and rec.unlinked),
                "pending": bool(answers[2 * n]),
                "claimed": held,
            }
        )
    return out


def _field_row(
    runtime: Runtime,
    target: str,
    pairs: list[tuple[str, str]],
    entry: AccountEntry,
    state: AccountState,
    records: list[dict[str, Any]],
) -> dict[str, Any]:
    linked = {r["source"] for r in records}
    changed = entry.changed.get(target)
    if target == "tags":
        return {
            "target": target,
            "label": "Tags",
            "current": state.tags,
            "from": ", ".join(sorted(s for s, tags in entry.tags.items() if tags)) or None,
            "rule": "each source's tags are added and replaced by that source only; every other tag stays",
            "changed": changed,
            "sources": [
                {"source": s, "value": entry.tags.get(s) or None, "note": "" if s in entry.tags else "none sent"}
                for s in dict.fromkeys([*(s for s, _ in pairs), *entry.tags])  # and a source mapped tags before
            ],
        }
    prov_raw = entry.provenance.get(target)
    provenance = Provenance.load(prov_raw) if prov_raw else None
    # custom values live on PostHog's custom-property endpoints; the ledger keeps only their fingerprints
    current = None if target.startswith("custom.") else _shown(state.get(target))
    is_link = target.startswith("properties.") and target.removeprefix("properties.") in ID_KEYS
    sources = []
    for source in dict.fromkeys(s for s, _ in pairs):
        sent = entry.sent.get(source, {})
        if target in sent:
            value, note = _shown(sent[target]), _why_not(runtime, target, provenance)
        elif provenance and provenance.source == source:
            value, note = current, "this is the account's value"
        elif is_link:
            value, note = None, "" if source in linked else "no record linked"
        else:
            value, note = None, "same as the account's, or nothing sent"
        sources.append({"source": source, "value": value, "note": note})
    if provenance:
        origin = provenance.source
    elif current is not None:
        origin = "PostHog (not written by crmsync)"
    else:
        origin = None
    return {
        "target": target,
        "label": field_label(target),
        "current": current,
        "from": origin,
        "rule": "the source's own link: the record that holds it" if is_link else rule_words(runtime, target),
        "changed": changed,
        "sources": sources,
    }
