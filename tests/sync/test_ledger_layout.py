"""The ledger's layout (``sync.ledger_layout``): bytes and commands per record, and the migration of a layout 1 ledger.

Sizes are Redis's own figure (``used_memory_dataset`` of a server of this test's own, so nothing else is in it),
costs are counted commands and round trips; nothing is timed.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import asdict

import pytest
import redis

from sync.engine import SyncEngine
from sync.ledger import AccountEntry, Ledger, LockNotAcquired, RecordEntry, RecordKey, delete_keys
from sync.ledger_layout import decode_entry, decode_record, encode_entry, encode_record
from sync.mapping import MappingConfig
from sync.posthog import PostHogClient
from sync.report import RunReport
from tests.conftest import PostHogSandbox
from tests.support.memory_crm import MemoryConnector, MemoryCrm
from tests.support.redis_counting import CountingConnection
from tests.sync.test_engine import OtherConnector, seed, writes
from workers.processes import RedisServer

MAX_BYTES_PER_RECORD = 600


def seed_other(crm: MemoryCrm, n: int) -> None:
    """The second CRM's side of the same companies (same external ids): two records per account, as in the bench."""
    for i in range(n):
        crm.put(f"{9_000_000_000 + i}", title=f"Company {i}", ext=f"acct-{i}")


# -- encodings ---------------------------------------------------------------------------------------------------


def test_entries_round_trip_and_bucket_values_stay_under_64_bytes() -> None:
    account = str(uuid.uuid4())
    fp = secrets.token_hex(16)  # a digest as the fingerprint functions make it, and as layout 1 stored it
    entry = RecordEntry(fp, account, 1_704_082_980_000, fp)
    stored = encode_record(entry)
    assert len(stored.encode()) <= 64  # Redis keeps a hash compact (listpack) only with values of ≤ 64 bytes
    back = decode_record(stored)
    assert back.fp == back.echo_fp and back.account_id == account and back.version == 1_704_082_980_000
    assert base64.urlsafe_b64decode(back.fp) == bytes.fromhex(fp)[:9]  # a 32-hex digest keeps its first 72 bits
    odd = RecordEntry("fp|1", "acct\twith tab", -5, None, unlinked=True)  # parts no crmsync value has
    assert decode_record(encode_record(odd)) == odd
    assert decode_record(encode_record(RecordEntry("", None))) == RecordEntry("", None)

    acct = AccountEntry(
        written_fp="w",
        provenance={
            "name": {"s": "salesforce", "v": 1_704_082_980_000, "f": "abc"},
            "properties.sfdc_id": {"s": "salesforce", "v": -1_704_079_380, "f": "001Sd000000003HIAQ"},
            "roles.csm": {"s": "hubspot", "v": None, "f": "x"},
            "tags": {"s": "stripe", "v": 7, "f": ""},
        },
        tags={"stripe": ["stripe-active"]},
    )
    assert decode_entry(encode_entry(acct)) == acct
    assert decode_entry(encode_entry(AccountEntry())) == AccountEntry()


# -- commands and round trips per record -----------------------------------------------------------------------


def test_commands_per_record_do_not_grow(engine: SyncEngine, conn: MemoryConnector, crm: MemoryCrm) -> None:
    """A batch costs the same round trips whatever its size, and at most ~2 commands per record that changed (one
    ``HSET`` per index entry; record entries, account entries and seen accounts are one script call per batch).
    Layout 1 sent 7 commands per record (a ``SET`` per key), and read with ``MGET``: the same round trips."""
    seed(crm, 250)
    engine.index.refresh()
    records = [crm.record(rid, "accounts") for rid in sorted(crm.records)]
    costs: dict[str, tuple[int, int]] = {}
    for label, batch in (("50", records[:50]), ("200", records[50:]), ("200 unchanged", records[50:])):
        CountingConnection.commands = CountingConnection.round_trips = 0
        engine.apply_records(conn, "accounts", batch, RunReport("memcrm", "accounts", "test"))
        costs[label] = (CountingConnection.round_trips, CountingConnection.commands)
    (trips_50, commands_50), (trips_200, commands_200) = costs["50"], costs["200"]
    assert trips_200 <= trips_50 <= 10, costs
    assert commands_200 / 200 <= commands_50 / 50 <= 2.5, costs
    assert costs["200 unchanged"] == (1, 1), costs  # one script call reads every record entry of the batch


# -- bytes per record --------------------------------------------------------------------------------------------


@pytest.fixture
def own_redis() -> Iterator[redis.Redis]:
    """A Redis server of this test's own: nothing but the ledger is in it."""
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        try:
            yield client
        finally:
            client.close()


def dataset(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory_dataset"])


def test_bytes_per_record_after_a_full_and_an_incremental_sync(
    own_redis: redis.Redis, ph: PostHogClient, posthog: PostHogSandbox, mapping: MappingConfig
) -> None:
    """300 records in each of two CRMs, two records per account (as the bench's CRMs have), a full then an
    incremental sync: the ledger's keys hold at most 600 bytes of ``used_memory_dataset`` per record (layout 1:
    about 1,400). Measured as what deleting them frees: the figure also holds allocations that are no key's (buffers
    Redis keeps after a large pipeline, a few hundred KB), which would swamp 600 records.

    The ledger is made with 32 buckets, so its buckets hold about as many entries each (about 9) as the default
    1,024 do at 10,000 records per CRM, which ``make bench`` measures; the server's
    ``hash-max-listpack-entries`` must admit them (it is 512 unless configured)."""
    assert int(own_redis.config_get("hash-max-listpack-value")["hash-max-listpack-value"]) == 64
    ledger = Ledger(own_redis, project_id=1, prefix="crmsync-bytes", buckets=32)
    engine = SyncEngine(ph, ledger, mapping)
    first, second = MemoryCrm(), MemoryCrm(source="othercrm")
    seed(first, 300)
    seed_other(second, 300)
    connectors = (MemoryConnector(first), OtherConnector(second))
    for mode in ("full", "incremental"):
        for connector in connectors:
            report = engine.run(connector, "accounts", mode=mode)
            assert report.status == "succeeded" and report.counts["failed"] == 0, report.as_dict()
    assert ledger.record_count() == 600 and len(ledger.account_ids()) == 300
    buckets = list(own_redis.scan_iter(match=f"{ledger.ns}:[rx]:*", count=1000))
    assert buckets and {own_redis.object("encoding", key) for key in buckets} == {"listpack"}
    full = dataset(own_redis)
    assert delete_keys(own_redis, f"{ledger.ns}:*") > 0
    per_record = (full - dataset(own_redis)) / 600  # what the ledger's keys held, exactly: deleting them frees it
    assert per_record <= MAX_BYTES_PER_RECORD, per_record


# -- migration of a layout 1 ledger -------------------------------------------------------------------------------


def _legacy_fp(fp: str) -> str:
    """A 32-hex digest as layout 1 stored it, whose first 72 bits are ``fp``'s (what layout 1's digest of the same
    payload was: the fingerprint functions now keep those bits)."""
    if len(fp) != 12:
        return fp
    return base64.urlsafe_b64decode(fp).hex() + secrets.token_hex(7)


def write_layout1(source: Ledger, target: Ledger, records: list[RecordKey]) -> int:
    """Write ``source``'s state into ``target``'s namespace the way crmsync before layout 2 wrote it."""
    client, ns = target.redis, target.ns
    pipe = client.pipeline(transaction=False)
    for key, entry, out in zip(records, source.get_records(records), source.get_outbound(records), strict=True):
        assert entry is not None
        legacy = asdict(entry) | {"fp": _legacy_fp(entry.fp)}
        if entry.echo_fp:
            legacy["echo_fp"] = legacy["fp"] if entry.echo_fp == entry.fp else _legacy_fp(entry.echo_fp)
        pipe.set(f"{ns}:rec:{key.source}:{key.object}:{key.id}", json.dumps(legacy))
        if out:
            pipe.set(f"{ns}:out:{key.source}:{key.object}:{key.id}", _legacy_fp(out))
    accounts = source.account_ids()
    for account_id, acct, seen in zip(accounts, source.get_accounts(accounts), source.get_seen(accounts), strict=True):
        legacy_acct = asdict(acct) | {"written_fp": _legacy_fp(acct.written_fp)}
        pipe.set(f"{ns}:acct:{account_id}", json.dumps(legacy_acct, separators=(",", ":")))
        assert seen is not None and seen.updated_at is not None
        ts = seen.updated_at.isoformat(timespec="microseconds")
        pipe.set(f"{ns}:seen:{account_id}", f"{ts}\n{seen.model_dump_json(exclude_unset=True)}")
    for bucket in source.redis.scan_iter(match=f"{source.ns}:x:*", count=1000):
        kind = str(bucket).split(":")[-2]
        for value, _raw in source.redis.hgetall(bucket).items():
            account = source.lookup([(kind, value)])[0]
            pipe.set(f"{ns}:idx:{kind}:{value}", str(account))
    for key in source.redis.scan_iter(match=f"{source.ns}:*", count=1000):  # cursors, systems, index watermark
        rest = str(key)[len(source.ns) + 1 :]
        if rest.split(":")[0] in ("cursor", "cursor_at", "system", "idxmeta", "notags"):
            pipe.set(f"{ns}:{rest}", str(source.redis.get(key)))
    pipe.execute()
    return len(accounts)


def test_a_layout1_ledger_is_migrated_once_and_nothing_is_written_again(
    ledger: Ledger, ph: PostHogClient, posthog: PostHogSandbox, mapping: MappingConfig, crm: MemoryCrm
) -> None:
    conn = MemoryConnector(crm)
    seed(crm, 30)
    first = SyncEngine(ph, ledger, mapping)
    assert first.run(conn, "accounts", mode="full").counts["created"] == 30
    keys = [RecordKey("memcrm", "accounts", rid) for rid in sorted(crm.records)]
    before = ledger.get_records(keys)

    old = Ledger(ledger.redis, project_id=1, prefix=f"{ledger.ns.split(':')[0]}-layout1")
    try:
        assert write_layout1(ledger, old, keys) == 30
        assert not ledger.redis.exists(f"{old.ns}:layout")
        posthog.reset_counters()
        pushes = crm.push_requests
        CountingConnection.round_trips = 0
        engine = SyncEngine(ph, old, mapping)  # start-up: the one-shot migration
        assert old.redis.get(f"{old.ns}:layout") == f"2:{old.buckets}"
        legacy = list(old.redis.scan_iter(match=f"{old.ns}:*", count=1000, _type="string"))
        assert not [
            k for k in legacy if str(k)[len(old.ns) + 1 :].split(":")[0] in ("rec", "out", "idx", "acct", "seen")
        ]
        assert old.get_records(keys) == before  # the same entries, fingerprints in their 12-character form
        assert old.record_count() == 30 and len(old.account_ids()) == 30

        for mode in ("incremental", "full"):
            report = engine.run(conn, "accounts", mode=mode)
            assert report.status == "succeeded", report.as_dict()
            assert report.counts["unchanged"] == report.counts["seen"], report.as_dict()
        assert writes(posthog) == 0 and crm.push_requests == pushes  # nothing re-written, nothing pushed back
        crm.put("00100003", name="Renamed 3")  # and it keeps working: one PATCH, from the migrated seen account
        assert engine.run(conn, "accounts").counts["updated"] == 1
        assert writes(posthog) == 1 and posthog.count("PATCH") == 1
        assert [a.name for a in ph.iter_accounts() if a.external_id == "acct-3"] == ["Renamed 3"]

        CountingConnection.round_trips = 0
        SyncEngine(ph, Ledger(old.redis, project_id=1, prefix=old.ns.split(":")[0]), mapping)
        assert CountingConnection.round_trips == 0  # once per process: the next start-up costs nothing
    finally:
        delete_keys(ledger.redis, f"{old.ns}:*")


def test_a_process_waits_for_the_migration_another_one_runs(redis_client: redis.Redis) -> None:
    prefix = f"crmsync-test-{uuid.uuid4().hex[:8]}"
    ns = f"{prefix}:1"
    try:
        redis_client.set(f"{ns}:lock:layout", "1", px=60_000)  # another process is migrating
        waiting = Ledger(redis_client, project_id=1, prefix=prefix)
        with pytest.raises(LockNotAcquired):
            waiting.ready(wait_s=0.3)
        assert not redis_client.exists(f"{ns}:layout")
        redis_client.set(f"{ns}:layout", "2:64")  # it finished, with the bucket count that ledger has
        waiting.ready(wait_s=0.3)
        assert waiting.buckets == 64 and waiting.rec_bucket(RecordKey("s", "o", "1")).startswith(f"{ns}:r:s:o:")
    finally:
        delete_keys(redis_client, f"{ns}:*")
