"""Roles in each generation of PostHog's accounts API, through the engine's official flows against the stand-in
(real Redis, loopback HTTP): where the holders land, what it costs, detection, a refused write, review items and
a CSM reassigned in PostHog reaching the CRM. Costs are asserted by counts, never timings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sync.engine import SyncEngine
from sync.ledger import Ledger
from sync.mapping import MappingConfig
from sync.posthog import PostHogClient
from sync.posthog.generation import Generation, Generations
from sync.posthog.relationships import RelationshipApi
from sync.state import posthog_system
from tests.conftest import PostHogSandbox, emptied
from tests.support.memory_crm import MemoryConnector, MemoryCrm

ACCOUNTS = "/accounts/"
RELATIONSHIPS = "/relationships/"
DEFINITIONS = "/account_relationship_definitions/"


@pytest.fixture(params=["seed", "transitional", "current"])
def server(request: pytest.FixtureRequest, posthog_generations: dict[str, PostHogSandbox]) -> Iterator[PostHogSandbox]:
    yield from emptied(posthog_generations[request.param])


@pytest.fixture
def current(posthog_generations: dict[str, PostHogSandbox]) -> Iterator[PostHogSandbox]:
    yield from emptied(posthog_generations["current"])


def _client(sandbox: PostHogSandbox) -> PostHogClient:
    return sandbox.client()


def _engine(sandbox: PostHogSandbox, ledger: Ledger, mapping: MappingConfig) -> SyncEngine:
    return SyncEngine(_client(sandbox), ledger, mapping)


def _holders(client: PostHogClient, account_id: str) -> dict[str, str | None]:
    """Definition name → holder email, from the relationship endpoint."""
    return {
        r["definition"]["name"]: (r.get("user") or {}).get("email") for r in RelationshipApi(client).active(account_id)
    }


def _generation(sandbox: PostHogSandbox) -> str:
    return str(sandbox.admin.get("/_sandbox/info").json()["generation"])


def test_roles_land_as_relationships_on_current_and_in_properties_before(
    server: PostHogSandbox, ledger: Ledger, mapping: MappingConfig
) -> None:
    crm = MemoryCrm()
    crm.put("001A", name="Acme", ext="acct-a", owner="ben@example.com")
    report = _engine(server, ledger, mapping).run(MemoryConnector(crm), "accounts", mode="full")
    assert report.status == "succeeded" and report.counts["failed"] == 0, report.as_dict()
    client = _client(server)
    (account,) = list(client.iter_accounts())
    if _generation(server) == "current":
        assert account.properties.account_owner is None  # never sent in properties (the server refuses them)
        assert _holders(client, account.id) == {"Account owner": "ben@example.com"}
        assert report.counts["roles_assigned"] == 1
    else:
        assert account.properties.account_owner is not None and account.properties.account_owner.id == 8
        assert server.count("POST", RELATIONSHIPS) == 0


def test_on_current_an_account_costs_one_request_plus_one_per_role_set(
    current: PostHogSandbox, ledger: Ledger, mapping: MappingConfig
) -> None:
    crm = MemoryCrm()
    for i in range(10):
        crm.put(f"001{i:05d}", name=f"Company {i}", ext=f"acct-{i}", **({"owner": "ben@example.com"} if i % 2 else {}))
    engine = _engine(current, ledger, mapping)
    report = engine.run(MemoryConnector(crm), "accounts", mode="full")
    assert report.counts["created"] == 10 and report.counts["failed"] == 0, report.as_dict()
    assert current.count("POST", "/api/environments/{project_id}/accounts/") == 10  # one per account
    assert current.count("PATCH") == 0
    assert current.count("POST", "/accounts/{account_id}/relationships/") == 5  # one per role set
    # Once per process and system, not per account: detection (2 reads), the one missing definition created.
    assert current.count("GET", DEFINITIONS) == 1 and current.count("POST", DEFINITIONS) == 1
    assert engine.generations.requests == 2

    current.reset_counters()
    again = _engine(current, ledger, mapping).run(MemoryConnector(crm), "accounts", mode="full")
    assert again.counts["unchanged"] == 10
    assert sum(current.count(m) for m in ("POST", "PATCH", "PUT", "DELETE")) == 0  # an unchanged re-sync writes nothing

    current.reset_counters()
    crm.put("00100001", owner="cy@example.com")  # only a role changes: no PATCH, one assignment
    _engine(current, ledger, mapping).run(MemoryConnector(crm), "accounts")
    assert current.count("PATCH") == 0 and current.count("POST", "/accounts/{account_id}/relationships/") == 1


def test_detection_costs_at_most_two_requests_per_process_and_is_remembered(
    server: PostHogSandbox, ledger: Ledger
) -> None:
    client = _client(server)
    identity = posthog_system(client.base_url, client.project_id)
    first = Generations(client, ledger, identity)
    assert first.get() == Generation(_generation(server))
    assert first.requests == (1 if _generation(server) == "seed" else 2)
    assert server.stats()["total"] == first.requests
    again = Generations(_client(server), ledger, identity)  # another process: read from the system record
    assert again.get() == first.get() and again.requests == 0
    other = Generations(_client(server), ledger, posthog_system("https://elsewhere.example", 1))
    other.get()  # another PostHog system is detected afresh
    assert other.requests == first.requests


def test_a_400_refusing_role_keys_switches_the_generation_once_and_parks_nothing(
    current: PostHogSandbox, ledger: Ledger, mapping: MappingConfig
) -> None:
    """The system record says ``seed`` (a server upgraded under a running sync): the first write with role keys
    is refused, the generation switches, the write goes again without them, and nothing loops or is parked."""
    client = _client(current)
    ledger.note_system("posthog", posthog_system(client.base_url, client.project_id), generation="seed")
    crm = MemoryCrm()
    for i in range(3):
        crm.put(f"001{i:05d}", name=f"Company {i}", ext=f"acct-{i}", owner="ben@example.com")
    engine = _engine(current, ledger, mapping)
    report = engine.run(MemoryConnector(crm), "accounts", mode="full")
    assert report.counts["created"] == 3 and report.counts["failed"] == 0, report.as_dict()
    assert ledger.dlq_size() == 0
    assert current.count("POST", "/api/environments/{project_id}/accounts/", status=400) == 1  # refused once only
    assert engine.generations.get() is Generation.CURRENT
    assert engine.generations.requests <= 2  # one re-detection
    assert any("refused role keys" in n for n in report.notes)
    record = ledger.system_record("posthog")
    assert record is not None and record["generation"] == "current"
    assert all(_holders(client, a.id) == {"Account owner": "ben@example.com"} for a in client.iter_accounts())


def test_an_owner_who_is_not_a_member_is_a_review_item_on_current(
    current: PostHogSandbox, ledger: Ledger, mapping: MappingConfig
) -> None:
    crm = MemoryCrm()
    crm.put("001A", name="Acme", ext="acct-a", owner="stranger@example.com")
    report = _engine(current, ledger, mapping).run(MemoryConnector(crm), "accounts", mode="full")
    assert report.counts["created"] == 1 and report.counts["failed"] == 0
    assert not report.errors
    (item,) = report.review
    assert item["field"] == "roles.account_owner" and "stranger@example.com" in item["reason"]
    assert current.count("POST", RELATIONSHIPS) == 0  # nobody assigned, nothing invented


def test_a_csm_reassigned_in_posthog_reaches_the_crm_with_one_query(
    current: PostHogSandbox, ledger: Ledger, mapping: MappingConfig
) -> None:
    crm = MemoryCrm()
    for i in range(5):
        crm.put(f"001{i:05d}", name=f"Company {i}", ext=f"acct-{i}")
    conn = MemoryConnector(crm)
    engine = _engine(current, ledger, mapping)
    engine.run(conn, "accounts", mode="full")
    engine.push_back_pass(conn, "accounts")  # the first pass reads the feed from its start
    client = _client(current)
    account = next(a for a in client.iter_accounts() if a.external_id == "acct-3")
    api = RelationshipApi(client)
    definition = api.create_definition("CSM")
    api.assign(account.id, str(definition["id"]), 9)  # a person makes Cy the CSM in PostHog

    current.reset_counters()
    report = engine.push_back_pass(conn, "accounts")
    assert report.status == "succeeded", report.as_dict()
    assert crm.records["00100003"]["csm_email"] == "cy@example.com"
    assert report.counts["pushed"] == 1
    assert current.count("POST", "/query/") == 1  # one change-feed query for the role changes
    assert current.count("GET", "/relationships/") == 0  # never a read per account
    (entry,) = ledger.get_accounts([account.id])
    assert entry.roles["csm"] == {"id": 9, "email": "cy@example.com"}

    current.reset_counters()
    quiet = engine.push_back_pass(conn, "accounts")
    assert quiet.counts["pushed"] == 0 and crm.push_requests >= 1


def test_a_definition_created_meanwhile_by_another_writer_is_used(
    current: PostHogSandbox, ledger: Ledger, mapping: MappingConfig
) -> None:
    engine = _engine(current, ledger, mapping)
    assert engine.generations.get() is Generation.CURRENT  # detection listed no definitions
    taken = RelationshipApi(_client(current)).create_definition("Account owner")  # another worker, meanwhile
    crm = MemoryCrm()
    crm.put("001A", name="Acme", ext="acct-a", owner="ben@example.com")
    report = engine.run(MemoryConnector(crm), "accounts", mode="full")
    assert report.counts["failed"] == 0 and report.counts["roles_assigned"] == 1, report.as_dict()
    (account,) = list(_client(current).iter_accounts())
    (held,) = RelationshipApi(_client(current)).active(account.id)
    assert held["definition"]["id"] == taken["id"]  # the one definition, not a second of the same name
