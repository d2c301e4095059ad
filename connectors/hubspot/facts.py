"""HubSpot's vendor facts (``sync.vendor_facts``): a deal's page is ``app.hubspot.com/contacts/<portal>/deal/<id>``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sync.vendor_facts import VendorFacts


def record_url(obj: str, record_id: str, links: Mapping[str, Any]) -> str | None:
    portal = links.get("hubspot_portal")
    if obj == "deals" and portal:
        return f"https://app.hubspot.com/contacts/{portal}/deal/{record_id}"
    return None


FACTS = VendorFacts(
    link_key="hubspot_deal_id",
    host_key="host",
    record_url=record_url,
    setup_command="connectors.hubspot.cli:setup_command",
    precedence=2,
)
