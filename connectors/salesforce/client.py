"""The one simple-salesforce client a connector uses, and the HTTP session under it.

- **Login** goes through the SDK's own ``SalesforceLogin`` against the configured ``login_url``: the OAuth 2.0
  client-credentials flow, the JWT bearer flow (its assertion signed here, ``jwt_assertion``: ``aud`` is login,
  test or an Experience Cloud site, set apart from the token host; the SDK's ``token_login`` posts it), or the legacy
  username-password flow; a session id with its instance URL is used as given. A refused login names the flow
  and what to check (``login_refused``).
- **Timeouts** are explicit on every request, logins included (the SDK sets none).
- **The one call path** (``sync.calls.VendorCalls``) runs every call: a token of the org's shared Redis token
  bucket first, so all workers together stay polite (a concurrent-request refusal empties the bucket, so every
  worker backs off); short retries of 5xx answers, timeouts and dropped connections (``is_transient``) through
  the one policy (``sync.retry.RetryPolicy``: jittered backoff bounded in count and time);
  ``REQUEST_LIMIT_EXCEEDED`` is never retried here; errors through the table of ``connectors.salesforce.errors``.
- **Session refresh** (a response action of the path): an expired session (401 ``INVALID_SESSION_ID``) logs in
  again once and the call is retried at once; a second 401, or a session id given in the config, is an
  authentication failure.
- **Allowance**: a response hook reads ``Sforce-Limit-Info`` (and the server's ``Date``) from every response,
  errors included, into ``Allowance``; the same hook counts every request and refusal (429, or 403
  ``REQUEST_LIMIT_EXCEEDED``) in ``stats`` (``sync.vendor.CallStats``).

Errors leave this module already translated into ``sync.errors`` (see ``connectors.salesforce.errors``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import jwt
import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceError, SalesforceExpiredSession
from simple_salesforce.login import SalesforceLogin, token_login

from connectors.salesforce.allowance import Allowance
from connectors.salesforce.config import (
    ClientCredentialsAuth,
    JwtAuth,
    PasswordAuth,
    SalesforceConfig,
    SessionAuth,
    default_audience,
)
from connectors.salesforce.errors import SalesforceAuthFailed, is_transient, translate
from sync.calls import BucketBudget, ErrorTable, Failure, VendorCalls, VendorRules, Verdict
from sync.errors import CrmsyncError
from sync.ratelimit import TokenBucket
from sync.retry import RetryPolicy
from sync.vendor import retry_after

log = logging.getLogger(__name__)
T = TypeVar("T")
LoginAuth = PasswordAuth | JwtAuth | ClientCredentialsAuth
SALESFORCE_SUFFIX = ".salesforce.com"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def jwt_assertion(auth: JwtAuth, login_url: str) -> str:
    """The RS256 assertion of the JWT bearer flow: ``iss`` the consumer key, ``sub`` the username, ``aud`` the
    configured audience or ``default_audience(login_url)``, ``exp`` three minutes ahead (Salesforce allows at most
    three). Signed here, not by simple-salesforce: the SDK can only sign ``aud = https://<domain>.salesforce.com``,
    which cannot be an Experience Cloud site URL."""
    payload = {
        "iss": auth.client_id,
        "sub": auth.username,
        "aud": auth.audience or default_audience(login_url),
        "exp": int(time.time()) + 180,
    }
    return jwt.encode(payload, auth.private_key.get_secret_value(), algorithm="RS256")


_HINTS = {
    "password": (
        "check the username, the password and the security token (appended outside trusted IP ranges), and that "
        "the org still allows the username-password flow (Salesforce is retiring it: prefer client_credentials "
        "or jwt)"
    ),
    "jwt": (
        "check that the user in auth.username is pre-authorised for the connected app, that the app's "
        "certificate matches auth.private_key, and that the org accepts the audience {audience} (production: "
        "https://login.salesforce.com, sandboxes: https://test.salesforce.com, or an Experience Cloud site URL; "
        "set auth.audience)"
    ),
    "client_credentials": (
        "check that the connected app has 'Enable Client Credentials Flow' and a Run As user, and that login_url "
        "is the org's My Domain ({login_url})"
    ),
}


def login_refused(auth: LoginAuth, login_url: str, exc: SalesforceAuthenticationFailed) -> SalesforceAuthFailed:
    """The error for a refused login: the flow, Salesforce's code and description, and what to check (never a
    secret: only the settings' names and the public hosts)."""
    audience = (auth.audience or default_audience(login_url)) if isinstance(auth, JwtAuth) else ""
    hint = _HINTS[auth.flow].format(audience=audience, login_url=login_url)
    description = str(exc.auth_message or "")[:200]
    return SalesforceAuthFailed(
        f"Salesforce login ({auth.flow} flow) refused: {exc.code or 'no code'} ({description}); {hint}"
    )


def login_target(login_url: str) -> tuple[str, str | None]:
    """How the SDK must be told to reach ``login_url``: ``(domain, token_host)``.

    The SDK always posts to ``https://{domain}.salesforce.com/services/oauth2/token``. A Salesforce host maps
    onto ``domain`` (``login``, ``test``, ``acme.my``) and ``token_host`` is None. Any other host (a stand-in,
    a proxy) is reached with ``token_host = "<host:port>/services/oauth2/token#"``: the SDK's
    ``.salesforce.com/...`` tail becomes a URL fragment, which is never sent; ``domain`` stays ``login`` so a
    JWT assertion keeps the standard audience.
    """
    parts = urlsplit(login_url)
    host = parts.hostname or ""
    if host.endswith(SALESFORCE_SUFFIX) and parts.port in (None, 443):
        return host[: -len(SALESFORCE_SUFFIX)], None
    return "login", f"{parts.netloc}/services/oauth2/token#"


class TimeoutSession(requests.Session):
    """A ``requests.Session`` that puts a default ``timeout`` on every request, the SDK's logins included."""

    def __init__(self, timeout: tuple[float, float]) -> None:
        super().__init__()
        self.default_timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        return super().request(method, url, *args, **kwargs)


class SalesforceClient:
    """An authenticated ``Salesforce`` for one org; ``call`` runs one SDK call with the policies above."""

    def __init__(
        self,
        config: SalesforceConfig,
        budget: TokenBucket | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.config = config
        self.budget = budget
        self.retry = retry or RetryPolicy(
            max_retries=config.max_retries,
            backoff_s=config.backoff_s,
            max_backoff_s=config.max_backoff_s,
            max_total_s=config.max_retry_total_s,
        )
        self.allowance = Allowance(config.max_share_per_run, config.max_share_total)
        self.session = TimeoutSession(config.timeout)
        self.session.verify = config.ca_bundle or True
        self.session.trust_env = config.trust_env
        self.session.hooks["response"].append(self._observe)
        self.server_time: float | None = None
        self.last_retry_after: float | None = None
        self.logins = 0
        self.refreshes = 0
        rules = VendorRules(
            name="salesforce",
            errors=ErrorTable((((SalesforceError, requests.RequestException), self._translate),)),
            transient=lambda exc, error: isinstance(exc, Exception) and is_transient(exc),
            actions=(self._refresh_session,),
            wait_hint=self._server_wait,
            counted_by_transport=True,
        )
        self.calls = VendorCalls(
            rules, self.retry, BucketBudget(budget, config.max_budget_wait_s) if budget is not None else None
        )
        self.stats = self.calls.stats
        self._sf: Salesforce | None = None

    # -- observation ---------------------------------------------------------------------------------------

    def _observe(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.stats.sent(str(response.request.method or "GET"))
        if response.status_code == 429 or (
            response.status_code == 403 and b"REQUEST_LIMIT_EXCEEDED" in (response.content or b"")
        ):
            self.stats.throttled += 1
        self.allowance.observe(response.headers.get("Sforce-Limit-Info"))
        self.last_retry_after = retry_after(response.headers)
        date = response.headers.get("Date")
        if date:
            with contextlib.suppress(TypeError, ValueError):
                self.server_time = parsedate_to_datetime(date).timestamp()

    # -- session -------------------------------------------------------------------------------------------

    @property
    def can_refresh(self) -> bool:
        return not isinstance(self.config.auth, SessionAuth)

    def sdk(self) -> Salesforce:
        """The SDK client, logging in first when there is no live session yet."""
        if self._sf is None:
            auth = self.config.auth
            if isinstance(auth, SessionAuth):
                token, instance = auth.session_id.get_secret_value(), auth.instance_url
            else:
                token, host = self._login(auth)
                instance = f"https://{host}"
            self._sf = Salesforce(
                instance_url=instance, session_id=token, session=self.session, version=self.config.api_version
            )
        return self._sf

    def _login(self, auth: LoginAuth) -> tuple[str, str]:
        """Log in with the configured flow; a refusal names the flow and what to check (``login_refused``)."""
        domain, token_host = login_target(self.config.login_url)
        self.logins += 1
        try:
            if isinstance(auth, PasswordAuth):
                password = auth.password.get_secret_value()
                if auth.security_token is not None:
                    password += auth.security_token.get_secret_value()
                token, host = SalesforceLogin(
                    username=auth.username,
                    password=password,
                    consumer_key=auth.client_id,
                    consumer_secret=auth.client_secret.get_secret_value(),
                    domain=token_host or domain,
                    session=self.session,
                )
            elif isinstance(auth, JwtAuth):
                # the audience is set apart from the token host (``jwt_assertion``); the SDK posts and reads the answer
                grant = {"grant_type": JWT_GRANT, "assertion": jwt_assertion(auth, self.config.login_url)}
                token_url = f"{self.config.login_url.rstrip('/')}/services/oauth2/token"
                token, host = token_login(token_url, grant, domain, auth.client_id, None, None, self.session)
            else:
                token, host = SalesforceLogin(
                    consumer_key=auth.client_id,
                    consumer_secret=auth.client_secret.get_secret_value(),
                    domain=token_host or domain,
                    session=self.session,
                )
        except SalesforceAuthenticationFailed as exc:
            raise login_refused(auth, self.config.login_url, exc) from None
        if not token or not host:
            raise SalesforceAuthFailed("login answered without an access token or instance URL")
        return str(token), str(host)

    def request_overhead(self, extra_headers: Mapping[str, str]) -> tuple[str, int]:
        """``(REST base path, bytes of the headers a call will send)``: what a query's URI length is added to
        when checking it against Salesforce's limit on URI plus headers. Logs in first if needed."""
        sf = self.calls.call("login", self.sdk, budget=None)  # a login is not budgeted (nor is it in ``call``)
        parts = urlsplit(sf.base_url)
        headers = {**self.session.headers, **sf.headers, **extra_headers, "Host": parts.netloc}
        return parts.path, sum(len(str(k)) + len(str(v)) + 4 for k, v in headers.items())

    def close(self) -> None:
        """Close the HTTP session (its pooled TLS connections)."""
        self._sf = None
        self.session.close()

    # -- calls ---------------------------------------------------------------------------------------------

    def call(self, what: str, fn: Callable[[Salesforce], T]) -> T:
        """Run ``fn`` with the SDK client through the one call path: budget token, short retries, one session
        refresh, translated errors."""
        return self.calls.call(what, lambda: fn(self.sdk()))

    def _translate(self, exc: Exception, what: str) -> CrmsyncError:
        return translate(exc, what, self._server_wait(exc) or self.config.rate_limited_retry_after_s)

    def _server_wait(self, exc: BaseException, error: CrmsyncError | None = None) -> float | None:
        """The ``Retry-After`` of the answer that failed (the response hook kept it); None for transport errors."""
        return self.last_retry_after if isinstance(exc, SalesforceError) else None

    def _refresh_session(self, failure: Failure) -> Verdict | None:
        """An expired session logs in again once and the call is retried at once; a second expiry, or a session
        id given in the config, is an authentication failure."""
        if not isinstance(failure.exc, SalesforceExpiredSession):
            return None
        if failure.immediate or not self.can_refresh:
            reason = (
                "even after a fresh login" if failure.immediate else "and a configured session id cannot be renewed"
            )
            raise SalesforceAuthFailed(f"{failure.operation}: the session expired {reason}") from failure.exc
        self.refreshes += 1
        self._sf = None
        log.info("salesforce session expired during %s; logging in again", failure.operation)
        return Verdict.RETRY_NOW
