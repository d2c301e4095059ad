"""Reading Accounts: record shape, SOQL through queryAll, many rows on one SystemModstamp, deletes, the allowance.

Costs are the stand-in's request counters.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.salesforce import SalesforceConnector, SalesforceCursor
from connectors.salesforce.errors import AllowanceExhausted, SalesforceRateLimited, SalesforceUnavailable
from sandbox.identities import company, sales_rep_email
from sandbox.salesforce.store import account_id
from sync.connector import Page
from sync.engine import SyncEngine
from sync.errors import RetryableError
from sync.posthog import PostHogClient
from tests.conftest import PostHogSandbox
from tests.connectors.salesforce.conftest import REPS, StandIn
from tests.support.roles import assign_in_posthog


def pull(connector: SalesforceConnector, cursor: SalesforceCursor | None = None) -> tuple[list[Page], Any]:
    pages = list(connector.pull("Account", cursor))
    last = next((p.cursor for p in reversed(pages) if p.cursor is not None), cursor)
    return pages, last


def ids_of(pages: list[Page]) -> list[str]:
    return [r.id for p in pages for r in p.records]


def test_records_carry_the_mapping_paths_and_versions(standin: StandIn) -> None:
    standin.seed(3)
    pages, cursor = pull(standin.connector(csm_lookup="CSM__r"))
    first = pages[0].records[0]
    assert first.source == "salesforce" and first.object == "Account" and not first.deleted
    fields = first.fields
    assert fields["Name"] == company(0).name and fields["Website"] == company(0).website
    assert fields["Owner"] == {"Email": sales_rep_email(0)}  # relationship nested, attributes gone
    assert fields["CSM__r"] == {"Email": sales_rep_email(1)}  # account 0 has a CSM: rep 1
    assert fields["PostHog_External_Id__c"] == company(0).external_id and fields["PostHog_Account_Id__c"] is None
    assert "attributes" not in fields
    modified = datetime(2024, 1, 1, 1, 0, tzinfo=UTC)
    assert first.version == int(modified.timestamp() * 1000) and first.modified_at == modified
    assert first.link_rank == -int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
    assert pages[0].records[1].fields["CSM__r"] is None
    assert cursor.modstamp_ms == int((modified + timedelta(minutes=2)).timestamp() * 1000)
    assert standin.count("/queryAll/", "GET", 200) == 1 and standin.count("/query/", "GET") == 0


def test_mapping_fields_are_read(standin: StandIn, mapping: Any) -> None:
    connector = standin.connector(mapping=mapping, fields=("Name",))
    assert {"Name", "Website", "Owner.Email", "PostHog_External_Id__c", "PostHog_CSM_Email__c"} <= set(connector.fields)
    assert "postHog_account_id__c" not in connector.fields  # configured names are kept once, case-insensitively


def test_5000_rows_on_one_modstamp_none_lost_none_looped(standin: StandIn) -> None:
    ids = standin.seed(5000)
    stamp = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    standin.set_modstamp(stamp)
    connector = standin.connector(page_size=2000)

    pages, cursor = pull(connector)
    assert [len(p.records) for p in pages] == [2000, 2000, 1000]
    assert ids_of(pages) == sorted(ids)  # ORDER BY SystemModstamp, Id: every row once
    assert (standin.count("/queryAll/"), standin.count("/query/{locator}")) == (1, 2)
    assert cursor.modstamp_ms == int(stamp.timestamp() * 1000) and cursor.last_id == max(ids)

    again, same = pull(connector, cursor)
    assert ids_of(again) == [] and standin.queries() == 4  # one query, nothing re-read
    standin.admin("PATCH", f"/sobjects/Account/{ids[2500]}", json={"Name": "Renamed"})
    changed, _ = pull(connector, same)
    assert ids_of(changed) == [ids[2500]] and standin.queries() == 5


def test_recent_rows_are_read_again_within_the_overlap_then_settle(standin: StandIn) -> None:
    ids = standin.seed(500)
    standin.set_modstamp(datetime.now(UTC) - timedelta(seconds=5))  # recent, yet clear of the clock's last second
    overlapping = standin.connector(page_size=200)
    _, cursor = pull(overlapping)
    again, cursor = pull(overlapping, cursor)
    assert ids_of(again) == sorted(ids)  # still inside the overlap: read again, each once
    no_overlap = standin.connector(page_size=200, overlap_s=0)
    settled, cursor = pull(no_overlap, cursor)
    assert sorted(ids_of(settled)) == sorted(ids)
    quiet, _ = pull(no_overlap, cursor)
    assert ids_of(quiet) == []


def test_stopping_at_the_allowance_share_resumes_without_repeats(standin: StandIn) -> None:
    ids = standin.seed(5000)
    standin.set_modstamp(datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1))
    standin.admin("POST", "/limits", json={"used": 0, "max": 40})  # 25% per run: 10 requests
    connector = standin.connector(page_size=200)

    seen: list[str] = []
    cursor = None
    notes: list[tuple[str, ...]] = []
    for _ in range(5):
        pages, cursor = pull(connector, cursor)
        seen.extend(ids_of(pages))
        notes.append(tuple(n for p in pages for n in p.notes))
        if not notes[-1]:
            break
    assert len(notes) == 3 and all("max_share_per_run 25%" in n[0] for n in notes[:2]) and notes[2] == ()
    assert seen == sorted(ids)  # 2000 + 2000 + 1000: nothing lost, nothing read twice
    assert standin.queries() == 25


def test_stopping_at_the_orgs_total_share(standin: StandIn) -> None:
    standin.seed(450)
    standin.admin("POST", "/limits", json={"used": 79, "max": 100})  # max_share_total 80%: one request left
    connector = standin.connector(page_size=200)
    pages, cursor = pull(connector)
    assert len(ids_of(pages)) == 200 and "max_share_total 80%" in pages[-1].notes[0]
    pages, _ = pull(connector, cursor)  # known to be at the ceiling: no request at all
    assert ids_of(pages) == [] and "max_share_total 80%" in pages[-1].notes[0]
    assert standin.queries() == 1


def test_spent_allowance_is_fatal_and_never_retried(standin: StandIn) -> None:
    standin.seed(3)
    connector = standin.connector()
    connector.client.sdk()  # log in first: the token endpoint is not counted against the allowance
    standin.admin("POST", "/limits", json={"used": 15000, "max": 15000})
    with pytest.raises(AllowanceExhausted, match="TotalRequests"):
        pull(connector)
    assert standin.count("/queryAll/", "GET", 403) == 1


def test_concurrency_refusal_is_retryable_and_not_retried(standin: StandIn) -> None:
    standin.seed(3)
    connector = standin.connector()
    connector.client.sdk()
    standin.faults(rate_429=1.0, retry_after_s=7)
    with pytest.raises(SalesforceRateLimited) as info:
        pull(connector)
    assert isinstance(info.value, RetryableError) and info.value.retry_after == 7.0
    assert standin.count("<fault>", status=429) == 1


def test_server_errors_are_retried_briefly(standin: StandIn) -> None:
    ids = standin.seed(450)
    connector = standin.connector(page_size=200)
    connector.client.sdk()
    standin.faults(rate_5xx=0.4, seed=3)
    pages, _ = pull(connector)
    assert ids_of(pages) == ids
    failures = standin.count("<fault>", status=500)
    assert failures >= 1 and standin.queries() == 3
    standin.faults(rate_5xx=1.0)
    with pytest.raises(SalesforceUnavailable):
        pull(connector)
    assert standin.count("<fault>", status=500) == failures + 4  # the first try and three retries


def test_an_expired_query_locator_restarts_from_the_committed_position(standin: StandIn) -> None:
    ids = standin.seed(450)
    connector = standin.connector(page_size=200)
    pages = connector.pull("Account", None)
    first = next(pages)
    standin.org.cursors.clear()  # the server forgot the query (15 minutes idle on the real platform)
    rest = list(pages)
    assert [r.id for r in first.records] + ids_of(rest) == ids
    assert standin.count("/query/{locator}", status=400) == 1 and standin.count("/queryAll/") == 2


def test_deleted_account_unlinks_on_the_next_incremental_run(
    standin: StandIn, engine: SyncEngine, sf_ph: PostHogClient
) -> None:
    ids = standin.seed(3)
    connector = standin.connector(mapping=engine.mapping)
    first = engine.run(connector, "Account", "full")
    assert first.status == "succeeded" and first.counts["created"] == 3, first.as_dict()
    standin.admin("DELETE", f"/sobjects/Account/{ids[1]}")
    report = engine.run(connector, "Account")
    assert report.counts["unlinked"] == 1, report.as_dict()
    linked = {a.properties.sfdc_id for a in sf_ph.iter_accounts()}
    assert linked == {ids[0], ids[2], None}
    assert len(list(sf_ph.iter_accounts())) == 3  # the account stays in PostHog, only its link goes


def test_engine_run_stops_at_the_share_and_a_later_run_finishes(
    standin: StandIn, engine: SyncEngine, sf_ph: PostHogClient
) -> None:
    standin.seed(600)
    standin.admin("POST", "/limits", json={"used": 0, "max": 16})  # 4 requests a run, 12 in total
    connector = standin.connector(mapping=engine.mapping, page_size=200)

    first = engine.run(connector, "Account")
    assert first.status == "succeeded" and first.counts["created"] == 400
    assert any("max_share_per_run 25%" in note for note in first.notes), first.notes
    second = engine.run(connector, "Account")
    assert second.status == "succeeded" and second.counts["created"] == 200, second.as_dict()
    assert not any("share" in note for note in second.notes)
    assert len(list(sf_ph.iter_accounts())) == 600
    pushed = standin.sdk().query("SELECT COUNT() FROM Account WHERE PostHog_Account_Id__c != null")
    assert pushed["totalSize"] == 600
    assert standin.count("/composite/sobjects", "PATCH") == 3  # ceil(200/200) for each of three new pages


def test_call_stats_count_every_request_and_refusal(standin: StandIn) -> None:
    standin.seed(3)
    connector = standin.connector()
    standin.admin("POST", "/stats/reset")
    list(connector.pull("Account", None))
    assert connector.call_stats.requests == standin.count()  # the login and the query
    standin.faults(rate_429=1.0)
    with pytest.raises(RetryableError):
        connector.fetch("Account", [account_id(0)])
    assert connector.call_stats.throttled == 1 and connector.call_stats.take() == (standin.count(), 1)


def test_a_csm_reassigned_in_posthog_reaches_the_salesforce_account(
    standin: StandIn, engine: SyncEngine, sf_ph: PostHogClient, sf_posthog: PostHogSandbox
) -> None:
    """``roles.csm: posthog_wins``, pushed out through ``PostHog_CSM_Email__c`` (examples/crmsync.yaml): a person
    assigns the CSM on PostHog's relationship endpoint, and the next outbound pass writes it to the Account,
    having read PostHog's change feed once rather than each account's relationships."""
    ids = standin.seed(3)
    connector = standin.connector(mapping=engine.mapping)
    assert engine.run(connector, "Account", "full").counts["created"] == 3
    engine.push_back_pass(connector, "Account")
    account = next(a for a in sf_ph.iter_accounts() if a.properties.sfdc_id == ids[1])
    rep = REPS[2]
    assign_in_posthog(sf_ph, account.id, "csm", rep.id)
    sf_posthog.reset_counters()

    with engine.queries.sharing():  # as the crmsync.sync_outbound task runs its passes
        report = engine.push_back_pass(connector, "Account")

    assert report.status == "succeeded" and report.counts["pushed"] == 1, report.as_dict()
    row = standin.sdk().query(f"SELECT PostHog_CSM_Email__c FROM Account WHERE Id = '{ids[1]}'")["records"][0]
    assert row["PostHog_CSM_Email__c"] == rep.email
    assert sf_posthog.count("POST", "/query/") == 1 and sf_posthog.count("GET", "/relationships/") == 0
