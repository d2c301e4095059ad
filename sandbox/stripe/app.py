"""The Stripe stand-in: a FastAPI app speaking Stripe's v1 wire format, so ``stripe.StripeClient`` runs unchanged.

Point the SDK at it with ``stripe.StripeClient("sk_test_sandbox", base_addresses={"api": url},
max_network_retries=0)``. What it serves (see ``sandbox.stripe.api``):

- ``/v1/customers``: list (newest first, ``limit`` 1-100 default 10, ``starting_after``, ``ending_before``,
  ``email``, ``created[gt|gte|lt|lte]``, ``expand[]=data.subscriptions``), create, retrieve (a deleted customer
  answers ``{"id", "object": "customer", "deleted": true}``), update (metadata merges, ``""`` deletes a key),
  delete (cancels the customer's subscriptions first);
- ``/v1/customers/search``: Stripe's query language (``email:'x'``, ``metadata['k']:'v'``, ``name~"acme"``,
  ``created>t``, ``-``, ``AND``/``OR``), ``page``/``next_page``, ``expand[]=total_count``;
- ``/v1/subscriptions``: list by ``customer`` and ``status`` (canceled hidden unless ``status=canceled|ended|all``),
  create (``customer``, ``items[n][price|quantity]``; ``sandbox.stripe.subscription_create``), retrieve, cancel
  (``DELETE``);
- ``/v1/account``: the account the key belongs to (``sandbox.stripe.account``);
- ``/v1/events``: newest first, ``created[...]``, ``type`` (``customer.*`` wildcards), ``types[]``, cursors;
  events older than the retention (30 days) are gone; retrieve by id.

Wire details: objects carry the keys of Stripe's published fixtures (``tests/sandbox/test_stripe_spec.py``);
Stripe's error bodies ``{"error": {"type", "code", "message", "param"}}``; a wrong or missing key
gets Stripe's 401; ``Idempotency-Key`` replays the saved response (``Idempotent-Replayed: true``) or answers
400 ``idempotency_error`` when reused with other parameters; every response carries ``Request-Id`` and
``Stripe-Version``; injected 429s carry ``Stripe-Should-Retry: true`` and code ``rate_limit``. Each change is
an event, delivered as a signed webhook (``Stripe-Signature: t=..,v1=..``) to the configured URL, with retries.

Admin endpoints (JSON; exempt from faults and counters):

- ``GET  /_sandbox/health``, ``GET /_sandbox/stats``, ``POST /_sandbox/faults``, ``POST /_sandbox/reset``
  (shared, see ``sandbox.common``; reset also forgets customers, events and idempotency keys);
- ``POST /_sandbox/seed`` ``{"count": N, "start": 0, "webhooks": false}`` → ``{"created", "skipped",
  "customers"}``: identities ``start..start+N-1`` as customers with one subscription each (``sandbox.stripe.seed``);
- ``GET  /_sandbox/counts`` → customers, deleted customers, subscriptions and retained events;
- ``POST /_sandbox/customers/{id}`` ``{"name"?, "email"?, "description"?, "phone"?, "metadata"?: {k: v|null}}``
  edits a customer (``customer.updated`` with ``previous_attributes``; Stripe customers have no modified
  timestamp, the event is the record of the change);
- ``DELETE /_sandbox/customers/{id}`` deletes one (``customer.subscription.deleted`` …, ``customer.deleted``);
- ``POST /_sandbox/subscriptions`` ``{"customer", "status"?, "plan"?}`` adds a subscription;
  ``POST /_sandbox/subscriptions/{id}`` ``{"status"}`` moves it (``canceled`` → ``customer.subscription.deleted``);
- ``POST /_sandbox/events/age`` ``{"days"?, "seconds"?, "ids"?}`` shifts events into the past, so that
  retention can be tested → ``{"aged", "expired"}``;
- ``GET /_sandbox/webhooks`` (delivery counts), ``PUT /_sandbox/webhooks`` ``{"url", "secret"?}``,
  ``POST /_sandbox/webhooks/drain?timeout_s=10`` (wait for queued deliveries).
"""

from __future__ import annotations

import secrets
import string

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.common import ADMIN_PREFIX, install_sandbox
from sandbox.stripe import admin, api
from sandbox.stripe.config import StripeSandboxConfig
from sandbox.stripe.errors import StripeError
from sandbox.stripe.idempotency import IdempotencyCache
from sandbox.stripe.objects import API_VERSION
from sandbox.stripe.store import StripeStore
from sandbox.stripe.webhooks import StripeWebhooks

_ALPHABET = string.ascii_letters + string.digits


def new_request_id() -> str:
    """A Stripe-style request id (``req_`` + 14 alphanumerics); events and replays refer to it."""
    return "req_" + "".join(secrets.choice(_ALPHABET) for _ in range(14))


class StripeHeadersMiddleware:
    """Gives every API request a ``Request-Id`` (also on ``request.state``) and adds it and ``Stripe-Version``
    to the response, faults included; admin routes are left alone."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        version = API_VERSION
        for name, value in scope["headers"]:
            if name == b"stripe-version":
                version = value.decode("latin-1")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "request-id" not in headers:
                    headers["Request-Id"] = request_id
                headers["Stripe-Version"] = version
            await send(message)

        await self.app(scope, receive, send_with_headers)


def fault_response(status: int, retry_after_s: float) -> Response:
    """An injected fault as Stripe answers it: 429 ``rate_limit`` with ``Stripe-Should-Retry: true``, or a 500."""
    if status == 429:
        error = StripeError(
            429,
            "Request rate limit exceeded. You can learn more about rate limits here "
            "https://stripe.com/docs/rate-limits.",
            code="rate_limit",
        )
        return JSONResponse(error.body(), 429, headers={"Stripe-Should-Retry": "true"})
    error = StripeError(
        status,
        "An unknown error occurred. Please try again; if it persists, contact https://support.stripe.com/.",
        type="api_error",
    )
    return JSONResponse(error.body(), status)


async def _stripe_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StripeError)
    return JSONResponse(exc.body(), exc.status, headers=exc.headers)


async def _unrouted(request: Request, exc: Exception) -> Response:
    """Unknown ``/v1`` URLs and methods get Stripe's 404 ``Unrecognized request URL``."""
    assert isinstance(exc, StarletteHTTPException)
    if request.url.path.startswith(ADMIN_PREFIX) or exc.status_code not in (404, 405):
        return await http_exception_handler(request, exc)
    message = (
        f"Unrecognized request URL ({request.method}: {request.url.path}). Please see https://stripe.com/docs "
        "or we can help at https://support.stripe.com/."
    )
    return JSONResponse(StripeError(404, message).body(), 404)


def create_app(config: StripeSandboxConfig | None = None) -> FastAPI:
    """A Stripe stand-in app; ``app.state.store`` is its ``StripeStore``, ``app.state.kit`` its ``SandboxKit``."""
    config = config or StripeSandboxConfig()
    webhooks = StripeWebhooks(config.webhook_url, config.webhook_secret, clock=config.clock)
    store = StripeStore(
        livemode=config.api_key.startswith("sk_live_"),
        clock=config.clock,
        event_retention_days=config.event_retention_days,
        seed_base_time=config.seed_base_time,
        webhook_endpoints=lambda: 1 if webhooks.enabled else 0,
    )
    store.on_event = webhooks.deliver
    idempotency = IdempotencyCache(clock=config.clock)

    app = FastAPI(title="Stripe stand-in", docs_url=None, redoc_url=None, openapi_url=None)

    def reset() -> None:
        store.reset()
        idempotency.clear()

    app.state.kit = install_sandbox(app, fault_response, reset)
    app.add_middleware(StripeHeadersMiddleware)
    app.add_exception_handler(StripeError, _stripe_error)
    app.add_exception_handler(StarletteHTTPException, _unrouted)
    app.include_router(api.router)
    app.include_router(admin.router)
    app.state.config = config
    app.state.store = store
    app.state.webhooks = webhooks
    app.state.idempotency = idempotency
    if config.seed:
        store.seed(config.seed)
    return app
