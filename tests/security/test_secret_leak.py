"""No credential ever shows: not in a log line, run report, dead-letter entry, exception text or ``/metrics``.

Every credential of the stack (``sandbox.stack.Credentials``) is a long string unique to this test run. The test
does what a deployment does with them: a full sync with PostHog failing 30% of writes (so records are parked in
the dead-letter stream, with their reasons, and replayed), webhook traffic from the CRM stand-ins through the real
receiver (plus rejected forgeries) and the refreshes it schedules, ``/metrics``; then a run of each source with a
wrong credential (itself a unique string), and a PostHog client with a wrong key, so that authentication failures
produce their error texts. Logs are configured as the worker configures them (``configure_logging`` after
``remember_secrets``, JSON at DEBUG; the standard library's loggers at INFO to stderr) and captured at the file
descriptor level. Each secret, right and wrong, is then looked for in everything collected.
"""

from __future__ import annotations

import json
import logging
import sys
import uuid
from typing import Any

import httpx
import pytest
import structlog

from sandbox.stack import Credentials, SandboxStack
from sync.errors import CrmsyncError
from sync.ledger import delete_keys
from tests.faults.harness import (
    FAST_POSTHOG_RETRIES,
    REDIS_URL,
    SOURCES,
    Deployment,
    edit_targets,
    rename,
    replay_all,
    stack_config,
    sync_all,
)
from workers.config import parse_config
from workers.logs import configure_logging, remember_secrets, secrets_of
from workers.runtime import Runtime, set_runtime
from workers.serving import ServerThread
from workers.webhooks import create_webhook_app

TAG = uuid.uuid4().hex


def _secret(label: str) -> str:
    return f"{label}-LEAKCHECK-{TAG}-{label[::-1]}"


CREDENTIALS = Credentials(
    posthog_key=f"phx_{_secret('posthog')}",
    hubspot_token=f"pat-{_secret('hubspot')}",
    hubspot_app_secret=_secret("hubspot-app"),
    stripe_key=f"sk_test_{_secret('stripe')}",
    stripe_webhook_secret=f"whsec_{_secret('stripe-hook')}",
    salesforce_webhook_token=_secret("sfhook"),
    salesforce_password=_secret("sfpassword"),
    salesforce_client_secret=_secret("sfclient"),
)
SECRETS = {
    "posthog key": CREDENTIALS.posthog_key,
    "hubspot token": CREDENTIALS.hubspot_token,
    "hubspot app secret": CREDENTIALS.hubspot_app_secret,
    "stripe key": CREDENTIALS.stripe_key,
    "stripe webhook secret": CREDENTIALS.stripe_webhook_secret,
    "salesforce webhook token": CREDENTIALS.salesforce_webhook_token,
    "salesforce password": CREDENTIALS.salesforce_password,
    "salesforce client secret": CREDENTIALS.salesforce_client_secret,
}
WRONG = {
    "wrong posthog key": f"phx_{_secret('wrong-posthog')}",
    "wrong hubspot token": f"pat-{_secret('wrong-hubspot')}",
    "wrong stripe key": f"sk_test_{_secret('wrong-stripe')}",
    "wrong salesforce password": _secret("wrong-sfpassword"),
}


class _NotToReceiver(logging.Filter):
    """Drops httpx's request lines for deliveries *to* the receiver: the stand-ins (the CRMs' side) and this
    test send those, in this process; crmsync never requests a ``/webhooks/`` URL. A Salesforce path token
    appears in the sender's logs (and a proxy's access log) by design; what matters is that crmsync's do not."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "httpx" and "/webhooks/" in record.getMessage())


def _wrong_config(raw: dict[str, Any]) -> dict[str, Any]:
    bad: dict[str, Any] = json.loads(json.dumps(raw))
    bad["posthog"]["personal_api_key"] = WRONG["wrong posthog key"]
    bad["sources"]["hubspot"]["config"]["access_token"] = WRONG["wrong hubspot token"]
    bad["sources"]["stripe"]["config"]["api_key"] = WRONG["wrong stripe key"]
    bad["sources"]["salesforce"]["config"]["auth"]["password"] = WRONG["wrong salesforce password"]
    return bad


@pytest.mark.timeout(150)
def test_no_secret_appears_anywhere(capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = f"crmsync-leak-{TAG[:10]}"
    monkeypatch.setenv("POSTHOG_PERSONAL_API_KEY", CREDENTIALS.posthog_key)
    for key, value in FAST_POSTHOG_RETRIES.items():
        monkeypatch.setenv(key, value)
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_NotToReceiver())
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    collected: dict[str, str] = {}
    errors: list[str] = []
    stack = SandboxStack(seed=9, redis_url=REDIS_URL, webhooks=False, ledger_prefix=prefix, credentials=CREDENTIALS)
    stack.start()
    runtime = Runtime(parse_config(stack_config(stack)))
    dep = Deployment(stack, runtime, prefix)
    receiver: ServerThread | None = None
    try:
        remember_secrets([*secrets_of(runtime.config), runtime.settings.personal_api_key.get_secret_value()])
        configure_logging("DEBUG", json=True)
        set_runtime(runtime)

        # a full sync with PostHog failing writes: records parked with reasons, then replayed
        dep.faults("posthog", rate_5xx=0.3, seed=3)
        sync_all(runtime)
        parked = runtime.ledger.dead_letters(1000)
        dep.faults("posthog")
        replay_all(runtime)

        # webhook traffic: real signed deliveries, their refreshes, forgeries, /metrics
        from workers.tasks import refresh

        enqueued: list[tuple[str, str]] = []
        receiver = ServerThread(
            create_webhook_app(runtime, enqueue=lambda s, o, c: enqueued.append((s, o))), port=stack.webhook_port
        ).start()
        stack.wire_webhooks()
        rename(dep, edit_targets(dep), 1)
        with httpx.Client(timeout=30, verify=str(stack.ca_file)) as http:
            http.post(f"{stack.url('hubspot')}/_sandbox/webhook/drain").raise_for_status()
            http.post(f"{stack.url('stripe')}/_sandbox/webhooks/drain", params={"timeout_s": 10}).raise_for_status()
            for _ in range(100):
                if {s for s, _ in enqueued} >= set(SOURCES):
                    break
                http.get(f"{stack.url('salesforce')}/_sandbox/outbound")
            forged = [
                http.post(
                    f"{stack.webhooks_url}/webhooks/hubspot", content=b"[]", headers={"X-HubSpot-Signature-v3": "x"}
                ),
                http.post(
                    f"{stack.webhooks_url}/webhooks/stripe", content=b"{}", headers={"Stripe-Signature": "t=1,v1=x"}
                ),
                http.post(
                    f"{stack.webhooks_url}/webhooks/salesforce/{WRONG['wrong salesforce password']}", content=b"<x/>"
                ),
            ]
            refreshed = [r for s, o in sorted(set(enqueued)) for r in refresh.run(s, o)["runs"]]
            collected["metrics"] = http.get(f"{stack.webhooks_url}/metrics").text

        # authentication failures: runs of each source with a wrong credential, a PostHog client with a wrong key
        wrong = Runtime(parse_config(_wrong_config(stack_config(stack))))
        try:
            for source in SOURCES:
                for stream in wrong.streams(source) if source != "salesforce" else ["Account"]:
                    try:
                        report = runtime.engine.run(wrong.connector(source), stream, "full")
                        errors.append(f"{report.reason} {report.errors}")
                    except CrmsyncError as exc:
                        errors += [str(exc), repr(exc)]
        finally:
            wrong.close()
        monkeypatch.setenv("POSTHOG_PERSONAL_API_KEY", WRONG["wrong posthog key"])
        bad_posthog = Runtime(parse_config(_wrong_config(stack_config(stack))))
        try:
            try:
                list(bad_posthog.posthog.iter_accounts())
            except CrmsyncError as exc:
                errors += [str(exc), repr(exc)]
            try:
                bad_posthog.check_posthog_key()
            except CrmsyncError as exc:
                errors += [str(exc), repr(exc)]
        finally:
            bad_posthog.close()

        collected["run reports"] = json.dumps(runtime.ledger.recent_runs(1000))
        collected["dead letters"] = json.dumps(
            [e for _, e in parked] + [e for _, e in runtime.ledger.dead_letters(1000)]
        )
    finally:
        structlog.reset_defaults()  # the configured logger holds the captured stderr, closed after this test
        set_runtime(None)
        if receiver is not None:
            receiver.stop()
        root.removeHandler(handler)
        root.setLevel(old_level)
        delete_keys(runtime.redis, f"{prefix}:*")
        runtime.close()
        stack.stop()
    out, err = capfd.readouterr()
    collected["logs"] = out + err
    collected["exceptions"] = "\n".join(errors)

    assert refreshed and all(r.status_code == 401 for r in forged)
    assert len(errors) >= 4  # every source and PostHog failed authentication with an error text
    assert collected["logs"].count("\n") >= 10  # the logs were captured
    leaks = [
        f"{label} in {where}"
        for label, secret in {**SECRETS, **WRONG}.items()
        for where, text in collected.items()
        if secret in text or secret.split(TAG)[0] + TAG in text
    ]
    assert leaks == [], [line[:300] for line in collected["logs"].splitlines() if TAG in line][:8]
