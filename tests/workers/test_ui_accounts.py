"""The status page's account search, account page, charts and words, through FastAPI's TestClient on a Redis
server of its own (the fixtures of ``test_ui``).

The ledger state is what the engine writes: ``merge`` (the engine's merge) decides the fields from real patches,
``Ledger.commit`` stores the entry, the index and the records, ``remember_seen`` the account as PostHog showed it.
PostHog's host in this config is a closed port: a page that called PostHog or a CRM would fail, not pass.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sync.apply import AccountState, merge
from sync.engine import AMBIGUOUS
from sync.identity import index_pairs
from sync.ledger import AccountEntry, RecordEntry, RecordKey, delete_keys
from sync.mapping import AccountPatch
from sync.posthog.models import Account
from sync.report import RunReport
from tests.workers.test_ui import ACCOUNT, PASSWORD, basic, raw_config
from workers.config import parse_config
from workers.processes import RedisServer
from workers.runtime import Runtime
from workers.ui import words
from workers.ui.app import create_ui_app
from workers.ui.charts import Bar, Segment, bar_chart
from workers.ui.security import Access

SVG = "{http://www.w3.org/2000/svg}"
OTHER = "0190f2a4-0000-7000-8000-00000000ef01"
CHANGED_AT = 1_764_900_000  # 2025-12-05 02:00:00 UTC


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def runtime(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    """``test_ui``'s deployment: the example mappings, PostHog on a closed port, links configured."""
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    prefix = f"crmsync-uiacct-{uuid.uuid4().hex[:8]}"
    links = {"hubspot_portal": 4242, "posthog_account": "https://posthog.example/project/1/accounts/{id}"}
    rt = Runtime(parse_config(raw_config(redis_server.url, prefix, links)))
    yield rt
    delete_keys(rt.redis, f"{prefix}:*")
    rt.close()


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_ui_app(runtime, Access("ops", PASSWORD)), base_url="http://127.0.0.1:8091") as c:
        c.headers.update(basic("ops", PASSWORD))
        yield c


def seed_account(runtime: Runtime) -> None:
    """Acme Rockets: HubSpot named it first, Salesforce (ranked above) renamed it; HubSpot's deal waits for a
    webhook refresh; its Stripe customer is parked. And another account, Other Co."""
    hs = AccountPatch("hubspot", "deals", "9001", "hubspot_deal_id", {"name": "Acme HS", "tags": ["beta"]}, version=5)
    sf = AccountPatch("salesforce", "Account", "001A", "sfdc_id", {"name": "Acme Rockets"}, version=7)
    st = AccountPatch("stripe", "customers", "cus_1", "stripe_customer_id", {}, version=1)
    config = runtime.config.mapping
    first = merge(AccountState.empty(), AccountEntry(), [hs, st], config, {}, now=CHANGED_AT - 600)
    second = merge(first.state, first.entry, [sf], config, {}, now=CHANGED_AT)
    state = second.state
    second.entry.written_fp = state.fingerprint()
    state.external_id = "acme-1"
    seen = Account(
        id=ACCOUNT,
        name=state.name or "",
        external_id=state.external_id,
        properties=state.properties,
        tags=state.tags,
        updated_at=datetime.fromtimestamp(CHANGED_AT, UTC),
    )
    other = Account(id=OTHER, name="Other Co", external_id="other-1", properties={"sfdc_id": "001B"})
    index = {pair: ACCOUNT for pair in index_pairs(state.external_id, state.properties)}
    index[("external_id", "other-1")] = OTHER
    index[("sfdc_id", "001B")] = OTHER
    index[("domain", "rockets.test")] = ACCOUNT
    index[("domain", "shared.test")] = AMBIGUOUS  # two accounts share it: the index names neither
    records = {
        RecordKey("hubspot", "deals", "9001"): RecordEntry("fp1", ACCOUNT, 5),
        RecordKey("salesforce", "Account", "001A"): RecordEntry("fp2", ACCOUNT, 7),
        RecordKey("stripe", "customers", "cus_1"): RecordEntry("fp3", ACCOUNT, 1),
    }
    runtime.ledger.commit(records=records, accounts={ACCOUNT: second.entry}, index=index, seen=[seen, other])
    runtime.redis.sadd(f"{runtime.ledger.ns}:pending:hubspot:deals", "9001", "7777")
    runtime.ledger.park([{"source": "stripe", "object": "customers", "id": "cus_1", "field": "name", "reason": "r1"}])
    runtime.ledger.park([{"source": "stripe", "object": "customers", "id": "cus_9", "field": None, "reason": "r9"}])


def found(client: TestClient, query: str) -> list[str]:
    html = client.get("/ui/accounts", params={"search": query}).text
    return [part.split('"', 1)[0] for part in html.split('data-account="')[1:]]


@pytest.mark.parametrize(
    ("query", "accounts"),
    [
        ("rockets", [ACCOUNT]),  # part of the name, any case
        ("acme-1", [ACCOUNT]),  # the external id
        ("001A", [ACCOUNT]),  # a Salesforce id, exact
        ("001", [ACCOUNT, OTHER]),  # part of CRM ids
        ("cus_1", [ACCOUNT]),  # a Stripe id
        (ACCOUNT, [ACCOUNT]),  # the PostHog account id
        ("co", [OTHER]),  # "Other Co" (the index's key names, e.g. "stripe_customer_id", are not searched)
        ("deal", []),
        ("rockets.test", [ACCOUNT]),  # a domain
        ("shared.test", []),
        ("nothing-like-it", []),
        ("*", []),  # a glob character is text, not a pattern
    ],
)
def test_search_finds_accounts_by_name_external_id_and_crm_ids(
    client: TestClient, runtime: Runtime, query: str, accounts: list[str]
) -> None:
    seed_account(runtime)
    assert sorted(found(client, query)) == sorted(accounts)


def test_search_shows_the_form_and_what_matched(client: TestClient, runtime: Runtime) -> None:
    seed_account(runtime)
    html = client.get("/ui/accounts", params={"search": "001A"}).text
    assert 'name="search" value="001A"' in html and "1 account found" in html
    assert f'href="/ui/accounts/{ACCOUNT}">Acme Rockets</a>' in html and "Sfdc id 001A" in html
    assert client.get("/ui/accounts").status_code == 200


def row(html: str, target: str) -> str:
    return html.split(f'<tr data-field="{target}">', 1)[1].split("</tr>", 1)[0]


def test_account_page_says_why_each_field_has_its_value(client: TestClient, runtime: Runtime) -> None:
    seed_account(runtime)
    html = client.get(f"/ui/accounts/{ACCOUNT}").text
    assert '<h1 id="account-name">Acme Rockets</h1>' in html
    assert f'href="https://posthog.example/project/1/accounts/{ACCOUNT}"' in html
    name = row(html, "name")
    assert '<td class="current">Acme Rockets</td>' in name and '<td class="from">salesforce</td>' in name
    assert "precedence: salesforce, then hubspot, then stripe" in name
    assert "<b>hubspot</b>: Acme HS" in name and "not applied: salesforce ranks above it" in name
    assert "<b>salesforce</b>: Acme Rockets" in name and "this is the account&#39;s value" in name
    assert words.absolute(CHANGED_AT) in name and "2025-12-05 02:00:00 UTC" in name
    link = row(html, "properties.hubspot_deal_id")
    assert "9001" in link and '<td class="from">hubspot</td>' in link and words.absolute(CHANGED_AT - 600) in link
    tags = row(html, "tags")
    assert '<span class="tag">beta</span>' in tags and "<b>hubspot</b>" in tags
    assert 'href="https://app.hubspot.com/contacts/4242/deal/9001"' in html
    assert 'href="https://dashboard.stripe.com/customers/cus_1"' in html
    assert '<h2 id="pending">Webhook refreshes waiting: 1</h2>' in html and "waiting for a refresh" in html
    assert '<h2 id="dead-letters">Dead letters: 1</h2>' in html and "r1" in html and "r9" not in html


def test_account_page_answers_404_for_an_unknown_or_malformed_id(client: TestClient, runtime: Runtime) -> None:
    seed_account(runtime)
    assert client.get("/ui/accounts/0190f2a4-0000-7000-8000-000000000000").status_code == 404
    assert client.get("/ui/accounts/a*b").status_code == 404
    assert client.get(f"/ui/accounts/{OTHER}").status_code == 200  # seen in PostHog, never written: still shown


def svg(html: str, chart_id: str) -> ET.Element:
    """The chart's SVG, parsed as XML (a malformed one raises)."""
    start = html.index(f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{chart_id}"')
    return ET.fromstring(html[start : html.index("</svg>", start) + len("</svg>")])


def bars(chart: ET.Element) -> list[dict[str, Any]]:
    return [
        {"total": g.get("data-total"), **{r.get("data-kind"): r.get("data-value") for r in g.iter(f"{SVG}rect")}}
        for g in chart.iter(f"{SVG}g")
    ]


def test_budget_charts_draw_the_per_minute_history(client: TestClient, runtime: Runtime) -> None:
    budget = runtime.posthog_budget
    assert budget is not None
    for _ in range(7):
        assert budget.try_acquire() == 0.0
    budget.block(1)
    html = client.get("/ui/").text
    hour, day = svg(html, "budget-hour"), svg(html, "budget-day")
    hour_bars, day_bars = bars(hour), bars(day)
    assert len(hour_bars) == 60 and len(day_bars) == 24
    assert hour_bars[-1] == {"total": "8", "ok": "7", "wait": "0", "bad": "1"}  # this minute: 7 requests, a 429
    assert all(b["total"] == "0" for b in hour_bars[:-2])
    assert day_bars[-1]["ok"] == "7"
    limits = [e.get("data-value") for e in hour.iter() if e.get("class") in ("limit", "limit-label")]
    assert limits == ["480"] and "limit per hour 4,800 (above the scale)" in ET.tostring(day, encoding="unicode")
    assert "7 PostHog requests in the last 24 h" in html


def test_run_charts_draw_records_failures_and_durations(client: TestClient, runtime: Runtime) -> None:
    for seen, failed in ((10, 3), (5, 0)):
        report = RunReport("hubspot", "deals", "full")
        report.add("seen", seen)
        report.add("failed", failed)
        report.finish()
        report.finished_at = report.started_at + 90
        runtime.ledger.append_run(report.as_dict())
    html = client.get("/ui/").text
    records, durations = bars(svg(html, "runs-hubspot-records")), bars(svg(html, "runs-hubspot-duration"))
    assert [(b["ok"], b["bad"]) for b in records] == [("7", "3"), ("5", "0")]  # oldest first
    assert [b["wait"] for b in durations] == ["90", "90"]
    assert "hubspot: newest 2 runs, 3 records failed" in html


def test_a_run_that_parked_records_says_partial_with_its_count(client: TestClient, runtime: Runtime) -> None:
    report = RunReport("stripe", "customers", "full")
    report.add("seen", 314)
    report.add("failed", 268)
    run_id = runtime.ledger.append_run(report.finish().as_dict())
    assert report.status == "partial" and report.reason and report.reason.startswith("268 of 314 records failed")
    main, run = client.get("/ui/").text, client.get(f"/ui/runs/{run_id}").text
    for html in (main, run):
        assert '<span class="badge partial">partial: 268 of 314 records failed</span>' in html
        assert ">succeeded<" not in html


def test_the_main_page_speaks_in_words(client: TestClient, runtime: Runtime) -> None:
    runtime.redis.sadd(f"{runtime.ledger.ns}:pending:hubspot:deals", *[str(n) for n in range(129)])
    html = client.get("/ui/").text
    assert "Webhook ids waiting</th><td>129</td>" in html
    assert "PostHog is not throttling" in html and "Tags are stored" in html
    for raw in ("webhook_ids_waiting", "replay_backoff", "eta_s", "posthog_requests", "True", "False"):
        assert f">{raw}<" not in html and f"{raw}:" not in html, raw


def test_words() -> None:
    assert words.label("webhook_ids_waiting") == "Webhook ids waiting"
    assert words.label("some_new_thing_s") == "Some new thing"
    assert words.human("delay_s", 180) == "3 min" and words.human("blocked", False) == "PostHog is not throttling"
    assert words.human("dropped", False) == "Tags are stored" and words.human("n", 12345) == "12,345"
    assert words.when(1000.0, now=1180.0) == "3 min ago (1970-01-01 00:16:40 UTC)"
    assert words.when("1970-01-01T00:16:40Z", now=820.0) == "in 3 min (1970-01-01 00:16:40 UTC)"
    assert words.when(None) == "never"
    assert words.run_status({"status": "partial", "counts": {"failed": 268, "seen": 314}}) == (
        "partial: 268 of 314 records failed"
    )


def test_bar_chart_escapes_and_is_well_formed() -> None:
    chart = bar_chart("c1", "<b>title</b>", "u&m", [Bar("<x>", [Segment(3, "ok")], href="/ui/runs/1-1?a=1&b=2")], 2)
    root = ET.fromstring(str(chart))
    assert root.get("data-max") == "5" and root.find(f"{SVG}title").text == "<b>title</b>"  # type: ignore[union-attr]
    assert [e.get("data-value") for e in root.iter(f"{SVG}line") if e.get("class") == "limit"] == ["2"]
    (g,) = root.iter(f"{SVG}g")
    assert g.get("data-label") == "<x>" and "<b>" not in str(chart)
    empty = ET.fromstring(str(bar_chart("c2", "t", "u", [])))
    assert "nothing yet" in ET.tostring(empty, encoding="unicode")
