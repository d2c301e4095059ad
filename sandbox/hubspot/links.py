"""Deal-company associations: which companies each deal is linked to, and which one is its primary.

A deal has at most one primary company (association type 5, shown with the unlabeled type 341 too); every
other link is unlabeled only. The reverse index answers "deals of this company" without a scan.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sandbox.hubspot.model import DEALS, ObjectType


@dataclass
class DealCompanyLinks:
    """Both directions of the deal-company association, kept consistent."""

    by_deal: dict[int, dict[int, bool]] = field(default_factory=dict)
    by_company: dict[int, set[int]] = field(default_factory=dict)

    def link(self, deal_id: int, company_id: int, primary: bool) -> None:
        """Associate; a new primary company demotes the deal's previous primary to unlabeled."""
        companies = self.by_deal.setdefault(deal_id, {})
        if primary:
            for other in companies:
                companies[other] = False
        companies[company_id] = primary or companies.get(company_id, False)
        self.by_company.setdefault(company_id, set()).add(deal_id)

    def of(self, object_type: ObjectType, record_id: int) -> list[tuple[int, bool]]:
        """(other record id, is primary) for every link of ``record_id``, in id order."""
        if object_type is DEALS:
            return sorted(self.by_deal.get(record_id, {}).items())
        return sorted((deal, self.by_deal[deal][record_id]) for deal in self.by_company.get(record_id, ()))

    def unlink_all(self, object_type: ObjectType, record_id: int) -> None:
        """Forget every link of a record that is gone for good."""
        if object_type is DEALS:
            for company_id in self.by_deal.pop(record_id, {}):
                self.by_company.get(company_id, set()).discard(record_id)
        else:
            for deal_id in self.by_company.pop(record_id, set()):
                self.by_deal.get(deal_id, {}).pop(record_id, None)

    def move(self, object_type: ObjectType, from_id: int, to_id: int) -> None:
        """A merge: ``to_id`` takes over ``from_id``'s links (keeping its own primary if it has one)."""
        if object_type is DEALS:
            moved = self.by_deal.pop(from_id, {})
            has_primary = any(self.by_deal.get(to_id, {}).values())
            for company_id, primary in sorted(moved.items()):
                self.by_company[company_id].discard(from_id)
                self.link(to_id, company_id, primary and not has_primary)
        else:
            for deal_id in sorted(self.by_company.pop(from_id, set())):
                primary = self.by_deal[deal_id].pop(from_id)
                self.link(deal_id, to_id, primary)
