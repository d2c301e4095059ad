"""``crmsync.yaml``: the whole configuration of a worker, validated at start-up with the bad key named.

Read from ``--config PATH`` or ``CRMSYNC_CONFIG`` (default ``crmsync.yaml``); environment variables override the
file for secrets and deployment settings: ``REDIS_URL``, ``REDIS_SENTINEL_MASTER``, ``POSTHOG_HOST``,
``POSTHOG_PERSONAL_API_KEY``, ``POSTHOG_PROJECT_ID``. Sections:

```yaml
posthog: {host: https://us.posthog.com, project_id: 1}     # the key comes from POSTHOG_PERSONAL_API_KEY
#   budget: ["480/60", "4800/3600"]  (PostHog's throttles, the default; [] = unthrottled self-hosted)
#   budget_max_wait_s: 60            (longer waits stop the run, which is re-queued)
#   realtime_share: 0.1              (of each window, held for webhook refreshes while they are active)
#   stand_in: true                   (http and private hosts allowed: a local stand-in only)
redis_url: redis://127.0.0.1:6379/0                         # or sentinel://h:26379;sentinel://h2:26379 (+ master)
redis_sentinel_master: mymaster                              # only for a sentinel:// URL (REDIS_SENTINEL_MASTER)
redis_timeout_s: 10                                          # connect and read timeout of every Redis client
leases: {ttl_s: 30, sweep_every_s: 10}                       # a dead worker's work is taken up in ttl + sweep
ledger_prefix: crmsync                                       # keys are <prefix>:<project id>:...
sources:                                                     # one block per CRM; see docs/connectors/
  hubspot: {enabled: true, schedule: {every_s: 300}, config: {access_token: ..., host: ...}}
outbound: {schedule: {every_s: 300}}                         # PostHog → CRM pass
reconcile: {schedule: {cron: "17 3 * * *"}}                  # delete reconciliation
dlq_replay: {schedule: {every_s: 60}, backoff_s: 60, max_backoff_s: 3600}   # parked records, per-source backoff
webhooks: {max_body_bytes: 1048576, coalesce_s: 2.0, body_timeout_s: 10, public_url: https://hooks.example.com}
ui: {username: crmsync, links: {hubspot_portal: 123456}}    # crmsync ui; password from CRMSYNC_UI_PASSWORD
mappings: ...   ownership: ...   identity: ...               # docs/engine.md
```
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from connectors.registry import CONNECTORS, default_precedence, vendor_facts
from sync.budget import parse_window
from sync.errors import ConfigError
from sync.mapping import MappingConfig, load_mapping_config
from sync.settings import PostHogSettings
from workers.redis_conn import is_sentinel, sentinel_nodes

DEFAULT_CONFIG = "crmsync.yaml"
REDIS_TIMEOUT_S = 10.0
"""Connect and read timeout of the Redis clients crmsync builds (``redis_timeout_s``): no command crmsync sends
blocks on the server, so a silent Redis is an error after this long, never a hang."""


class Schedule(BaseModel):
    """When beat triggers a job: every N seconds, or a five-field cron expression (UTC)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    every_s: float | None = Field(None, gt=0)
    cron: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Schedule:
        if (self.every_s is None) == (self.cron is None):
            raise ValueError("give exactly one of every_s or cron")
        if self.cron is not None and len(self.cron.split()) != 5:
            raise ValueError("cron needs five fields: minute hour day-of-month month day-of-week")
        return self


class SourceBlock(BaseModel):
    """One CRM: whether it runs, when, and its connector's own settings (validated by the connector)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    stand_in: bool = Field(False, description="the CRM host is a local stand-in: http and private addresses allowed")
    schedule: Schedule = Schedule(every_s=300)
    full_schedule: Schedule | None = Field(
        default_factory=lambda: Schedule(cron="41 2 * * *"),
        description="full runs, which also repair drift on both sides (docs/engine.md); null: never",
    )
    config: dict[str, Any] = Field(default_factory=dict)


class PostHogBlock(BaseModel):
    """Where PostHog is, and the request budget the key is held to (``sync.budget``; docs/posthog.md).

    ``budget``: windows as ``N/SECONDS``, PostHog Cloud's ``["480/60", "4800/3600"]`` by default; ``[]`` for a
    self-hosted PostHog with throttling off. ``budget_max_wait_s``: how long one call may wait for a slot before
    the run stops to be re-queued. ``budget_margin_s``: added to each window against network jitter.
    ``realtime_share``: the share of each window held for webhook refreshes while they are active (bulk work
    borrows it while they are idle)."""

    model_config = ConfigDict(extra="forbid")

    host: str = "https://us.posthog.com"
    stand_in: bool = Field(False, description="the host is a local stand-in: http and private addresses allowed")
    project_id: int | None = Field(None, ge=1)
    personal_api_key: SecretStr | None = None
    budget: list[str] | None = None
    budget_max_wait_s: float | None = Field(None, ge=0)
    budget_margin_s: float | None = Field(None, ge=0, le=60)
    realtime_share: float | None = Field(None, ge=0, le=0.5)

    @field_validator("budget")
    @classmethod
    def _windows(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [str(parse_window(spec)) for spec in value]


class JobBlock(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    schedule: Schedule = Schedule(every_s=300)


class DlqReplayBlock(JobBlock):
    """Scheduled replay of parked records: beat's tick (every minute by default), and per source a backoff
    between attempts that left records parked: ``backoff_s`` doubling up to ``max_backoff_s``."""

    schedule: Schedule = Schedule(every_s=60)
    backoff_s: float = Field(60.0, gt=0)
    max_backoff_s: float = Field(3600.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> DlqReplayBlock:
        if self.max_backoff_s < self.backoff_s:
            raise ValueError("max_backoff_s must be at least backoff_s")
        return self


class LeaseBlock(BaseModel):
    """Leases (``docs/reliability.md``): what a dead worker held lapses within ``ttl_s``; every worker's sweep
    (every ``sweep_every_s``) sends its tasks again, so they are taken up within ``ttl_s + sweep_every_s``."""

    model_config = ConfigDict(extra="forbid")

    ttl_s: float = Field(30.0, ge=1, le=60)
    sweep_every_s: float = Field(10.0, gt=0, le=60)

    @property
    def ttl_ms(self) -> int:
        return int(self.ttl_s * 1000)


class WebhookBlock(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_body_bytes: int = Field(1_048_576, ge=1024, le=64 * 1_048_576)
    coalesce_s: float = Field(2.0, ge=0, le=300)
    event_ttl_s: int = Field(7 * 24 * 3600, ge=60)
    body_timeout_s: float = Field(10.0, gt=0, le=300, description="time allowed to receive a body (then 408)")
    public_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
        description="base URL the CRMs post to; required unless the receiver listens on loopback only",
    )


class UiLinks(BaseModel):
    """What the status page needs to link a record to the system that holds it; a link is shown only when known."""

    model_config = ConfigDict(extra="allow")

    posthog_account: str | None = Field(
        None, pattern=r"\{id\}", description="URL of an account page in PostHog, with {id} for the account id"
    )
    hubspot_portal: int | None = Field(None, ge=1, description="HubSpot portal (hub) id, for deal pages")
    salesforce_instance: str | None = Field(
        None, pattern=r"^https://[^/?#]+/?$", description="the org's instance URL, e.g. https://acme.my.salesforce.com"
    )

    @model_validator(mode="after")
    def _declared_settings(self) -> UiLinks:
        """A setting not named above must be one a registered source declares (``VendorFacts.ui_links``), with a
        string value matching its pattern: a new source's record URL needs no edit here."""
        declared = {setting.name: setting for name in CONNECTORS for setting in vendor_facts(name).ui_links}
        for key, value in (self.model_extra or {}).items():
            setting = declared.get(key)
            if setting is None:
                raise ValueError(
                    f"{key}: unknown setting; one of {', '.join(sorted([*type(self).model_fields, *declared]))}"
                )
            if not isinstance(value, str) or not re.fullmatch(setting.pattern, value):
                raise ValueError(f"{key}: must match {setting.pattern} ({setting.description})")
        return self


class UiBlock(BaseModel):
    """``crmsync ui``: the login name (the password comes from ``CRMSYNC_UI_PASSWORD``) and record links."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field("crmsync", min_length=1, pattern=r"^[^:]+$")
    links: UiLinks = UiLinks()
    allowed_hosts: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9.-]+$")]] = Field(
        default_factory=list,
        description="host names the page answers to besides loopback and IP addresses (the name a proxy forwards)",
    )


class AppConfig(BaseModel):
    """The validated configuration; ``mapping`` holds the engine's sections."""

    model_config = ConfigDict(extra="forbid")

    posthog: PostHogBlock = PostHogBlock()
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_sentinel_master: str | None = Field(None, min_length=1, description="master name for a sentinel:// URL")
    redis_timeout_s: float = Field(
        REDIS_TIMEOUT_S, gt=0, le=300, description="connect and read timeout of every Redis client (a silent server)"
    )
    ledger_prefix: str = Field("crmsync", pattern=r"^[A-Za-z0-9_.-]+$", description="Redis key prefix of the ledger")
    sources: dict[str, SourceBlock] = Field(default_factory=dict)
    outbound: JobBlock = JobBlock()
    reconcile: JobBlock = JobBlock(schedule=Schedule(cron="17 3 * * *"))
    dlq_replay: DlqReplayBlock = DlqReplayBlock()
    leases: LeaseBlock = LeaseBlock()
    webhooks: WebhookBlock = WebhookBlock()
    ui: UiBlock = UiBlock()
    mapping: MappingConfig

    def posthog_settings(self) -> PostHogSettings:
        """PostHog settings: the file's values, overridden by ``POSTHOG_*`` environment variables."""
        values: dict[str, Any] = {"host": self.posthog.host}
        if self.posthog.project_id is not None:
            values["project_id"] = self.posthog.project_id
        if self.posthog.personal_api_key is not None:
            values["personal_api_key"] = self.posthog.personal_api_key
        for key in ("budget", "budget_max_wait_s", "budget_margin_s", "realtime_share"):
            if getattr(self.posthog, key) is not None:
                values[key] = getattr(self.posthog, key)
        for key in ("host", "project_id", "personal_api_key"):
            env = os.environ.get(f"POSTHOG_{key.upper()}")
            if env:
                values[key] = env
        try:
            return PostHogSettings(**values)
        except ValidationError as exc:
            error = exc.errors()[0]
            raise ConfigError("posthog." + ".".join(str(p) for p in error["loc"]), error["msg"]) from None

    def enabled_sources(self) -> list[str]:
        return [name for name, block in self.sources.items() if block.enabled]


_MAPPING_KEYS = ("mappings", "ownership", "default_rule", "identity")


def parse_config(raw: dict[str, Any], where: str = "config") -> AppConfig:
    """Validate a parsed ``crmsync.yaml``; ``ConfigError`` names the offending key path."""
    mapping = load_mapping_config({k: raw[k] for k in _MAPPING_KEYS if k in raw}, default_precedence())
    rest = {k: v for k, v in raw.items() if k not in _MAPPING_KEYS}
    if os.environ.get("REDIS_URL"):
        rest["redis_url"] = os.environ["REDIS_URL"]
    if os.environ.get("REDIS_SENTINEL_MASTER"):
        rest["redis_sentinel_master"] = os.environ["REDIS_SENTINEL_MASTER"]
    try:
        config = AppConfig(mapping=mapping, **rest)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise ConfigError(".".join(str(p) for p in error["loc"]) or where, error["msg"]) from None
    check_redis_url(config.redis_url, "REDIS_URL" if os.environ.get("REDIS_URL") else "redis_url")
    for name in config.sources:
        if name not in mapping.mappings:
            raise ConfigError(f"sources.{name}", f"no mappings.{name} section for this source")
    check_hosts(config)
    if is_sentinel(config.redis_url):
        sentinel_nodes(config.redis_url)  # a malformed one fails here, naming REDIS_URL
        if not config.redis_sentinel_master:
            raise ConfigError("REDIS_SENTINEL_MASTER", "a sentinel:// REDIS_URL needs the master's name")
    return config


REDIS_SCHEMES = ("redis", "rediss", "unix")


def check_redis_url(url: str, key: str) -> None:
    """Raise ``ConfigError`` naming ``key`` unless ``url`` is a Redis URL redis-py can use. The reason never
    quotes the URL, nor any part of it: it may hold a password (one with ``@`` or ``%`` in it, unescaped, would
    be cut at the wrong place by any masking)."""
    import redis

    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme.startswith("sentinel"):
        return  # Sentinel URLs (Celery's form) are parsed where the Sentinel clients are built
    if scheme not in REDIS_SCHEMES:
        raise ConfigError(
            key, "must be a redis://, rediss:// or unix:// URL (the value is not shown: it may hold a password)"
        )
    if not url.isascii() or any(c.isspace() for c in url):
        raise ConfigError(key, "must be ASCII without spaces (percent-encode the password, punycode the host)")
    try:
        port = urlsplit(url).port
        redis.ConnectionPool.from_url(url)
    except (ValueError, TypeError):
        raise ConfigError(key, "is not a valid Redis URL: check the host, the port and the database number") from None
    if scheme != "unix" and port == 0:
        raise ConfigError(key, "port must be 1-65535")


METADATA_HOSTS = frozenset(
    {
        "metadata",  # GCP's short name (and a common search-domain alias)
        "metadata.google.internal",  # GCP
        "metadata.goog",  # GCP
        "instance-data",  # AWS, through the VPC's search domain
        "instance-data.ec2.internal",  # AWS
        "metadata.tencentyun.com",  # Tencent Cloud
    }
)
METADATA_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.0.0/16",  # IPv4 link-local: AWS, GCP, Azure, Oracle, DigitalOcean IMDS at 169.254.169.254
        "fe80::/10",  # IPv6 link-local
        "fd00:ec2::254/128",  # AWS IMDS over IPv6 (Nitro)
        "100.100.100.200/32",  # Alibaba Cloud metadata
        "168.63.129.16/32",  # Azure WireServer (host agent, DNS)
        "192.0.0.192/32",  # Oracle Cloud legacy metadata
    )
)
"""Addresses no credential is ever sent to, even to a stand-in: cloud metadata services and link-local space."""
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_6TO4 = ipaddress.ip_network("2002::/16")
_NUMERIC_HOST = re.compile(r"[0-9a-fA-FxX.]+")


def check_hosts(config: AppConfig) -> None:
    """Every host crmsync sends a credential to: https and a public address, unless its block says ``stand_in``.

    A stand-in (the sandbox, tests) may use http and loopback or private addresses. A link-local or cloud
    metadata address (``METADATA_HOSTS``, ``METADATA_NETWORKS``: ``169.254.169.254``, ``fd00:ec2::254``,
    ``100.100.100.200``, ``metadata.google.internal``, ``instance-data.ec2.internal``), also written inside an IPv6
    address (NAT64, IPv4-mapped or -compatible, 6to4, Teredo), is refused even then: nothing crmsync talks to lives
    there, and a key sent there is a key handed to whoever controls the instance's metadata.
    Names are not resolved here (DNS may answer differently later); literal addresses in any notation are checked.
    """
    posthog_host = os.environ.get("POSTHOG_HOST") or config.posthog.host
    check_host(
        posthog_host, "POSTHOG_HOST" if os.environ.get("POSTHOG_HOST") else "posthog.host", config.posthog.stand_in
    )
    for name, block in config.sources.items():
        key = vendor_facts(name).host_key if name in CONNECTORS else None
        value = block.config.get(key) if key else None
        if block.enabled and isinstance(value, str):
            check_host(value, f"sources.{name}.config.{key}", block.stand_in)


def check_host(url: str, key: str, stand_in: bool) -> None:
    """Raise ``ConfigError`` naming ``key`` unless ``url`` may receive credentials (see ``check_hosts``)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(key, "must be an http(s) URL with a host")
    address = _literal_address(host)
    if _is_metadata(host, address):
        raise ConfigError(key, f"{host} is a link-local or cloud metadata address; crmsync never sends keys there")
    if stand_in:
        return
    if parts.scheme != "https":
        raise ConfigError(key, "must be https:// (plain http is only for a local stand-in: set stand_in: true)")
    if host == "localhost" or host.endswith(".localhost") or (address is not None and not address.is_global):
        raise ConfigError(
            key, f"{host} is a loopback, private or reserved address (only for a local stand-in: set stand_in: true)"
        )


def _is_metadata(host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
    """A cloud metadata name, or an address that is, or embeds, a metadata or link-local address."""
    if host in METADATA_HOSTS:
        return True
    if address is None:
        return False
    candidates = [address, *_embedded_ipv4(address)]
    return any(a in net for a in candidates for net in METADATA_NETWORKS if a.version == net.version)


def _embedded_ipv4(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries and a network may route it to: IPv4-mapped (``::ffff:a.b.c.d``),
    IPv4-compatible (``::a.b.c.d``, deprecated but still parsed), NAT64 (``64:ff9b::/96``, RFC 6052, and the
    local-use ``64:ff9b:1::/48``, RFC 8215, last 32 bits), 6to4 (``2002:AABB:CCDD::/48``, RFC 3056) and Teredo
    (``2001:0::/32``, the client address inverted in the last 32 bits, RFC 4380)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    value = int(address)
    low = ipaddress.IPv4Address(value & 0xFFFFFFFF)
    found = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if value >> 32 == 0 and value > 1:
        found.append(low)
    if any(address in net for net in _NAT64):
        found.append(low)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.append(address.teredo[1])
    return found


def _literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``host`` as an IP address if it is one in any notation resolvers accept (``2852039166``, ``0xa9fea9fe``,
    ``0251.0376.0251.0376``, ``::ffff:169.254.169.254``), else None."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        packed = _inet_aton(host) if _NUMERIC_HOST.fullmatch(host) else None
        if packed is None:
            return None
        address = ipaddress.IPv4Address(packed)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _inet_aton(host: str) -> int | None:
    """The BSD ``inet_aton`` reading of ``host`` (1 to 4 parts, each decimal, octal with a leading 0, or hex)."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    try:
        numbers = [int(p, 8) if len(p) > 1 and p.startswith("0") and p.isdigit() else int(p, 0) for p in parts]
    except ValueError:
        return None
    value = 0
    for n, number in enumerate(numbers):
        width = 8 if n < len(numbers) - 1 else 8 * (4 - n)
        if not 0 <= number < 1 << width:
            return None
        value = (value << width) | number
    return value


_QUOTED = re.compile(r"'[^']{2,}'|\"[^\"]{2,}\"")


def yaml_error_text(exc: yaml.YAMLError) -> str:
    """Where and what a YAML error is, never the offending line: PyYAML's own message quotes the line (a password
    in it) and names what it found (an unquoted ``*secret`` is reported as an undefined alias ``secret``)."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "an unknown position"
    problem = _QUOTED.sub("'…'", str(getattr(exc, "problem", None) or "syntax error"))
    return f"not valid YAML at {where}: {problem}"


def load_config(path: str | Path | None = None) -> AppConfig:
    """Read and validate the config file (``CRMSYNC_CONFIG`` or ``crmsync.yaml`` when no path is given)."""
    target = Path(path or os.environ.get("CRMSYNC_CONFIG") or DEFAULT_CONFIG)
    try:
        raw = yaml.safe_load(target.read_text())
    except FileNotFoundError:
        raise ConfigError(str(target), "config file not found (use --config or CRMSYNC_CONFIG)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(target), yaml_error_text(exc)) from None
    except OSError as exc:
        raise ConfigError(str(target), f"cannot read config: {exc.strerror or type(exc).__name__}") from None
    if not isinstance(raw, dict):
        raise ConfigError(str(target), "expected a mapping at the top level")
    return parse_config(raw, str(target))
