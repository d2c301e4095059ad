"""HubSpot deals as ``CrmRecord``s: the deal's properties, its primary company and its owner, and the rank that
decides which deal of a company holds the account's link.

``fields`` (the contract with ``mappings.hubspot.deals`` in ``crmsync.yaml``)::

    {<deal property>: value, ...,                      # dealname, dealstage, posthog_account_id, ...
     "company": {"id", <company property>: value, ...}, # the primary company: name, domain, posthog_external_id
     "owner": {"id", "email", "firstName", "lastName"}} # the deal owner

Unset values are left out. ``version`` is the newest ``hs_lastmodifieddate`` of deal and company, in epoch ms.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from connectors.hubspot.client import HsObject, Link, Owner
from connectors.hubspot.config import LinkRule
from connectors.hubspot.search import MODIFIED, epoch_ms
from sync.connector import CrmRecord

SOURCE = "hubspot"
STREAM = "deals"
OPEN_BONUS = 10**13
"""Added to an open deal's rank: larger than any creation time in epoch ms (until the year 2286)."""


def link_rank(properties: dict[str, str | None], rule: LinkRule, closed_stages: Collection[str]) -> int:
    """The deal's claim on its company's account link: higher wins (``sync.apply._link``).

    ``newest_open``: open deals outrank closed ones, then the most recently created wins; ``newest``: the most
    recently created; ``oldest``: the first created."""
    created = epoch_ms(properties.get("createdate")) or 0
    if rule is LinkRule.OLDEST:
        return max(0, OPEN_BONUS - created)
    if rule is LinkRule.NEWEST:
        return created
    closed = (properties.get("hs_is_closed") or "").strip().lower() == "true" or (
        properties.get("dealstage") in closed_stages
    )
    return created if closed else OPEN_BONUS + created


def primary_company(links: Sequence[Link]) -> str | None:
    """The deal's primary company; when none is marked primary, the lowest company id (a stable choice)."""
    for link in links:
        if link.primary:
            return link.to_id
    ids = sorted((link.to_id for link in links), key=lambda i: (len(i), i))
    return ids[0] if ids else None


def merged_ids(properties: dict[str, str | None]) -> tuple[str, ...]:
    """Ids this deal absorbed in merges (``hs_merged_object_ids``, ``;``-separated)."""
    raw = properties.get("hs_merged_object_ids") or ""
    return tuple(part.strip() for part in raw.split(";") if part.strip())


def _present(values: dict[str, str | None]) -> dict[str, str]:
    return {k: v for k, v in values.items() if v is not None and v != ""}


def _moment(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms is not None else None


def deal_record(
    deal: HsObject,
    company: HsObject | None,
    owner: Owner | None,
    rule: LinkRule,
    closed_stages: Collection[str],
) -> CrmRecord:
    """A live deal with its primary company and owner."""
    fields: dict[str, Any] = _present(deal.properties)
    stamps = [epoch_ms(deal.properties.get(MODIFIED))]
    if company is not None:
        fields["company"] = {"id": company.id, **_present(company.properties)}
        stamps.append(epoch_ms(company.properties.get(MODIFIED)))
    if owner is not None:
        fields["owner"] = _present(owner.as_fields())
    known = [s for s in stamps if s is not None]
    version = max(known) if known else None
    return CrmRecord(
        source=SOURCE,
        object=STREAM,
        id=deal.id,
        fields=fields,
        version=version,
        modified_at=_moment(version),
        merged_ids=merged_ids(deal.properties),
        link_rank=link_rank(deal.properties, rule, closed_stages),
    )


def deleted_record(deal_id: str, properties: dict[str, str | None] | None = None) -> CrmRecord:
    """A deal that is archived, deleted or merged away: the engine unlinks its account."""
    props = properties or {}
    version = epoch_ms(props.get(MODIFIED))
    return CrmRecord(
        source=SOURCE,
        object=STREAM,
        id=deal_id,
        fields=_present(props),
        version=version,
        modified_at=_moment(version),
        deleted=True,
    )
