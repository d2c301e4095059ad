"""State bound to the systems it describes: a ledger never applies one system's state to another.

Each source's state (cursors, record entries, push fingerprints, outbound watermarks, pending and claimed
webhook ids, seen webhook events, the last dry run, parked records) describes one CRM system: a HubSpot portal, a
Stripe account (and mode), a Salesforce org. The PostHog-side state (account index, account entries) describes
one PostHog project on one host. Which key belongs to which state is written down once, in ``sync.keys`` (each
family's ``State``), and the drop reads it (``Ledger.state_of``). ``<ns>:system:<name>`` records which system
that was. Pointing a config at another system that shares the namespace (staging → production, a refreshed
sandbox org, a restored Redis, a fresh set of stand-ins) would otherwise reuse a cursor past records the new
system has never shown, and links to records it does not have.

``SystemBinding.bind`` runs at the start of every engine entry point. It compares the identity the connector
reports (``Connector.system_id()``: one vendor call per process, cached by the connector) and the PostHog
identity with the recorded ones, in one Redis round trip:

- nothing recorded: the identity is recorded and the state kept (a ledger from before identities were recorded
  is adopted, not wiped);
- the same: nothing happens;
- another: that source's state is dropped (for PostHog, every key but plans, run history, counters, live locks and
  leases, since every link points at accounts of the other PostHog), the new identity is recorded, and the run report
  says so in a note and in ``state_reset``. The run then starts clean: a full read.

Two processes configured for different systems on one namespace would keep dropping each other's state; that is
a misconfiguration, and each drop is reported, never silent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sync.connector import Connector
from sync.keys import POSTHOG
from sync.ledger import Ledger
from sync.report import RunReport

__all__ = ["POSTHOG", "StateReset", "SystemBinding", "describe_state", "posthog_system"]


def posthog_system(base_url: str, project_id: int) -> str:
    """The PostHog identity: host and project (``https://us.posthog.com/project/1``)."""
    return f"{base_url.rstrip('/').lower()}/project/{project_id}"


@dataclass(frozen=True)
class StateReset:
    """State dropped because the system it was recorded for is not the one configured now."""

    name: str
    was: str
    now: str
    dropped: dict[str, int]

    def as_dict(self) -> dict[str, object]:
        return {"system": self.name, "was": self.was, "now": self.now, "dropped": dict(self.dropped)}

    def note(self, dry_run: bool = False) -> str:
        total = sum(self.dropped.values())
        verb = "a real run would drop" if dry_run else "dropped"
        return (
            f"{self.name} state belonged to {self.was}, not {self.now}: {verb} {total} keys, starting clean"
            if self.name != POSTHOG
            else f"PostHog state belonged to {self.was}, not {self.now}: {verb} all {total} state keys"
        )


def describe_state(ledger: Ledger, name: str) -> dict[str, int]:
    """How many keys (and parked entries) of ``name``'s state there are, by family: what a drop would remove."""
    counts = ledger.count_state(ledger.state_of(name))
    if name != POSTHOG:
        parked = len(ledger.parked_of(name))
        if parked:
            counts["dlq"] = parked
    return counts


class SystemBinding:
    """Checks, at each entry point, that the ledger's state belongs to the systems configured now."""

    def __init__(self, ledger: Ledger, posthog_id: str) -> None:
        self.ledger = ledger
        self.posthog_id = posthog_id

    def bind(self, connector: Connector | None, report: RunReport) -> list[StateReset]:
        """Bind PostHog's state and (when given) ``connector``'s source state; report any drop on ``report``."""
        wanted = {POSTHOG: self.posthog_id}
        if connector is not None:
            wanted[connector.source] = connector.system_id()
        recorded = dict(zip(wanted, self.ledger.systems(list(wanted)), strict=True))
        resets: list[StateReset] = []
        for name, identity in wanted.items():
            was = recorded[name]
            if was == identity:
                continue
            if was is not None and report.dry_run:  # a dry run writes nothing: it says what a real run would drop
                report.notes.append(StateReset(name, was, identity, describe_state(self.ledger, name)).note(True))
                continue
            if was is not None:
                resets.append(StateReset(name, was, identity, self.ledger.drop_state(name)))
                if name == POSTHOG:  # every source's state went with it: record theirs afresh below
                    recorded = dict.fromkeys(recorded)
            self.ledger.set_system(name, identity)
        for reset in resets:
            report.notes.append(reset.note())
            report.state_reset.append(reset.as_dict())
        return resets

    def bind_all(self, connectors: Iterable[Connector], report: RunReport) -> list[StateReset]:
        """``bind`` PostHog and each of ``connectors`` (a pass over every source, e.g. account reconciliation)."""
        resets = self.bind(None, report)
        for connector in connectors:
            resets += self.bind(connector, report)
        return resets
