"""Prometheus metrics that add up across every worker process: counters live in Redis, read at scrape time.

Celery workers are separate processes (often on separate hosts), so in-process counters would each tell a part.
Tasks and the webhook receiver ``HINCRBY`` one Redis hash; ``/metrics`` reads it once per scrape.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, cast

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sync.budget import BudgetUsage, RequestBudget
from sync.keys import ProjectKeys
from sync.report import COUNT_KEYS, RunReport

QUEUES = ("bulk", "realtime")


def _key(ns: str) -> str:
    return ProjectKeys(ns).metrics()


def record_run(client: redis.Redis, ns: str, report: RunReport) -> None:
    """Count one finished run: records by outcome and source, run durations, runs by status."""
    pipe = client.pipeline(transaction=False)
    for outcome in COUNT_KEYS:
        n = report.counts.get(outcome, 0)
        if n:
            pipe.hincrby(_key(ns), f"records|{report.source}|{outcome}", n)
    pipe.hincrby(_key(ns), f"runs|{report.source}|{report.status}", 1)
    if report.finished_at is not None:
        pipe.hincrbyfloat(_key(ns), f"runsec|{report.source}|{report.stream}", report.finished_at - report.started_at)
        pipe.hincrby(_key(ns), f"runcount|{report.source}|{report.stream}", 1)
    pipe.execute()


def record_webhook(client: redis.Redis, ns: str, source: str, outcome: str, n: int = 1) -> None:
    client.hincrby(_key(ns), f"webhooks|{source}|{outcome}", n)


def record_api_calls(client: redis.Redis, ns: str, vendor: str, calls: int, throttled: int) -> None:
    pipe = client.pipeline(transaction=False)
    if calls:
        pipe.hincrby(_key(ns), f"api|{vendor}|calls", calls)
    if throttled:
        pipe.hincrby(_key(ns), f"api|{vendor}|429", throttled)
    if len(pipe):
        pipe.execute()


class RedisMetricsCollector(Collector):
    """Exposes the shared counters, the Celery queue depths and, with a ``budget``, PostHog's request budget
    (used and left per window, seconds a 429 still blocks it, waits and 429 blocks of every worker: one more
    round trip per scrape, ``RequestBudget.usage``)."""

    def __init__(self, client: redis.Redis, ns: str, budget: RequestBudget | None = None) -> None:
        self.client = client
        self.ns = ns
        self.budget = budget

    def collect(self) -> Iterable[Metric]:
        raw = cast(dict[str, str], self.client.hgetall(_key(self.ns)))
        records = CounterMetricFamily("crmsync_records", "Records by run outcome", labels=["source", "outcome"])
        runs = CounterMetricFamily("crmsync_runs", "Runs by final status", labels=["source", "status"])
        seconds = CounterMetricFamily("crmsync_run_duration_seconds", "Total run time", labels=["source", "stream"])
        run_count = CounterMetricFamily("crmsync_run_count", "Finished runs", labels=["source", "stream"])
        hooks = CounterMetricFamily("crmsync_webhooks", "Webhook deliveries by outcome", labels=["source", "outcome"])
        calls = CounterMetricFamily("crmsync_api_calls", "Vendor API calls", labels=["vendor"])
        throttled = CounterMetricFamily("crmsync_api_throttled", "Vendor API 429 answers", labels=["vendor"])
        for field, value in sorted(raw.items()):
            kind, *labels = field.split("|")
            number = float(value)
            if kind == "records":
                records.add_metric(labels, number)
            elif kind == "runs":
                runs.add_metric(labels, number)
            elif kind == "runsec":
                seconds.add_metric(labels, number)
            elif kind == "runcount":
                run_count.add_metric(labels, number)
            elif kind == "webhooks":
                hooks.add_metric(labels, number)
            elif kind == "api":
                (calls if labels[1] == "calls" else throttled).add_metric(labels[:1], number)
        depth = GaugeMetricFamily("crmsync_queue_depth", "Tasks waiting in each Celery queue", labels=["queue"])
        for queue in QUEUES:
            depth.add_metric([queue], float(cast(int, self.client.llen(queue))))
        yield from (records, runs, seconds, run_count, hooks, calls, throttled, depth)
        if self.budget is not None:
            yield from _budget_metrics(self.budget.usage())

    def describe(self) -> Iterator[Any]:
        return iter(())


def _budget_metrics(usage: BudgetUsage) -> Iterator[Metric]:
    used = GaugeMetricFamily("crmsync_posthog_budget_used", "PostHog requests in each window now", labels=["window"])
    left = GaugeMetricFamily("crmsync_posthog_budget_left", "PostHog requests left in each window", labels=["window"])
    for window in usage.windows:
        used.add_metric([str(window.window)], float(window.used))
        left.add_metric([str(window.window)], float(window.left))
    yield used
    yield left
    yield GaugeMetricFamily(
        "crmsync_posthog_budget_blocked_seconds", "Seconds a PostHog 429 still blocks the budget", usage.blocked_for_s
    )
    yield CounterMetricFamily("crmsync_posthog_budget_waits", "Requests that waited for budget", float(usage.waits))
    yield CounterMetricFamily(
        "crmsync_posthog_budget_blocks", "PostHog 429s that blocked the budget", float(usage.blocks)
    )
