"""Scenario 8: webhook edits while a backfill saturates PostHog's budget (the realtime lane, issue 20).

One ``crmsync worker`` at its default layout (two bulk pool processes and its realtime node), the PostHog stand-in
throttled (8/1 as in the issue, or PostHog's 480/60 and 4800/3600 ten times faster as in scenario 7), a full sync
of every CRM enqueued. Once its chunks are writing, Stripe-only customers are renamed one every ``pace_s`` seconds (the
admin route, so the stand-in stores the real ``customer.updated`` event) and each event is delivered signed to the
webhook receiver. Latency per edit: from its delivery to the stand-in answering the PostHog write that carries the
new name (the stand-in's own request log, ``bench.harness.Recorder``: no polling of PostHog, which would spend the
budget being measured). Also counted: the PostHog requests between a delivery and its write.
"""

from __future__ import annotations

import json
import time
import uuid

import httpx

from bench.harness import Env, RecordedRequest
from bench.scenarios import Measurement, _percentile, _stripe_signature
from sandbox.stack import STRIPE_KEY, STRIPE_WEBHOOK_SECRET
from sandbox.stripe.seed import customer_id
from workers.serving import ServerThread

WRITES = ("POST", "PATCH")


def _customers(records: int, n: int) -> list[str]:
    """``n`` Stripe-only customers (identities no other CRM holds, so Stripe's name is the one PostHog shows, as in
    scenario 4), with an external id, spread over that range."""
    start, stop = records + records // 3, records + 2 * records // 3
    identities = [i for i in range(start, stop) if i % 5 != 4]
    step = max(1, len(identities) // n)
    return [customer_id(i) for i in identities[::step][:n]]


def _event_for(env: Env, name: str) -> bytes:
    """The ``customer.updated`` event the stand-in stored for the rename to ``name``, as Stripe would post it."""
    assert env.http is not None
    headers = {"Authorization": f"Bearer {STRIPE_KEY}"}
    params: dict[str, str | int] = {"type": "customer.updated", "limit": 20}
    page = env.http.get(f"{env.url('stripe')}/v1/events", params=params, headers=headers).json()
    event = next(e for e in page["data"] if e["data"]["object"].get("name") == name)
    return json.dumps(event).encode()


def _write_carrying(requests: list[RecordedRequest], start: int, needle: bytes) -> int | None:
    for index in range(start, len(requests)):
        request = requests[index]
        if request.method in WRITES and needle in request.body:
            return index
    return None


def webhooks_under_backfill(
    env: Env, edits: int = 20, pace_s: float = 2.0, label: str = "8", timeout_s: float = 1800
) -> Measurement:
    """See the module docstring; waits for the backfill to finish too (its wall time is reported)."""
    from sync.plan import PlanStore
    from workers.tasks import sync_all
    from workers.webhooks import create_webhook_app

    assert env.http is not None and env.runtime is not None and env.stack is not None
    posthog = env.recorders["posthog"]
    customers = _customers(env.records, edits)
    receiver = ServerThread(create_webhook_app(env.runtime), port=env.stack.webhook_port).start()
    posthog.requests.clear()
    posthog.on = True
    before = env.counters()
    started = time.monotonic()
    delivered: list[tuple[float, int, bytes]] = []  # (when, request count then, the new name)
    statuses: dict[int, int] = {}
    try:
        sync_all.apply_async((), {"mode": "full"}, queue="bulk")
        deadline = time.monotonic() + timeout_s
        while sum(1 for r in list(posthog.requests) if r.method in WRITES) < 16:  # the backfill is writing
            if time.monotonic() > deadline:
                raise RuntimeError("the backfill did not start writing")
            time.sleep(0.05)
        marker = uuid.uuid4().hex[:6]
        with httpx.Client(timeout=30) as client:
            for n, customer in enumerate(customers):
                name = f"Lane {marker} {n} {customer}"
                rename = env.http.post(f"{env.url('stripe')}/_sandbox/customers/{customer}", json={"name": name})
                rename.raise_for_status()
                body = _event_for(env, name)
                at, count = time.monotonic(), len(posthog.requests)
                response = client.post(
                    f"{env.stack.webhooks_url}/webhooks/stripe",
                    content=body,
                    headers={"Stripe-Signature": _stripe_signature(body, STRIPE_WEBHOOK_SECRET)},
                )
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                delivered.append((at, count, json.dumps(name)[1:-1].encode()))
                time.sleep(max(0.0, at + pace_s - time.monotonic()))
        latencies: list[float] = []
        between: list[int] = []
        deadline = min(deadline, time.monotonic() + 600)  # a write that never comes is reported as not reached
        for at, count, needle in delivered:
            while (index := _write_carrying(posthog.requests, count, needle)) is None:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            if index is not None:
                latencies.append(posthog.requests[index].at - at)
                between.append(index - count)
        while any(True for _ in PlanStore.live(env.runtime.ledger)):  # the backfill's end, for its wall time
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        wall = time.monotonic() - started
    finally:
        posthog.on = False
        receiver.stop()
    budget = env.runtime.posthog_budget
    windows = [str(w) for w in budget.windows] if budget is not None else []
    return Measurement(
        scenario=label,
        engine="crmsync",
        workers=env.workers,
        wall_s=wall,
        records=len(delivered),
        changed=len(delivered),
        counters=env.counters().delta(before),
        peak_rss_kib=env.peak_rss_kib(),
        extra={
            "lane": {
                "posthog_throttle": windows,
                "edits": len(delivered),
                "reached_posthog": len(latencies),
                "pace_s": pace_s,
                "coalesce_s": env.coalesce_s,
                "delivery_statuses": {str(k): v for k, v in sorted(statuses.items())},
                "latency_s": {
                    "p50": round(_percentile(latencies, 50), 3),
                    "p99": round(_percentile(latencies, 99), 3),
                    "max": round(max(latencies), 3) if latencies else None,
                },
                "posthog_requests_between": {
                    "p50": _percentile([float(b) for b in between], 50) if between else None,
                    "max": max(between) if between else None,
                },
                "backfill_wall_s": round(wall, 1),
            }
        },
    )
