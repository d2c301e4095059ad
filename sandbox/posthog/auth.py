"""Personal-API-key authentication and scope checks, in the order PostHog applies them.

1. Find the key: ``Authorization: Bearer <key>``, else ``personal_api_key`` in a JSON body, else the
   ``?personal_api_key=`` query parameter. None → 401 ``not_authenticated``; unknown → 401
   ``authentication_failed`` saying where the key was found.
2. A key limited to some projects: an unknown project is 404, another project 403; on an
   organisation-level endpoint such a key is refused (403).
3. Scope: ``<object>:read`` for list/retrieve, ``<object>:write`` for writes; ``:write`` implies ``:read``,
   ``*`` allows everything, a key without scopes (legacy) too.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from sandbox.posthog.config import ApiKey
from sandbox.posthog.errors import (
    ApiError,
    authentication_failed,
    not_authenticated,
    not_found,
    parse_error,
    permission_denied,
    unsupported_media_type,
)

_BEARER = re.compile(r"^Bearer\s+(\S.+)$")


def _strict_constant(name: str) -> Any:
    raise ValueError(f"Out of range float values are not JSON compliant: {name!r}")


def _finite_float(text: str) -> float:
    """Deviation: DRF would accept ``1e400`` (infinity) and fail later storing or rendering it."""
    value = float(text)
    if not math.isfinite(value):
        _strict_constant(text)
    return value


class RequestBody:
    """The raw body, decoded lazily like DRF's ``request.data`` (errors are raised on first access).

    An empty body is ``{}``; a body needs ``Content-Type: application/json`` (anything else, or none,
    is DRF's 415); bad JSON, bad encoding, NaN/Infinity (or a number too large for a float) are 400
    ``parse_error``.
    """

    def __init__(self, raw: bytes, content_type: str | None) -> None:
        self.raw = raw
        self.content_type = content_type
        self._parsed: Any = None
        self._error: ApiError | None = None
        self._done = False

    def data(self) -> Any:
        if not self._done:
            self._done = True
            try:
                self._parsed = self._parse()
            except ApiError as exc:
                self._error = exc
        if self._error is not None:
            raise self._error
        return self._parsed

    def _parse(self) -> Any:
        if not self.raw:
            return {}
        content_type = self.content_type or ""
        media_type, _, params = content_type.partition(";")
        if media_type.strip().lower() != "application/json":
            raise unsupported_media_type(content_type)
        charset = "utf-8"
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "charset" and value.strip():
                charset = value.strip().strip('"')
        try:
            codecs.lookup(charset)
        except LookupError:
            charset = "utf-8"
        try:
            text = self.raw.decode(charset)
        except ValueError as exc:
            raise parse_error(str(exc)) from None
        try:
            return json.loads(text, parse_constant=_strict_constant, parse_float=_finite_float)
        except (ValueError, RecursionError) as exc:
            raise parse_error(str(exc)) from None


class KeyRing:
    """The configured personal API keys."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._keys = {key.key: key for key in keys}

    def authenticate(self, headers: Mapping[str, str], query: Mapping[str, str], body: RequestBody) -> ApiKey:
        """The key of this request, looked for where PostHog looks, in the same order."""
        return self.identify(headers, query, body)[0]

    def identify(self, headers: Mapping[str, str], query: Mapping[str, str], body: RequestBody) -> tuple[ApiKey, str]:
        """The key of this request and where it was found (``Authorization header``, ``body``, ``query string``)."""
        found = self._find(headers, query, body)
        if found is None:
            raise not_authenticated()
        value, source = found
        key = self._keys.get(value) if isinstance(value, str) else None
        if key is None:
            raise authentication_failed(source)
        return key, source

    @staticmethod
    def _find(headers: Mapping[str, str], query: Mapping[str, str], body: RequestBody) -> tuple[Any, str] | None:
        header = headers.get("authorization")
        if header is not None:
            match = _BEARER.match(header)
            if match:
                return match.group(1).strip(), "Authorization header"
        data = body.data()
        if isinstance(data, dict) and data and "personal_api_key" in data:
            return data["personal_api_key"], "body"
        if "personal_api_key" in query:
            return query["personal_api_key"], "query string"
        return None


def authorize(
    key: ApiKey,
    scope_object: str,
    *,
    write: bool,
    project_id: int | None,
    known_projects: frozenset[int],
    project_level: bool = True,
) -> None:
    """Raise the 403/404 PostHog's ``APIScopePermission`` raises for this key, object and project."""
    if not key.scopes:
        return
    if key.projects is not None:
        if not project_level:
            raise permission_denied("API keys with scoped projects are only supported on project-based endpoints.")
        if project_id is None or project_id not in known_projects:
            raise not_found()
        if project_id not in key.projects:
            raise permission_denied(f"API key does not have access to the requested project: ID {project_id}.")
    if "*" in key.scopes:
        return
    required = f"{scope_object}:{'write' if write else 'read'}"
    accepted = {required, f"{scope_object}:write"}
    if not accepted & set(key.scopes):
        raise permission_denied(f"API key missing required scope '{required}'")
