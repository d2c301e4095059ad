"""Custom account properties in the stand-in, as current PostHog serves them (``products/customer_analytics/
backend/``: ``models/custom_property_definition.py``, ``models/custom_property_value.py``,
``logic/custom_property_values.py``, ``events.py``).

- ``/api/projects/:id/custom_property_definitions/``: list (paginated), create. ``name`` unique per project
  (≤400), ``display_type`` one of PostHog's, ``options`` for a select (``[{id, label, color}]``).
- ``/api/projects/:id/accounts/:account_id/custom_property_values/``: GET the active values, POST
  ``{definition, value}`` to set one. The value is coerced by its definition's data type into one typed column
  (``value_str``/``value_num``/``value_bool``/``value_datetime``); a value that does not fit is a 400 with
  PostHog's message ("Custom property 'X' expects ..."); ``null`` is refused. The previous active value is
  soft-deleted, and an ``$account_custom_property_changed`` event is emitted only when the stored value changed.

The coercion here is the stand-in's own reading of PostHog's coercers (crmsync's ``sync/custom_values.py`` is
another, checked against this one by a property test). Mounted only when the stand-in serves a generation that
has custom properties (``PostHogSandboxConfig.generation == "current"``); otherwise these routes are 404.
"""

from __future__ import annotations

import ipaddress
import math
import re
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from sandbox.posthog.auth import RequestBody
from sandbox.posthog.config import SANDBOX_USER_ID
from sandbox.posthog.errors import ApiError, not_found, validation_error
from sandbox.posthog.events import custom_property_changed
from sandbox.posthog.query import page_links, parse_page
from sandbox.posthog.service import PostHogApi, _object_id

DEFINITIONS = "/api/projects/{project_id}/custom_property_definitions/"
VALUES = "/api/projects/{project_id}/accounts/{account_id}/custom_property_values/"

DATA_TYPES = {
    "text": "string",
    "link": "string",
    "select": "string",
    "number": "numeric",
    "currency": "numeric",
    "percent": "numeric",
    "boolean": "boolean",
    "date": "datetime",
    "datetime": "datetime",
}
COLUMNS = {"string": "value_str", "numeric": "value_num", "boolean": "value_bool", "datetime": "value_datetime"}

# Django's URLValidator, schemes http and https: user:pass@ optional, a host that is an IPv4 or bracketed IPv6
# literal, "localhost", or a hostname with a top-level domain; optional port; path without whitespace.
_HOST = r"(?:[a-z0-9\u00a1-\uffff](?:[a-z0-9\u00a1-\uffff-]{0,61}[a-z0-9\u00a1-\uffff])?)"
_URL = re.compile(
    r"^(?:https?)://(?:[^\s:@/]+(?::[^\s:@/]*)?@)?"
    r"(?:(?P<ipv4>(?:0|25[0-5]|2[0-4][0-9]|1[0-9]?[0-9]?|[1-9][0-9]?)(?:\.(?:0|25[0-5]|2[0-4][0-9]|1[0-9]?[0-9]?|[1-9][0-9]?)){3})"
    r"|\[(?P<ipv6>[0-9a-f:.]+)\]"
    r"|(?P<name>" + _HOST + r"(?:\." + _HOST + r")*\.(?:[a-z\u00a1-\uffff-]{2,63}|xn--[a-z0-9]{1,59})\.?|localhost))"
    r"(?::[0-9]{1,5})?(?:[/?#][^\s]*)?\Z",
    re.IGNORECASE,
)


class Invalid(ValueError):
    pass


def _expects(name: str, what: str) -> Invalid:
    return Invalid(f"Custom property '{name}' expects {what}")


def _valid_url(text: str) -> bool:
    if len(text) > 2048 or any(not c.isprintable() for c in text):
        return False
    match = _URL.match(text)
    if match is None:
        return False
    if match.group("ipv6"):
        try:
            ipaddress.IPv6Address(match.group("ipv6"))
        except ValueError:
            return False
    return not (match.group("name") and match.group("name").replace(".", "").isdigit())


def coerce(definition: dict[str, Any], value: Any) -> tuple[str, Any]:
    """(column, stored value) as PostHog's ``_coerce_to_column`` computes them, or ``Invalid``."""
    name, display = definition["name"], definition["display_type"]
    if display == "select":
        labels = [str(o.get("label")) for o in definition.get("options") or []]
        if isinstance(value, str) and value in labels:
            return "value_str", value
        raise _expects(name, f"one of its options: {', '.join(labels)}")
    data_type = DATA_TYPES[display]
    if data_type == "string":
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise _expects(name, "a text value")
        if display == "link" and not _valid_url(value):
            raise _expects(name, "an HTTP or HTTPS URL")
        return "value_str", value
    if data_type == "numeric":
        if isinstance(value, bool):
            raise _expects(name, "a numeric value")
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise _expects(name, "a numeric value") from None
        if math.isnan(number) or math.isinf(number):
            raise _expects(name, "a finite numeric value")
        return "value_num", number
    if data_type == "boolean":
        if isinstance(value, bool):
            return "value_bool", value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return "value_bool", value.strip().lower() == "true"
        raise _expects(name, "a boolean value")
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _expects(name, "an ISO-8601 datetime") from None
    elif isinstance(value, date):
        parsed = value if isinstance(value, datetime) else datetime(value.year, value.month, value.day)
    else:
        raise _expects(name, "an ISO-8601 datetime")
    if parsed.tzinfo is None or parsed.tzinfo.utcoffset(parsed) is None:
        parsed = parsed.replace(tzinfo=UTC)
    return "value_datetime", parsed


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


class CustomProperties:
    """Definitions and per-account values of every project, in memory, with their change events."""

    def __init__(self, api: PostHogApi) -> None:
        self.api = api
        self._definitions: dict[int, dict[str, dict[str, Any]]] = {}
        self._values: dict[int, list[dict[str, Any]]] = {}  # every row, soft-deleted ones too (history)
        self._lock = threading.RLock()

    def reset(self) -> None:
        with self._lock:
            self._definitions.clear()
            self._values.clear()

    # -- definitions -----------------------------------------------------------------------------------------

    def list_definitions(self, request: Request, body: RequestBody) -> Response:
        project_id = self.api._project(request, body, "account", write=False)
        page = parse_page(request.query_params)
        with self._lock:
            items = sorted(self._definitions.get(project_id, {}).values(), key=lambda d: d["name"])
        results = items[page.offset : page.offset + page.limit]
        next_url, previous_url = page_links(str(request.url), page, len(items))
        return JSONResponse({"count": len(items), "next": next_url, "previous": previous_url, "results": results})

    def create_definition(self, request: Request, body: RequestBody) -> Response:
        project_id = self.api._project(request, body, "account", write=True)
        data = body.data()
        if not isinstance(data, dict):
            raise validation_error(None, "invalid", "Invalid data. Expected a dictionary, but got list.")
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            raise validation_error("name", "required" if name is None else "blank", "This field is required.")
        if len(name) > 400:
            raise validation_error("name", "max_length", "Ensure this field has no more than 400 characters.")
        display = data.get("display_type", "text")
        if display not in DATA_TYPES:
            raise validation_error("display_type", "invalid_choice", f'"{display}" is not a valid choice.')
        options = data.get("options")
        if options is not None and (
            not isinstance(options, list) or not all(isinstance(o, dict) and "label" in o for o in options)
        ):
            raise validation_error("options", "invalid", "Each option needs a label.")
        with self._lock:
            mine = self._definitions.setdefault(project_id, {})
            if any(d["name"] == name for d in mine.values()):
                raise validation_error("name", "unique", "A custom property with this name already exists.")
            definition = {
                "id": str(uuid.uuid4()),
                "name": name,
                "description": data.get("description"),
                "display_type": display,
                "target_type": data.get("target_type", "account"),
                "is_big_number": bool(data.get("is_big_number")) and DATA_TYPES[display] == "numeric",
                "options": options if display == "select" else None,
                "created_at": datetime.now(UTC).isoformat(),
            }
            mine[definition["id"]] = definition
        return JSONResponse(definition, status_code=201)

    # -- values ------------------------------------------------------------------------------------------------

    def _account(self, request: Request, body: RequestBody, *, write: bool) -> tuple[int, dict[str, Any]]:
        project_id = self.api._project(request, body, "account", write=write)
        account_id = _object_id(request.path_params["account_id"])
        account = self.api.store.get_account(project_id, account_id)
        if account is None:
            raise not_found()
        return project_id, account

    def _out(self, row: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": row["id"],
            "account_id": row["account_id"],
            "definition_id": row["definition_id"],
            "value": _json(row[row["column"]]),
            "created_at": row["created_at"],
            "created_by_id": row["created_by_id"],
        }

    def list_values(self, request: Request, body: RequestBody) -> Response:
        project_id, account = self._account(request, body, write=False)
        with self._lock:
            rows = [
                r for r in self._values.get(project_id, []) if r["account_id"] == account["id"] and not r["is_deleted"]
            ]
        return JSONResponse([self._out(r) for r in reversed(rows)])

    def set_value(self, request: Request, body: RequestBody) -> Response:
        project_id, account = self._account(request, body, write=True)
        data = body.data()
        if not isinstance(data, dict):
            raise validation_error(None, "invalid", "Invalid data. Expected a dictionary, but got list.")
        if "definition" not in data:
            raise validation_error("definition", "required", "This field is required.")
        if "value" not in data:
            raise validation_error("value", "required", "This field is required.")
        if data["value"] is None:
            raise validation_error("value", "null", "This field may not be null.")
        with self._lock:
            definition = self._definitions.get(project_id, {}).get(str(data["definition"]))
            if definition is None:
                raise validation_error(
                    "definition", "invalid", f"Custom property definition '{data['definition']}' not found."
                )
            try:
                column, stored = coerce(definition, data["value"])
            except Invalid as exc:
                raise ApiError(400, "validation_error", "invalid_input", str(exc), "value") from None
            rows = self._values.setdefault(project_id, [])
            previous = next(
                (
                    r
                    for r in rows
                    if r["account_id"] == account["id"]
                    and r["definition_id"] == definition["id"]
                    and not r["is_deleted"]
                ),
                None,
            )
            if previous is not None:
                previous["is_deleted"] = True
            row = {
                "id": str(uuid.uuid4()),
                "account_id": account["id"],
                "definition_id": definition["id"],
                "column": column,
                "value_str": None,
                "value_num": None,
                "value_bool": None,
                "value_datetime": None,
                "is_deleted": False,
                "created_at": datetime.now(UTC).isoformat(),
                "created_by_id": SANDBOX_USER_ID,
            }
            row[column] = stored
            rows.append(row)
            before = previous[previous["column"]] if previous is not None else None
            if before != stored:
                data_type = DATA_TYPES[definition["display_type"]]
                actor = self.api.actor()
                log = self.api.store.events
                custom_property_changed(log, account, definition, data_type, _json(before), _json(stored), actor)
        return JSONResponse(self._out(row), status_code=201)

    def stored(self, project_id: int, account_id: str) -> dict[str, Any]:
        """Definition name → active value (JSON form): for tests and the demo."""
        with self._lock:
            names = {d["id"]: d["name"] for d in self._definitions.get(project_id, {}).values()}
            return {
                names[r["definition_id"]]: _json(r[r["column"]])
                for r in self._values.get(project_id, [])
                if r["account_id"] == account_id and not r["is_deleted"]
            }

    def routes(self) -> list[tuple[str, str, Callable[[Request, RequestBody], Response]]]:
        return [
            (DEFINITIONS, "GET", self.list_definitions),
            (DEFINITIONS, "POST", self.create_definition),
            (VALUES, "GET", self.list_values),
            (VALUES, "POST", self.set_value),
        ]
