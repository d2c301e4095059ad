"""Zendesk's vendor facts (``sync.vendor_facts``): an organization's page is
``https://<subdomain>.zendesk.com/agent/organizations/<id>``, so its record URL needs the subdomain
(``ui.links.zendesk_subdomain``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sync.vendor_facts import UiLinkSetting, VendorFacts

SUBDOMAIN = UiLinkSetting(
    name="zendesk_subdomain",
    pattern=r"[a-z0-9][a-z0-9-]{0,62}",
    description="the Zendesk subdomain, e.g. acme for https://acme.zendesk.com",
    example="acme",
)


def record_url(obj: str, record_id: str, links: Mapping[str, Any]) -> str | None:
    subdomain = links.get(SUBDOMAIN.name)
    if obj == "organizations" and subdomain:
        return f"https://{subdomain}.zendesk.com/agent/organizations/{record_id}"
    return None


FACTS = VendorFacts(
    link_key="zendesk_id",
    host_key="url",
    record_url=record_url,
    setup_command="connectors.zendesk.cli:setup_command",
    precedence=4,
    ui_links=(SUBDOMAIN,),
)
