"""The ``/v1`` routes the stand-in serves, in Stripe's wire format (form-encoded in, JSON out).

``GET/POST /v1/customers``, ``GET /v1/customers/search``, ``GET/POST/DELETE /v1/customers/{id}``,
``GET/POST /v1/subscriptions``, ``GET/DELETE /v1/subscriptions/{id}``, ``GET /v1/events``, ``GET /v1/events/{id}``.
Every route requires the configured secret key (Bearer, or Basic with the key as user name). POSTs honour
``Idempotency-Key`` (see ``sandbox.stripe.idempotency``).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from sandbox.stripe import search
from sandbox.stripe.account import account
from sandbox.stripe.config import StripeSandboxConfig
from sandbox.stripe.customers import parse_patch
from sandbox.stripe.errors import StripeError, invalid_param, masked_key
from sandbox.stripe.forms import (
    LIST_PARAMS,
    Params,
    as_list,
    as_str,
    check_expand,
    check_known,
    decode_form,
    read_limit,
    read_list_args,
)
from sandbox.stripe.idempotency import Fingerprint, IdempotencyCache
from sandbox.stripe.objects import CUSTOMER_FIELDS, JSON, SUBSCRIPTION_STATUSES, list_object, search_result
from sandbox.stripe.store import ENDED_STATUSES, RequestInfo, StripeStore
from sandbox.stripe.subscription_create import parse_create

_NO_KEY = (
    "You did not provide an API key. You need to provide your API key in the Authorization header, using "
    "Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication "
    "for details, or we can help at https://support.stripe.com/."
)
_CUSTOMER_EXPANDS = ("subscriptions", "default_source", "test_clock")
_SUBSCRIPTION_EXPANDS = ("customer", "default_payment_method", "latest_invoice", "test_clock")
_STATUS_FILTERS = ("all", "ended", *SUBSCRIPTION_STATUSES)
_MAX_EVENT_TYPES = 20


def _key_from(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip() or None
    if scheme.lower() == "basic":
        try:
            user = base64.b64decode(credentials.strip(), validate=True).decode().split(":", 1)[0]
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user or None
    return None


async def authenticate(request: Request) -> None:
    """Accept only the configured secret key, answering others with Stripe's 401."""
    expected: str = request.app.state.config.api_key
    key = _key_from(request.headers.get("authorization"))
    headers = {"WWW-Authenticate": 'Basic realm="Stripe"'}
    if key is None:
        raise StripeError(401, _NO_KEY, headers=headers)
    if not hmac.compare_digest(key.encode(), expected.encode()):
        raise StripeError(401, f"Invalid API Key provided: {masked_key(key)}", headers=headers)


router = APIRouter(prefix="/v1", dependencies=[Depends(authenticate)])


def _store(request: Request) -> StripeStore:
    store: StripeStore = request.app.state.store
    return store


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body).encode(), status, headers=headers, media_type="application/json")


def _query(request: Request) -> Params:
    return decode_form(parse_qsl(request.url.query, keep_blank_values=True))


def _request_info(request: Request) -> RequestInfo:
    return RequestInfo(getattr(request.state, "request_id", None), request.headers.get("idempotency-key"))


async def _post(request: Request, action: Callable[[Params, RequestInfo], JSON]) -> Response:
    """Run a write with Stripe's idempotency: replay a saved response, refuse a reused key, save the result."""
    raw = (await request.body()).decode()
    pairs = parse_qsl(request.url.query, keep_blank_values=True) + parse_qsl(raw, keep_blank_values=True)
    info = _request_info(request)
    cache: IdempotencyCache = request.app.state.idempotency
    key = info.idempotency_key
    fingerprint = Fingerprint("POST", request.url.path, tuple(sorted(pairs)))
    if key:
        saved = cache.lookup(key, fingerprint)
        if saved is not None:
            return Response(
                saved.body,
                saved.status,
                media_type="application/json",
                headers={"Idempotency-Key": key, "Idempotent-Replayed": "true", "Original-Request": saved.request_id},
            )
    try:
        body, status = action(decode_form(pairs), info), 200
    except StripeError as error:
        if not error.replayable or not key:
            raise
        body, status = error.body(), error.status
    encoded = json.dumps(body).encode()
    headers = {"Original-Request": info.id or ""}
    if key:
        cache.save(key, fingerprint, status, encoded, info.id or "")
        headers["Idempotency-Key"] = key
    return Response(encoded, status, media_type="application/json", headers=headers)


# -- the account ----------------------------------------------------------------------------------------------


@router.get("/account")
async def retrieve_account(request: Request) -> Response:
    """``GET /v1/account``: the account the key belongs to (docs.stripe.com/api/accounts/retrieve); ``id`` is the
    stand-in's ``account_id``."""
    config: StripeSandboxConfig = request.app.state.config
    return _json(account(config.account_id))


# -- customers ------------------------------------------------------------------------------------------------


@router.get("/customers")
async def list_customers(request: Request) -> Response:
    params = _query(request)
    check_known(params, (*LIST_PARAMS, "email", "test_clock"))
    args = read_list_args(params)
    check_expand(args.expand, [f"data.{path}" for path in _CUSTOMER_EXPANDS])
    if as_str(params, "test_clock"):
        return _json(list_object([], False, "/v1/customers"))
    data, has_more = _store(request).list_customers(
        args, email=as_str(params, "email"), expand_subscriptions="data.subscriptions" in args.expand
    )
    return _json(list_object(data, has_more, "/v1/customers"))


@router.post("/customers")
async def create_customer(request: Request) -> Response:
    def create(params: Params, info: RequestInfo) -> JSON:
        check_known(params, (*CUSTOMER_FIELDS, "expand"))
        expand = as_list(params, "expand")
        check_expand(expand, _CUSTOMER_EXPANDS)
        customer = _store(request).create_customer(parse_patch(params), info)
        if "subscriptions" in expand:
            return _store(request).get_customer(customer["id"], expand_subscriptions=True)
        return customer

    return await _post(request, create)


@router.get("/customers/search")
async def search_customers(request: Request) -> Response:
    params = _query(request)
    check_known(params, ("query", "limit", "page", "expand"))
    text = as_str(params, "query")
    if not text:
        raise invalid_param("Missing required param: query.", "query", "parameter_missing")
    query = search.parse(text)
    expand = as_list(params, "expand")
    check_expand(expand, ["total_count", *(f"data.{path}" for path in _CUSTOMER_EXPANDS)])
    data, has_more, next_page, total = _store(request).search_customers(
        query,
        read_limit(params),
        as_str(params, "page") or None,
        with_total="total_count" in expand,
        expand_subscriptions="data.subscriptions" in expand,
    )
    return _json(search_result(data, has_more, next_page, "/v1/customers/search", total))


@router.get("/customers/{customer_id}")
async def retrieve_customer(request: Request, customer_id: str) -> Response:
    params = _query(request)
    check_known(params, ("expand",))
    expand = as_list(params, "expand")
    check_expand(expand, _CUSTOMER_EXPANDS)
    return _json(_store(request).get_customer(customer_id, expand_subscriptions="subscriptions" in expand))


@router.post("/customers/{customer_id}")
async def update_customer(request: Request, customer_id: str) -> Response:
    def update(params: Params, info: RequestInfo) -> JSON:
        check_known(params, (*CUSTOMER_FIELDS, "expand"))
        expand = as_list(params, "expand")
        check_expand(expand, _CUSTOMER_EXPANDS)
        customer = _store(request).update_customer(customer_id, parse_patch(params), info)
        if "subscriptions" in expand:
            return _store(request).get_customer(customer["id"], expand_subscriptions=True)
        return customer

    return await _post(request, update)


@router.delete("/customers/{customer_id}")
async def delete_customer(request: Request, customer_id: str) -> Response:
    check_known(_query(request), ())
    return _json(_store(request).delete_customer(customer_id, _request_info(request)))


# -- subscriptions ----------------------------------------------------------------------------------------


def _statuses(status: str | None) -> tuple[str, ...]:
    """Which statuses a ``status=`` filter means; none given hides canceled ones, as Stripe does."""
    if status is None:
        return tuple(s for s in SUBSCRIPTION_STATUSES if s != "canceled")
    if status == "all":
        return SUBSCRIPTION_STATUSES
    if status == "ended":
        return ENDED_STATUSES
    if status in SUBSCRIPTION_STATUSES:
        return (status,)
    raise invalid_param(
        f"Invalid status: must be one of {', '.join(_STATUS_FILTERS[:-1])}, or {_STATUS_FILTERS[-1]}", "status"
    )


def _unsupported(params: Params, names: tuple[str, ...]) -> None:
    """Real Stripe filters the stand-in does not model: refused honestly rather than silently ignored."""
    for name in names:
        if name in params:
            raise invalid_param(f"The Stripe stand-in does not implement the '{name}' filter.", name)


def _expand_customer(request: Request, subscriptions: list[JSON]) -> list[JSON]:
    store = _store(request)
    return [{**sub, "customer": store.get_customer(sub["customer"])} for sub in subscriptions]


@router.get("/subscriptions")
async def list_subscriptions(request: Request) -> Response:
    params = _query(request)
    _unsupported(
        params, ("automatic_tax", "current_period_end", "current_period_start", "customer_account", "price", "plan")
    )
    check_known(params, (*LIST_PARAMS, "customer", "status", "collection_method", "test_clock"))
    args = read_list_args(params)
    check_expand(args.expand, [f"data.{path}" for path in _SUBSCRIPTION_EXPANDS])
    method = as_str(params, "collection_method")
    if as_str(params, "test_clock") or (method is not None and method != "charge_automatically"):
        return _json(list_object([], False, "/v1/subscriptions"))
    data, has_more = _store(request).list_subscriptions(
        args, _statuses(as_str(params, "status")), as_str(params, "customer") or None
    )
    if "data.customer" in args.expand:
        data = _expand_customer(request, data)
    return _json(list_object(data, has_more, "/v1/subscriptions"))


@router.post("/subscriptions")
async def create_subscription(request: Request) -> Response:
    """``POST /v1/subscriptions`` (``sandbox.stripe.subscription_create``): a customer that does not exist, or
    was deleted, is a 400 on ``customer``, as for any id passed as a parameter."""

    def create(params: Params, info: RequestInfo) -> JSON:
        expand = as_list(params, "expand")
        customer_id, status, terms = parse_create(params)
        check_expand(expand, _SUBSCRIPTION_EXPANDS)
        try:
            subscription = _store(request).create_subscription(customer_id, status, "", info, terms)
        except StripeError as error:
            if error.status != 404:
                raise
            raise StripeError(400, error.message, code="resource_missing", param="customer") from error
        if "customer" in expand:
            return _expand_customer(request, [subscription])[0]
        return subscription

    return await _post(request, create)


@router.get("/subscriptions/{subscription_id}")
async def retrieve_subscription(request: Request, subscription_id: str) -> Response:
    params = _query(request)
    check_known(params, ("expand",))
    expand = as_list(params, "expand")
    check_expand(expand, _SUBSCRIPTION_EXPANDS)
    subscription = _store(request).get_subscription(subscription_id)
    if "customer" in expand:
        subscription = _expand_customer(request, [subscription])[0]
    return _json(subscription)


@router.delete("/subscriptions/{subscription_id}")
async def cancel_subscription(request: Request, subscription_id: str) -> Response:
    params = _query(request)
    check_known(params, ("expand", "invoice_now", "prorate", "cancellation_details"))
    return _json(_store(request).set_subscription_status(subscription_id, "canceled", _request_info(request)))


# -- events -------------------------------------------------------------------------------------------------


@router.get("/events")
async def list_events(request: Request) -> Response:
    params = _query(request)
    _unsupported(params, ("delivery_success",))
    check_known(params, (*LIST_PARAMS, "type", "types"))
    args = read_list_args(params)
    check_expand(args.expand, ())
    event_type = as_str(params, "type")
    types = as_list(params, "types")
    if event_type and types:
        raise invalid_param("You may only specify one of these parameters: type, types.", "types")
    if len(types) > _MAX_EVENT_TYPES:
        raise invalid_param(f"You may pass at most {_MAX_EVENT_TYPES} values for types.", "types")
    patterns = [event_type] if event_type else (types or None)
    data, has_more = _store(request).list_events(args, patterns)
    return _json(list_object(data, has_more, "/v1/events"))


@router.get("/events/{event_id}")
async def retrieve_event(request: Request, event_id: str) -> Response:
    params = _query(request)
    check_known(params, ("expand",))
    check_expand(as_list(params, "expand"), ())
    return _json(_store(request).get_event(event_id))
