"""The status page's routes through FastAPI's TestClient, on a Redis server of their own (its Celery queues too).

The ledger holds real run reports, dead letters and a dry run; the buttons enqueue onto the real broker, and the
tests read the queued message back from Redis. Login, cross-site refusal, escaping and masked secrets are checked
on the HTML a browser would get.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from sync.errors import BadRecordError, ConfigError
from sync.ledger import RecordEntry, RecordKey, delete_keys
from sync.report import PlannedChange, RunReport
from workers import data, dry_runs
from workers.cli import app
from workers.config import UiLinks, parse_config
from workers.logs import remember_secrets
from workers.processes import RedisServer, stop_process
from workers.runtime import Runtime
from workers.serving import free_port
from workers.status import status_data
from workers.ui.app import create_ui_app, make_templates
from workers.ui.links import RecordLinks
from workers.ui.security import Access, check_bind

PASSWORD = f"ui-pass-{uuid.uuid4().hex}"
SECRET = f"sk_live_{uuid.uuid4().hex}"  # a secret that must never reach the page, even inside a reason
POSTHOG_KEY = f"phx_ui_{uuid.uuid4().hex}"  # the config's key: the page registers it for masking itself
SOURCES = ("salesforce", "hubspot", "stripe")
ACCOUNT = "0190f2a4-0000-7000-8000-00000000abcd"


def raw_config(redis_url: str, prefix: str, links: dict[str, Any] | None = None) -> dict[str, Any]:
    """The example mappings, three sources on 60 s schedules, and no vendor ever called (nothing runs a sync)."""
    raw = yaml.safe_load(data.read_text(data.EXAMPLE_CONFIG))
    return {
        **raw,
        "posthog": {"host": "http://127.0.0.1:9", "project_id": 1, "personal_api_key": POSTHOG_KEY, "stand_in": True},
        "redis_url": redis_url,
        "ledger_prefix": prefix,
        "sources": {s: {"schedule": {"every_s": 60}} for s in SOURCES},
        "ui": {"username": "ops", "links": links or {}},
    }


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def runtime(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    prefix = f"crmsync-ui-{uuid.uuid4().hex[:8]}"
    links = {"hubspot_portal": 4242, "posthog_account": "https://posthog.example/project/1/accounts/{id}"}
    rt = Runtime(parse_config(raw_config(redis_server.url, prefix, links)))
    redis_server.client.delete("bulk")
    yield rt
    delete_keys(rt.redis, f"{prefix}:*")
    rt.close()


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_ui_app(runtime, Access("ops", PASSWORD)), base_url="http://127.0.0.1:8091") as c:
        c.headers.update(basic("ops", PASSWORD))
        yield c


def store_run(runtime: Runtime, source: str = "stripe", stream: str = "customers") -> str:
    """A finished run with a bad Stripe record whose reason carries markup and a secret; returns its stream id.
    (``all/plan``: the write phase of a planned sync, which reports every source's records.)"""
    remember_secrets([SECRET])
    report = RunReport(source, stream, "full")
    report.add("seen", 3)
    report.add("created", 2)
    reason = f"<script>alert(1)</script> key {SECRET} refused; {POSTHOG_KEY} and {PASSWORD} too"
    report.error(BadRecordError("stripe", "cus_bad1", "name", reason))
    report.review.append({"source": "stripe", "id": "cus_rev", "domain": "acme.test", "reason": "two accounts"})
    runtime.ledger.commit(records={RecordKey("stripe", "customers", "cus_bad1"): RecordEntry("fp", ACCOUNT)})
    return runtime.ledger.append_run(report.finish("succeeded").as_dict())


def queued(runtime: Runtime) -> list[tuple[str, list[Any], dict[str, Any]]]:
    """(task, args, kwargs) of the messages waiting in the broker's ``bulk`` queue (kombu's Redis list), oldest
    first: a Celery protocol 2 message carries the task name in its headers, ``[args, kwargs, embed]`` as body."""
    found = []
    for raw in reversed(runtime.redis.lrange("bulk", 0, -1)):
        message = json.loads(raw)
        args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        found.append((message["headers"]["task"], args, kwargs))
    return found


CLOCKS = {"age_s", "next_in_s", "next_run_in_s"}
"""Keys of the status data that count seconds from now: they move between two reads."""


def without_clocks(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: without_clocks(v) for k, v in data.items() if k not in CLOCKS}
    if isinstance(data, list):
        return [without_clocks(v) for v in data]
    return data


def test_every_page_needs_the_login(client: TestClient) -> None:
    for path in ("/ui/", "/ui/dlq", "/ui/dry-runs", "/ui/api/status", "/ui/static/ui.css"):
        anonymous = client.get(path, headers={"Authorization": ""})
        assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Basic"), path
        assert client.get(path, headers=basic("ops", "wrong")).status_code == 401, path
        assert client.get(path, headers=basic("admin", PASSWORD)).status_code == 401, path
        assert client.get(path).status_code == 200, path
    assert client.post("/ui/actions/replay/stripe", headers={"Authorization": ""}).status_code == 401


def test_api_status_is_the_status_command_data(client: TestClient, runtime: Runtime) -> None:
    runtime.ledger.append_run(RunReport("stripe", "customers", "full").finish().as_dict())
    runtime.ledger.park([{"source": "hubspot", "object": "deals", "id": "9", "field": None, "reason": "r"}])
    answer = without_clocks(client.get("/ui/api/status").json())
    assert answer == without_clocks(status_data(runtime))
    assert answer["sources"]["hubspot"]["dlq"] == 1 and answer["dlq_total"] == 1


def test_main_page_lists_each_source_and_links_its_runs(client: TestClient, runtime: Runtime) -> None:
    run_id = store_run(runtime)
    html = client.get("/ui/").text
    for source in SOURCES:
        assert f'id="source-{source}"' in html
    assert f'href="/ui/runs/{run_id}"' in html
    assert "<script>" not in html


@pytest.mark.parametrize(("source", "stream"), [("stripe", "customers"), ("all", "plan")])
def test_run_detail_shows_errors_escaped_with_links_and_no_secret(
    client: TestClient, runtime: Runtime, source: str, stream: str
) -> None:
    run_id = store_run(runtime, source, stream)
    html = client.get(f"/ui/runs/{run_id}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
    assert SECRET not in html and POSTHOG_KEY not in html and PASSWORD not in html
    assert "key **** refused; **** and **** too" in html
    assert 'href="https://dashboard.stripe.com/customers/cus_bad1"' in html
    assert f'href="https://posthog.example/project/1/accounts/{ACCOUNT}"' in html
    assert "acme.test" in html and 'href="https://dashboard.stripe.com/customers/cus_rev"' in html
    assert client.get("/ui/runs/1-999999").status_code == 404
    assert client.get("/ui/runs/not-an-id").status_code == 404


def test_record_links_only_when_their_pieces_are_known(redis_server: RedisServer) -> None:
    bare = RecordLinks(UiLinks())
    assert bare.crm("hubspot", "deals", "9") is None and bare.crm("salesforce", "Account", "001") is None
    assert bare.crm("stripe", None, "cus_1") is None  # an object it cannot tell: no guess
    assert bare.posthog("abc") is None
    assert bare.crm("stripe", "customers", "cus_1") == "https://dashboard.stripe.com/customers/cus_1"
    full = RecordLinks(
        UiLinks(
            hubspot_portal=77, salesforce_instance="https://acme.my.salesforce.com", posthog_account="https://p/{id}"
        )
    )
    assert full.crm("hubspot", "deals", "9") == "https://app.hubspot.com/contacts/77/deal/9"
    assert full.crm("salesforce", "Account", "001A") == "https://acme.my.salesforce.com/001A"
    assert full.crm("stripe", "customers", "../x?y") == "https://dashboard.stripe.com/customers/..%2Fx%3Fy"
    assert full.posthog("new:Acme") is None and full.posthog("a b") == "https://p/a%20b"
    with pytest.raises(ConfigError, match=r"ui\.links\.posthog_account"):
        parse_config(raw_config(redis_server.url, "x", {"posthog_account": "https://p/accounts/"}))


def test_buttons_enqueue_on_the_broker(client: TestClient, runtime: Runtime) -> None:
    html = client.get("/ui/dlq").text  # the form token comes from the page, as a browser gets it
    csrf = html.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    same_origin = {"Origin": "https://127.0.0.1:8091", "Sec-Fetch-Site": "same-origin"}  # https: via a TLS proxy
    for action, task, kwargs in (
        ("replay", "crmsync.replay_dlq", {}),
        ("sync", "crmsync.sync_source", {"mode": "incremental"}),
        ("dry-run", "crmsync.sync_source", {"mode": "incremental", "dry_run": True}),
    ):
        answer = client.post(
            f"/ui/actions/{action}/hubspot", data={"csrf": csrf}, headers=same_origin, follow_redirects=False
        )
        assert answer.status_code == 303, answer.text
        assert "queued=" in answer.headers["location"]
        assert queued(runtime)[-1] == (task, ["hubspot"], kwargs)
    assert len(queued(runtime)) == 3
    assert client.post("/ui/actions/replay/nosuch", data={"csrf": csrf}, headers=same_origin).status_code == 404


@pytest.mark.parametrize(
    ("headers", "token"),
    [
        ({"Sec-Fetch-Site": "cross-site"}, True),
        ({"Sec-Fetch-Site": "same-site"}, True),
        ({"Origin": "http://evil.example"}, True),
        ({"Origin": "http://127.0.0.1:8092"}, True),
        ({"Origin": "null"}, True),
        ({"Sec-Fetch-Site": "same-origin", "Origin": "http://127.0.0.1:8091"}, False),
        ({}, False),
    ],
)
def test_cross_site_posts_are_refused(
    client: TestClient, runtime: Runtime, headers: dict[str, str], token: bool
) -> None:
    html = client.get("/ui/").text
    csrf = html.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    form = {"csrf": csrf if token else "0" * 64}
    answer = client.post("/ui/actions/replay/stripe", data=form, headers=headers, follow_redirects=False)
    assert answer.status_code == 403 and answer.text.startswith("refused")
    assert queued(runtime) == []


def test_dry_run_page_shows_the_stored_plan(client: TestClient, runtime: Runtime) -> None:
    report = RunReport("hubspot", "deals", "incremental", dry_run=True)
    report.plan = [
        PlannedChange(ACCOUNT, "name", "Old <b>Co</b>", "New Co", "hubspot"),
        PlannedChange("new:Fresh Inc", "external_id", None, "acct-1", "hubspot"),
    ]
    report.add("updated")
    report.add("created")
    assert dry_runs.remember(runtime.redis, runtime.ledger.ns, [report.finish(), RunReport("x", "y", "full")]) == 1
    html = client.get("/ui/dry-runs").text
    assert "Old &lt;b&gt;Co&lt;/b&gt;" in html and "New Co" in html and "new:Fresh Inc" in html
    assert f'href="https://posthog.example/project/1/accounts/{ACCOUNT}"' in html
    assert "updated <b>1</b>" in html and "created <b>1</b>" in html


def test_status_keys_the_page_does_not_know_are_shown(runtime: Runtime) -> None:
    """Keys others add to the status data (``budget``, a source's ``system``) render without template changes."""
    data = status_data(runtime)
    data["budget"] = {"posthog": {"used": 17, "left": 463}}
    data["sources"]["hubspot"]["system"] = "hubspot portal <4242>"
    html = make_templates().get_template("index.html").render(status=data, runs={}, csrf="t", sources=list(SOURCES))
    assert "budget" in html and "463" in html and "hubspot portal &lt;4242&gt;" in html


def test_no_password_means_loopback_only(runtime: Runtime, tmp_path: Path) -> None:
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    check_bind("0.0.0.0", "pw")
    with pytest.raises(ConfigError, match="CRMSYNC_UI_PASSWORD"):
        check_bind("0.0.0.0", None)
    with TestClient(create_ui_app(runtime, Access("ops", None)), base_url="http://127.0.0.1:8091") as open_page:
        assert open_page.get("/ui/").status_code == 200  # loopback, no login asked

    config = tmp_path / "crmsync.yaml"
    config.write_text(yaml.safe_dump(raw_config(runtime.config.redis_url, "unused")))
    command = ["--config", str(config), "ui", "--host", "0.0.0.0"]
    result = CliRunner().invoke(app, command, env={"CRMSYNC_UI_PASSWORD": ""})
    assert result.exit_code == 2 and "CRMSYNC_UI_PASSWORD" in result.output


def test_compose_ui_service_needs_a_password_and_publishes_on_loopback() -> None:
    compose = yaml.safe_load((Path(__file__).resolve().parents[2] / "docker-compose.yml").read_text())
    ui = compose["services"]["ui"]
    assert ui["command"][:2] == ["crmsync", "ui"] and "0.0.0.0" in ui["command"]
    assert ui["environment"]["CRMSYNC_UI_PASSWORD"] == "${CRMSYNC_UI_PASSWORD:-}"
    assert ui["environment"]["REDIS_URL"] == compose["services"]["worker"]["environment"]["REDIS_URL"]
    assert ui["ports"] == ["127.0.0.1:8091:8091"]


def test_crmsync_ui_serves_the_page_behind_its_login(runtime: Runtime, tmp_path: Path) -> None:
    """``crmsync ui`` as an operator starts it: a process on loopback, the login from config and environment."""
    config = tmp_path / "crmsync.yaml"
    config.write_text(yaml.safe_dump(raw_config(runtime.config.redis_url, runtime.config.ledger_prefix)))
    port = free_port()
    env = {**os.environ, "CRMSYNC_UI_PASSWORD": PASSWORD, "REDIS_URL": runtime.config.redis_url}
    command = [sys.executable, "-m", "workers.cli", "--config", str(config), "ui", "--port", str(port)]
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        url = f"http://127.0.0.1:{port}/ui/api/status"
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, server.stdout.read() if server.stdout else b""
            try:
                answer = httpx.get(url, auth=("ops", PASSWORD))
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "crmsync ui did not come up"
                time.sleep(0.2)
        assert answer.status_code == 200 and set(answer.json()["sources"]) == set(SOURCES)
        assert httpx.get(url).status_code == 401
    finally:
        stop_process(server)  # its whole group, pass or fail
        output = server.communicate(timeout=20)[0].decode()
    assert f"status page: http://127.0.0.1:{port}/ui/ (user ops)" in output and PASSWORD not in output
