"""crmsync.yaml: validated at start-up with the offending key named; the beat schedule built from it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from sync.budget import POSTHOG_WINDOWS, Window
from sync.errors import ConfigError
from tests.conftest import REDIS_URL
from tests.sync.test_engine import MAPPING
from workers.config import load_config, parse_config
from workers.runtime import Runtime
from workers.schedule import beat_schedule

PACKAGED_CONFIG = Path(__file__).resolve().parents[2] / "workers" / "data" / "crmsync.yaml"


def raw(**extra: Any) -> dict[str, Any]:
    return {
        **MAPPING,
        "posthog": {"host": "http://127.0.0.1:8010", "stand_in": True, "project_id": 1},
        "sources": {"memcrm": {"schedule": {"every_s": 60}, "full_schedule": {"cron": "0 3 * * 0"}}},
        **extra,
    }


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"sources": {"memcrm": {"schedule": {"every_s": -1}}}}, "sources.memcrm.schedule.every_s"),
        ({"sources": {"memcrm": {"schedule": {"every_s": 5, "cron": "* * * * *"}}}}, "sources.memcrm.schedule"),
        ({"sources": {"memcrm": {"schedule": {"cron": "* *"}}}}, "sources.memcrm.schedule"),
        ({"sources": {"ghostcrm": {}}}, "sources.ghostcrm"),
        ({"webhooks": {"max_body_bytes": 1}}, "webhooks.max_body_bytes"),
        ({"redis": "x"}, "redis"),
        ({"posthog": {"budget": ["480 a minute"]}}, "posthog.budget"),
        ({"posthog": {"budget_max_wait_s": -1}}, "posthog.budget_max_wait_s"),
        ({"posthog": {"realtime_share": 0.7}}, "posthog.realtime_share"),
    ],
)
def test_bad_keys_are_named(change: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(raw(**change))
    assert exc.value.key.startswith(key), exc.value.key


def test_posthog_settings_come_from_file_and_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "crmsync.yaml"
    path.write_text(yaml.safe_dump(raw()))
    monkeypatch.delenv("POSTHOG_PERSONAL_API_KEY", raising=False)
    config = load_config(path)
    with pytest.raises(ConfigError) as missing:
        config.posthog_settings()
    assert missing.value.key == "posthog.personal_api_key"
    monkeypatch.setenv("POSTHOG_PERSONAL_API_KEY", "phx_from_env")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/5")
    config = load_config(path)
    assert config.posthog_settings().personal_api_key.get_secret_value() == "phx_from_env"
    assert config.redis_url.endswith("/5")
    with pytest.raises(ConfigError):
        load_config(tmp_path / "missing.yaml")


def test_beat_schedule_from_config() -> None:
    schedule = beat_schedule(parse_config(raw()))
    assert set(schedule) == {
        "sync:memcrm",
        "full:memcrm",
        "reconcile:memcrm",
        "reconcile:accounts",
        "outbound",
        "replay:dlq",
    }
    assert schedule["replay:dlq"]["task"] == "crmsync.replay_dlq"
    assert schedule["replay:dlq"]["kwargs"] == {"scheduled": True}
    assert schedule["replay:dlq"]["schedule"] == timedelta(seconds=60)
    assert schedule["sync:memcrm"]["schedule"] == timedelta(seconds=60)
    assert schedule["sync:memcrm"]["kwargs"] == {"mode": "incremental"}
    assert schedule["full:memcrm"]["schedule"].minute == {0}
    assert all(entry["options"]["queue"] == "bulk" for entry in schedule.values())
    disabled = beat_schedule(parse_config(raw(sources={"memcrm": {"enabled": False}})))
    assert disabled == {}


def test_posthog_budget_from_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """PostHog's real windows by default, what the file says otherwise, none when it says ``budget: []``."""
    monkeypatch.setenv("POSTHOG_PERSONAL_API_KEY", "phx_budget_test")
    host = {"host": "http://127.0.0.1:8010", "stand_in": True, "project_id": 1}
    default = Runtime(parse_config(raw()))
    assert default.posthog_budget is not None and default.posthog_budget.windows == POSTHOG_WINDOWS
    assert "phx_budget_test" not in default.posthog_budget.key
    assert default.posthog.budget is default.posthog_budget
    assert default.posthog_budget.realtime_share == 0.1  # held for webhook refreshes while they are active
    scaled = Runtime(
        parse_config(raw(posthog={**host, "budget": ["48/6"], "budget_max_wait_s": 5, "realtime_share": 0}))
    )
    assert scaled.posthog_budget is not None and scaled.posthog_budget.windows == (Window(48, 6.0),)
    assert scaled.posthog_budget.max_wait_s == 5 and scaled.posthog_budget.realtime_share == 0
    unthrottled = Runtime(parse_config(raw(posthog={**host, "budget": []})))
    assert unthrottled.posthog_budget is None and unthrottled.posthog.budget is None
    for runtime in (default, scaled, unthrottled):
        runtime.close()


def test_a_connector_setting_the_mapping_now_says_stops_start_up_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("POSTHOG_PERSONAL_API_KEY", "phx_start_up_test")
    example = yaml.safe_load(PACKAGED_CONFIG.read_text())
    hubspot = {"access_token": "pat-x", "push_properties": ["posthog_account_id"]}  # the mapping also writes the CSM
    posthog = {"host": "http://127.0.0.1:8010", "stand_in": True, "project_id": 1}
    deployment = {**example, "posthog": posthog, "redis_url": REDIS_URL}
    config = parse_config({**deployment, "sources": {"hubspot": {"config": hubspot}}})
    with pytest.raises(ConfigError) as info:
        Runtime(config).check_sources()
    assert info.value.key == "sources.hubspot.config.push_properties"
    assert "mappings.hubspot.deals" in str(info.value)

    agreeing = {**hubspot, "push_properties": ["posthog_csm_email", "posthog_account_id", "posthog_health_score"]}
    config = parse_config({**deployment, "sources": {"hubspot": {"config": agreeing}}})
    runtime = Runtime(config)
    runtime.check_sources()  # the same properties as the mapping: accepted, for older configs
    runtime.close()
