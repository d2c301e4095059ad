"""Where a record can be opened by a person: its page in PostHog and in the CRM that holds it.

A link is built only when every piece it needs is known (``ui.links`` in the config), else there is none:

| record | URL | needs |
|---|---|---|
| HubSpot deal | ``https://app.hubspot.com/contacts/<portal>/deal/<id>`` | ``ui.links.hubspot_portal`` |
| Stripe customer | ``https://dashboard.stripe.com/customers/<id>`` | nothing (the id says everything) |
| Salesforce record | ``<instance>/<id>`` (an id opens its record) | ``ui.links.salesforce_instance`` |
| PostHog account | ``ui.links.posthog_account`` with ``{id}`` replaced | that template |

Each source's URL is its connector's vendor fact (``VendorFacts.record_url``, ``connectors/<name>/facts.py``).
Ids are URL-quoted, so a malformed id from a bad record cannot change the link's target.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from connectors.registry import CONNECTORS, vendor_facts
from workers.config import UiLinks


@dataclass(frozen=True)
class RecordLinks:
    links: UiLinks

    def crm(self, source: str, obj: str | None, record_id: str | None) -> str | None:
        """The record's page in its CRM, or None when no URL can be built (unknown object, missing piece)."""
        if not record_id:
            return None
        rid = quote(str(record_id), safe="")
        if source not in CONNECTORS or not obj:
            return None
        return vendor_facts(source).record_url(obj, rid, self.links.model_dump())

    def posthog(self, account_id: str | None) -> str | None:
        """The account's page in PostHog, or None (no template configured, or an account not created yet)."""
        if not account_id or not self.links.posthog_account or account_id.startswith("new:"):
            return None
        return self.links.posthog_account.replace("{id}", quote(account_id, safe=""))
