"""Who may see the page and press its buttons.

- **HTTP Basic** with ``ui.username`` and the password from ``CRMSYNC_UI_PASSWORD``, compared in constant time;
  a wrong or missing login is a 401 with ``WWW-Authenticate: Basic``.
- **No password, loopback only**: without ``CRMSYNC_UI_PASSWORD`` the page asks for no login, so ``crmsync ui``
  refuses to bind anything but a loopback address (``check_bind``), naming the variable.
- **Cross-site POSTs are refused** (403) on three independent grounds, any one enough: a ``Sec-Fetch-Site`` header
  other than ``same-origin`` (sent by every current browser), an ``Origin`` whose host and port are not the
  page's own (the scheme is not compared: behind a TLS-terminating proxy the page sees http, the browser https),
  and a missing or wrong CSRF token in the form. The token is an HMAC of the username under a key drawn at start-up, so
  it is valid for this process only and a page on another site cannot know it (it cannot read ours).
- **Only known Host names** (``host_allowed``), against DNS rebinding: a page on ``evil.example`` whose name is
  re-pointed at 127.0.0.1 reaches our port with ``Host: evil.example`` and would read the password-less page as its
  own origin. Allowed: loopback names (``localhost``, ``127.0.0.0/8``, ``[::1]``), any literal IP address (a name is
  what rebinding needs), the address the page is bound to, and ``ui.allowed_hosts`` (the name a proxy forwards);
  anything else is a 421 before the login is even looked at.
- **Security headers on every answer** (``SECURITY_HEADERS``), 401, 403, 404, 421 and static files included.
- **Odd input is a 4xx**: a non-ASCII ``Authorization`` header is a failed login, a run id outside Redis' stream id
  range (two 64-bit numbers) is a 404, and ``?queued=`` is shown only when it is a confirmation the page itself
  wrote (``known_queued``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sync.errors import ConfigError

PASSWORD_ENV = "CRMSYNC_UI_PASSWORD"

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
"""Set on every answer of the page, whatever its status."""

_STREAM_ID = re.compile(r"^(\d{1,20})-(\d{1,20})$")
_QUEUED = re.compile(r"^(?P<action>[a-z-]{1,16}) (?P<source>[a-z]{1,32}) \((?P<task>[0-9a-f-]{36})\)$")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_allowed(header: str | None, allowed: Iterable[str]) -> bool:
    """Whether a ``Host`` header names this page (see the module docstring); ``allowed``: further host names,
    lower case, without port (the bind address, ``ui.allowed_hosts``)."""
    if not header or not header.isascii():
        return False
    try:
        host = (urlsplit(f"//{header}").hostname or "").rstrip(".")
    except ValueError:  # a malformed IPv6 literal or port
        return False
    if not host:
        return False
    if is_loopback(host) or host in allowed:
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def valid_stream_id(run_id: str) -> bool:
    """Whether ``run_id`` is a Redis stream id Redis accepts (``<ms>-<seq>``, each below 2**64)."""
    match = _STREAM_ID.match(run_id)
    return match is not None and all(int(part) < 1 << 64 for part in match.groups())


def known_queued(value: str | None, actions: Iterable[str], sources: Iterable[str]) -> str | None:
    """``?queued=`` as the page wrote it after a button (``sync stripe (<task id>)``), else None: a link from
    elsewhere cannot put its own words on the page."""
    match = _QUEUED.match(value or "")
    if match is None or match["action"] not in actions or match["source"] not in sources:
        return None
    return value


def check_bind(host: str, password: str | None) -> None:
    """Refuse (``ConfigError``) to serve an open page on anything but loopback."""
    if not password and not is_loopback(host):
        raise ConfigError(PASSWORD_ENV, f"set a password to serve the status page on {host} (only loopback without)")


@dataclass
class Access:
    """The login, and the CSRF key of this process."""

    username: str
    password: str | None
    csrf_key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    allowed_hosts: frozenset[str] = frozenset()
    """Host names the page answers to besides loopback names and IP addresses (``host_allowed``)."""

    def authorized(self, header: str | None) -> bool:
        """Whether an ``Authorization`` header carries the login (always, when no password is set)."""
        if not self.password:
            return True
        if not header or not header.lower().startswith("basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):  # not base64, not ASCII (ValueError), not UTF-8 (UnicodeDecodeError)
            return False
        user, sep, given = decoded.partition(":")
        ok_user = hmac.compare_digest(user.encode(), self.username.encode())
        ok_password = hmac.compare_digest(given.encode(), self.password.encode())
        return bool(sep) and ok_user and ok_password

    @property
    def csrf_token(self) -> str:
        return hmac.new(self.csrf_key, self.username.encode(), hashlib.sha256).hexdigest()

    def cross_site_reason(
        self, own_host: str, origin: str | None, fetch_site: str | None, token: str | None
    ) -> str | None:
        """Why a POST is refused as cross-site, or None when it is the page's own (``own_host``: the request's
        ``Host`` header)."""
        if fetch_site is not None and fetch_site != "same-origin":
            return f"Sec-Fetch-Site is {fetch_site}"
        if origin is not None and (not own_host or _netloc(origin) != own_host):
            return "Origin is another site"
        if not token or not hmac.compare_digest(token.encode(), self.csrf_token.encode()):
            return "missing or wrong form token"
        return None


def _netloc(url: str) -> str | None:
    """The host and port of ``url``, None when it is malformed (an unclosed ``[``)."""
    try:
        return urlsplit(url).netloc
    except ValueError:
        return None
