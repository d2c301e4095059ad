"""PostHog organisations without the tagging feature drop the tags written and show ``[]`` (the stand-in's
``tagging=False`` / ``--no-tagging``): crmsync notices on the first write, says so once, and stops sending tags,
so a tag change is not a PATCH that PostHog throws away on every run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.posthog.app import PostHogSandboxConfig
from sync.engine import TAGS_DROPPED, SyncEngine
from sync.ledger import Ledger
from sync.mapping import MappingConfig
from tests.conftest import KEYS, MEMBERS, PostHogSandbox, running_posthog
from tests.support.memory_crm import MemoryConnector, MemoryCrm
from tests.sync.test_engine import seed


@pytest.fixture(scope="module")
def untagged_server() -> Iterator[PostHogSandbox]:
    with running_posthog(PostHogSandboxConfig(keys=KEYS, members=MEMBERS, tagging=False)) as sandbox:
        yield sandbox


def test_dropped_tags_are_noticed_once_and_no_longer_sent(
    untagged_server: PostHogSandbox, ledger: Ledger, mapping: MappingConfig
) -> None:
    untagged_server.reset()
    crm = MemoryCrm()
    conn = MemoryConnector(crm)
    seed(crm, 10)
    with untagged_server.client() as client:
        engine = SyncEngine(client, ledger, mapping)
        first = engine.run(conn, "accounts", mode="full")
        assert first.counts["created"] == 10 and first.notes.count(TAGS_DROPPED) == 1
        assert ledger.tagging_unsupported() is not None

        for i in (1, 2, 3):
            crm.put(f"001{i:05d}", plan="enterprise")  # only the tag changes
        crm.put("00100004", name="Renamed 4", plan="enterprise")
        untagged_server.reset_counters()
        again = SyncEngine(client, ledger, mapping).run(conn, "accounts")  # a new process reads the ledger
        assert again.status == "succeeded" and TAGS_DROPPED not in again.notes
        assert untagged_server.count("PATCH") == 1  # the rename; tag changes alone are not writes here
        (renamed,) = [a for a in client.iter_accounts() if a.name == "Renamed 4"]
        assert renamed.tags == []


def test_a_new_mapping_tries_tags_again(
    untagged_server: PostHogSandbox, ledger: Ledger, mapping: MappingConfig
) -> None:
    ledger.mark_tagging_unsupported("fingerprint-of-an-older-mapping")
    with untagged_server.client() as client:
        assert SyncEngine(client, ledger, mapping).writer._tags_dropped() is False


def test_the_stand_in_drops_tags_like_such_an_organisation(untagged_server: PostHogSandbox) -> None:
    untagged_server.reset()
    with untagged_server.client() as client:
        created = client.create_account("Acme", "acct-1", {}, ["vip"])
        assert created.tags == []
        client.update_account(created.id, tags=["vip", "beta"])
        assert client.get_account(created.id).tags == [] and [a.tags for a in client.iter_accounts()] == [[]]
