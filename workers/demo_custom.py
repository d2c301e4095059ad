"""The demo's custom properties: what the full sync wrote into PostHog's typed custom properties, a CSM's health
score set in PostHog, and where push-back put it in Salesforce and HubSpot. On a PostHog generation without custom
properties each says so instead."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from sync.posthog import AccountFilter
from sync.posthog.custom_properties import list_definitions, set_value

if TYPE_CHECKING:
    from workers.runtime import Runtime

SHOWN = ("MRR", "Deal stage", "Industry")


def values_line(runtime: Runtime) -> str:
    """How many accounts hold each custom property the example maps, with one example value each."""
    ph = runtime.posthog
    definitions = list_definitions(ph)
    if definitions is None:
        return "  custom properties: this PostHog generation has none (the mapping's custom.* fields are not written)"
    names = {d.id: d.name for d in definitions}
    held: Counter[str] = Counter()
    example: dict[str, object] = {}
    for account in ph.iter_accounts():
        for row in ph.call("GET", f"{ph.projects_path}/accounts/{account.id}/custom_property_values/"):
            name = names.get(row["definition_id"], "?")
            held[name] += 1
            example.setdefault(name, row["value"])
    parts = [f"{name} on {held[name]} accounts (e.g. {example[name]!r})" for name in SHOWN if held[name]]
    return "  custom properties: " + ("; ".join(parts) if parts else "none written")


def set_health_score(runtime: Runtime, search: str = "acct-0003", score: int = 72) -> list[str]:
    """A CSM sets ``Health score`` on one account in PostHog (owned by PostHog, pushed out to its CRMs)."""
    ph = runtime.posthog
    definition = {d.name: d for d in list_definitions(ph) or []}.get("Health score")
    if definition is None:
        return []
    account = next(iter(ph.iter_accounts(AccountFilter(search=search), page_size=5)), None)
    if account is None:
        return []
    set_value(ph, account.id, definition.id, score)
    return [f"PostHog account {account.name}: Health score {score} (owned by PostHog, pushed out to its CRMs)"]


def health_score_line(runtime: Runtime, search: str = "acct-0003") -> str | None:
    """Where the health score landed: the linked Salesforce Account's and HubSpot deal's fields."""
    account = next(iter(runtime.posthog.iter_accounts(AccountFilter(search=search), page_size=5)), None)
    if account is None or list_definitions(runtime.posthog) is None:
        return None
    p, found = account.properties, []
    if p.sfdc_id:
        (record,) = runtime.connector("salesforce").fetch("Account", [str(p.sfdc_id)])
        found.append(f"Salesforce PostHog_Health_Score__c={record.fields.get('PostHog_Health_Score__c')}")
    if p.hubspot_deal_id:
        (record,) = runtime.connector("hubspot").fetch("deals", [str(p.hubspot_deal_id)])
        found.append(f"HubSpot posthog_health_score={record.fields.get('posthog_health_score')}")
    return f"  {account.name}: " + ", ".join(found) if found else None
