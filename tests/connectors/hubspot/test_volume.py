"""Acceptance: a full then an incremental read of 25,000 deals, 12,000 of which share one
``hs_lastmodifieddate``, loses none, gives none twice and ends, at a request count fixed in advance.

The records are read through the connector (official SDK → stand-in over loopback); every page a connector
yields is what the engine applies, so "every id in a page" is "every id applied". The engine itself is exercised
end to end in ``test_engine.py`` at a volume the PostHog stand-in can create accounts for in seconds.
"""

from __future__ import annotations

import pytest
import redis

from connectors.hubspot import HubSpotConnector, HubSpotCursor
from sync.connector import Page
from tests.connectors.hubspot.conftest import HubSpotSandbox, make_config

IDENTITIES = 21_875  # one deal each, plus an older lost deal for every seventh: 25,000 deals


def read(pages: list[Page]) -> tuple[list[str], HubSpotCursor]:
    ids = [r.id for page in pages for r in page.records]
    cursors = [page.cursor for page in pages if page.cursor is not None]
    assert cursors, "a read ends with a cursor"
    keys = [c.sort_key() for c in cursors]
    assert keys == sorted(keys)
    last = cursors[-1]
    assert isinstance(last, HubSpotCursor)
    return ids, last


@pytest.mark.slow
def test_25000_deals_full_then_incremental_with_12000_on_one_timestamp(
    hubspot: HubSpotSandbox, redis_client: redis.Redis, budget_namespace: str
) -> None:
    hubspot.admin.post("/_sandbox/seed", json={"count": IDENTITIES}, timeout=120).raise_for_status()
    connector = HubSpotConnector(make_config(hubspot.url, budget_namespace, lookback_ms=0), redis_client)

    # Full: 250 pages of 100 (and one empty page of archived deals); one company batch read per page.
    full, cursor = read(list(connector.pull("deals", None)))
    assert len(full) == len(set(full)) == 25_000
    assert hubspot.count("/crm/v3/objects/deals", "GET", 200) == 251
    assert hubspot.count("/companies/batch/read", "POST", 200) == 250
    assert hubspot.count("/crm/v3/owners/", "GET", 200) == 2  # active and archived owners, once
    assert hubspot.stats()["total"] == 251 + 250 + 2

    # 16,000 deals change after the cursor: 2,500 at T+1, 12,000 at T+2 (one import), 1,500 at T+3.
    ordered = sorted(full, key=int)
    group_a, tied, group_b = ordered[:2_500], ordered[2_500:14_500], ordered[14_500:16_000]
    t = cursor.modified_ms
    hubspot.set_modified("deals", group_a, t + 1)
    hubspot.set_modified("deals", tied, t + 2)
    hubspot.set_modified("deals", group_b, t + 3)
    hubspot.reset_counters()

    pages = list(connector.pull("deals", cursor))
    incremental, after = read(pages)

    assert len(incremental) == len(set(incremental))  # nothing twice
    assert set(incremental) == {*group_a, *tied, *group_b}  # nothing lost, nothing unchanged
    assert after.sort_key() > cursor.sort_key()
    assert (after.modified_ms, after.object_id) == (t + 3, int(group_b[-1]))
    # Per group of n on one timestamp: a first page (200 new), a page of nothing but that timestamp, then
    # ceil(n / 200) drain pages by id; plus the final empty query. Never a 400 (the cap).
    searches = sum(1 + 1 + -(-n // 200) for n in (2_500, 12_000, 1_500)) + 1
    assert hubspot.count("/deals/search", "POST", 200) == searches == 88
    assert hubspot.count("/deals/search", status=400) == 0
    assert hubspot.count("/companies/search", "POST", 200) == 1  # no company changed
    # Enrichment is batched per page of new records (up to 200): one v4 associations read and at most two company
    # batch reads (100 ids each) per page; never a request per deal.
    filled = sum(1 for page in pages if page.records)
    assert 16_000 / 200 <= filled <= searches
    assert hubspot.count("{toObjectType}/batch/read", "POST", 200) == filled
    company_reads = hubspot.count("/companies/batch/read", "POST", 200)
    assert filled <= company_reads <= 2 * filled
    assert hubspot.count("/crm/v3/owners/") == 0  # still cached
    assert hubspot.stats()["total"] == searches + 1 + filled + company_reads

    # And the next run, with nothing new but five edits, reads those five.
    touched = ordered[20_000:20_005]
    for rid in touched:
        hubspot.edit("deals", rid, description="after the big import")
    hubspot.reset_counters()
    again, _ = read(list(connector.pull("deals", after)))
    assert sorted(again) == sorted(touched)
    assert hubspot.count("/deals/search") == 2  # the rest of T+3 by id (nothing), then past it
