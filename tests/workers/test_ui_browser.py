"""The status page driven in a real headless Chromium (Debian's ``chromium``, through Playwright), as a person would.

A whole deployment on loopback: the four stand-ins, a real Celery worker process, a Redis server of its own, and
the page in a thread. A Stripe customer is made bad before the first sync (no name, no email: nothing to name its
account by), so the full sync parks it. In the browser: log in, see the three sources and the budget and run
charts, find an account by part of its name and read why each of its fields holds its value, open the run that
met the bad record and read its reason, see it among the dead letters, fix it in Stripe, press replay and watch
the count fall to 0; rename a customer in Stripe, press "Dry run" and read the rename in the plan; see a newly
parked record counted without a reload (the page's ``fetch`` refresh); then a request without the login gets 401
and a form posted from another site is refused. A second test reads every page and counts no request to any stand-in.

Nothing downloads a browser: ``.ci/run`` installs Debian's ``chromium`` (``CRMSYNC_REQUIRE_BROWSER=1`` there
turns a missing browser into a failure instead of a skip). ``CRMSYNC_UI_SCREENSHOT=docs/ui.png`` saves the main
page and ``CRMSYNC_UI_ACCOUNT_SCREENSHOT=docs/ui-account.png`` an account page, as shown in the README.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from sandbox.posthog.throttle import POSTHOG_RATES
from sandbox.stack import POSTHOG_KEY, SandboxStack
from tests.faults.harness import stack_config
from workers.celery_app import configure
from workers.cli_sync import run_enqueued
from workers.config import parse_config
from workers.processes import RedisServer, start_worker, stop_process, wait_for_worker
from workers.runtime import Runtime, set_runtime
from workers.serving import ServerThread
from workers.ui import words
from workers.ui.app import create_ui_app
from workers.ui.security import Access

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SEED = 12
SOURCES = ["salesforce", "hubspot", "stripe"]
BAD_CUSTOMER = f"cus_S{SEED + 2 * SEED // 3 - 3:013d}"  # Stripe-only identities (see sandbox/stack.py)
RENAMED_CUSTOMER = f"cus_S{SEED + 2 * SEED // 3 - 2:013d}"
PASSWORD = f"ui-{uuid.uuid4().hex}"

if not CHROMIUM.exists():
    if os.environ.get("CRMSYNC_REQUIRE_BROWSER"):
        raise RuntimeError("/usr/bin/chromium is missing: apt-get install -y chromium (.ci/run does)")
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")


@dataclass
class Deployment:
    stack: SandboxStack
    runtime: Runtime
    ui: ServerThread

    def stripe_admin(self, customer: str, **fields: str) -> None:
        url = f"{self.stack.url('stripe')}/_sandbox/customers/{customer}"
        httpx.post(url, json=fields, timeout=30).raise_for_status()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("ui-browser")
    with pytest.MonkeyPatch.context() as mp, RedisServer() as redis_server:
        mp.setenv("REDIS_URL", redis_server.url)
        mp.setenv("POSTHOG_PERSONAL_API_KEY", POSTHOG_KEY)
        stack = SandboxStack(  # PostHog's real rates: the budget is paced, and its history charted
            seed=SEED,
            redis_url=redis_server.url,
            webhooks=False,
            data_dir=workdir / "sandbox",
            posthog_throttle=POSTHOG_RATES,
        )
        stack.start()
        worker = None
        runtime = None
        try:
            config_path = workdir / "crmsync.yaml"
            raw = stack_config(stack)
            config_path.write_text(yaml.safe_dump(raw))
            runtime = Runtime(parse_config(raw))
            set_runtime(runtime)
            env = {**os.environ, "REDIS_URL": redis_server.url, "POSTHOG_PERSONAL_API_KEY": POSTHOG_KEY}
            worker = start_worker(config_path, env, (workdir / "worker.log").open("wb"))
            wait_for_worker(configure(redis_server.url), worker)
            ui = ServerThread(create_ui_app(runtime, Access("ops", PASSWORD))).start()
            dep = Deployment(stack, runtime, ui)
            dep.stripe_admin(BAD_CUSTOMER, name="", email="")  # nothing left to name its account by
            runs = run_enqueued(runtime, SOURCES, full=True, dry_run=False, quiet=True)
            assert set(SOURCES) <= {r["source"] for r in runs}, runs  # and the planned write phase, "all"
            yield dep
            ui.stop()
        finally:
            if worker is not None:
                stop_process(worker)
            if runtime is not None:
                runtime.close()
            stack.stop()
            set_runtime(None)


def _until(page: sync_api.Page, check: object, what: str, timeout_s: float = 90) -> None:
    """Reload ``page`` until ``check()`` holds (the worker runs the enqueued task meanwhile)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.5)
        page.reload()
    raise AssertionError(f"timed out waiting for {what}")


def _linked_everywhere(runtime: Runtime) -> tuple[str, str]:
    """An account linked to a record of every CRM (id, name), from the ledger: the richest account page."""
    ids = runtime.ledger.account_ids()
    for account in runtime.ledger.get_seen(ids):
        props = account.properties.payload() if account else {}
        if account and all(props.get(k) for k in ("sfdc_id", "hubspot_deal_id", "stripe_customer_id")):
            return account.id, account.name
    raise AssertionError("no account is linked to all three CRMs")


def _evil_site(target: str) -> ServerThread:
    """Another origin whose page posts a replay form to the status page (the token is a guess)."""
    form = (
        f'<form method="post" action="{target}/ui/actions/replay/stripe">'
        '<input type="hidden" name="csrf" value="guessed"><button id="go">win a prize</button></form>'
    )

    async def home(_: object) -> HTMLResponse:
        return HTMLResponse(f"<!doctype html><title>prize</title>{form}")

    return ServerThread(Starlette(routes=[Route("/", home)])).start()


@pytest.mark.timeout(300)
def test_an_operator_finds_a_bad_record_and_replays_it(deployment: Deployment) -> None:
    expect = sync_api.expect
    url = deployment.ui.url
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            login = {"username": "ops", "password": PASSWORD}
            context = browser.new_context(http_credentials=login, viewport={"width": 1400, "height": 1000})
            page = context.new_page()

            assert page.goto(f"{url}/ui/").status == 200  # type: ignore[union-attr]
            for source in SOURCES:
                card = page.locator(f"#source-{source}")
                expect(card).to_be_visible()
                expect(card.locator(".badge").first).to_have_text("succeeded")
            # the charts: PostHog's budget this hour (the sync's requests), the write phase's failed record
            expect(page.locator("svg#budget-hour")).to_be_visible()
            spent = page.locator("svg#budget-hour g.bar").last.get_attribute("data-total")
            assert spent is not None and int(spent.replace(",", "")) > 0
            expect(page.locator('svg#runs-all-records rect.bad[data-value="1"]')).to_have_count(1)
            expect(page.locator("#throttling")).to_have_text("PostHog is not throttling")
            if os.environ.get("CRMSYNC_UI_SCREENSHOT"):
                page.screenshot(path=os.environ["CRMSYNC_UI_SCREENSHOT"], full_page=True)

            # "why does this account say that?": find it by part of its name, open it, read its fields
            account_id, name = _linked_everywhere(deployment.runtime)
            page.fill('header input[name="search"]', name[2:-2].upper())
            page.press('header input[name="search"]', "Enter")
            page.click(f'tr[data-account="{account_id}"] a')
            expect(page.locator("#account-name")).to_have_text(name)
            row = page.locator('tr[data-field="name"]')
            expect(row.locator("td.current")).to_have_text(name)
            expect(row.locator("td.from")).not_to_have_text(words.NONE)
            expect(row.locator("td.rule")).to_contain_text("precedence")
            expect(row.locator("td.changed time")).to_contain_text("UTC")
            stripe_id = page.locator('tr[data-source="stripe"][data-record]').get_attribute("data-record")
            expect(page.locator(f'a[href="https://dashboard.stripe.com/customers/{stripe_id}"]').first).to_be_visible()
            expect(page.locator("#dead-letters")).to_have_text("Dead letters: 0")
            if os.environ.get("CRMSYNC_UI_ACCOUNT_SCREENSHOT"):
                page.screenshot(path=os.environ["CRMSYNC_UI_ACCOUNT_SCREENSHOT"], full_page=True)
            page.goto(f"{url}/ui/")

            page.locator('tr[data-run]:not([data-errors="0"]) a').first.click()  # the run that met the bad record
            bad = page.locator("table.errors tbody tr", has_text=BAD_CUSTOMER)
            expect(bad.locator("td.reason")).to_have_text("required to create an account")
            expect(bad.locator("a", has_text=BAD_CUSTOMER)).to_have_attribute(
                "href", f"https://dashboard.stripe.com/customers/{BAD_CUSTOMER}"
            )

            page.click("text=Dead letters")
            count = page.locator('.dlq-count[data-source="stripe"]')
            expect(count).to_have_text("1")
            expect(page.locator("table.dlq")).to_contain_text(BAD_CUSTOMER)
            deployment.stripe_admin(BAD_CUSTOMER, name="Fixed In Stripe Inc")
            page.click('button[data-action="replay"][data-source="stripe"]')
            expect(page.locator(".flash")).to_contain_text("replay stripe")
            _until(page, lambda: count.inner_text() == "0", "the replay to empty the stripe dead letters")
            expect(page.locator("#dlq-total")).to_have_text("0")

            deployment.stripe_admin(RENAMED_CUSTOMER, name="Renamed In Stripe")
            page.goto(f"{url}/ui/")
            page.click('button[data-action="dry-run"][data-source="stripe"]')
            expect(page.locator(".flash")).to_contain_text("dry-run stripe")
            plan = page.locator('section.dry-run[data-source="stripe"]')
            _until(page, lambda: plan.count() == 1, "the stripe dry run's plan")
            row = plan.locator("table.plan tbody tr", has_text="Renamed In Stripe")
            expect(row.locator("td").nth(1)).to_have_text("name")
            expect(plan).to_contain_text("updated 1")  # the counts say what a real run would change

            page.goto(f"{url}/ui/")  # the counts follow the stream without a reload (static/refresh.js)
            deployment.runtime.ledger.park([{"source": "hubspot", "object": "deals", "id": "1", "reason": "test"}])
            expect(page.locator("#dlq-total")).to_have_text("1", timeout=30_000)
            expect(page.locator('.dlq-count[data-source="hubspot"]')).to_have_text("1")

            anonymous = browser.new_context().new_page()
            with (
                anonymous.expect_response(f"{url}/ui/") as challenged,
                pytest.raises(sync_api.Error, match="ERR_INVALID_AUTH_CREDENTIALS"),
            ):
                anonymous.goto(f"{url}/ui/")  # headless Chromium has no login prompt: it gives up
            assert challenged.value.status == 401
            assert challenged.value.headers["www-authenticate"].startswith("Basic")
            anonymous.context.close()

            evil = _evil_site(url)
            try:
                before = deployment.runtime.ledger.run_entries(1)
                with page.expect_response(lambda r: "/ui/actions/" in r.url and r.status != 401) as refused:
                    page.goto(evil.url)
                    page.click("#go")
                assert refused.value.status == 403
                assert "refused" in page.content()
                assert deployment.runtime.ledger.run_entries(1) == before  # no replay ran
            finally:
                evil.stop()
        finally:
            browser.close()


def test_the_page_reads_redis_only(deployment: Deployment) -> None:
    """Every page, read with the login, costs no request to any stand-in (PostHog or a CRM)."""
    http = {
        name: httpx.Client(base_url=deployment.stack.url(name), verify=str(deployment.stack.ca_file))
        for name in ("posthog", *SOURCES)
    }
    try:
        for client in http.values():
            client.post("/_sandbox/stats/reset").raise_for_status()
        auth = ("ops", PASSWORD)
        run_ids = [run_id for run_id, _ in deployment.runtime.ledger.run_entries(20)]
        account_ids = deployment.runtime.ledger.account_ids()[:5]
        paths = [
            "/ui/",
            "/ui/dlq",
            "/ui/dry-runs",
            "/ui/api/status",
            *(f"/ui/runs/{r}" for r in run_ids),
            "/ui/accounts?search=a",
            "/ui/accounts?search=cus_",
            *(f"/ui/accounts/{a}" for a in account_ids),
        ]
        for path in paths:
            assert httpx.get(f"{deployment.ui.url}{path}", auth=auth).status_code == 200, path
        served = {name: client.get("/_sandbox/stats").json()["total"] for name, client in http.items()}
    finally:
        for client in http.values():
            client.close()
    assert len(account_ids) == 5 and len(paths) > 12 and served == dict.fromkeys(("posthog", *SOURCES), 0)
