"""Settings of one Salesforce connector (one org), validated at start-up with the offending key named.

Everything that decides what the connector reads, what it may write and how much of the org's API allowance it
may spend is explicit here: login host and flow, timeouts, page sizes, the share of the daily allowance one run
may use, the shared request budget, retries, and the Outbound Message endpoint's organisation id and token.
Secrets are ``SecretStr``: they never appear in ``repr``, logs, reports or exceptions.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from sync.errors import ConfigError
from sync.keys import crm_budget

FIELD_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
PATH_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)?$")
ORG_ID_RE = re.compile(r"^00D[0-9A-Za-z]{12}(?:[0-9A-Za-z]{3})?$")
SYSTEM_FIELDS: tuple[str, ...] = ("Id", "IsDeleted", "SystemModstamp", "LastModifiedDate", "CreatedDate")
"""Fields every read selects: the id, the delete flag, and the stamps the cursor, version and link rank use."""
DEFAULT_ACCOUNT_ID_FIELD = "PostHog_Account_Id__c"
DEFAULT_OUTBOUND_FIELDS: tuple[str, ...] = ("PostHog_CSM_Email__c",)
"""What push-back writes when the connector is built without a mapping (a worker always passes one)."""


LOGIN_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")
"""The JWT audiences of Salesforce's own login hosts (production, sandboxes); the third kind is a site URL."""
_SANDBOX_HOST = re.compile(r"^(test\.salesforce\.com|[a-z0-9-]+--[a-z0-9]+\.sandbox\.my\.salesforce\.com)$")


def default_audience(login_url: str) -> str:
    """``https://test.salesforce.com`` for a sandbox org's login URL, else ``https://login.salesforce.com``."""
    host = (urlsplit(login_url).hostname or "").lower()
    return LOGIN_AUDIENCES[1] if _SANDBOX_HOST.match(host) else LOGIN_AUDIENCES[0]


SALESFORCE_HOST_RE = re.compile(r"^https://([a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*)\.salesforce\.com$")
"""A Salesforce host URL (``https://login.salesforce.com``, ``https://acme.my.salesforce.com``); group 1 is what
simple-salesforce calls the ``domain`` (``login``, ``acme.my``)."""


class PasswordAuth(BaseModel):
    """OAuth 2.0 username-password flow of a connected app (``grant_type=password``). Legacy: Salesforce is
    retiring this flow and orgs can block it; prefer ``client_credentials`` or ``jwt``.

    ``security_token`` is appended to the password, as Salesforce requires outside trusted IP ranges.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    flow: Literal["password"] = "password"
    username: str = Field(min_length=3)
    password: SecretStr
    security_token: SecretStr | None = None
    client_id: str = Field(min_length=1, description="the connected app's consumer key")
    client_secret: SecretStr


class JwtAuth(BaseModel):
    """OAuth 2.0 JWT bearer flow: an RS256 assertion signed with the key whose certificate the app holds.

    The assertion is posted to ``login_url`` (the token host); its ``aud`` claim is ``audience``, set apart from
    it. Salesforce accepts only three audiences ("OAuth 2.0 JWT Bearer Flow for Server-to-Server Integration",
    help.salesforce.com, ``remoteaccess_oauth_jwt_flow``): ``https://login.salesforce.com``,
    ``https://test.salesforce.com`` (sandbox orgs) or an Experience Cloud site URL (``https://acme.my.site.com/
    customers``), never the org's My Domain, even when the assertion is posted there. Default (``audience``
    unset): ``https://test.salesforce.com`` when ``login_url`` is a sandbox (``test.salesforce.com`` or
    ``<name>--<sandbox>.sandbox.my.salesforce.com``), else ``https://login.salesforce.com`` (``default_audience``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    flow: Literal["jwt"]
    username: str = Field(min_length=3)
    client_id: str = Field(min_length=1, description="the connected app's consumer key")
    private_key: SecretStr = Field(description="PEM of the RSA private key that signs the assertion")
    audience: str | None = Field(
        None,
        description="the assertion's aud claim: https://login.salesforce.com, https://test.salesforce.com or an "
        "Experience Cloud site URL",
    )

    @field_validator("audience")
    @classmethod
    def _audience(cls, value: str | None) -> str | None:
        if value is None:
            return None
        bare = value.strip().rstrip("/")
        if bare.lower() in LOGIN_AUDIENCES:
            return bare.lower()
        parts = urlsplit(bare)
        host = (parts.hostname or "").lower()
        if parts.scheme != "https" or not host or parts.query or parts.fragment:
            raise ValueError(f"must be {' or '.join(LOGIN_AUDIENCES)}, or an Experience Cloud site's https URL")
        if host == "salesforce.com" or host.endswith(".salesforce.com"):
            raise ValueError(
                f"Salesforce accepts only {' or '.join(LOGIN_AUDIENCES)} or an Experience Cloud site URL as the "
                "JWT audience, not a My Domain or instance host (the assertion is still posted to login_url)"
            )
        return bare  # an Experience Cloud site (https://acme.my.site.com/customers, a custom domain)

    @field_validator("private_key")
    @classmethod
    def _pem(cls, value: SecretStr) -> SecretStr:
        if "PRIVATE KEY-----" not in value.get_secret_value():
            raise ValueError("must be a PEM private key (-----BEGIN ... PRIVATE KEY-----)")
        return value


class ClientCredentialsAuth(BaseModel):
    """OAuth 2.0 client-credentials flow (``grant_type=client_credentials``): the connected app's key and secret
    only; calls run as the app's Run As user. Salesforce serves it on the org's My Domain only, so ``login_url``
    must be ``https://<name>.my.salesforce.com`` (or a stand-in), not ``login``/``test``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flow: Literal["client_credentials"]
    client_id: str = Field(min_length=1, description="the connected app's consumer key")
    client_secret: SecretStr


class SessionAuth(BaseModel):
    """A session id (access token) obtained elsewhere, and the instance it belongs to. It cannot be refreshed:
    when it expires the run fails with an authentication error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flow: Literal["session"]
    session_id: SecretStr
    instance_url: str

    @field_validator("instance_url")
    @classmethod
    def _https(cls, value: str) -> str:
        return _https_url(value)


Auth = Annotated[PasswordAuth | JwtAuth | ClientCredentialsAuth | SessionAuth, Field(discriminator="flow")]


def _https_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("must be an https:// URL (the Salesforce SDK speaks https only)")
    if parts.query or parts.fragment or parts.path not in ("", "/"):
        raise ValueError("must be a bare host URL such as https://login.salesforce.com")
    return f"https://{parts.netloc}"


class SalesforceConfig(BaseModel):
    """How to reach one org, what to read and write there, and how much of its API allowance to spend.

    - ``auth``: ``{flow: client_credentials, ...}``, ``{flow: jwt, ...}``, ``{flow: session, ...}`` or the
      legacy ``{flow: password, ...}``.
    - ``login_url``: the OAuth token host (``https://login.salesforce.com``, ``https://test.salesforce.com``, a
      My Domain, or a stand-in); ``api_version`` the REST version.
    - ``ca_bundle``: a CA file to trust instead of the system store; ``trust_env``: honour proxy and CA
      environment variables (``REQUESTS_CA_BUNDLE`` overrides ``ca_bundle`` when true).
    - ``connect_timeout_s`` / ``read_timeout_s``: per HTTP attempt (the SDK has no default timeout).
    - ``page_size``: rows per query page (``Sforce-Query-Options: batchSize``, 200..2000).
    - ``overlap_s``: rows are read again until they are this much older than the server's clock at the read,
      so rows whose transaction committed late are still seen (see ``docs/connectors/salesforce.md``).
    - ``fields``: fields or one-hop relationship paths read on every Account (``Owner.Email``), besides the
      system fields, ``external_id_field``, the fields push-back writes and the CSM lookup.
    - ``external_id_field``: the External ID field holding the PostHog external id.
    - ``account_id_field`` / ``outbound_fields``: legacy. What push-back writes (and every pull reads back, so
      a value the record already holds is never pushed again) is configured in the mapping
      (``mappings.salesforce.Account``: ``account_id_field``, ``link_fields``, outbound fields); a value here
      that names other fields fails at start-up (``connectors.mapped``). Without a mapping they default to
      ``PostHog_Account_Id__c`` and ``PostHog_CSM_Email__c``.
    - ``csm_lookup``: the relationship name of a custom User lookup holding the CSM (``CSM__r``); its
      ``Email`` is read as ``<csm_lookup>.Email``.
    - ``push_batch_size``: records per sObject Collections request (at most 200); ``fetch_batch_size``: most ids
      per ``Id IN (...)`` query; ``max_request_bytes``: what one query's URI plus headers may take (Salesforce
      refuses more than 16,384 bytes with 431/414); ``max_uri_chars``: what the URI alone may take, 2,000 as
      Salesforce recommends (Help article 000386264: a SOQL query is expanded server-side, so the query that
      runs is longer than the one sent). A batch ends where its URL would pass either.
    - ``max_share_per_run`` / ``max_share_total``: a pull stops cleanly once this run has used that share of
      the org's daily allowance, or once the org as a whole has (read from ``Sforce-Limit-Info``).
    - ``requests_per_s`` / ``burst``: the request budget all workers of this org share (a Redis token bucket),
      keeping them under Salesforce's concurrent-request limits; ``budget_key`` names it (default: derived
      from the login host and user, never from a secret).
    - ``max_retries`` / ``backoff_s`` / ``max_backoff_s`` / ``max_retry_total_s``: short retries of 5xx answers,
      timeouts and dropped connections. ``REQUEST_LIMIT_EXCEEDED`` is never retried here.
    - ``rate_limited_retry_after_s``: the wait suggested to the job after a concurrent-request refusal.
    - ``organization_id`` / ``webhook_token``: Outbound Messages are accepted only from this org and only on
      the endpoint whose last path segment is this token; ``webhook_max_body_bytes`` bounds a delivery.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    auth: Auth
    login_url: str = "https://login.salesforce.com"
    api_version: str = Field("59.0", pattern=r"^[1-9][0-9]\.0$")
    ca_bundle: str | None = None
    trust_env: bool = True
    connect_timeout_s: float = Field(10.0, gt=0, le=120)
    read_timeout_s: float = Field(120.0, gt=0, le=600)

    page_size: int = Field(2000, ge=200, le=2000)
    overlap_s: int = Field(300, ge=0, le=86_400)
    fields: tuple[str, ...] = ("Name", "Website", "Owner.Email")
    external_id_field: str = "PostHog_External_Id__c"
    account_id_field: str | None = None
    outbound_fields: tuple[str, ...] | None = None
    csm_lookup: str | None = None

    push_batch_size: int = Field(200, ge=1, le=200)
    fetch_batch_size: int = Field(200, ge=1, le=500)
    max_request_bytes: int = Field(15_360, ge=2_048, le=16_384)
    max_uri_chars: int = Field(2_000, ge=500, le=16_384)

    max_share_per_run: float = Field(0.25, gt=0, le=1)
    max_share_total: float = Field(0.8, gt=0, le=1)

    requests_per_s: float = Field(20.0, gt=0, le=1000)
    burst: float = Field(40.0, ge=1, le=10_000)
    budget_key: str | None = Field(None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    max_budget_wait_s: float = Field(60.0, ge=0, le=3600)
    max_retries: int = Field(3, ge=0, le=10)
    backoff_s: float = Field(1.0, ge=0, le=60)
    max_backoff_s: float = Field(30.0, ge=0, le=600)
    max_retry_total_s: float = Field(120.0, ge=0, le=3600)
    rate_limited_retry_after_s: float = Field(30.0, ge=0, le=3600)

    organization_id: str | None = None
    webhook_token: SecretStr | None = None
    webhook_max_body_bytes: int = Field(1_048_576, ge=1024, le=64 * 1_048_576)

    @field_validator("login_url")
    @classmethod
    def _login_url(cls, value: str) -> str:
        return _https_url(value)

    @field_validator("fields")
    @classmethod
    def _paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for path in value:
            if not PATH_RE.match(path):
                raise ValueError(f"{path!r}: expected a field name or Relationship.Field")
        return value

    @field_validator("external_id_field", "account_id_field")
    @classmethod
    def _field_name(cls, value: str | None) -> str | None:
        if value is not None and not FIELD_RE.match(value):
            raise ValueError("expected a field name such as PostHog_Account_Id__c")
        return value

    @field_validator("outbound_fields")
    @classmethod
    def _field_names(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for name in value or ():
            if not FIELD_RE.match(name):
                raise ValueError(f"{name!r}: only plain fields can be written (no relationship paths)")
            if name.lower() in {f.lower() for f in SYSTEM_FIELDS}:
                raise ValueError(f"{name}: a system field cannot be written")
        return value

    @field_validator("csm_lookup")
    @classmethod
    def _relationship(cls, value: str | None) -> str | None:
        if value is not None and not FIELD_RE.match(value):
            raise ValueError("expected a relationship name such as CSM__r")
        return value

    @field_validator("organization_id")
    @classmethod
    def _org_id(cls, value: str | None) -> str | None:
        if value is not None and not ORG_ID_RE.match(value):
            raise ValueError("expected a 15- or 18-character organization id starting with 00D")
        return value

    @field_validator("webhook_token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            token = value.get_secret_value()
            if len(token) < 16 or not re.fullmatch(r"[A-Za-z0-9_-]+", token):
                raise ValueError("must be at least 16 URL-safe characters (letters, digits, - and _)")
        return value

    @model_validator(mode="after")
    def _shares(self) -> SalesforceConfig:
        if self.max_share_per_run > self.max_share_total:
            raise ValueError("max_share_per_run cannot exceed max_share_total")
        return self

    @model_validator(mode="after")
    def _client_credentials_host(self) -> SalesforceConfig:
        if isinstance(self.auth, ClientCredentialsAuth) and self.login_url in (
            "https://login.salesforce.com",
            "https://test.salesforce.com",
        ):
            raise ValueError(
                "login_url: the client_credentials flow is served on the org's My Domain only "
                "(https://<name>.my.salesforce.com), not on login or test"
            )
        return self

    @property
    def read_fields(self) -> tuple[str, ...]:
        """The field paths this config makes every read select, system fields first, each once (names compare
        case-insensitively). The connector adds the fields push-back writes (from the mapping) and those the
        mapping reads."""
        wanted = [*SYSTEM_FIELDS, *self.fields, self.external_id_field]
        if self.csm_lookup:
            wanted.append(f"{self.csm_lookup}.Email")
        return unique_paths(wanted)

    @property
    def default_written(self) -> tuple[str, ...]:
        """What push-back writes when no mapping is given: the legacy settings, else their defaults."""
        account_id = self.account_id_field or DEFAULT_ACCOUNT_ID_FIELD
        others = DEFAULT_OUTBOUND_FIELDS if self.outbound_fields is None else self.outbound_fields
        return unique_paths([account_id, *others])

    @property
    def timeout(self) -> tuple[float, float]:
        """``timeout=`` for every HTTP call: (connect, read) seconds."""
        return (self.connect_timeout_s, self.read_timeout_s)

    @property
    def bucket_key(self) -> str:
        """The Redis key of the org's shared request budget (a digest of host and user, never a secret)."""
        if self.budget_key:
            return crm_budget("salesforce", self.budget_key)
        if isinstance(self.auth, SessionAuth):
            who = self.auth.instance_url
        elif isinstance(self.auth, ClientCredentialsAuth):
            who = f"{self.login_url}|{self.auth.client_id}"
        else:
            who = f"{self.login_url}|{self.auth.username}"
        return crm_budget("salesforce", hashlib.sha256(who.encode()).hexdigest()[:16])


def unique_paths(paths: Iterable[str]) -> tuple[str, ...]:
    """Each field path once, in first-seen order; Salesforce names compare case-insensitively."""
    seen: set[str] = set()
    out: list[str] = []
    for path in paths:
        if path.lower() not in seen:
            seen.add(path.lower())
            out.append(path)
    return tuple(out)


def load_salesforce_config(raw: Mapping[str, Any], prefix: str = "connectors.salesforce") -> SalesforceConfig:
    """Validate a raw mapping (e.g. ``sources.salesforce.config`` of ``crmsync.yaml``).

    A bad entry raises ``ConfigError`` naming its key path (``connectors.salesforce.auth.password``), never
    echoing the value.
    """
    try:
        return SalesforceConfig.model_validate(dict(raw))
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = ".".join(str(part) for part in error["loc"])
        raise ConfigError(f"{prefix}.{loc}" if loc else prefix, error["msg"]) from None
