"""Salesforce's error shapes, raised by the stand-in's layers and rendered once by the app.

Error tree (each renders as the real API renders it)::

    SalesforceError            REST error: HTTP status + ``[{"message", "errorCode"[, "fields"]}]``
    └── (built by helpers)     not_found(), invalid_session(), request_limit_exceeded(), ...
    RecordError                one record's DML failure: ``{"statusCode"/"errorCode", "message", "fields"}``
    OAuthError                 token endpoint failure: ``{"error", "error_description"}`` (HTTP 400)

REST errors are a JSON *list*; record-level (DML) errors carry ``fields``; errors inside sObject Collections
results use ``statusCode`` instead of ``errorCode``, as the real API does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ErrorItem:
    """One entry of an error list."""

    error_code: str
    message: str
    fields: tuple[str, ...] | None = None

    def rest_body(self) -> dict[str, Any]:
        """The form used in REST error responses (``errorCode``)."""
        body: dict[str, Any] = {"message": self.message, "errorCode": self.error_code}
        if self.fields is not None:
            body["fields"] = list(self.fields)
        return body

    def collection_body(self) -> dict[str, Any]:
        """The form used inside sObject Collections / SaveResult lists (``statusCode``)."""
        return {"statusCode": self.error_code, "message": self.message, "fields": list(self.fields or ())}


@dataclass(eq=False)
class SalesforceError(Exception):
    """A REST API failure: rendered as ``[item.rest_body() ...]`` with ``status``."""

    status: int
    items: list[ErrorItem] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def one(cls, status: int, code: str, message: str, fields: tuple[str, ...] | None = None) -> SalesforceError:
        return cls(status, [ErrorItem(code, message, fields)])

    def body(self) -> list[dict[str, Any]]:
        return [item.rest_body() for item in self.items]


@dataclass(eq=False)
class RecordError(Exception):
    """A DML failure for one record (validation, missing record, deleted record...)."""

    item: ErrorItem
    status: int = 400


@dataclass(eq=False)
class OAuthError(Exception):
    """A token endpoint failure, rendered as ``{"error", "error_description"}``."""

    error: str
    description: str
    status: int = 400


def not_found() -> SalesforceError:
    return SalesforceError.one(404, "NOT_FOUND", "The requested resource does not exist")


def invalid_session() -> SalesforceError:
    return SalesforceError.one(401, "INVALID_SESSION_ID", "Session expired or invalid")


def request_limit_exceeded() -> SalesforceError:
    return SalesforceError.one(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")


def json_parser_error(detail: str) -> SalesforceError:
    return SalesforceError.one(400, "JSON_PARSER_ERROR", detail)


def fault_body(status: int) -> list[dict[str, Any]]:
    """The body Salesforce sends for an injected 429 or 5xx."""
    if status == 429:
        code, message = "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded."
    elif status == 503:
        code, message = "SERVER_UNAVAILABLE", "Server temporarily unavailable, please retry your request."
    else:
        code, message = (
            "UNKNOWN_EXCEPTION",
            "An unexpected error occurred. Please include this ErrorId if you contact support: "
            "1384620187-47163 (-1416227429)",
        )
    return [{"message": message, "errorCode": code}]
