"""The webhook receiver (FastAPI): verify on the raw body, dedupe, coalesce, enqueue, answer at once.

Routes:
- ``POST /webhooks/<source>``: a vendor's signed deliveries (HubSpot, Stripe).
- ``POST /webhooks/<source>/<token>``: deliveries whose secret is the URL (Salesforce Outbound Messages).
  Each is answered with what the connector's ``webhook_ack`` says the vendor expects (Salesforce's SOAP ``Ack``),
  or a small JSON; the receiver has no vendor branch.
- ``GET /healthz`` (alive), ``GET /readyz`` (Redis reachable), ``GET /metrics`` (Prometheus).

No PostHog or CRM call happens inline: new events put their record ids in a Redis set per (source, object), and
the first event of a window schedules one ``crmsync.refresh`` on the ``realtime`` queue ``coalesce_s`` later, which
takes every id gathered by then. Replayed deliveries (same event id) are dropped by the ledger (``SET NX``).

What a stranger can do (docs/reliability.md, "The webhook receiver's guarantees"):
- Nothing a request carries becomes a Redis key, field or metric label before it is verified: an unknown or
  disabled source is counted under the one label ``unknown``; after verification only ids that passed the
  connector's per-vendor check and ``SAFE_ID`` are written.
- The body is read under a size cap (413) and a time bound (``webhooks.body_timeout_s``, then 408 and the
  connection closes); a bad ``Content-Length`` is a 400. Every malformed input is a 400 or 401, never a 500.
- Blocking work (Redis, signature checks, XML and JSON parsing) runs in a worker thread, never on the event loop,
  so ``/healthz`` answers while a delivery is being checked.
- The connectors of every enabled source are built (and so their config validated) when the app is created.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
from collections import defaultdict
from collections.abc import Callable

import redis
import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from sync.connector import Connector, MalformedWebhook, WebhookEvent, WebhookRejected, WebhookRequest
from sync.errors import ConfigError
from workers.config import WebhookBlock
from workers.logs import redact
from workers.metrics import RedisMetricsCollector, record_webhook
from workers.runtime import Runtime

Enqueue = Callable[[str, str, float], None]
"""Schedule one coalesced refresh: (source, object, countdown seconds)."""

UNKNOWN_SOURCE = "unknown"
"""The one metric label of every request to a source that is not configured and enabled."""
SAFE_ID = re.compile(r"[A-Za-z0-9_.:@-]{1,200}")
"""What a record id or event id must look like to become part of a Redis key or set member (after verification
and the connector's own per-vendor check): short, ASCII, no separators a key scheme could trip on."""
REFRESH_TASK = "crmsync.refresh"
"""The task a window of webhook events schedules (``workers.tasks.refresh``)."""
_CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")


class BodyTooLarge(Exception):
    pass


class BadContentLength(Exception):
    pass


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an interface to bind, or a URL's host) is this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_public_url(settings: WebhookBlock, bind_host: str) -> str:
    """Start-up check of ``webhooks serve``: the URL deliveries are verified against, said in one line.

    HubSpot signs the URL it posted to. Without ``webhooks.public_url`` the receiver can only rebuild it from the
    request, whose ``Host`` header the client chooses: acceptable on loopback (the sandbox, a local proxy), refused
    (``ConfigError`` naming the key) on any other interface."""
    if settings.public_url:
        return f"verifying signed URLs against webhooks.public_url {settings.public_url}"
    if not is_loopback(bind_host):
        raise ConfigError(
            "webhooks.public_url",
            f"required when the receiver listens on {bind_host} (not loopback): set the public base URL the CRMs "
            "post to, so signatures are not checked against a Host header the client chose",
        )
    return "no webhooks.public_url: signed URLs are rebuilt from the request (loopback only)"


def celery_enqueue(source: str, obj: str, countdown: float) -> None:
    """Send ``crmsync.refresh`` by its name (``workers.tasks``): the receiver loads no task code."""
    from workers.celery_app import app

    app.send_task(REFRESH_TASK, args=(source, obj), countdown=countdown, queue="realtime")


async def _read_capped(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not _CONTENT_LENGTH.fullmatch(declared.strip()):
            raise BadContentLength
        if int(declared) > limit:
            raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def create_webhook_app(runtime: Runtime, enqueue: Enqueue = celery_enqueue) -> FastAPI:
    """The receiver for one runtime (one config, one Redis).

    Builds the connector of every enabled source first: a bad connector config raises ``ConfigError`` naming the
    key here, at start-up, instead of turning that source's deliveries into 404s later."""
    runtime.check_sources()
    if enqueue is celery_enqueue:
        from workers.celery_app import configure_for

        # enqueue on this runtime's broker, whatever the process did before
        configure_for(runtime.config)
    app = FastAPI(title="crmsync webhooks", docs_url=None, redoc_url=None)
    settings = runtime.config.webhooks
    ns, keys = runtime.ledger.ns, runtime.ledger.keys
    enabled = frozenset(runtime.config.enabled_sources())
    registry = CollectorRegistry()
    registry.register(RedisMetricsCollector(runtime.redis, ns, runtime.posthog_budget))
    log = structlog.get_logger("crmsync.webhooks")

    def url_of(request: Request) -> str:
        if settings.public_url:
            query = f"?{request.url.query}" if request.url.query else ""
            return settings.public_url.rstrip("/") + request.url.path + query
        return str(request.url)

    def count(source: str, outcome: str, n: int = 1) -> None:
        record_webhook(runtime.redis, ns, source, outcome, n)

    def schedule(source: str, events: list[WebhookEvent]) -> int:
        fresh = runtime.ledger.first_sightings(source, [e.event_id for e in events], settings.event_ttl_s)
        by_object: dict[str, set[str]] = defaultdict(set)
        for event, is_new in zip(events, fresh, strict=True):
            if is_new:
                by_object[event.object].add(event.id)
        for obj, ids in by_object.items():
            pipe = runtime.redis.pipeline(transaction=False)
            pipe.sadd(keys.pending(source, obj), *sorted(ids))
            scheduled = keys.pending_scheduled(source, obj)
            pipe.set(scheduled, "1", nx=True, px=max(1, int(settings.coalesce_s * 1000)))
            _, first = pipe.execute()
            if first:
                enqueue(source, obj, settings.coalesce_s)
        return sum(fresh)

    def check(source: str, connector: Connector, delivery: WebhookRequest) -> tuple[int, int] | Response:
        """Verify, parse, dedupe and schedule one delivery (blocking: runs in a worker thread)."""
        try:
            connector.verify_webhook(delivery)
        except WebhookRejected as exc:
            count(source, "rejected")
            log.warning("webhook rejected", source=source, reason=redact(str(exc))[:200])
            return JSONResponse({"error": "rejected"}, status_code=401)
        try:
            events = connector.parse_webhook(delivery)
            unsafe = next((e for e in events if not (SAFE_ID.fullmatch(e.id) and SAFE_ID.fullmatch(e.event_id))), None)
            if unsafe is not None:
                raise MalformedWebhook(f"an event names a record or event id crmsync does not accept ({unsafe.object})")
        except MalformedWebhook as exc:
            count(source, "malformed")
            log.warning("webhook malformed", source=source, reason=redact(str(exc))[:200])
            return JSONResponse({"error": "malformed body"}, status_code=400)
        new = schedule(source, events)
        count(source, "accepted")
        if len(events) - new:
            count(source, "duplicate_events", len(events) - new)
        log.info("webhook accepted", source=source, events=len(events), new=new)
        return len(events), new

    async def refuse(source: str, outcome: str, status: int, error: str) -> Response:
        with contextlib.suppress(redis.RedisError):  # Redis down: the refusal stands, uncounted (not a 500)
            await run_in_threadpool(count, source, outcome)
        log.warning("webhook refused", source=source, outcome=outcome)
        return JSONResponse({"error": error}, status_code=status)

    async def receive(
        source: str, connector: Connector, request: Request, path_params: dict[str, str]
    ) -> tuple[int, int] | Response:
        try:
            async with asyncio.timeout(settings.body_timeout_s):
                body = await _read_capped(request, settings.max_body_bytes)
        except BodyTooLarge:
            return await refuse(source, "too_large", 413, "body too large")
        except BadContentLength:
            return await refuse(source, "malformed", 400, "bad Content-Length")
        except TimeoutError:
            return await refuse(source, "body_timeout", 408, "body not received in time")
        delivery = WebhookRequest(request.method, url_of(request), dict(request.headers), body, path_params)
        try:
            return await run_in_threadpool(check, source, connector, delivery)
        except redis.RedisError as exc:  # the ledger is down: the CRM should deliver again later
            log.error("webhook not recorded: Redis unavailable", source=source, error=type(exc).__name__)
            return JSONResponse({"error": "temporarily unavailable"}, status_code=503)

    async def accepted(source: str, request: Request, path_params: dict[str, str]) -> Response:
        if source not in enabled:
            return await refuse(UNKNOWN_SOURCE, "unknown_source", 404, "unknown or disabled source")
        connector = runtime.connector(source)  # once per delivery: verified, parsed and acknowledged by it
        result = await receive(source, connector, request, path_params)
        if isinstance(result, Response):
            return result
        ack = connector.webhook_ack()  # the answer the vendor expects, if it expects one
        if ack is not None:
            return Response(ack.body, media_type=ack.media_type)
        return JSONResponse({"received": result[0], "new": result[1]})

    @app.post("/webhooks/{source}")
    async def vendor_webhook(source: str, request: Request) -> Response:
        return await accepted(source, request, {})

    @app.post("/webhooks/{source}/{token}")
    async def token_webhook(source: str, token: str, request: Request) -> Response:
        """Vendors whose deliveries carry their secret in the URL (Salesforce Outbound Messages)."""
        return await accepted(source, request, {"token": token})

    @app.get("/healthz")
    def healthz() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/readyz")
    def readyz() -> Response:
        try:
            runtime.redis.ping()
        except redis.RedisError:
            return JSONResponse({"ok": False, "redis": "unreachable"}, status_code=503)
        return JSONResponse({"ok": True})

    @app.get("/metrics")
    def metrics() -> Response:
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
