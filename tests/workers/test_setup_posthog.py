"""``crmsync setup posthog`` and the worker's start-up check of custom property definitions, against a stand-in of
the current generation, with the example config's mapping."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from sync.errors import ConfigError
from tests.conftest import POSTHOG_KEY, REDIS_URL, PostHogSandbox
from tests.support.current_posthog import posthog_server  # noqa: F401 (this module's stand-in: current)
from workers.cli import app
from workers.config import parse_config
from workers.runtime import Runtime

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "crmsync.yaml"


def config_for(posthog: PostHogSandbox, tmp_path: Path) -> Path:
    example = yaml.safe_load(EXAMPLE.read_text())
    config = {
        **{k: example[k] for k in ("ownership", "mappings")},
        "posthog": {"host": posthog.url, "stand_in": True, "project_id": 1},
        "redis_url": REDIS_URL,
    }
    path = tmp_path / "crmsync.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_setup_posthog_creates_the_definitions_the_worker_then_finds(
    posthog: PostHogSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSTHOG_PERSONAL_API_KEY", POSTHOG_KEY)
    path = config_for(posthog, tmp_path)
    runtime = Runtime(parse_config(yaml.safe_load(path.read_text()), str(path)))
    try:
        with pytest.raises(ConfigError) as refused:
            runtime.check_custom_properties()  # a worker would stop here, naming the mapping key
        assert refused.value.key == "mappings.hubspot.deals.fields.5.target"  # the first declared (keys sorted)
        assert "custom property 'Deal stage' missing" in refused.value.reason

        env = {"POSTHOG_PERSONAL_API_KEY": POSTHOG_KEY, "REDIS_URL": REDIS_URL}
        dry = CliRunner().invoke(app, ["--config", str(path), "setup", "posthog", "--dry-run"], env=env)
        assert dry.exit_code == 0, dry.output
        assert dry.output.count("would create") == 4 and "Dry run: nothing was created. 1 requests." in dry.output

        done = CliRunner().invoke(app, ["--config", str(path), "setup", "posthog"], env=env)
        assert done.exit_code == 0, done.output
        assert "created custom property 'MRR' (currency)" in done.output and "5 requests." in done.output
        runtime.check_custom_properties()  # passes now

        again = CliRunner().invoke(app, ["--config", str(path), "setup", "posthog"], env=env)
        assert again.exit_code == 0 and again.output.count("exists") == 4 and "1 requests." in again.output
    finally:
        runtime.close()
