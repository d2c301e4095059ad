"""v4 batch association reads follow HubSpot's per-input paging (``paging.next.after`` on a result, resumed with
an input ``{"id", "after"}``), against the stand-in with a small association page size."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connectors.hubspot import HubSpotConnector
from connectors.hubspot.client import PRIMARY_DEAL_TO_COMPANY
from tests.connectors.hubspot.conftest import HubSpotSandbox

UNLABELED_DEAL_TO_COMPANY = 341


@pytest.fixture
def small_pages(hubspot: HubSpotSandbox) -> Iterator[HubSpotSandbox]:
    """The stand-in answering two links per input per association batch read (``POST /_sandbox/reset`` restores)."""
    hubspot.admin.put("/_sandbox/associations/paging", json={"page_size": 2}).raise_for_status()
    yield hubspot


def create(hubspot: HubSpotSandbox, kind: str, properties: dict[str, str], links: list[tuple[str, int]]) -> str:
    associations = [
        {"to": {"id": to}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]}
        for to, type_id in links
    ]
    body = {"properties": properties, "associations": associations}
    return str(hubspot.api("POST", f"/crm/v3/objects/{kind}", json=body)["id"])


def test_a_company_with_more_deals_than_one_page_gets_all_of_them(
    small_pages: HubSpotSandbox, connector: HubSpotConnector
) -> None:
    company = create(small_pages, "companies", {"name": "Initech"}, [])
    deals = [
        create(small_pages, "deals", {"dealname": f"d{n}"}, [(company, UNLABELED_DEAL_TO_COMPANY)]) for n in range(5)
    ]
    other = create(small_pages, "companies", {"name": "Hooli"}, [])
    lone = create(small_pages, "deals", {"dealname": "lone"}, [(other, UNLABELED_DEAL_TO_COMPANY)])
    small_pages.reset_counters()

    links = connector.client.associations("companies", "deals", [company, other])

    assert sorted(link.to_id for link in links[company]) == sorted(deals)
    assert [link.to_id for link in links[other]] == [lone]
    # 5 links at 2 per page: the first request, then company's 2nd and 3rd pages (other needed one page).
    assert small_pages.count("/batch/read", "POST") == 3


def test_the_primary_company_on_a_later_page_is_found(small_pages: HubSpotSandbox, connector: HubSpotConnector) -> None:
    companies = [create(small_pages, "companies", {"name": f"c{n}"}, []) for n in range(3)]
    links = [(c, UNLABELED_DEAL_TO_COMPANY) for c in companies[:2]] + [(companies[2], PRIMARY_DEAL_TO_COMPANY)]
    deal = create(small_pages, "deals", {"dealname": "three companies"}, links)

    (record,) = connector.fetch("deals", [deal])

    company = record.fields["company"]
    assert isinstance(company, dict) and company["id"] == companies[2] and company["name"] == "c2"
