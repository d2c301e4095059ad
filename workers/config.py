"""``crmsync.yaml``: the whole configuration of a worker, validated at start-up with the bad key named.

Read from ``--config PATH`` or ``CRMSYNC_CONFIG`` (default ``crmsync.yaml``); environment variables override the
file for secrets and deployment settings: ``REDIS_URL``, ``POSTHOG_HOST``, ``POSTHOG_PERSONAL_API_KEY``,
``POSTHOG_PROJECT_ID``. Sections:

```yaml
posthog: {host: https://us.posthog.com, project_id: 1}     # the key comes from POSTHOG_PERSONAL_API_KEY
#   budget: ["480/60", "4800/3600"]  (PostHog's throttles, the default; [] = unthrottled self-hosted)
#   budget_max_wait_s: 60            (longer waits stop the run, which is re-queued)
redis_url: redis://127.0.0.1:6379/0
ledger_prefix: crmsync                                       # keys are <prefix>:<project id>:...
sources:                                                     # one block per CRM; see docs/connectors/
  hubspot: {enabled: true, schedule: {every_s: 300}, config: {access_token: ..., host: ...}}
outbound: {schedule: {every_s: 300}}                         # PostHog → CRM pass
reconcile: {schedule: {cron: "17 3 * * *"}}                  # delete reconciliation
dlq_replay: {schedule: {every_s: 60}, backoff_s: 60, max_backoff_s: 3600}   # parked records, per-source backoff
webhooks: {max_body_bytes: 1048576, coalesce_s: 2.0}
mappings: ...   ownership: ...   identity: ...               # docs/engine.md
```
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from sync.budget import parse_window
from sync.errors import ConfigError
from sync.mapping import MappingConfig, load_mapping_config
from sync.settings import PostHogSettings

DEFAULT_CONFIG = "crmsync.yaml"


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
    schedule: Schedule = Schedule(every_s=300)
    full_schedule: Schedule | None = None
    config: dict[str, Any] = Field(default_factory=dict)


class PostHogBlock(BaseModel):
    """Where PostHog is, and the request budget the key is held to (``sync.budget``; docs/posthog.md).

    ``budget``: windows as ``N/SECONDS``, PostHog Cloud's ``["480/60", "4800/3600"]`` by default; ``[]`` for a
    self-hosted PostHog with throttling off. ``budget_max_wait_s``: how long one call may wait for a slot before
    the run stops to be re-queued. ``budget_margin_s``: added to each window against network jitter."""

    model_config = ConfigDict(extra="forbid")

    host: str = "https://us.posthog.com"
    project_id: int | None = Field(None, ge=1)
    personal_api_key: SecretStr | None = None
    budget: list[str] | None = None
    budget_max_wait_s: float | None = Field(None, ge=0)
    budget_margin_s: float | None = Field(None, ge=0, le=60)

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


class WebhookBlock(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_body_bytes: int = Field(1_048_576, ge=1024, le=64 * 1_048_576)
    coalesce_s: float = Field(2.0, ge=0, le=300)
    event_ttl_s: int = Field(7 * 24 * 3600, ge=60)
    public_url: str | None = Field(None, description="base URL the CRMs post to, when a proxy rewrites it")


class AppConfig(BaseModel):
    """The validated configuration; ``mapping`` holds the engine's sections."""

    model_config = ConfigDict(extra="forbid")

    posthog: PostHogBlock = PostHogBlock()
    redis_url: str = "redis://127.0.0.1:6379/0"
    ledger_prefix: str = Field("crmsync", pattern=r"^[A-Za-z0-9_.-]+$", description="Redis key prefix of the ledger")
    sources: dict[str, SourceBlock] = Field(default_factory=dict)
    outbound: JobBlock = JobBlock()
    reconcile: JobBlock = JobBlock(schedule=Schedule(cron="17 3 * * *"))
    dlq_replay: DlqReplayBlock = DlqReplayBlock()
    webhooks: WebhookBlock = WebhookBlock()
    mapping: MappingConfig

    def posthog_settings(self) -> PostHogSettings:
        """PostHog settings: the file's values, overridden by ``POSTHOG_*`` environment variables."""
        values: dict[str, Any] = {"host": self.posthog.host}
        if self.posthog.project_id is not None:
            values["project_id"] = self.posthog.project_id
        if self.posthog.personal_api_key is not None:
            values["personal_api_key"] = self.posthog.personal_api_key
        for key in ("budget", "budget_max_wait_s", "budget_margin_s"):
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
    mapping = load_mapping_config({k: raw[k] for k in _MAPPING_KEYS if k in raw})
    rest = {k: v for k, v in raw.items() if k not in _MAPPING_KEYS}
    if os.environ.get("REDIS_URL"):
        rest["redis_url"] = os.environ["REDIS_URL"]
    try:
        config = AppConfig(mapping=mapping, **rest)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise ConfigError(".".join(str(p) for p in error["loc"]) or where, error["msg"]) from None
    for name in config.sources:
        if name not in mapping.mappings:
            raise ConfigError(f"sources.{name}", f"no mappings.{name} section for this source")
    return config


def load_config(path: str | Path | None = None) -> AppConfig:
    """Read and validate the config file (``CRMSYNC_CONFIG`` or ``crmsync.yaml`` when no path is given)."""
    target = Path(path or os.environ.get("CRMSYNC_CONFIG") or DEFAULT_CONFIG)
    try:
        raw = yaml.safe_load(target.read_text())
    except FileNotFoundError:
        raise ConfigError(str(target), "config file not found (use --config or CRMSYNC_CONFIG)") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(str(target), f"cannot read config: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(str(target), "expected a mapping at the top level")
    return parse_config(raw, str(target))
