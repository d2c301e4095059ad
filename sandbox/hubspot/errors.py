"""HubSpot's error body and the one exception the stand-in raises to produce it.

Every non-2xx answer from HubSpot's CRM v3 APIs carries the same JSON shape::

    {"status": "error", "message": "...", "correlationId": "<uuid>", "category": "VALIDATION_ERROR",
     "subCategory"?: "...", "context"?: {"ids": ["..."]}, "errors"?: [...]}

``HubSpotError`` carries the HTTP status plus those fields; the app turns it into a response in one place.
Categories used here are HubSpot's: ``VALIDATION_ERROR``, ``OBJECT_NOT_FOUND``, ``OBJECT_ALREADY_EXISTS``,
``CONFLICT``, ``INVALID_AUTHENTICATION``, ``RATE_LIMITS``, ``INTERNAL_ERROR``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi.responses import JSONResponse


class HubSpotError(Exception):
    """An API failure, answered as ``status`` with HubSpot's error body."""

    def __init__(
        self,
        status: int,
        category: str,
        message: str,
        *,
        context: dict[str, list[str]] | None = None,
        sub_category: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message
        self.context = context
        self.sub_category = sub_category
        self.errors = errors
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        return error_body(
            self.category,
            self.message,
            context=self.context,
            sub_category=self.sub_category,
            errors=self.errors,
            extra=self.extra,
        )

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def error_body(
    category: str,
    message: str,
    *,
    context: dict[str, list[str]] | None = None,
    sub_category: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """HubSpot's error JSON; optional keys appear only when set, as HubSpot does."""
    body: dict[str, Any] = {"status": "error", "message": message, "correlationId": str(uuid.uuid4())}
    if context is not None:
        body["context"] = context
    if sub_category is not None:
        body["subCategory"] = sub_category
    if errors is not None:
        body["errors"] = errors
    body["category"] = category
    body.update(extra or {})
    return body


def batch_error(category: str, message: str, context: dict[str, list[str]]) -> dict[str, Any]:
    """One entry of a 207 response's ``errors`` (the SDK's ``StandardError``: links and errors present)."""
    return {
        "status": "error",
        "category": category,
        "message": message,
        "context": context,
        "errors": [],
        "links": {},
    }


def bad_request(message: str, **kwargs: Any) -> HubSpotError:
    """A 400 ``VALIDATION_ERROR``."""
    return HubSpotError(400, "VALIDATION_ERROR", message, **kwargs)


def not_found(message: str, **kwargs: Any) -> HubSpotError:
    """A 404 ``OBJECT_NOT_FOUND``."""
    return HubSpotError(404, "OBJECT_NOT_FOUND", message, **kwargs)


def invalid_properties(issues: list[dict[str, Any]]) -> HubSpotError:
    """HubSpot's answer to bad property values: the issue list is JSON-encoded inside the message."""
    return bad_request(f"Property values were not valid: {json.dumps(issues, separators=(',', ':'))}")
