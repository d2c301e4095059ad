"""Structured logs (structlog, JSON lines) that never carry secrets or payloads.

Every value is passed through ``redact``: known secret values (collected from the config at start-up) are
replaced wherever they appear, values under secret-looking keys are masked whatever they hold, and the password
of any URL (``redis://:pw@host``) is masked.

``secrets_of`` collects what to remember: every ``SecretStr``, every string under a secret-looking key (in lists
too: ``webhook_secrets``; the Salesforce JWT ``private_key``) and the password of every URL in the config
(``redis_url``, which ``REDIS_URL`` may set).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO, cast

import structlog
from pydantic import BaseModel, SecretStr

_SECRET_KEY = re.compile(
    r"(token|secret|password|passphrase|private_key|api_key|apikey|authorization|signature|session_id)", re.I
)
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)(?P<password>[^@\s/]+)(?=@)")
_known_secrets: set[str] = set()
_known_pattern: re.Pattern[str] | None = None


def remember_secrets(values: Iterable[str]) -> None:
    """Register secret strings that must never be printed (ignores short values that would mask noise)."""
    global _known_pattern
    new = {v for v in values if v and len(v) >= 6} - _known_secrets
    if new:
        _known_secrets.update(new)
        # longest first, so a secret that contains another is masked whole; case-insensitive, so an upper-cased
        # copy (an error message, a header echoed back) is masked as well
        alternatives = sorted(_known_secrets, key=len, reverse=True)
        _known_pattern = re.compile("|".join(re.escape(v) for v in alternatives), re.IGNORECASE)


def mask_url_password(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``****`` (``redis://:****@host:6379/0``)."""
    return _URL_PASSWORD.sub(lambda m: m.group("head") + "****", text)


def secrets_of(model: Any, secret: bool = False) -> list[str]:
    """Every secret inside a pydantic model or plain structure (see the module docstring); ``secret`` says the
    value sits under a secret-looking key, so every string in it counts."""
    found: list[str] = []
    if isinstance(model, SecretStr):
        found.append(model.get_secret_value())
    elif isinstance(model, str):
        if secret:
            found.append(model)
        found.extend(m.group("password") for m in _URL_PASSWORD.finditer(model))
    elif isinstance(model, BaseModel | dict):
        items = model.__dict__.items() if isinstance(model, BaseModel) else model.items()
        for key, value in items:
            found.extend(secrets_of(value, secret or bool(_SECRET_KEY.search(str(key)))))
    elif isinstance(model, list | tuple):
        for value in model:
            found.extend(secrets_of(value, secret))
    return found


def redact(value: Any) -> Any:
    """``value`` with known secrets (in any letter case) and URL passwords masked, and every value under a
    secret-looking key masked whole."""
    if isinstance(value, str):
        if _known_pattern is not None:
            value = _known_pattern.sub("****", value)
        return mask_url_password(value)
    if isinstance(value, dict):
        return {k: "****" if _SECRET_KEY.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def masked(value: Any) -> Any:
    """``value`` with every known secret inside its strings replaced: what every output of crmsync (``status``,
    ``status --json``, ``dlq list``, ``sync --json``, the status page and its API) prints. Keys are left alone
    (unlike ``redact``, which masks values under secret-looking keys: a budget's ``tokens`` is a count)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [masked(v) for v in value]
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
