"""Duplicated and reordered webhooks, end to end: the final state is that of applying each change once.

Real deliveries: after a first full sync, each CRM stand-in's webhooks are pointed at a recorder on the receiver's
port, and two records per CRM are renamed twice (so an older event can arrive after a newer one). The recorded
deliveries, signed by the stand-ins, are then sent three times each, shuffled (seeded), to the real receiver
(``create_webhook_app``) on the same port, so that HubSpot's v3 signature over the URL still holds. Refreshes are
collected and run in-process (``workers.tasks.refresh.run``: fetch the current state, never a delta), then the
outbound pass. The result must equal a reference stack's state after the same edits and one plain full sync.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.faults.harness import SOURCES, deployment, diff, edit_targets, final_state, rename, sync_all
from workers.runtime import set_runtime
from workers.serving import ServerThread
from workers.webhooks import create_webhook_app

SEED = 12
COPIES = 3
KEPT_HEADERS = ("content-type", "soapaction", "stripe-signature")


@dataclass
class Recorder:
    """An ASGI app that answers every POST with success and keeps (path, headers, body)."""

    deliveries: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def record(request: Request) -> Response:
            headers = {k: v for k, v in request.headers.items() if k in KEPT_HEADERS or k.startswith("x-hubspot-")}
            self.deliveries.append((request.url.path, headers, await request.body()))
            if request.url.path.startswith("/webhooks/salesforce/"):
                from sandbox.salesforce.outbound import ack_response

                return Response(ack_response(), media_type="text/xml")
            return Response("{}", media_type="application/json")

        return Starlette(routes=[Route("/{path:path}", record, methods=["POST"])])


def _wait_for_deliveries(recorder: Recorder, minimum: int, timeout_s: float = 60) -> None:
    """Until every vendor delivered something and nothing new arrived for a second."""
    deadline = time.monotonic() + timeout_s
    seen, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        paths = {p.split("/")[2] for p, _, _ in recorder.deliveries}
        if len(recorder.deliveries) != seen:
            seen, quiet_since = len(recorder.deliveries), time.monotonic()
        elif paths >= set(SOURCES) and seen >= minimum and time.monotonic() - quiet_since > 1.0:
            return
        time.sleep(0.1)
    raise AssertionError(f"deliveries: {[p for p, _, _ in recorder.deliveries]}")


@pytest.mark.timeout(120)
def test_duplicated_and_reordered_webhooks_apply_each_change_once() -> None:
    with deployment(SEED) as ref:
        sync_all(ref.runtime)
        targets = edit_targets(ref)
        rename(ref, targets, 1)
        rename(ref, targets, 2)
        sync_all(ref.runtime)
        expected = final_state(ref.runtime)

    with deployment(SEED) as dep:
        sync_all(dep.runtime)
        assert edit_targets(dep) == targets
        recorder = Recorder()
        server = ServerThread(recorder.app(), port=dep.stack.webhook_port).start()
        try:
            dep.stack.wire_webhooks()
            rename(dep, targets, 1)
            rename(dep, targets, 2)
            _wait_for_deliveries(recorder, minimum=3)
        finally:
            server.stop()

        enqueued: list[tuple[str, str]] = []
        receiver = create_webhook_app(dep.runtime, enqueue=lambda s, o, c: enqueued.append((s, o)))
        server = ServerThread(receiver, port=dep.stack.webhook_port).start()
        replays = [d for d in recorder.deliveries for _ in range(COPIES)]
        random.Random(5).shuffle(replays)
        try:
            with httpx.Client(base_url=dep.stack.webhooks_url, timeout=30) as http:
                answers = [http.post(path, content=body, headers=headers) for path, headers, body in replays]
        finally:
            server.stop()
        json_answers: list[dict[str, Any]] = [a.json() for a in answers if a.headers["content-type"].startswith("app")]

        set_runtime(dep.runtime)
        try:
            from workers.tasks import refresh

            refreshed = [r for s, o in sorted(set(enqueued)) for r in refresh.run(s, o)["runs"]]
        finally:
            set_runtime(None)
        for source in SOURCES:
            for stream in dep.runtime.streams(source):
                dep.runtime.engine.push_back_pass(dep.runtime.connector(source), stream)
        faulty = final_state(dep.runtime)
        again = sync_all(dep.runtime)

    assert [a.status_code for a in answers] == [200] * len(replays)
    received = sum(a["received"] for a in json_answers)
    assert sum(a["new"] for a in json_answers) * COPIES == received  # each event scheduled once, copies dropped
    assert {s for s, _ in enqueued} == set(SOURCES)
    assert refreshed and all(r["status"] == "succeeded" and not r["counts"]["failed"] for r in refreshed)
    assert faulty == expected, diff(expected, faulty)
    assert sum(r.counts["created"] + r.counts["updated"] + r.counts["pushed"] for r in again) == 0
