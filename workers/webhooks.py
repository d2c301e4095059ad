"""The webhook receiver (FastAPI): verify on the raw body, dedupe, coalesce, enqueue, answer at once.

Routes:
- ``POST /webhooks/hubspot``, ``POST /webhooks/stripe``: the vendor's signed deliveries.
- ``POST /webhooks/salesforce/{token}``: Salesforce Outbound Messages (the token in the path is the secret),
  answered with the SOAP ``Ack`` Salesforce expects.
- ``GET /healthz`` (alive), ``GET /readyz`` (Redis reachable), ``GET /metrics`` (Prometheus).

No PostHog or CRM call happens inline: new events put their record ids in a Redis set per (source, object), and
the first event of a window schedules one ``crmsync.refresh`` on the ``realtime`` queue ``coalesce_s`` later, which
takes every id gathered by then. Replayed deliveries (same event id) are dropped by the ledger (``SET NX``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import redis
import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from connectors.base import Connector, MalformedWebhook, WebhookEvent, WebhookRejected, WebhookRequest
from sync.errors import ConfigError
from workers.logs import redact
from workers.metrics import RedisMetricsCollector, record_webhook
from workers.runtime import Runtime
from workers.tasks import pending_key

Enqueue = Callable[[str, str, float], None]
"""Schedule one coalesced refresh: (source, object, countdown seconds)."""

SOAP_ACK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
    '<soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">'
    "<Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>"
)


class BodyTooLarge(Exception):
    pass


def celery_enqueue(source: str, obj: str, countdown: float) -> None:
    from workers.tasks import refresh

    refresh.apply_async((source, obj), countdown=countdown, queue="realtime")


async def _read_capped(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
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
    """The receiver for one runtime (one config, one Redis)."""
    if enqueue is celery_enqueue:
        from workers.celery_app import configure

        configure(runtime.config.redis_url)  # enqueue on this runtime's broker, whatever the process did before
    app = FastAPI(title="crmsync webhooks", docs_url=None, redoc_url=None)
    settings = runtime.config.webhooks
    ns = runtime.ledger.ns
    registry = CollectorRegistry()
    registry.register(RedisMetricsCollector(runtime.redis, ns, runtime.posthog_budget))
    log = structlog.get_logger("crmsync.webhooks")

    def url_of(request: Request) -> str:
        if settings.public_url:
            query = f"?{request.url.query}" if request.url.query else ""
            return settings.public_url.rstrip("/") + request.url.path + query
        return str(request.url)

    def schedule(source: str, events: list[WebhookEvent]) -> int:
        fresh = runtime.ledger.first_sightings(source, [e.event_id for e in events], settings.event_ttl_s)
        by_object: dict[str, set[str]] = defaultdict(set)
        for event, is_new in zip(events, fresh, strict=True):
            if is_new:
                by_object[event.object].add(event.id)
        for obj, ids in by_object.items():
            key = pending_key(runtime, source, obj)
            pipe = runtime.redis.pipeline(transaction=False)
            pipe.sadd(key, *sorted(ids))
            pipe.set(f"{key}:scheduled", "1", nx=True, px=max(1, int(settings.coalesce_s * 1000)))
            _, first = pipe.execute()
            if first:
                enqueue(source, obj, settings.coalesce_s)
        return sum(fresh)

    async def receive(source: str, request: Request, path_params: dict[str, str]) -> tuple[int, int] | Response:
        try:
            connector: Connector = runtime.connector(source)
        except ConfigError:
            record_webhook(runtime.redis, ns, source, "unknown_source")
            return JSONResponse({"error": "unknown or disabled source"}, status_code=404)
        try:
            body = await _read_capped(request, settings.max_body_bytes)
        except BodyTooLarge:
            record_webhook(runtime.redis, ns, source, "too_large")
            return JSONResponse({"error": "body too large"}, status_code=413)
        delivery = WebhookRequest(request.method, url_of(request), dict(request.headers), body, path_params)
        try:
            connector.verify_webhook(delivery)
        except WebhookRejected as exc:
            record_webhook(runtime.redis, ns, source, "rejected")
            log.warning("webhook rejected", source=source, reason=redact(str(exc)))
            return JSONResponse({"error": "rejected"}, status_code=401)
        try:
            events = connector.parse_webhook(delivery)
        except MalformedWebhook as exc:
            record_webhook(runtime.redis, ns, source, "malformed")
            log.warning("webhook malformed", source=source, reason=redact(str(exc))[:200])
            return JSONResponse({"error": "malformed body"}, status_code=400)
        new = schedule(source, events)
        record_webhook(runtime.redis, ns, source, "accepted")
        if len(events) - new:
            record_webhook(runtime.redis, ns, source, "duplicate_events", len(events) - new)
        log.info("webhook accepted", source=source, events=len(events), new=new)
        return len(events), new

    @app.post("/webhooks/{source}")
    async def vendor_webhook(source: str, request: Request) -> Response:
        if source == "salesforce":
            return JSONResponse({"error": "Salesforce posts to /webhooks/salesforce/<token>"}, status_code=404)
        result = await receive(source, request, {})
        if isinstance(result, Response):
            return result
        return JSONResponse({"received": result[0], "new": result[1]})

    @app.post("/webhooks/salesforce/{token}")
    async def salesforce_webhook(token: str, request: Request) -> Response:
        result = await receive("salesforce", request, {"token": token})
        if isinstance(result, Response):
            return result
        return Response(SOAP_ACK, media_type="text/xml")

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
