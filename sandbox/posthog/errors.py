"""PostHog's error bodies, as drf-exceptions-hog renders them: ``{"type", "code", "detail", "attr"}``.

Only the first error is reported. Types by cause (as PostHog's handler maps DRF exceptions):

- ``validation_error``      400 from a serializer (``required``, ``blank``, ``max_length``, ``invalid_input``...)
- ``invalid_request``       400 ``parse_error``, 404 ``not_found``, 405, 415 ``unsupported_media_type``
- ``authentication_error``  401 ``not_authenticated`` / ``authentication_failed``, 403 ``permission_denied``
- ``throttled_error``       429 ``throttled``
- ``server_error``          409 ``conflict`` (PostHog's ``Conflict`` has no type of its own) and 5xx
"""

from __future__ import annotations

import math
from collections.abc import Callable

from fastapi.responses import JSONResponse, Response


class ApiError(Exception):
    """An error the stand-in answers with PostHog's body; raised anywhere below a route."""

    def __init__(
        self,
        status: int,
        type_: str,
        code: str,
        detail: str,
        attr: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.type = type_
        self.code = code
        self.detail = detail
        self.attr = attr
        self.headers = headers or {}

    def body(self) -> dict[str, str | None]:
        return {"type": self.type, "code": self.code, "detail": self.detail, "attr": self.attr}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def validation_error(attr: str | None, code: str, detail: str) -> ApiError:
    """A 400 from field validation; DRF's code ``invalid`` is reported as ``invalid_input``."""
    return ApiError(400, "validation_error", "invalid_input" if code == "invalid" else code, detail, attr)


def not_found() -> ApiError:
    return ApiError(404, "invalid_request", "not_found", "Not found.")


class ShortNotFound(ApiError):
    """A current-generation view's own 404, ``Response({"detail": "Not found."}, status=404)``: it never
    reaches drf-exceptions-hog, so the body is that one key."""

    def __init__(self) -> None:
        super().__init__(404, "invalid_request", "not_found", "Not found.")

    def body(self) -> dict[str, str | None]:
        return {"detail": self.detail}


def parse_error(reason: str) -> ApiError:
    return ApiError(400, "invalid_request", "parse_error", f"JSON parse error - {reason}")


def unsupported_media_type(media_type: str) -> ApiError:
    detail = f'Unsupported media type "{media_type}" in request.'
    return ApiError(415, "invalid_request", "unsupported_media_type", detail)


def method_not_allowed(method: str) -> ApiError:
    return ApiError(405, "invalid_request", "method_not_allowed", f'Method "{method}" not allowed.')


def not_authenticated() -> ApiError:
    detail = "Authentication credentials were not provided."
    return ApiError(401, "authentication_error", "not_authenticated", detail, headers={"WWW-Authenticate": "Bearer"})


def authentication_failed(source: str) -> ApiError:
    detail = f"Personal API key found in request {source} is invalid."
    return ApiError(
        401, "authentication_error", "authentication_failed", detail, headers={"WWW-Authenticate": "Bearer"}
    )


def permission_denied(detail: str) -> ApiError:
    return ApiError(403, "authentication_error", "permission_denied", detail)


def conflict(detail: str) -> ApiError:
    return ApiError(409, "server_error", "conflict", detail)


def server_error() -> ApiError:
    return ApiError(500, "server_error", "error", "A server error occurred.")


def throttled(wait_s: float | None, *, retry_after: bool = False) -> ApiError:
    """DRF's ``Throttled`` as PostHog renders it: the wait rounded up to whole seconds, in the detail only.

    drf-exceptions-hog builds its own response and drops the ``Retry-After`` header DRF would set, so PostHog
    answers without one. ``retry_after=True`` acts as a proxy in front of PostHog that adds it (the stand-in's
    ``proxy_retry_after`` switch).
    """
    detail = "Request was throttled."
    headers: dict[str, str] = {}
    wait = math.ceil(wait_s) if wait_s is not None else None
    if wait:
        unit = "second" if wait == 1 else "seconds"
        detail = f"Request was throttled. Expected available in {wait} {unit}."
        if retry_after:
            headers["Retry-After"] = str(wait)
    return ApiError(429, "throttled_error", "throttled", detail, headers=headers)


def fault_responder(*, retry_after: bool) -> Callable[[int, float], Response]:
    """The ``FaultResponder`` for ``install_sandbox``: DRF's throttle body for 429, PostHog's 500 otherwise."""

    def respond(status: int, retry_after_s: float) -> Response:
        if status != 429:
            return server_error().response()
        return throttled(retry_after_s if retry_after_s > 0 else None, retry_after=retry_after).response()

    return respond


fault_response = fault_responder(retry_after=False)
