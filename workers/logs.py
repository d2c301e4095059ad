"""Structured logs (structlog, JSON lines) that never carry secrets or payloads.

Every value is passed through ``redact``: known secret values (collected from the config at start-up) are
replaced wherever they appear, and values under secret-looking keys are masked whatever they hold.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO, cast

import structlog
from pydantic import BaseModel, SecretStr

_SECRET_KEY = re.compile(r"(token|secret|password|api_key|apikey|authorization|signature|session_id)", re.I)
_known_secrets: set[str] = set()


def remember_secrets(values: Iterable[str]) -> None:
    """Register secret strings that must never be printed (ignores short values that would mask noise)."""
    _known_secrets.update(v for v in values if v and len(v) >= 6)


def secrets_of(model: Any) -> list[str]:
    """Every ``SecretStr`` value inside a pydantic model or plain structure."""
    found: list[str] = []
    if isinstance(model, SecretStr):
        found.append(model.get_secret_value())
    elif isinstance(model, BaseModel):
        for value in model.__dict__.values():
            found.extend(secrets_of(value))
    elif isinstance(model, dict):
        for key, value in model.items():
            if isinstance(value, str) and _SECRET_KEY.search(str(key)):
                found.append(value)
            else:
                found.extend(secrets_of(value))
    elif isinstance(model, list | tuple):
        for value in model:
            found.extend(secrets_of(value))
    return found


def redact(value: Any) -> Any:
    if isinstance(value, str):
        for secret in _known_secrets:
            if secret in value:
                value = value.replace(secret, "****")
        return value
    if isinstance(value, dict):
        return {k: "****" if _SECRET_KEY.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def _redact_processor(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    return {k: "****" if _SECRET_KEY.search(k) else redact(v) for k, v in event.items()}


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time of writing, not when logging was configured: loggers are
    cached on first use, and ``sys.stderr`` may be swapped later (test capture, daemonisation)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str = "INFO", json: bool = True) -> None:
    """Route stdlib and structlog records through one redacting pipeline to stderr."""
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _CurrentStderr())),
        cache_logger_on_first_use=True,
    )
