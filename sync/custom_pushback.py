"""PostHog → CRM for custom property values: what people changed in PostHog, read from its change feed.

One query per pass (``sync/posthog/changes.py``: the ``$account_custom_property_changed`` events since the
pass's watermark, one request per 500 changes), never a request per account: the linked CRM record of each
account comes from the ledger (the account entry's provenance of the link property), two ``MGET``s and a lock
round trip per pass. For each record, the mapping's outbound ``custom.*`` fields get the newest value; a push
is skipped when the same fields were pushed to that record before (a fingerprint under the record's ``out`` key
with the suffix ``#custom``). Each account entry learns the value PostHog holds (``AccountEntry.custom``), so
``posthog_wins`` knows the field is set and crmsync's own writes, seen again in the feed, cost nothing.
"""

from __future__ import annotations

from sync.connector import Connector, PushUpdate
from sync.errors import BadRecordError
from sync.keys import watermark_stream
from sync.ledger import Ledger, RecordKey
from sync.mapping import ObjectMapping, fingerprint_of
from sync.posthog.changes import ChangeEvent, QueryClient, latest_custom_values, read_changes
from sync.report import PlannedChange, RunReport

SUFFIX = "#custom"


def push_custom_values(
    posthog: QueryClient,
    ledger: Ledger,
    connector: Connector,
    stream: str,
    mapping: ObjectMapping,
    report: RunReport,
    dry_run: bool = False,
) -> None:
    """Push the values of the mapping's outbound ``custom.*`` fields changed in PostHog since the last pass, and let
    the ledger learn every value of the mapping's ``custom.*`` targets PostHog now holds (also those a CRM owns: a
    value a person changed there is then drift a full sync writes back, ``docs/engine.md``)."""
    fields = {fm.custom_name: fm.source for fm in mapping.outbound if fm.custom_name and isinstance(fm.source, str)}
    mapped = {fm.custom_name for fm in mapping.fields if fm.custom_name}
    if not mapped:
        return
    wm_key = watermark_stream(connector.source, stream, "custom")
    batch = read_changes(posthog, ledger.get_cursor("posthog", wm_key))  # both kinds: a read other passes share
    report.add("change_feed_pages", batch.requests)
    latest = {k: e for k, e in latest_custom_values(batch.events).items() if k[1] in mapped}
    accounts = sorted({account_id for account_id, _ in latest})
    if accounts:
        _push(ledger, connector, stream, mapping, fields, latest, accounts, report, dry_run)
    if batch.watermark and not dry_run:
        ledger.set_cursor("posthog", wm_key, batch.watermark)


def _push(
    ledger: Ledger,
    connector: Connector,
    stream: str,
    mapping: ObjectMapping,
    fields: dict[str, str],
    latest: dict[tuple[str, str], ChangeEvent],
    accounts: list[str],
    report: RunReport,
    dry_run: bool,
) -> None:
    link = f"properties.{mapping.link}"
    with ledger.locks([f"acct:{a}" for a in accounts]):
        entries = dict(zip(accounts, ledger.get_accounts(accounts), strict=True))
        records: dict[str, str] = {}  # account id → linked record id of this stream
        for account_id, entry in entries.items():
            prov = entry.provenance.get(link)
            if prov and prov.get("s") == connector.source and prov.get("f"):
                records[account_id] = str(prov["f"])
        keys = {a: RecordKey(connector.source, stream, f"{rid}{SUFFIX}") for a, rid in records.items()}
        last = dict(zip(keys, ledger.get_outbound(list(keys.values())), strict=True))
        updates: list[PushUpdate] = []
        by_record: dict[str, str] = {}
        for account_id, record_id in records.items():
            wanted: dict[str, str | None] = {}
            for name in sorted({n for a, n in latest if a == account_id}):  # every mapped value PostHog changed
                event = latest.get((account_id, name))
                if event is None:
                    continue
                value = event.properties.get("current_value")
                if name in fields:
                    wanted[fields[name]] = None if value is None else _text(value)
                entry = entries[account_id]
                if value is None:
                    entry.custom.pop(name, None)
                else:
                    entry.custom[name] = fingerprint_of(value)
            if not wanted:
                continue
            fp = fingerprint_of(wanted)
            report.add("seen")
            if fp == last[account_id]:
                report.add("unchanged")
                continue
            updates.append(PushUpdate(record_id=record_id, fields=wanted, fingerprint=fp))
            by_record[record_id] = account_id
        if dry_run:
            report.plan.extend(
                PlannedChange(u.record_id, k, None, v, "posthog") for u in updates for k, v in u.fields.items()
            )
            return
        pushed: dict[RecordKey, str] = {}
        for result in connector.push(stream, updates) if updates else []:
            if result.ok:
                report.add("pushed")
                update = next(u for u in updates if u.record_id == result.record_id)
                pushed[keys[by_record[result.record_id]]] = update.fingerprint
            else:
                report.error(BadRecordError(connector.source, result.record_id, None, f"push: {result.error}"))
        ledger.commit(accounts=entries, outbound=pushed)


def _text(value: object) -> str:
    """A PostHog value as CRM text: integral floats without ``.0`` (a score of 80, not 80.0), booleans lower."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
