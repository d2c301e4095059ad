"""Usage metrics as code: make PostHog's group type usage metrics match a YAML file.

File shape::

    group_type_index: 0          # optional; the CLI flag wins
    metrics:
      - name: Weekly pageviews
        interval: 7
        filters: {events: [{id: $pageview, type: events}]}
      - name: Revenue
        format: currency
        math: sum
        math_property: amount
        filters: {events: [{id: purchase, type: events}]}

Metrics are matched by name (unique per group type). ``plan`` compares, ``apply_plan`` writes: create what is
missing, PATCH only the fields that differ, delete unlisted metrics only when pruning. A second apply finds
nothing to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sync.errors import ConfigError
from sync.posthog.client import PostHogClient
from sync.posthog.models import UsageMetric, UsageMetricSpec


class MetricsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    group_type_index: int | None = Field(None, ge=0)
    metrics: list[UsageMetricSpec]


def load_metrics_file(path: Path) -> MetricsFile:
    """Parse and validate a metrics file; a bad entry fails naming it, e.g. ``metrics[2] (Revenue).math``."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(str(path), f"cannot read metrics file: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(str(path), "expected a mapping with a 'metrics' list")
    try:
        parsed = MetricsFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_error_location(raw, exc), exc.errors()[0]["msg"]) from None
    names: set[str] = set()
    for i, spec in enumerate(parsed.metrics):
        if spec.name in names:
            raise ConfigError(f"metrics[{i}] ({spec.name}).name", "duplicate metric name")
        names.add(spec.name)
        if spec.math.value == "sum" and not spec.math_property:
            raise ConfigError(f"metrics[{i}] ({spec.name}).math_property", "required when math is 'sum'")
        if spec.math.value == "count" and spec.math_property:
            raise ConfigError(f"metrics[{i}] ({spec.name}).math_property", "must be empty when math is 'count'")
    return parsed


def _error_location(raw: dict[str, Any], exc: ValidationError) -> str:
    loc = list(exc.errors()[0]["loc"])
    if len(loc) >= 2 and loc[0] == "metrics" and isinstance(loc[1], int):
        entries = raw.get("metrics") or []
        entry = entries[loc[1]] if loc[1] < len(entries) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        head = f"metrics[{loc[1]}]" + (f" ({name})" if name else "")
        return ".".join([head, *(str(p) for p in loc[2:])])
    return ".".join(str(p) for p in loc)


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    UNCHANGED = "unchanged"
    KEEP = "keep (unlisted)"


@dataclass
class PlanItem:
    action: Action
    name: str
    metric_id: str | None = None
    spec: UsageMetricSpec | None = None
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)


@dataclass
class MetricsPlan:
    group_type_index: int
    items: list[PlanItem]

    @property
    def has_changes(self) -> bool:
        return any(i.action in (Action.CREATE, Action.UPDATE, Action.DELETE) for i in self.items)

    def count(self, action: Action) -> int:
        return sum(1 for i in self.items if i.action is action)


def plan_metrics(
    desired: list[UsageMetricSpec], current: list[UsageMetric], group_type_index: int, prune: bool
) -> MetricsPlan:
    """Compare the file with what PostHog holds. Pure: no requests."""
    by_name = {m.name: m for m in current}
    items: list[PlanItem] = []
    for spec in desired:
        existing = by_name.pop(spec.name, None)
        if existing is None:
            items.append(PlanItem(Action.CREATE, spec.name, spec=spec))
            continue
        want, have = spec.payload(), existing.spec().payload()
        changes = {k: (have[k], want[k]) for k in want if want[k] != have[k]}
        action = Action.UPDATE if changes else Action.UNCHANGED
        items.append(PlanItem(action, spec.name, metric_id=existing.id, spec=spec, changes=changes))
    for leftover in by_name.values():
        items.append(PlanItem(Action.DELETE if prune else Action.KEEP, leftover.name, metric_id=leftover.id))
    return MetricsPlan(group_type_index, items)


def build_plan(client: PostHogClient, metrics: MetricsFile, group_type_index: int, prune: bool) -> MetricsPlan:
    current = list(client.iter_usage_metrics(group_type_index))
    return plan_metrics(metrics.metrics, current, group_type_index, prune)


def apply_plan(client: PostHogClient, plan: MetricsPlan) -> int:
    """Carry out the plan; returns the number of write requests made."""
    writes = 0
    for item in plan.items:
        if item.action is Action.CREATE and item.spec is not None:
            client.create_usage_metric(plan.group_type_index, item.spec)
        elif item.action is Action.UPDATE and item.metric_id is not None:
            changed = {k: after for k, (_, after) in item.changes.items()}
            client.update_usage_metric(plan.group_type_index, item.metric_id, changed)
        elif item.action is Action.DELETE and item.metric_id is not None:
            client.delete_usage_metric(plan.group_type_index, item.metric_id)
        else:
            continue
        writes += 1
    return writes
