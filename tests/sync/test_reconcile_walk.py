"""``reconcile_accounts`` against a deletion during its limit/offset walk (issue 21, item 6): the row that moves
across a page boundary is not listed, so "not listed" is only a candidate, confirmed by a GET (404) before the
account is forgotten; a live account is never forgotten, and the ``recreate`` rule never creates a duplicate."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from sync import reconcile
from sync.engine import SyncEngine
from sync.ledger import Ledger
from sync.mapping import load_mapping_config
from sync.posthog import PostHogClient
from sync.posthog.models import Account
from tests.conftest import PostHogSandbox
from tests.support.memory_crm import MemoryConnector, MemoryCrm
from tests.sync.test_engine import MAPPING, seed

PAGE = 5


def delete_during_the_walk(ph: PostHogClient, victim: str) -> Any:
    """``iter_account_pages`` as PostHog serves it while a person deletes ``victim`` (on the first page) right
    after that page was read: every later row moves one place up, and one is never listed."""
    real = ph.iter_account_pages
    deleted: list[str] = []

    def walk(*args: Any, **kwargs: Any) -> Iterator[list[Account]]:
        for n, page in enumerate(real(*args, **kwargs)):
            yield page
            if n == 0 and not deleted:
                ph.delete_account(victim)  # a real DELETE on the stand-in, between two real page reads
                deleted.append(victim)

    return walk


@pytest.mark.parametrize("rule", ["recreate", "unlink"])
def test_a_deletion_during_the_walk_forgets_no_live_account(
    ph: PostHogClient, ledger: Ledger, posthog: PostHogSandbox, monkeypatch: pytest.MonkeyPatch, rule: str
) -> None:
    engine = SyncEngine(ph, ledger, load_mapping_config({**MAPPING, "identity": {"on_account_deleted": rule}}))
    crm = MemoryCrm()
    conn = MemoryConnector(crm)
    seed(crm, 3 * PAGE)
    assert engine.run(conn, "accounts").counts["created"] == 3 * PAGE
    listed = [a.id for a in ph.iter_accounts()]
    monkeypatch.setattr(reconcile, "PAGE_SIZE", PAGE)
    monkeypatch.setattr(ph, "iter_account_pages", delete_during_the_walk(ph, listed[0]))

    posthog.reset_counters()
    report = engine.reconcile_accounts({"memcrm": conn})
    assert report.status == "succeeded", report.as_dict()
    # the skipped row (and only it) was a candidate: one GET confirmed it is alive; nothing was settled
    assert report.counts["created"] == 0 and report.counts["unlinked"] == 0, report.as_dict()
    assert report.notes == []
    assert posthog.count("POST") == 0
    external = Counter(a.external_id for a in ph.iter_accounts())
    assert len(external) == 3 * PAGE - 1 and max(external.values()) == 1  # no duplicate
    assert set(ledger.account_ids()) == set(listed)  # the deleted one too: the next reconcile settles it

    monkeypatch.undo()
    settled = engine.reconcile_accounts({"memcrm": conn})
    assert settled.notes[0] == "1 accounts were deleted in PostHog"
    assert settled.counts["created" if rule == "recreate" else "unlinked"] == 1
    after = Counter(a.external_id for a in ph.iter_accounts())
    assert max(after.values()) == 1 and len(after) == 3 * PAGE - (rule == "unlink")
