"""The five scenarios, run through crmsync's real Celery workers (``Env``), each measured the same way.

1. Initial full sync of all three CRMs.
2. Re-sync with nothing changed (inbound incremental + the outbound pass).
3. 1% of the records of each CRM and 1% of PostHog's accounts changed, then inbound incremental + outbound.
4. Webhook burst: signed Stripe deliveries, 30% duplicates, shuffled; delivery → PostHog state latencies.
5. Scenario 1 with 1, 2 and 4 worker processes (``bench.__main__`` runs it on fresh environments).
6. A webhook trickle: one Stripe event a second.
7. Scenario 1 against PostHog throttled like PostHog, time scaled down (48/6 and 480/360): nothing parked or
   lost, and how much of the budget is used while work waits.

Edits are made through the stand-ins' admin routes (as a person in the vendor's UI would) before the counters are
read, so the measured requests are crmsync's own.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.harness import CRMS, STANDINS, Counters, Env
from bench.report import most_requests, seconds_for
from sandbox.identities import sales_rep_email
from sandbox.stack import STRIPE_KEY, STRIPE_WEBHOOK_SECRET
from sync.posthog import AccountFilter
from sync.posthog.models import Account
from sync.posthog.relationships import RelationshipApi
from workers.serving import ServerThread

HUBSPOT_OWNER_BASE = 170_000_000
LINKS = {"salesforce": "sfdc_id", "hubspot": "hubspot_deal_id", "stripe": "stripe_customer_id"}


@dataclass
class Measurement:
    """What one scenario cost: wall time, records, requests per stand-in, Redis calls, worker peak memory."""

    scenario: str
    engine: str
    workers: int
    wall_s: float
    records: int
    changed: int
    counters: Counters
    peak_rss_kib: int
    run_counts: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        c = self.counters
        requests = {
            name: {
                "total": c.total(name),
                "writes": c.writes(name),
                "by_method": c.by_method(name),
                "by_route": c.by_route(name),
            }
            for name in STANDINS
        }
        total = sum(c.total(n) for n in STANDINS)
        redis_total = c.redis_total()
        return {
            "scenario": self.scenario,
            "engine": self.engine,
            "workers": self.workers,
            "wall_s": round(self.wall_s, 3),
            "records": self.records,
            "records_per_s": round(self.records / self.wall_s, 1) if self.wall_s else None,
            "changed_records": self.changed,
            "requests": requests,
            "posthog_requests": c.total("posthog"),
            "posthog_writes": c.writes("posthog"),
            "crm_requests": sum(c.total(n) for n in CRMS),
            "crm_writes": sum(c.writes(n) for n in CRMS),
            "requests_per_changed_record": round(total / self.changed, 2) if self.changed else None,
            "redis_commands": redis_total,
            "redis_commands_per_record": round(redis_total / self.records, 2) if self.records else None,
            "redis_by_command": dict(sorted(c.redis_calls.items(), key=lambda kv: -kv[1])),
            "peak_worker_rss_mib": round(self.peak_rss_kib / 1024, 1) if self.peak_rss_kib else None,
            "run_counts": self.run_counts,
            **self.extra,
        }


def _sum_counts(runs: list[dict[str, Any]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for run in runs:
        if run.get("status") not in (None, "succeeded"):
            total["runs_not_succeeded"] = total.get("runs_not_succeeded", 0) + 1
        for key, n in run.get("counts", {}).items():
            total[key] = total.get(key, 0) + int(n)
    return total


def run_sync(env: Env, full: bool, outbound: bool, timeout_s: float = 7200) -> tuple[list[dict[str, Any]], float]:
    """Enqueue one ``sync_source`` per CRM (and then ``sync_outbound``) on the workers; (run reports, seconds)."""
    from workers.cli_sync import run_enqueued
    from workers.tasks import sync_outbound

    assert env.runtime is not None
    started = time.monotonic()
    runs = run_enqueued(env.runtime, list(CRMS), full=full, dry_run=False, quiet=True)
    if outbound:
        result = sync_outbound.apply_async(queue="bulk").get(timeout=timeout_s)
        runs.extend(result["runs"])
    return runs, time.monotonic() - started


def measure_sync(env: Env, scenario: str, full: bool, outbound: bool, changed: int | None = None) -> Measurement:
    """Run one sync on the workers between two counter snapshots."""
    env.reset_peak_rss()
    for recorder in env.recorders.values():
        if scenario == "1":
            recorder.requests.clear()
        recorder.on = scenario == "1"
    before = env.counters()
    runs, wall = run_sync(env, full, outbound)
    delta = env.counters().delta(before)
    for recorder in env.recorders.values():
        recorder.on = False
    counts = _sum_counts(runs)
    inbound_seen = sum(int(r.get("counts", {}).get("seen", 0)) for r in runs if r.get("mode") != "outbound")
    return Measurement(
        scenario=scenario,
        engine="crmsync",
        workers=env.workers,
        wall_s=wall,
        records=inbound_seen,
        changed=changed if changed is not None else inbound_seen,
        counters=delta,
        peak_rss_kib=env.peak_rss_kib(),
        run_counts=counts,
    )


def throttled_sync(env: Env, sample_s: float = 0.25) -> Measurement:
    """Scenario 7: scenario 1 against a PostHog stand-in throttled like PostHog with time scaled down (``Env``'s
    ``posthog_throttle``, e.g. 48/6 for 480/60). Sampled every ``sample_s`` while it runs: the accounts still owed
    by plans being written (staging reads the CRMs, not PostHog) and PostHog's request count. Reports what was
    parked or lost (must be 0) and how much of the budget was used while work was waiting: requests PostHog
    answered between the first and the last sample with accounts owed, over the most the windows admit in that
    time (``most_requests``)."""
    from sync.plan import PlanStore

    assert env.runtime is not None and env.http is not None and env.runtime.posthog_budget is not None
    runtime, http, budget = env.runtime, env.http, env.runtime.posthog_budget
    samples: list[tuple[float, int, int]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            owed = sum(p.accounts_left() for p in PlanStore.live(runtime.ledger) if p.chunks)  # sealed: writing
            total = int(http.get(f"{env.url('posthog')}/_sandbox/stats").json()["total"])
            samples.append((time.monotonic(), owed, total))
            stop.wait(sample_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        measurement = measure_sync(env, "7", full=True, outbound=False)
    finally:
        stop.set()
        sampler.join(timeout=10)
    waiting = [s for s in samples if s[1] > 0]
    if waiting:  # work is done once its last request is sent: a window still open after it holds no waiting work
        waiting = [s for s in waiting if s[2] < waiting[-1][2]] + [next(s for s in waiting if s[2] == waiting[-1][2])]
    utilisation = ceiling = None
    if len(waiting) >= 2:
        allowed = most_requests(budget.windows, waiting[-1][0] - waiting[0][0])
        sent = waiting[-1][2] - waiting[0][2]
        utilisation = round(sent / allowed, 3)
        # what a client that never left a slot idle would score for the same requests: its last request goes at
        # seconds_for(sent), where the windows admit most_requests(...) (a whole burst, when the work needs part)
        ceiling = round(sent / most_requests(budget.windows, seconds_for(budget.windows, sent)), 3)
    stats = http.get(f"{env.url('posthog')}/_sandbox/stats").json()
    records = runtime.ledger.record_count()
    parked = runtime.ledger.dlq_size()
    measurement.extra["throttled"] = {
        "posthog_throttle": [str(w) for w in budget.windows],
        "records_seen": measurement.records,
        "records_in_ledger": records,
        "parked": parked,
        "lost": max(0, measurement.records - records - parked),
        "posthog_429_throttled": int(stats.get("throttled", 0)),
        "budget_waits": budget.usage().waits,
        "seconds_with_work_waiting": round(waiting[-1][0] - waiting[0][0], 1) if len(waiting) >= 2 else 0.0,
        "budget_utilisation_while_waiting": utilisation,
        "budget_utilisation_ceiling": ceiling,
        "chunks_requeued": measurement.run_counts.get("throttled", 0),
    }
    return measurement


def snapshot_accounts(env: Env) -> list[Account]:
    """Every PostHog account, read once (outside any measured window)."""
    assert env.runtime is not None
    return list(env.runtime.posthog.iter_accounts(page_size=1000))


def _identity(account: Account) -> int | None:
    if account.external_id and re.fullmatch(r"acct-\d+", account.external_id):
        return int(account.external_id.split("-")[1])
    return None


@dataclass
class Edits:
    """What scenario 3 changed: CRM records per source, and PostHog accounts with the CRM records they link."""

    crm: dict[str, list[str]]
    posthog_accounts: list[str]
    posthog_links: int

    @property
    def crm_records(self) -> int:
        return sum(len(ids) for ids in self.crm.values())


def make_edits(env: Env, accounts: list[Account], records: int, tag: str) -> Edits:
    """Change 1% of each CRM's records (each in a range only that CRM holds, so the change is that CRM's to make)
    and 1% of PostHog's accounts (the PostHog-owned ``csm``, on accounts linked to all three CRMs)."""
    assert env.http is not None and env.runtime is not None
    n = records
    k = max(1, n // 100)
    only = {"salesforce": (0, n // 3), "hubspot": (n, n + n // 3), "stripe": (n + n // 3, n + 2 * n // 3)}
    by_source: dict[str, list[Account]] = {s: [] for s in CRMS}
    shared: list[Account] = []
    for account in sorted(accounts, key=lambda a: a.external_id or a.id):
        i = _identity(account)
        if i is None:
            continue
        props = account.properties
        for source, (lo, hi) in only.items():
            if lo <= i < hi and getattr(props, LINKS[source]):
                by_source[source].append(account)
        if 2 * n // 3 <= i < n and all(getattr(props, LINKS[s]) for s in CRMS):
            shared.append(account)
    http = env.http
    edits: dict[str, list[str]] = {}
    for account in by_source["salesforce"][:k]:
        sf_id = str(account.properties.sfdc_id)
        http.patch(
            f"{env.url('salesforce')}/_sandbox/sobjects/Account/{sf_id}", json={"Name": f"{account.name} {tag}"}
        ).raise_for_status()
        edits.setdefault("salesforce", []).append(sf_id)
    for account in by_source["hubspot"][:k]:
        deal = str(account.properties.hubspot_deal_id)
        current = account.properties.account_executive
        rep = int(m.group(1)) if current and (m := re.search(r"rep(\d+)@", current.email or "")) else 0
        owner = HUBSPOT_OWNER_BASE + (rep + 1) % 10
        http.patch(
            f"{env.url('hubspot')}/_sandbox/objects/deals/{deal}",
            json={"properties": {"hubspot_owner_id": str(owner)}},
        ).raise_for_status()
        edits.setdefault("hubspot", []).append(deal)
    for account in by_source["stripe"][:k]:
        customer = str(account.properties.stripe_customer_id)
        http.post(
            f"{env.url('stripe')}/_sandbox/customers/{customer}", json={"name": f"{account.name} {tag}"}
        ).raise_for_status()
        edits.setdefault("stripe", []).append(customer)
    pk = max(1, len(accounts) // 100)
    links = 0
    edited: list[str] = []
    relationships = RelationshipApi(env.runtime.posthog) if env.posthog_generation == "current" else None
    # the CSM definition as crmsync's own role writer finds or creates it (a person would create it if missing)
    csm = env.runtime.engine.roles.definition_id("csm") if relationships else ""
    for j, account in enumerate(shared[:pk]):
        if relationships:  # today's PostHog refuses role keys in properties: a person reassigns the CSM there
            held = [r.get("user") or {} for r in relationships.active(account.id) if _definition_of(r) == csm]
            holder = held[0].get("id") if held else None
            member = (int(holder) - 101 + 1) % 10 if holder else j % 10
            relationships.assign(account.id, csm, 101 + member)
        else:
            payload = account.properties.payload()
            current = account.properties.csm
            member = (current.id - 101 + 1) % 10 if current and current.id else j % 10
            payload["csm"] = {"id": 101 + member, "email": sales_rep_email(member)}
            env.runtime.posthog.update_account(account.id, properties=payload)
        edited.append(account.id)
        links += sum(1 for s in CRMS if getattr(account.properties, LINKS[s]))
    return Edits(edits, edited, links)


def _definition_of(assignment: dict[str, Any]) -> str:
    definition = assignment.get("definition")
    return str(definition.get("id") if isinstance(definition, dict) else definition)


def _stripe_signature(body: bytes, secret: str) -> str:
    ts = int(time.time())
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def webhook_burst(
    env: Env,
    accounts: list[Account],
    records: int,
    deliveries: int = 2000,
    timeout_s: float = 300,
    pace_s: float = 0.0,
    duplicates: float = 0.3,
    scenario: str = "4",
) -> Measurement:
    """Rename Stripe-only customers (admin route, so the stand-in stores real ``customer.updated`` events), then
    deliver those events signed to the receiver: ``deliveries`` POSTs, a share ``duplicates`` of them repeats, in
    shuffled order, back to back (a burst) or one every ``pace_s`` seconds (a trickle).
    Latency per customer: from the first delivery of one of its events to PostHog showing its final name."""
    from workers.webhooks import create_webhook_app

    assert env.http is not None and env.runtime is not None and env.stack is not None
    n = records
    unique = round(deliveries * (1 - duplicates))
    customers = [
        str(a.properties.stripe_customer_id)
        for a in sorted(accounts, key=lambda a: a.external_id or a.id)
        if a.properties.stripe_customer_id and (i := _identity(a)) is not None and n + n // 3 <= i < n + 2 * n // 3
    ]
    customers = customers[:unique]
    marker = f"WH{scenario}{random.Random(n).randrange(10**6):06d}"
    final: dict[str, str] = {}
    for j in range(unique):
        customer = customers[j % len(customers)]
        name = f"{marker} {customer} v{j // len(customers)}"
        env.http.post(f"{env.url('stripe')}/_sandbox/customers/{customer}", json={"name": name}).raise_for_status()
        final[customer] = name
    events: list[dict[str, Any]] = []
    after: str | None = None
    headers = {"Authorization": f"Bearer {STRIPE_KEY}"}
    while len(events) < unique:
        params: dict[str, Any] = {"type": "customer.updated", "limit": 100}
        if after:
            params["starting_after"] = after
        page = env.http.get(f"{env.url('stripe')}/v1/events", params=params, headers=headers).json()
        events.extend(e for e in page["data"] if str(e["data"]["object"].get("name", "")).startswith(marker))
        if not page.get("has_more"):
            break
        after = page["data"][-1]["id"]
    rng = random.Random(4)
    bodies = [json.dumps(e).encode() for e in events[:unique]]
    plan = bodies + [rng.choice(bodies) for _ in range(deliveries - len(bodies))]
    rng.shuffle(plan)
    receiver = ServerThread(create_webhook_app(env.runtime), port=env.stack.webhook_port).start()
    first_delivery: dict[str, float] = {}
    seen_at: dict[str, float] = {}
    statuses: dict[int, int] = {}

    def deliver() -> None:
        with httpx.Client(timeout=30) as client:
            for body in plan:
                if pace_s:
                    time.sleep(pace_s)
                customer = str(json.loads(body)["data"]["object"]["id"])
                first_delivery.setdefault(customer, time.monotonic())
                response = client.post(
                    f"{env.stack.webhooks_url if env.stack else ''}/webhooks/stripe",
                    content=body,
                    headers={"Stripe-Signature": _stripe_signature(body, STRIPE_WEBHOOK_SECRET)},
                )
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    env.reset_peak_rss()
    before = env.counters()
    polls = 0
    started = time.monotonic()
    sender = threading.Thread(target=deliver, daemon=True)
    sender.start()
    try:
        while len(seen_at) < len(final) and time.monotonic() - started < timeout_s:
            now = time.monotonic()
            polls += 1
            page = env.runtime.posthog.list_accounts(AccountFilter(search=marker), limit=len(final) + 100)
            for account in page.results:
                customer = account.properties.stripe_customer_id or ""
                if customer in final and customer not in seen_at and account.name == final[customer]:
                    seen_at[customer] = now
            time.sleep(0.05)
        wall = time.monotonic() - started
        sender.join(timeout=60)
        from workers.celery_app import app

        deadline = time.monotonic() + 30  # let the last refresh tasks finish before reading the counters
        while time.monotonic() < deadline and any((app.control.inspect(timeout=0.5).active() or {}).values()):
            time.sleep(0.2)
        delta = env.counters().delta(before)
    finally:
        receiver.stop()
    for key in list(delta.requests["posthog"]):
        if key[0] == "GET" and key[1].endswith("/accounts/"):
            delta.requests["posthog"][key] -= polls  # the bench's own polling
    latencies = [seen_at[c] - first_delivery[c] for c in seen_at if c in first_delivery]
    return Measurement(
        scenario=scenario,
        engine="crmsync",
        workers=env.workers,
        wall_s=wall,
        records=len(final),
        changed=len(final),
        counters=delta,
        peak_rss_kib=env.peak_rss_kib(),
        extra={
            "webhook": {
                "deliveries": len(plan),
                "unique_events": len(bodies),
                "duplicates": len(plan) - len(bodies),
                "customers": len(final),
                "reached_posthog": len(seen_at),
                "delivery_statuses": {str(k): v for k, v in sorted(statuses.items())},
                "latency_s": {
                    "p50": round(_percentile(latencies, 50), 3),
                    "p95": round(_percentile(latencies, 95), 3),
                    "p99": round(_percentile(latencies, 99), 3),
                    "max": round(max(latencies), 3) if latencies else None,
                },
                "pace_s": pace_s,
                "coalesce_s": env.coalesce_s,
                "poll_interval_s": 0.05,
                "bench_polls_subtracted": polls,
            }
        },
    )
