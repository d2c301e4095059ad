"""A CRM handing over malformed records: each is reported with source, id and reason; the rest of the batch applies.

The in-memory CRM (a real ``Connector``) serves 50 good records and, mixed among them, records with a missing name,
wrong types, a 10 kB name, lone surrogates (what an invalid ``\\udXXX`` escape in JSON decodes to), a NUL, and a
null id. Nothing crashes the run; every good record lands as it would in a clean run.
"""

from __future__ import annotations

from typing import Any

from sync.connector import CrmRecord
from sync.engine import SyncEngine
from sync.ledger import Ledger, delete_keys
from sync.mapping import load_mapping_config
from tests.conftest import PostHogSandbox
from tests.support.memory_crm import MemoryConnector, MemoryCrm
from tests.sync.test_engine import MAPPING

BAD: dict[str, dict[str, Any]] = {
    "bad-missing-name": {"ext": "x-missing"},
    "bad-name-type": {"name": {"first": "Acme"}, "ext": "x-type"},
    "bad-name-number": {"name": 12345.5, "ext": "x-number", "owner": ["not", "an", "email"]},
    "bad-long-name": {"name": "N" * 10_240, "ext": "x-long"},
    "bad-surrogate": {"name": "Broken \udc80 name", "ext": "x-surrogate"},
    "bad-nul": {"name": "Nul\x00Corp", "ext": "x-nul"},
    "bad-ext-type": {"name": "Typed Ext", "ext": ["a", "b"]},
}


class NullIdConnector(MemoryConnector):
    """The memory connector, plus one record whose id is missing (a CRM row with a null primary key)."""

    def pull(self, stream: str, cursor: Any) -> Any:
        for page in super().pull(stream, cursor):
            nameless = CrmRecord(self.source, stream, None, {"name": "Null Id Inc", "ext": "x-null"})  # type: ignore[arg-type]
            yield type(page)(records=[*page.records, nameless], cursor=page.cursor, notes=page.notes)


def _crm(with_bad: bool) -> MemoryCrm:
    crm = MemoryCrm()
    for i in range(50):
        crm.put(f"good-{i:03d}", name=f"Good {i:03d}", ext=f"g-{i:03d}", plan="pro")
        if with_bad and i % 7 == 0 and BAD:
            key = sorted(BAD)[i // 7 % len(BAD)]
            crm.put(key, **BAD[key])
    return crm


def _good_accounts(posthog: PostHogSandbox) -> list[tuple[str, str | None, list[str]]]:
    with posthog.client() as client:
        return sorted(
            (a.name, a.external_id, sorted(a.tags))
            for a in client.iter_accounts()
            if (a.external_id or "").startswith("g-")
        )


def test_malformed_records_are_reported_and_the_rest_applies(posthog: PostHogSandbox, ledger: Ledger) -> None:
    mapping = load_mapping_config(MAPPING)
    with posthog.client() as client:
        SyncEngine(client, ledger, mapping).run(MemoryConnector(_crm(False)), "accounts", "full")
    clean = _good_accounts(posthog)
    posthog.reset()
    delete_keys(ledger.redis, f"{ledger.ns}:*")

    with posthog.client() as client:
        report = SyncEngine(client, ledger, mapping).run(NullIdConnector(_crm(True)), "accounts", "full")
    # records not applied: the run is partial, never "succeeded", and says how many
    failed, seen = report.counts["failed"], report.counts["seen"]
    assert report.status == "partial" and failed > 0, report.reason
    assert str(report.reason).startswith(f"{failed} of {seen} records failed"), report.reason
    assert _good_accounts(posthog) == clean == [(f"Good {i:03d}", f"g-{i:03d}", ["plan-pro"]) for i in range(50)]
    reported = {str(e["id"]) for e in report.errors}
    assert set(BAD) <= reported, report.errors
    assert any(e["id"] in (None, "", "None") for e in report.errors), report.errors  # the null id, reported
    for error in report.errors:
        assert error["source"] == "memcrm" and error["reason"], error
        assert len(str(error["reason"])) < 500  # a reason, not the 10 kB value
