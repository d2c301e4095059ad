"""Deterministic fake companies shared by every stand-in's seeder.

Identity ``i`` is the same company in every CRM stand-in (same name, domain and external id), so seeding
HubSpot with 0..999 and Stripe with 500..1499 gives 500 companies present in both: the overlapping identities
the demo, the tests and the benchmarks need. No randomness: the same ``i`` always gives the same company.
"""

from __future__ import annotations

from dataclasses import dataclass

_PREFIXES = (
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Vandelay",
    "Stark",
    "Wayne",
    "Wonka",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Aperture",
    "Black Mesa",
    "Gringotts",
    "Oscorp",
    "Pied Piper",
    "Dunder",
    "Monarch",
    "Nakatomi",
)
_SUFFIXES = (
    "Labs",
    "Analytics",
    "Systems",
    "Cloud",
    "Works",
    "Data",
    "Robotics",
    "Health",
    "Foods",
    "Energy",
)
_FIRST = ("ana", "ben", "chloe", "dev", "eli", "fatima", "gus", "hana", "ivan", "june")


@dataclass(frozen=True)
class Company:
    index: int
    name: str
    domain: str
    external_id: str
    contact_email: str

    @property
    def website(self) -> str:
        return f"https://www.{self.domain}"


def company(i: int) -> Company:
    """The ``i``-th fake company (``i >= 0``); unique name, domain and external id per ``i``."""
    if i < 0:
        raise ValueError("identity index must be >= 0")
    prefix = _PREFIXES[i % len(_PREFIXES)]
    suffix = _SUFFIXES[(i // len(_PREFIXES)) % len(_SUFFIXES)]
    name = f"{prefix} {suffix} {i:05d}"
    slug = f"{prefix}{suffix}{i:05d}".lower().replace(" ", "")
    domain = f"{slug}.example.com"
    return Company(
        index=i,
        name=name,
        domain=domain,
        external_id=f"acct-{i:05d}",
        contact_email=f"{_FIRST[i % len(_FIRST)]}@{domain}",
    )


def sales_rep_email(k: int) -> str:
    """Email of the ``k``-th sales person; CRM owners/users and PostHog members share these."""
    return f"{_FIRST[k % len(_FIRST)]}.rep{k}@crmsync-demo.example.com"
