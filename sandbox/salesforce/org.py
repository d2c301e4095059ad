"""The stand-in org as the routes see it: its parts, the request checks every REST call makes, JSON helpers.

Every ``/services/data/vXX.X/...`` call is checked in the real platform's order: a live session
(``Authorization: Bearer <token>``, or the legacy ``OAuth <token>``; otherwise 401 ``INVALID_SESSION_ID``),
then the org's daily allowance (403 ``REQUEST_LIMIT_EXCEEDED`` once spent; the request is not counted), then
the API version (unknown → 404 ``NOT_FOUND``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import Request

from sandbox.salesforce.auth import Session, TokenEndpoint, TokenStore
from sandbox.salesforce.config import SalesforceSandboxConfig
from sandbox.salesforce.cursors import CursorStore
from sandbox.salesforce.errors import (
    SalesforceError,
    invalid_session,
    json_parser_error,
    not_found,
    request_limit_exceeded,
)
from sandbox.salesforce.outbound import OutboundNotifier
from sandbox.salesforce.schema import FieldSpec, ObjectSpec, format_datetime, object_spec
from sandbox.salesforce.store import Record, Store

MIN_VERSION = 20
MAX_VERSION = 62
UPSERT_200_SINCE = 46
_VERSION_RE = re.compile(r"v(\d{2})\.0")


@dataclass
class Org:
    """Everything one stand-in org holds; ``app.state.org``."""

    config: SalesforceSandboxConfig
    store: Store
    tokens: TokenStore
    cursors: CursorStore
    notifier: OutboundNotifier
    oauth: TokenEndpoint
    max_request_bytes: int = 16_384


@dataclass(frozen=True)
class Call:
    """An authenticated REST call: who makes it, at which API version (``"59.0"``), from which base URL."""

    session: Session
    version: str
    base_url: str

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])


def org_of(request: Request) -> Org:
    org = request.app.state.org
    assert isinstance(org, Org)
    return org


def base_url(request: Request) -> str:
    """The instance URL the client reached (``https://127.0.0.1:PORT``)."""
    return f"{request.url.scheme}://{request.url.netloc}"


def authenticate(request: Request, version: str) -> Call:
    """FastAPI dependency for every ``/services/data/{version}/...`` route."""
    org = org_of(request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() not in ("bearer", "oauth") or not token.strip():
        raise invalid_session()
    session = org.tokens.check(token.strip())
    if session is None:
        raise invalid_session()
    if not org.store.usage.consume():
        raise request_limit_exceeded()
    match = _VERSION_RE.fullmatch(version)
    if match is None or not MIN_VERSION <= int(match.group(1)) <= MAX_VERSION:
        raise not_found()
    return Call(session, f"{int(match.group(1))}.0", base_url(request))


def sobject_or_404(name: str) -> ObjectSpec:
    spec = object_spec(name)
    if spec is None:
        raise SalesforceError.one(404, "NOT_FOUND", "The requested resource does not exist")
    return spec


def record_url(version: str, spec: ObjectSpec, record_id: str) -> str:
    return f"/services/data/v{version}/sobjects/{spec.name}/{record_id}"


def wire(value: Any) -> Any:
    return format_datetime(value) if isinstance(value, datetime) else value


def record_json(
    spec: ObjectSpec, record: Record, version: str, fields: Iterable[FieldSpec] | None = None
) -> dict[str, Any]:
    """A record as GET returns it: ``attributes`` then the fields (all of them unless ``fields`` is given)."""
    out: dict[str, Any] = {"attributes": {"type": spec.name, "url": record_url(version, spec, record["Id"])}}
    for field in spec.fields if fields is None else fields:
        out[field.name] = wire(record.get(field.name))
    return out


def parse_field_list(spec: ObjectSpec, text: str) -> list[FieldSpec]:
    """``Name,Website`` → field specs; unknown names answer 400 ``INVALID_FIELD``."""
    out = []
    for raw in text.split(","):
        name = raw.strip()
        if not name:
            continue
        field = spec.field(name)
        if field is None:
            raise SalesforceError.one(
                400,
                "INVALID_FIELD",
                f"No such column '{name}' on entity '{spec.name}'. If you are attempting "
                "to use a custom field, be sure to append the '__c' after the custom field name. Please "
                "reference your WSDL or the describe call for the appropriate names.",
            )
        out.append(field)
    return out


async def read_json(request: Request) -> Any:
    """The request body as JSON, or 400 ``JSON_PARSER_ERROR`` like the real API."""
    raw = await request.body()
    try:
        return json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise json_parser_error(f"Unexpected character: {exc}") from exc


def require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise json_parser_error("Cannot deserialize instance of object from a non-object value")
    return body
