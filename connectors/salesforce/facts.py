"""Salesforce's vendor facts (``sync.vendor_facts``): ``<instance>/<id>`` opens any record of the org."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sync.vendor_facts import VendorFacts


def record_url(obj: str, record_id: str, links: Mapping[str, Any]) -> str | None:
    instance = links.get("salesforce_instance")
    if obj and instance:
        return f"{str(instance).rstrip('/')}/{record_id}"
    return None


FACTS = VendorFacts(
    link_key="sfdc_id",
    host_key="login_url",
    record_url=record_url,
    setup_command=None,
    precedence=1,
)
