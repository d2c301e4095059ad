"""Deterministic seed data: companies from ``sandbox.identities``, their deals, and the sales owners.

Identity ``i`` becomes company ``4_000_000_000 + i`` with the identity's name, domain and external id
(``posthog_external_id``), and deal ``9_000_000_000 + 2*i`` linked to it as its primary company. Every
seventh identity (``i % 7 == 0``) also gets an older, ``closedlost`` deal ``9_000_000_000 + 2*i + 1``.
Timestamps are offsets from ``BASE_TIME_MS`` (2024-01-01), so the same arguments always give the same
records; owners come from ``sales_rep_email(k)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sandbox.hubspot.model import COMPANIES, DEALS, Owner, Record
from sandbox.hubspot.properties import DEAL_STAGES
from sandbox.hubspot.timefmt import BASE_TIME_MS, DAY_MS, iso_ms
from sandbox.identities import company, sales_rep_email

OWNER_ID_BASE = 170_000_000
USER_ID_BASE = 9_100_000
SECOND_DEAL_EVERY = 7
_INDUSTRIES = ("COMPUTER_SOFTWARE", "INTERNET", "FINANCIAL_SERVICES", "HOSPITAL_HEALTH_CARE", "RETAIL")
_COUNTRIES = ("United States", "Germany", "France", "United Kingdom", "Canada", "Japan")


@dataclass
class SeedPlan:
    """What one seed call creates; ``links`` are (deal id, company id) primary associations."""

    companies: list[Record] = field(default_factory=list)
    deals: list[Record] = field(default_factory=list)
    links: list[tuple[int, int]] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        return {
            "companies": len(self.companies),
            "deals": len(self.deals),
            "company_ids": [str(r.id) for r in self.companies[:1] + self.companies[-1:]],
            "deal_ids": [str(r.id) for r in self.deals[:1] + self.deals[-1:]],
        }


def company_id(i: int) -> int:
    """The HubSpot id of identity ``i``'s company."""
    return COMPANIES.seed_id_base + i


def deal_id(i: int, second: bool = False) -> int:
    """The HubSpot id of identity ``i``'s main deal (or of its older, lost deal)."""
    return DEALS.seed_id_base + 2 * i + (1 if second else 0)


def owner_for(k: int) -> Owner:
    """Owner ``k``: ``sales_rep_email(k)``, e.g. ``ana.rep0@...`` → Ana Rep0."""
    email = sales_rep_email(k)
    first, last = email.split("@")[0].split(".")
    return Owner(
        id=OWNER_ID_BASE + k,
        email=email,
        first_name=first.capitalize(),
        last_name=last.capitalize(),
        user_id=USER_ID_BASE + k,
        created_ms=BASE_TIME_MS + k * 1000,
        updated_ms=BASE_TIME_MS + k * 1000,
    )


def plan_seed(start: int, count: int, owner_ids: list[int], *, external_ids: bool = True) -> SeedPlan:
    """The records for identities ``start..start+count-1`` (not yet stored)."""
    plan = SeedPlan()
    for i in range(start, start + count):
        ident = company(i)
        created = BASE_TIME_MS + i * 10_000 + 123
        updated = created + ((i * 7919) % 86_400) * 1000 + 456
        values = {
            "name": ident.name,
            "domain": ident.domain,
            "website": ident.website,
            "industry": _INDUSTRIES[i % len(_INDUSTRIES)],
            "country": _COUNTRIES[i % len(_COUNTRIES)],
            "createdate": iso_ms(created),
        }
        if external_ids:
            values["posthog_external_id"] = ident.external_id
        owner = str(owner_ids[i % len(owner_ids)]) if owner_ids else None
        if owner:
            values["hubspot_owner_id"] = owner
        plan.companies.append(Record(company_id(i), values, created, updated))

        deal_created = created + 60_000
        deal_updated = deal_created + ((i * 104_729) % 86_400) * 1000 + 789
        deal = {
            "dealname": f"{ident.name} - Annual plan",
            "amount": str(1200 + (i % 40) * 300),
            "dealstage": DEAL_STAGES[(i * 3) % len(DEAL_STAGES)][0],
            "pipeline": "default",
            "closedate": iso_ms(deal_created + 30 * DAY_MS),
            "dealtype": "newbusiness",
            "createdate": iso_ms(deal_created),
        }
        if owner:
            deal["hubspot_owner_id"] = owner
        plan.deals.append(Record(deal_id(i), deal, deal_created, deal_updated))
        plan.links.append((deal_id(i), company_id(i)))

        if i % SECOND_DEAL_EVERY == 0:
            lost_created = created - 90 * DAY_MS
            lost = {
                "dealname": f"{ident.name} - Pilot",
                "amount": str(300 + (i % 10) * 50),
                "dealstage": "closedlost",
                "pipeline": "default",
                "closedate": iso_ms(lost_created + 14 * DAY_MS),
                "closed_lost_reason": "No budget this quarter",
                "dealtype": "newbusiness",
                "createdate": iso_ms(lost_created),
            }
            if owner:
                lost["hubspot_owner_id"] = owner
            plan.deals.append(Record(deal_id(i, True), lost, lost_created, lost_created + 20 * DAY_MS))
            plan.links.append((deal_id(i, True), company_id(i)))
    return plan
