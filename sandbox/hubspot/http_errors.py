"""HubSpot's error body for the errors FastAPI raises itself: unrouted paths, wrong methods, bad request shapes.

HubSpot's public OpenAPI collection (github.com/HubSpot/HubSpot-public-api-spec-collection, e.g.
``PublicApiSpecs/CRM/Deals/Rollouts/424/v3/deals.json``, schema ``Error``) gives every error the same JSON:
``category``, ``correlationId`` and ``message`` required, ``subCategory``, ``context``, ``errors`` and ``links``
optional; the API also sends ``"status": "error"`` (developers.hubspot.com/docs/faq/api-error-responses). FastAPI
would answer these with ``{"detail": ...}``, which no HubSpot client parses, so vendor paths get HubSpot's body:

- a path no route serves: 404 ``OBJECT_NOT_FOUND``;
- a routed path with another method: 405 ``VALIDATION_ERROR`` (with the ``Allow`` header FastAPI computed);
- a request FastAPI's own validation refuses: 400 ``VALIDATION_ERROR``, one ``errors[]`` entry per problem
  (``message``, ``in``), as HubSpot reports invalid input.

The admin surface (``/_sandbox``) is the stand-in's own, not HubSpot's: it keeps FastAPI's answers.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from sandbox.hubspot.errors import error_body

ADMIN_PREFIX = "/_sandbox"


def _is_admin(request: Request) -> bool:
    return request.url.path.startswith(ADMIN_PREFIX)


def _http_error(request: Request, exc: StarletteHTTPException) -> dict[str, Any]:
    target = f"{request.method} {request.url.path}"
    if exc.status_code == 404:
        return error_body("OBJECT_NOT_FOUND", f"Unable to route {target}: no such API path.")
    if exc.status_code == 405:
        return error_body("VALIDATION_ERROR", f"Method {request.method} is not allowed on {request.url.path}.")
    return error_body("VALIDATION_ERROR" if exc.status_code < 500 else "INTERNAL_ERROR", str(exc.detail))


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    problems: list[dict[str, Any]] = []
    for problem in exc.errors():
        location = [str(part) for part in problem.get("loc", ())]
        place = location[0] if location else "body"
        name = ".".join(location[1:]) or place
        problems.append({"message": f"{name}: {problem.get('msg', 'invalid')}", "in": place})
    return problems


def install_hubspot_error_bodies(app: FastAPI) -> None:
    """Answer FastAPI's own 404/405/422 on vendor paths with HubSpot's error body."""

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if _is_admin(request):
            return await http_exception_handler(request, exc)
        return JSONResponse(_http_error(request, exc), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        if _is_admin(request):
            return await request_validation_exception_handler(request, exc)
        problems = _validation_errors(exc)
        message = "Invalid input: " + "; ".join(p["message"] for p in problems)
        return JSONResponse(error_body("VALIDATION_ERROR", message, errors=problems), status_code=400)
