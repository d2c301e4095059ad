"""Settings read from the environment at start-up (pydantic-settings); a bad value fails naming its key."""

from __future__ import annotations

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from sync.errors import ConfigError


class PostHogSettings(BaseSettings):
    """Where PostHog is and how to talk to it: ``POSTHOG_HOST``, ``POSTHOG_PERSONAL_API_KEY``,
    ``POSTHOG_PROJECT_ID``, plus timeouts and retry bounds (``POSTHOG_TIMEOUT_S``, ...)."""

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
