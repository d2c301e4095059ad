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
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sync.errors import ConfigError

PASSWORD_ENV = "CRMSYNC_UI_PASSWORD"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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

    def authorized(self, header: str | None) -> bool:
        """Whether an ``Authorization`` header carries the login (always, when no password is set)."""
        if not self.password:
            return True
        if not header or not header.lower().startswith("basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
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
        if origin is not None and (not own_host or urlsplit(origin).netloc != own_host):
            return "Origin is another site"
        if not token or not hmac.compare_digest(token, self.csrf_token):
            return "missing or wrong form token"
        return None
