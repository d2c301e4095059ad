"""``WindowedSearch``: incremental reads through HubSpot search that are complete and always end, against the
stand-in (which answers 400 past 10,000 results and keeps no promise about the order of ties)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connectors.hubspot import HubSpotConnector, HubSpotCursor
from connectors.hubspot.client import ObjectPage, SearchFilter
from connectors.hubspot.search import MODIFIED, Checkpoint, SearchBatch, WindowedSearch, epoch_ms
from sandbox.hubspot.timefmt import BASE_TIME_MS
from tests.connectors.hubspot.conftest import HubSpotSandbox

BASE = 1_750_000_000_000


def windowed(connector: HubSpotConnector, size: int) -> WindowedSearch:
    def search(filters: list[SearchFilter], sort: str, after: int) -> ObjectPage:
        return connector.client.search("deals", filters, sort, after, size, [MODIFIED])

    return WindowedSearch(search, size)


def read_all(batches: Iterator[SearchBatch]) -> tuple[list[str], list[Checkpoint]]:
    ids: list[str] = []
    checkpoints: list[Checkpoint] = []
    for batch in batches:
        ids.extend(o.id for o in batch.records)
        checkpoints.append(batch.checkpoint)
    return ids, checkpoints


def test_many_records_on_one_timestamp_are_drained_in_id_order(
    hubspot: HubSpotSandbox, connector: HubSpotConnector
) -> None:
    ids = hubspot.seed(230)  # 263 deals; seeded timestamps are distinct, spread over 2024-01-01 (and 70 days before)
    tied_ts = BASE_TIME_MS + 12 * 3600 * 1000
    tied = ids[:130]
    hubspot.set_modified("deals", tied, tied_ts)
    others = {o.id: epoch_ms(o.properties[MODIFIED]) for o in connector.client.read_deals(ids[130:], [MODIFIED])[0]}
    before = sum(1 for ts in others.values() if ts is not None and ts < tied_ts)
    after = len(others) - before
    hubspot.reset_counters()

    seen, checkpoints = read_all(windowed(connector, 20).since(Checkpoint(0)))

    assert sorted(seen) == sorted(ids)
    assert len(seen) == len(set(seen))  # the drain skips what the main window already gave
    keys = [(c.modified_ms, c.object_id) for c in checkpoints]
    assert keys == sorted(keys)
    assert (tied_ts, int(max(tied, key=int))) in keys
    # Main-window pages move by at least 19 (a page re-reads the records at the previous page's last timestamp);
    # one page full of the tied timestamp turns into a drain of 130 by id; then the rest.
    bound = -(-before // 19) + 1 + 1 + -(-130 // 20) + 1 + -(-after // 19) + 1
    assert before > 0 and after > 0
    assert hubspot.count("/deals/search", "POST", 200) <= bound
    assert hubspot.count("/deals/search", status=400) == 0


def test_resuming_mid_drain_continues_after_the_last_id(hubspot: HubSpotSandbox, connector: HubSpotConnector) -> None:
    ids = sorted(hubspot.seed(40), key=int)  # 46 deals
    hubspot.set_modified("deals", ids[:30], BASE)
    hubspot.set_modified("deals", ids[30:], BASE + 1)

    seen, _ = read_all(windowed(connector, 10).since(Checkpoint(BASE, int(ids[19]))))

    assert seen == ids[20:30] + ids[30:]


def test_records_edited_during_the_read_are_not_skipped(hubspot: HubSpotSandbox, connector: HubSpotConnector) -> None:
    ids = hubspot.seed(50)  # 58 deals, distinct timestamps
    seen: list[str] = []
    for n, batch in enumerate(windowed(connector, 10).since(Checkpoint(0))):
        seen.extend(o.id for o in batch.records)
        if n == 0:
            # Two records already read are edited and move to the end. With offset paging, every later record
            # would shift two places back, and the two at the next page's edge would never be read.
            for obj in batch.records[:2]:
                hubspot.edit("deals", obj.id, description="edited mid-read")
    assert set(seen) == set(ids)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-01-05T10:00:00.123Z", 1_704_448_800_123),
        ("2024-01-05T10:00:00Z", 1_704_448_800_000),
        ("2024-01-05T10:00:00.123456Z", 1_704_448_800_123),
        ("2024-01-05T11:00:00.123+01:00", 1_704_448_800_123),
        ("1704448800123", 1_704_448_800_123),
        ("", None),
        ("not a date", None),
        (None, None),
    ],
)
def test_hubspot_timestamps_in_every_format_become_epoch_ms(raw: str | None, expected: int | None) -> None:
    assert epoch_ms(raw) == expected


def test_searches_ask_for_hubspots_maximum_page_of_200(hubspot: HubSpotSandbox, connector: HubSpotConnector) -> None:
    ids = hubspot.seed(350)  # 400 deals, distinct timestamps
    hubspot.reset_counters()

    pages = list(connector.pull("deals", HubSpotCursor(modified_ms=0, companies_ms=BASE_TIME_MS * 2)))

    assert {r.id for p in pages for r in p.records} == set(ids)
    # Each page moves the window by at least 199 (it re-reads the previous page's last timestamp): 3 searches.
    assert hubspot.count("/deals/search", "POST", 200) == 3


def test_a_rate_limited_search_halves_the_page_size_for_the_rest_of_the_read(
    hubspot: HubSpotSandbox, connector: HubSpotConnector
) -> None:
    ids = hubspot.seed(350)  # 400 deals
    hubspot.admin.post("/_sandbox/ratelimits/search-throttle", json={"count": 1}).raise_for_status()
    hubspot.reset_counters()

    pages = list(connector.pull("deals", HubSpotCursor(modified_ms=0, companies_ms=BASE_TIME_MS * 2)))

    assert {r.id for p in pages for r in p.records} == set(ids)
    assert hubspot.count("/deals/search", "POST", 429) == 1
    assert connector.client.search_page_limit == 100
    # 100 per page from the retry on: each page moves by at least 99, so 5 searches (not 3) read the 400 deals.
    assert hubspot.count("/deals/search", "POST", 200) == 5
    assert connector.client.stats.throttled == 1

    connector.client.reset_search_page()
    assert connector.client.search_page_limit == 200
