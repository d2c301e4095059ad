"""OAuth 2.0 for the stand-in: the token endpoint's grant types and the sessions they open.

``POST /services/oauth2/token`` (form-encoded) accepts:

- ``grant_type=password`` with ``client_id``, ``client_secret``, ``username``, ``password``;
- ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` with an RS256 ``assertion`` whose ``iss`` is the
  client id, ``sub`` an active user's username, ``aud`` ``https://login.salesforce.com`` /
  ``https://test.salesforce.com`` (or the stand-in's own URL; ``jwt_audiences`` narrows it to what one org
  accepts, answering ``invalid_grant`` / ``audience is invalid`` otherwise) and ``exp`` in the future, verified
  with the configured certificate or public key;
- ``grant_type=client_credentials`` with HTTP Basic ``client_id:client_secret`` (runs as the API user; an app
  without a Run As user answers ``invalid_grant`` / ``no client credentials user enabled``).

Success answers ``{"access_token", "instance_url", "id", "token_type": "Bearer", "issued_at", "signature"}``
(``signature`` = base64 HMAC-SHA256 of ``id + issued_at`` keyed by the client secret, as Salesforce signs it).
Failures answer 400 ``{"error", "error_description"}`` with Salesforce's codes (``invalid_grant`` /
``authentication failure`` for a wrong password, ``invalid_client_id``, ``invalid_client``,
``unsupported_grant_type``). Access tokens look like ``00D000000000001!AQ...`` and expire after the
configured lifetime, counted from issue.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from sandbox.salesforce.errors import OAuthError
from sandbox.salesforce.store import ADMIN_USER_ID, Store

PASSWORD_GRANT = "password"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLIENT_CREDENTIALS_GRANT = "client_credentials"
LOGIN_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")


@dataclass(frozen=True)
class Session:
    """An access token and who it acts as."""

    token: str
    user_id: str
    issued_at: float
    expires_at: float


class TokenStore:
    """Access tokens issued by the stand-in. Thread-safe."""

    def __init__(self, org_id: str, lifetime_s: float) -> None:
        self.org_id = org_id
        self.lifetime_s = lifetime_s
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def issue(self, user_id: str) -> Session:
        now = time.time()
        token = f"{self.org_id[:15]}!AQ{secrets.token_urlsafe(72).replace('-', '.')}"
        session = Session(token, user_id, now, now + self.lifetime_s)
        with self._lock:
            if len(self._sessions) > 10_000:
                self._sessions = {k: s for k, s in self._sessions.items() if s.expires_at > now}
            self._sessions[token] = session
        return session

    def check(self, token: str) -> Session | None:
        """The live session for ``token``, or None when unknown or expired."""
        with self._lock:
            session = self._sessions.get(token)
        if session is None or session.expires_at <= time.time():
            return None
        return session

    def expire_all(self) -> int:
        """Make every issued token expire now (tests of session refresh); returns how many were live."""
        now = time.time()
        with self._lock:
            live = [t for t, s in self._sessions.items() if s.expires_at > now]
            for token in live:
                session = self._sessions[token]
                self._sessions[token] = Session(token, session.user_id, session.issued_at, now)
        return len(live)


@dataclass(frozen=True)
class OAuthSettings:
    """The connected app and API user the token endpoint accepts."""

    org_id: str
    username: str
    password: str
    client_id: str
    client_secret: str
    jwt_public_key_pem: str | None = None
    jwt_audiences: tuple[str, ...] | None = None
    client_credentials_user: bool = True


def load_verification_key(pem: str) -> RSAPublicKey:
    """The RSA public key in ``pem``: an X.509 certificate (as uploaded to a connected app) or a public key."""
    data = pem.encode()
    key = (
        x509.load_pem_x509_certificate(data).public_key() if b"BEGIN CERTIFICATE" in data else load_pem_public_key(data)
    )
    if not isinstance(key, RSAPublicKey):
        raise ValueError("the JWT verification key must be RSA")
    return key


class TokenEndpoint:
    """Decides a token request: which user it opens a session for, or why not."""

    def __init__(self, settings: OAuthSettings, store: Store, tokens: TokenStore) -> None:
        self.settings = settings
        self.store = store
        self.tokens = tokens
        self._jwt_key = load_verification_key(settings.jwt_public_key_pem) if settings.jwt_public_key_pem else None

    def grant(self, form: Mapping[str, str], authorization: str | None, base_url: str) -> dict[str, Any]:
        """Answer a token request; raises ``OAuthError``."""
        grant_type = form.get("grant_type", "")
        if grant_type == PASSWORD_GRANT:
            user_id = self._password(form)
        elif grant_type == JWT_GRANT:
            user_id = self._jwt(form.get("assertion", ""), base_url)
        elif grant_type == CLIENT_CREDENTIALS_GRANT:
            user_id = self._client_credentials(form, authorization)
        else:
            raise OAuthError("unsupported_grant_type", "grant type not supported")
        session = self.tokens.issue(user_id)
        identity = f"{base_url}/id/{self.settings.org_id}/{user_id}"
        issued_at = str(int(session.issued_at * 1000))
        digest = hmac.new(
            self.settings.client_secret.encode(), (identity + issued_at).encode(), hashlib.sha256
        ).digest()
        body: dict[str, Any] = {
            "access_token": session.token,
            "instance_url": base_url,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
            "signature": base64.b64encode(digest).decode(),
        }
        if grant_type != PASSWORD_GRANT:
            body["scope"] = "api"
        return body

    def _check_client(self, client_id: str, client_secret: str | None) -> None:
        if not hmac.compare_digest(client_id, self.settings.client_id):
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if client_secret is not None and not hmac.compare_digest(client_secret, self.settings.client_secret):
            raise OAuthError("invalid_client", "invalid client credentials")

    def _password(self, form: Mapping[str, str]) -> str:
        self._check_client(form.get("client_id", ""), form.get("client_secret", ""))
        username = form.get("username", "")
        password = form.get("password", "")
        if username.casefold() != self.settings.username.casefold() or not hmac.compare_digest(
            password, self.settings.password
        ):
            raise OAuthError("invalid_grant", "authentication failure")
        return ADMIN_USER_ID

    def _client_credentials(self, form: Mapping[str, str], authorization: str | None) -> str:
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        if authorization and authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:].strip()).decode()
            except (ValueError, UnicodeDecodeError) as exc:
                raise OAuthError("invalid_client", "invalid client credentials") from exc
            client_id, _, client_secret = decoded.partition(":")
        self._check_client(client_id, client_secret)
        if not self.settings.client_credentials_user:
            raise OAuthError("invalid_grant", "no client credentials user enabled")
        return ADMIN_USER_ID

    def _jwt(self, assertion: str, base_url: str) -> str:
        if self._jwt_key is None:
            raise OAuthError("invalid_grant", "invalid assertion")
        try:
            claims = jwt.decode(
                assertion,
                self._jwt_key,
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_aud": False, "verify_iss": False, "verify_iat": False},
            )
        except jwt.InvalidTokenError as exc:
            raise OAuthError("invalid_grant", "invalid assertion") from exc
        self._check_client(str(claims.get("iss", "")), None)
        audience = str(claims.get("aud", ""))
        accepted = self.settings.jwt_audiences
        if accepted is not None:
            allowed = audience.rstrip("/") in {a.rstrip("/") for a in accepted}
        else:
            allowed = audience in LOGIN_AUDIENCES or audience.startswith(base_url)
        if not allowed:
            raise OAuthError("invalid_grant", "audience is invalid")
        try:
            expires = float(claims["exp"])
        except (KeyError, TypeError, ValueError) as exc:
            raise OAuthError("invalid_grant", "invalid assertion") from exc
        if expires <= time.time():
            raise OAuthError("invalid_grant", "expired authorization code")
        user = self.store.user_by_username(str(claims.get("sub", "")))
        if user is None or not user.get("IsActive"):
            raise OAuthError("invalid_grant", "invalid assertion")
        return str(user["Id"])
