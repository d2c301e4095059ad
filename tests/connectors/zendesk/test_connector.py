"""The Zendesk connector's own behaviour against the stand-in: how many requests each operation costs, its bulk
jobs, its budgets and retries, its set-up command and its configuration. Counted, never timed."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
import yaml
from typer.testing import CliRunner

from connectors.registry import stream_fields
from connectors.zendesk import ZendeskConnector, ZendeskCursor, load_zendesk_config
from connectors.zendesk.errors import ZendeskAuthFailed, ZendeskRateLimited
from sync.connector import PushUpdate
from sync.errors import ConfigError
from sync.mapping import load_mapping_config
from sync.ratelimit import BudgetExhausted
from tests.connectors.zendesk.conftest import FIELD, ZendeskStandIn, block, fast_retry
from workers.cli import app

PATH = f"organization_fields.{FIELD}"


def test_one_changed_organization_is_one_put_many_are_bulk_jobs(
    standin: ZendeskStandIn, connector: ZendeskConnector
) -> None:
    ids = [standin.create() for _ in range(150)]
    standin.reset_counters()
    (one,) = connector.push("organizations", [PushUpdate(ids[0], {PATH: "acct-one"}, "fp")])
    assert one.ok and standin.count("PUT", "/api/v2/organizations/{raw_id}") == 1
    assert standin.count("PUT", "/api/v2/organizations/update_many") == 0
    updates = [PushUpdate(i, {PATH: f"acct-{i}"}, "fp") for i in ids] + [PushUpdate("12345", {PATH: "x"}, "fp")]
    results = {r.record_id: r for r in connector.push("organizations", updates)}
    assert all(results[i].ok for i in ids) and not results["12345"].ok and not results["12345"].retryable
    assert standin.count("PUT", "/api/v2/organizations/update_many") == 2  # 151 organizations: jobs of 100 and 51
    assert standin.count("GET", "/api/v2/job_statuses/{job_id}") == 4  # each followed: working, then completed
    assert all(standin.org(i)["organization_fields"][FIELD] == f"acct-{i}" for i in ids)


def test_a_job_still_running_after_its_last_allowed_read_leaves_its_organizations_retryable(
    standin: ZendeskStandIn, redis_client: redis.Redis
) -> None:
    ids = [standin.create() for _ in range(2)]
    standin.limits(job_polls=5)  # the stand-in's job is working for five status reads
    config = load_zendesk_config(block(standin, job_max_polls=3))
    redis_client.delete(f"{config.budget_key}:api", f"{config.budget_key}:export")
    connector = ZendeskConnector(config, redis_client, retry=fast_retry())
    try:
        standin.reset_counters()
        results = connector.push("organizations", [PushUpdate(i, {PATH: "x"}, "fp") for i in ids])
        assert [(r.ok, r.retryable) for r in results] == [(False, True), (False, True)]
        assert all("did not finish" in str(r.error) for r in results)
        assert standin.count("GET", "/api/v2/job_statuses/{job_id}") == 3
        assert connector.call_stats.requests == 4  # the update_many and three status reads
    finally:
        redis_client.delete(f"{config.budget_key}:api", f"{config.budget_key}:export")
        connector.close()


def test_push_refuses_fields_that_are_not_organization_fields(connector: ZendeskConnector) -> None:
    (result,) = connector.push("organizations", [PushUpdate("1", {"name": "x"}, "fp")])
    assert not result.ok and "organization_fields" in str(result.error)
    with pytest.raises(ConfigError) as info:
        mapping = load_mapping_config(
            {"mappings": {"zendesk": {"organizations": {"link": "zendesk_id", "account_id_field": "notes"}}}}
        )
        ZendeskConnector.from_config(
            {"url": "https://acme.zendesk.com", "email": "a@b.c", "api_token": "t"},
            None,
            stream_fields("zendesk", mapping),
        )
    assert info.value.key == "mappings.zendesk.organizations"


def test_fetch_reads_100_ids_a_request_and_missing_ones_are_deleted(
    standin: ZendeskStandIn, connector: ZendeskConnector
) -> None:
    ids = [standin.create() for _ in range(120)]
    standin.reset_counters()
    records = connector.fetch("organizations", [*ids, "99", "not-an-id"])
    assert [r.id for r in records] == [*ids, "99", "not-an-id"]
    assert [r.deleted for r in records[-2:]] == [True, True] and not any(r.deleted for r in records[:-2])
    assert standin.count("GET", "/api/v2/organizations/show_many") == 2


def test_a_full_read_pages_by_cursor_and_the_export_takes_over(
    standin: ZendeskStandIn, connector: ZendeskConnector
) -> None:
    standin.admin.post("/_sandbox/seed", json={"count": 250, "start": 0}).raise_for_status()
    standin.reset_counters()
    pages = list(connector.pull("organizations", None))
    assert sum(len(p.records) for p in pages) == 250 and len(pages) == 3
    assert standin.count("GET", "/api/v2/organizations") == 3
    cursors = [p.cursor for p in pages]
    assert all(isinstance(c, ZendeskCursor) for c in cursors)
    assert [c.in_full_read for c in cursors if isinstance(c, ZendeskCursor)] == [True, True, False]
    resumed = list(connector.pull("organizations", cursors[0]))  # an interrupted full read goes on from its page
    assert sum(len(p.records) for p in resumed) == 150
    last = cursors[-1]
    assert isinstance(last, ZendeskCursor)
    edited = standin.create(name="Changed later")
    later = list(connector.pull("organizations", last))
    assert edited in {r.id for p in later for r in p.records}
    assert standin.count("GET", "/api/v2/incremental/organizations") == 1


def test_the_connectors_export_budget_keeps_it_inside_the_exports_own_limit(
    standin: ZendeskStandIn, redis_client: redis.Redis
) -> None:
    standin.limits(export_requests_per_minute=2)
    config = load_zendesk_config(block(standin, export_requests_per_minute=2, max_budget_wait_s=0))
    redis_client.delete(f"{config.budget_key}:api", f"{config.budget_key}:export")
    connector = ZendeskConnector(config, redis_client, retry=fast_retry())
    try:
        cursor = ZendeskCursor(start_time=0)
        for _ in range(2):
            list(connector.pull("organizations", cursor))
        with pytest.raises(BudgetExhausted) as info:  # the third would be refused: it waits for the budget instead
            list(connector.pull("organizations", cursor))
        assert info.value.retry_after is not None and info.value.retry_after > 0
        assert standin.count("GET", "/api/v2/incremental/organizations") == 2
        assert standin.count(status=429) == 0
    finally:
        redis_client.delete(f"{config.budget_key}:api", f"{config.budget_key}:export")
        connector.close()


def test_a_429_on_the_export_empties_the_exports_budget_not_the_accounts(
    standin: ZendeskStandIn, redis_client: redis.Redis
) -> None:
    standin.limits(export_requests_per_minute=1)
    config = load_zendesk_config(  # budgets refilled slowly enough that a drained one stays empty for the test
        block(standin, requests_per_minute=60, export_requests_per_minute=6, max_budget_wait_s=0)
    )
    redis_client.delete(f"{config.budget_key}:api", f"{config.budget_key}:export")
    connector = ZendeskConnector(config, redis_client, retry=fast_retry())
    try:
        cursor = ZendeskCursor(start_time=0)
        list(connector.pull("organizations", cursor))
        with pytest.raises(ZendeskRateLimited) as limited:  # the stand-in's minute is spent: Retry-After > 1 s
            list(connector.pull("organizations", cursor))
        assert limited.value.retry_after is not None and limited.value.retry_after > fast_retry().max_backoff_s
        with pytest.raises(BudgetExhausted):  # every worker's export now waits, without asking Zendesk
            list(connector.pull("organizations", cursor))
        connector.fetch("organizations", ["1"])  # the account's budget is untouched
        assert standin.count("GET", "/api/v2/incremental/organizations") == 2
        assert standin.count(status=429) == 1 and connector.call_stats.throttled == 1
        assert standin.count("GET", "/api/v2/organizations/show_many") == 1
    finally:
        redis_client.delete(f"{config.budget_key}:api", f"{config.budget_key}:export")
        connector.close()


def test_an_account_minute_zendesk_reports_spent_empties_the_budget_for_every_worker(
    standin: ZendeskStandIn, redis_client: redis.Redis
) -> None:
    standin.limits(requests_per_minute=2)  # the stand-in then sends X-Rate-Limit-Remaining
    config = load_zendesk_config(block(standin, requests_per_minute=60, max_budget_wait_s=0))
    redis_client.delete(f"{config.budget_key}:api", f"{config.budget_key}:export")
    connector = ZendeskConnector(config, redis_client, retry=fast_retry())
    other = ZendeskConnector(config, redis_client, retry=fast_retry())  # another worker on the same account
    try:
        connector.fetch("organizations", ["1"])
        connector.fetch("organizations", ["1"])  # answered with X-Rate-Limit-Remaining: 0
        with pytest.raises(BudgetExhausted):
            other.fetch("organizations", ["1"])
        assert standin.count("GET", "/api/v2/organizations/show_many") == 2 and standin.count(status=429) == 0
    finally:
        redis_client.delete(f"{config.budget_key}:api", f"{config.budget_key}:export")
        connector.close()
        other.close()


def test_429s_are_retried_with_the_one_policy_then_go_up_with_their_wait(
    standin: ZendeskStandIn, connector: ZendeskConnector
) -> None:
    standin.create()
    standin.faults(rate_429=1.0, retry_after_s=0)
    with pytest.raises(ZendeskRateLimited):
        connector.fetch("organizations", ["1"])
    assert standin.count(status=429) == 1 + fast_retry().max_retries
    assert connector.call_stats.throttled == 1 + fast_retry().max_retries
    standin.reset_counters()
    standin.faults(rate_429=1.0, retry_after_s=600)  # longer than max_backoff_s: not slept through here
    with pytest.raises(ZendeskRateLimited) as info:
        connector.fetch("organizations", ["1"])
    assert info.value.retry_after == 600 and standin.count(status=429) == 1
    standin.faults(rate_5xx=1.0, status_5xx=503)
    results = connector.push("organizations", [PushUpdate("1", {PATH: "x"}, "fp")])
    assert results[0].retryable and not results[0].ok


def test_a_wrong_token_is_fatal_and_never_retried(standin: ZendeskStandIn) -> None:
    connector = ZendeskConnector(load_zendesk_config(block(standin, api_token="wrong")), retry=fast_retry())
    with pytest.raises(ZendeskAuthFailed, match="401"):
        list(connector.pull("organizations", None))
    assert standin.count(status=401) == 1
    connector.close()


def test_setup_creates_the_fields_the_mapping_writes_once(standin: ZendeskStandIn, tmp_path: Path) -> None:
    mapping = {
        "mappings": {
            "zendesk": {
                "organizations": {
                    "link": "zendesk_id",
                    "account_id_field": PATH,
                    "link_fields": {"sfdc_id": "organization_fields.salesforce_id"},
                }
            }
        }
    }
    path = tmp_path / "crmsync.yaml"
    path.write_text(yaml.safe_dump(mapping))
    args = ["setup", "zendesk", "--url", standin.url, "--email", "admin@sandbox.example"]
    args += ["--token", "zendesk-sandbox-token", "--config", str(path)]
    dry = CliRunner().invoke(app, [*args, "--dry-run"])
    assert dry.exit_code == 0 and "missing" in dry.output and standin.count("POST") == 0
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "1 created" in first.output and standin.count("POST", "/api/v2/organization_fields") == 1
    second = CliRunner().invoke(app, args)
    assert "0 created" in second.output and standin.count("POST", "/api/v2/organization_fields") == 1
    fields = standin.api("/api/v2/organization_fields").json()["organization_fields"]
    assert [f["key"] for f in fields] == [FIELD, "salesforce_id"]


def test_bad_settings_name_their_key(standin: ZendeskStandIn) -> None:
    for raw, key in [
        ({**block(standin), "url": "https://acme.zendesk.com/api/v2"}, "sources.zendesk.config.url"),
        ({**block(standin), "page_size": 101}, "sources.zendesk.config.page_size"),
        ({k: v for k, v in block(standin).items() if k != "api_token"}, "sources.zendesk.config.api_token"),
    ]:
        with pytest.raises(ConfigError) as info:
            load_zendesk_config(raw)
        assert info.value.key == key and "zendesk-sandbox-token" not in str(info.value)
    connector = ZendeskConnector(load_zendesk_config(block(standin)))
    assert connector.system_id() == f"zendesk:{standin.url.split('//')[1]}"  # no request: the account is its host
    assert standin.count() == 0
    connector.close()


def test_a_field_that_does_not_exist_fails_that_record_not_the_push(
    standin: ZendeskStandIn, connector: ZendeskConnector
) -> None:
    ids = [standin.create() for _ in range(2)]
    (one,) = connector.push("organizations", [PushUpdate(ids[0], {"organization_fields.nope": "x"}, "fp")])
    assert not one.ok and not one.retryable and "422" in str(one.error)
    both = connector.push("organizations", [PushUpdate(i, {"organization_fields.nope": "x"}, "fp") for i in ids])
    assert [r.ok for r in both] == [False, False] and all("no such field" in str(r.error) for r in both)
