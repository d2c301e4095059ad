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

from sync.report import COUNT_KEYS, RunReport

QUEUES = ("bulk", "realtime")


def _key(ns: str) -> str:
    return f"{ns}:metrics"


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
    """Exposes the shared counters and the Celery queue depths."""

    def __init__(self, client: redis.Redis, ns: str) -> None:
        self.client = client
        self.ns = ns

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

    def describe(self) -> Iterator[Any]:
        return iter(())
