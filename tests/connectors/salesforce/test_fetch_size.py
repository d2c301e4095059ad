"""``fetch`` keeps every ``Id IN (...)`` query's URI plus headers under Salesforce's request-size limit (the
stand-in answers 414/431 past it, as Salesforce does), bounding a batch by URL length, not only by count."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import quote_plus

from hypothesis import given
from hypothesis import strategies as st

from connectors.salesforce import soql
from tests.connectors.salesforce.conftest import StandIn


def test_fetch_batches_by_url_length_under_the_request_limit(standin: StandIn) -> None:
    ids = standin.seed(600)
    standin.admin("POST", "/request-limit", json={"max_bytes": 8_192})
    connector = standin.connector(fetch_batch_size=500, max_request_bytes=8_192, max_uri_chars=8_192)
    standin.admin("POST", "/stats/reset")

    records = connector.fetch("Account", ids)

    assert [r.id for r in records] == ids and not any(r.deleted for r in records)
    assert standin.count(status=414) == 0 and standin.count(status=431) == 0
    # 500 ids would make a 14 KB URI: each query holds what 8 KB allows (about 280 ids), so 3 queries, not 2.
    assert standin.count("/queryAll/", "GET", 200) == 3


def test_the_default_limit_leaves_room_under_salesforces_16384_bytes(standin: StandIn) -> None:
    ids = standin.seed(500)
    connector = standin.connector(fetch_batch_size=500, fields=("Name", "Website", "Owner.Email", "Owner.Name"))
    standin.admin("POST", "/stats/reset")

    assert len(connector.fetch("Account", ids)) == 500
    assert standin.count(status=414) == 0 and standin.count(status=431) == 0
    assert connector.config.max_request_bytes == 15_360


def test_each_query_uri_stays_within_salesforces_recommended_2000_characters(standin: StandIn) -> None:
    """Salesforce accepts 16,384 bytes of URI and headers but recommends at most 2,000 characters of URI, since
    the SOQL is expanded server-side (Help article 000386264); the real server does not refuse at 2,000, so the
    stand-in does not either: the URIs the connector sent are read off its HTTP session."""
    ids = standin.seed(500)
    connector = standin.connector(fetch_batch_size=500)
    uris: list[str] = []

    def record(response: Any, *args: Any, **kwargs: Any) -> None:
        if "/queryAll/" in response.request.path_url:
            uris.append(response.request.path_url)

    connector.client.session.hooks["response"].append(record)
    assert [r.id for r in connector.fetch("Account", ids)] == ids
    assert connector.config.max_uri_chars == 2_000
    assert uris and max(len(u) for u in uris) <= 2_000
    # each query as full as 2,000 characters allow (26 per id, encoded): 500 ids take 7 or more, never 3 or 4
    assert len(uris) >= math.ceil(500 * 26 / 2_000) and min(len(u) for u in uris[:-1]) > 2_000 - 30


ID = st.text("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", min_size=18, max_size=18)


@given(st.lists(ID, max_size=200), st.integers(1, 50), st.integers(1, 2_000))
def test_id_batches_cover_every_id_in_order_within_both_bounds(ids: list[str], count: int, room: int) -> None:
    batches = list(soql.id_batches(ids, count, room))
    assert [i for batch in batches for i in batch] == ids
    for batch in batches:
        text = "(" + ", ".join(f"'{i}'" for i in batch) + ")"
        assert 1 <= len(batch) <= count
        assert len(batch) == 1 or len(quote_plus(text)) <= room
