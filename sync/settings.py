"""Settings read from the environment at start-up (pydantic-settings); a bad value fails naming its key."""

from __future__ import annotations

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sync.budget import POSTHOG_WINDOWS, Window, parse_window
from sync.errors import ConfigError


class PostHogSettings(BaseSettings):
    """Where PostHog is and how to talk to it: ``POSTHOG_HOST``, ``POSTHOG_PERSONAL_API_KEY``,
    ``POSTHOG_PROJECT_ID``, plus timeouts and retry bounds (``POSTHOG_TIMEOUT_S``, ...), and the request
    budget (``sync.budget``): ``budget`` windows as ``N/SECONDS`` (PostHog's real 480/60 and 4800/3600 by
    default; ``[]`` for a self-hosted instance with throttling off), how long a call may wait for a slot
    (``budget_max_wait_s``), the safety margin added to each window (``budget_margin_s``) and the share of each
    window reserved for webhook refreshes while they are active (``realtime_share``, 0.1)."""

    model_config = SettingsConfigDict(env_prefix="POSTHOG_", extra="ignore")

    host: AnyHttpUrl = AnyHttpUrl("https://us.posthog.com")
    personal_api_key: SecretStr
    project_id: int = Field(ge=1)
    timeout_s: float = Field(30.0, gt=0)
    connect_timeout_s: float = Field(5.0, gt=0)
    max_retries: int = Field(5, ge=0, le=20)
    retry_backoff_s: float = Field(0.5, ge=0)
    retry_max_backoff_s: float = Field(30.0, ge=0)
    retry_max_total_s: float = Field(120.0, ge=0)
    budget: tuple[str, ...] = tuple(str(w) for w in POSTHOG_WINDOWS)
    budget_max_wait_s: float = Field(60.0, ge=0)
    budget_margin_s: float = Field(0.5, ge=0, le=60)
    realtime_share: float = Field(0.1, ge=0, le=0.5)

    @field_validator("budget")
    @classmethod
    def _windows_parse(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        windows = [parse_window(spec) for spec in value]
        if len({w.seconds for w in windows}) != len(windows):
            raise ValueError("two windows of the same length")
        return tuple(str(w) for w in windows)

    @property
    def budget_windows(self) -> tuple[Window, ...]:
        """The request budget's windows; empty when PostHog does not throttle (self-hosted, turned off)."""
        return tuple(parse_window(spec) for spec in self.budget)

    @property
    def base_url(self) -> str:
        return str(self.host).rstrip("/")


def load_posthog_settings(**overrides: object) -> PostHogSettings:
    """Build settings from the environment (and explicit overrides), raising ``ConfigError`` naming the key."""
    try:
        return PostHogSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        key = "POSTHOG_" + "_".join(str(p) for p in first["loc"]).upper()
        raise ConfigError(key, first["msg"]) from None
