"""Usage metrics as code: planning (pure), applying against the stand-in, and the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from sync.errors import ConfigError
from sync.posthog import PostHogClient, UsageMetric, UsageMetricSpec
from sync.usage_metrics import Action, apply_plan, build_plan, load_metrics_file, plan_metrics
from tests.conftest import POSTHOG_KEY, PostHogSandbox
from workers.cli import app

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "metrics.yaml"
FILTERS = {"events": [{"id": "$pageview", "type": "events"}]}


def spec(name: str, **kw: object) -> UsageMetricSpec:
    return UsageMetricSpec.model_validate({"name": name, "filters": FILTERS, **kw})


def test_plan_is_a_pure_diff() -> None:
    current = [
        UsageMetric(id="1", **spec("Same").model_dump()),
        UsageMetric(id="2", **spec("Changed", interval=7).model_dump()),
        UsageMetric(id="3", **spec("Unlisted").model_dump()),
    ]
    desired = [spec("Same"), spec("Changed", interval=30), spec("New")]
    plan = plan_metrics(desired, current, 0, prune=False)
    assert [(i.action, i.name) for i in plan.items] == [
        (Action.UNCHANGED, "Same"),
        (Action.UPDATE, "Changed"),
        (Action.CREATE, "New"),
        (Action.KEEP, "Unlisted"),
    ]
    assert plan.items[1].changes == {"interval": (7, 30)}
    assert plan_metrics(desired, current, 0, prune=True).items[3].action is Action.DELETE


def test_apply_is_idempotent_and_prunes_only_when_asked(ph: PostHogClient, posthog: PostHogSandbox) -> None:
    ph.create_usage_metric(0, spec("Legacy"))
    metrics = load_metrics_file(EXAMPLE)
    first = build_plan(ph, metrics, 0, prune=False)
    assert first.count(Action.CREATE) == 3 and first.count(Action.KEEP) == 1
    assert apply_plan(ph, first) == 3
    second = build_plan(ph, metrics, 0, prune=False)
    assert not second.has_changes
    writes_before = posthog.count("POST") + posthog.count("PATCH") + posthog.count("DELETE")
    assert apply_plan(ph, second) == 0
    assert posthog.count("POST") + posthog.count("PATCH") + posthog.count("DELETE") == writes_before

    weekly = next(m for m in ph.iter_usage_metrics(0) if m.name == "Weekly active pageviews")
    ph.update_usage_metric(0, weekly.id, {"interval": 14})  # drift made by a person
    pruned = build_plan(ph, metrics, 0, prune=True)
    assert [(i.action, i.name) for i in pruned.items if i.action is not Action.UNCHANGED] == [
        (Action.UPDATE, "Weekly active pageviews"),
        (Action.DELETE, "Legacy"),
    ]
    assert apply_plan(ph, pruned) == 2
    assert sorted(m.name for m in ph.iter_usage_metrics(0)) == sorted(s.name for s in metrics.metrics)
    assert next(m for m in ph.iter_usage_metrics(0) if m.name == weekly.name).interval == 7


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("metrics:\n  - {name: A, filters: {}, math: sum}\n", "metrics[0] (A).math_property"),
        (
            "metrics:\n  - {name: A, filters: {}}\n  - {name: B, filters: {}, display: pie}\n",
            "metrics[1] (B).display",
        ),
        ("metrics:\n  - {name: A}\n", "metrics[0] (A).filters"),
        ("metrics:\n  - {name: A, filters: {}}\n  - {name: A, filters: {}}\n", "metrics[1] (A).name"),
        ("metrics:\n  - {name: A, filters: {}, colour: red}\n", "metrics[0] (A).colour"),
        ("- just a list\n", None),
    ],
)
def test_bad_files_name_the_entry_and_field(tmp_path: Path, body: str, key: str | None) -> None:
    path = tmp_path / "metrics.yaml"
    path.write_text(body)
    with pytest.raises(ConfigError) as exc:
        load_metrics_file(path)
    assert exc.value.key == (key or str(path))


def test_cli_apply_dry_run_then_apply_then_nothing(posthog: PostHogSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTHOG_HOST", posthog.url)
    monkeypatch.setenv("POSTHOG_PERSONAL_API_KEY", POSTHOG_KEY)
    monkeypatch.setenv("POSTHOG_PROJECT_ID", "1")
    runner = CliRunner()
    dry = runner.invoke(app, ["metrics", "apply", str(EXAMPLE), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "create" in dry.output and "Dry run" in dry.output
    assert posthog.count("POST") == 0
    applied = runner.invoke(app, ["metrics", "apply", str(EXAMPLE)])
    assert applied.exit_code == 0, applied.output
    assert "3 created" in applied.output and posthog.count("POST", status=201) == 3
    again = runner.invoke(app, ["metrics", "apply", str(EXAMPLE), "--group-type-index", "0"])
    assert again.exit_code == 0 and "Nothing to change" in again.output
    assert posthog.count("POST") == 3
    monkeypatch.setenv("POSTHOG_PERSONAL_API_KEY", "phx_test_ro")
    denied = runner.invoke(app, ["metrics", "apply", str(EXAMPLE), "--group-type-index", "1"])
    assert denied.exit_code == 2 and "usage_metric:write" in denied.output
