"""Charts drawn on the server as SVG: no JavaScript, no build step, nothing downloaded.

One drawing function, ``bar_chart``: bars of stacked segments, an optional limit line, a y axis with its unit and
the first and last x labels. Every bar carries its numbers twice: in ``data-*`` attributes (what tests read) and in
a ``<title>`` (what a person sees on hover). Every text is escaped: the result is markup safe to put in a page.

What is drawn (``budget_charts``, ``run_charts``), all from Redis:

- PostHog requests per minute over the last hour and per hour over the last day, from the budget's per-minute
  history (``sync.budget.RequestBudget.history``), with the budget's limit for that span as a line;
- per source, its newest runs in time order: records applied and failed, and how long each took (the ``runs``
  stream).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup, escape

from sync.budget import MinuteUse
from workers.ui import words

WIDTH, HEIGHT = 640, 180
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 52, 12, 12, 28
RUNS_CHARTED = 40
"""Newest runs drawn per source."""
MIN_SLOTS, MAX_BAR_W = 12, 24.0
"""A few bars stay narrow (left-aligned, in time order), not one bar across the whole chart."""


@dataclass(frozen=True)
class Segment:
    value: float
    kind: str  # a CSS class: ``ok``, ``bad``, ``wait``


@dataclass
class Bar:
    label: str  # the x label and the start of the tooltip
    segments: list[Segment] = field(default_factory=list)
    href: str | None = None

    @property
    def total(self) -> float:
        return sum(s.value for s in self.segments)


def _nice_max(value: float) -> float:
    """The y axis top: 1, 2 or 5 times a power of ten, at least ``value`` (and at least 1)."""
    if value <= 1:
        return 1.0
    step = 1.0
    while True:
        for m in (1, 2, 5):
            if m * step >= value:
                return m * step
        step *= 10


def _num(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def bar_chart(
    chart_id: str,
    title: str,
    unit: str,
    bars: Sequence[Bar],
    limit: float | None = None,
    limit_label: str = "limit",
    legend: Mapping[str, str] | None = None,
) -> Markup:
    """An SVG bar chart (``<svg class="chart" id=chart_id>``); ``limit`` draws a dashed line at that value, or
    when it is more than twice the highest bar, says it in a corner instead (``data-value`` on either)."""
    plot_w, plot_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM
    highest = max([b.total for b in bars] + [0])
    top = _nice_max(max(highest, limit or 0) if limit and limit <= 2 * highest else highest)
    scale = plot_h / top
    base = PAD_TOP + plot_h
    slot = plot_w / max(1, len(bars), MIN_SLOTS)
    width = max(1.0, min(slot * 0.8, MAX_BAR_W))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{escape(chart_id)}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" data-max="{_num(top)}">',
        f"<title>{escape(title)}</title>",
        f'<line class="axis" x1="{PAD_LEFT}" y1="{base}" x2="{WIDTH - PAD_RIGHT}" y2="{base}"/>',
        f'<line class="axis" x1="{PAD_LEFT}" y1="{PAD_TOP}" x2="{PAD_LEFT}" y2="{base}"/>',
        f'<text class="tick" x="{PAD_LEFT - 4}" y="{PAD_TOP + 4}" text-anchor="end">{escape(_num(top))}</text>',
        f'<text class="tick" x="{PAD_LEFT - 4}" y="{base}" text-anchor="end">0</text>',
        f'<text class="unit" x="4" y="{PAD_TOP + plot_h / 2:.1f}">{escape(unit)}</text>',
    ]
    for n, bar in enumerate(bars):
        x = PAD_LEFT + n * slot + (slot - width) / 2
        y = float(base)
        detail = ", ".join(f"{legend.get(s.kind, s.kind) if legend else s.kind} {_num(s.value)}" for s in bar.segments)
        rects = []
        for segment in bar.segments:
            h = segment.value * scale
            y -= h
            rects.append(
                f'<rect class="{escape(segment.kind)}" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" '
                f'height="{h:.1f}" data-kind="{escape(segment.kind)}" data-value="{_num(segment.value)}"/>'
            )
        group = (
            f'<g class="bar" data-label="{escape(bar.label)}" data-total="{_num(bar.total)}">'
            f"<title>{escape(bar.label)}: {escape(detail or '0')} {escape(unit)}</title>{''.join(rects)}</g>"
        )
        if bar.href:
            group = f'<a href="{escape(bar.href)}">{group}</a>'
        parts.append(group)
    if limit and limit <= top:
        y_limit = base - limit * scale
        parts.append(
            f'<line class="limit" x1="{PAD_LEFT}" y1="{y_limit:.1f}" x2="{WIDTH - PAD_RIGHT}" y2="{y_limit:.1f}" '
            f'data-value="{_num(limit)}"/>'
            f'<text class="limit-label" x="{WIDTH - PAD_RIGHT}" y="{y_limit - 3:.1f}" text-anchor="end">'
            f"{escape(limit_label)} {escape(_num(limit))}</text>"
        )
    elif limit:  # far above every bar: said, not drawn (a line at the top would flatten the bars to nothing)
        parts.append(
            f'<text class="limit-label" x="{WIDTH - PAD_RIGHT}" y="{PAD_TOP + 10}" text-anchor="end" '
            f'data-value="{_num(limit)}">{escape(limit_label)} {escape(_num(limit))} (above the scale)</text>'
        )
    if bars:
        parts.append(
            f'<text class="tick" x="{PAD_LEFT}" y="{HEIGHT - 8}">{escape(bars[0].label)}</text>'
            f'<text class="tick" x="{WIDTH - PAD_RIGHT}" y="{HEIGHT - 8}" text-anchor="end">'
            f"{escape(bars[-1].label)}</text>"
        )
    else:
        parts.append(f'<text class="empty" x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">nothing yet</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _clock(epoch: float, with_day: bool = False) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%m-%d %H:%M UTC" if with_day else "%H:%M UTC")


def _limit_for(usage: Mapping[str, Any], bucket_s: int) -> float | None:
    """The budget's limit for one bucket: the window as long as the bucket, if the budget has one."""
    for window in usage.get("windows") or []:
        if float(window.get("seconds", 0)) == bucket_s:
            return float(window["limit"])
    return None


BUDGET_LEGEND = {"ok": "requests", "wait": "told to wait", "bad": "429 pauses"}


def budget_bars(history: Mapping[int, MinuteUse], now: float, bucket_s: int, buckets: int) -> list[Bar]:
    """``buckets`` bars of ``bucket_s`` seconds each, the newest ending at ``now``: requests, waits, 429 blocks."""
    last = int(now // bucket_s)
    sums = {b: MinuteUse() for b in range(last - buckets + 1, last + 1)}
    for minute, use in history.items():
        bucket = minute * 60 // bucket_s
        if bucket in sums:
            total = sums[bucket]
            total.requests += use.requests
            total.waits += use.waits
            total.blocks += use.blocks
    return [
        Bar(
            _clock(b * bucket_s, with_day=bucket_s >= 3600),
            [Segment(u.requests, "ok"), Segment(u.waits, "wait"), Segment(u.blocks, "bad")],
        )
        for b, u in sums.items()
    ]


def budget_charts(history: Mapping[int, MinuteUse], usage: Mapping[str, Any], now: float) -> dict[str, Markup]:
    """PostHog requests per minute over the last hour and per hour over the last day, each with its limit."""
    hour = budget_bars(history, now, 60, 60)
    day = budget_bars(history, now, 3600, 24)
    return {
        "hour": bar_chart(
            "budget-hour",
            "PostHog requests per minute, last hour",
            "requests",
            hour,
            _limit_for(usage, 60),
            "limit per minute",
            BUDGET_LEGEND,
        ),
        "day": bar_chart(
            "budget-day",
            "PostHog requests per hour, last day",
            "requests",
            day,
            _limit_for(usage, 3600),
            "limit per hour",
            BUDGET_LEGEND,
        ),
    }


RUN_LEGEND = {"ok": "applied", "bad": "failed", "wait": "seconds"}


def run_charts(entries: Sequence[tuple[str, dict[str, Any]]], per_source: int = RUNS_CHARTED) -> dict[str, Any]:
    """Per source (``all`` is a planned sync's write phase), its newest runs oldest first: records applied and
    failed per run, and each run's duration. ``entries`` are the runs stream's (id, report), newest first."""
    by_source: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for run_id, report in entries:
        if report.get("dry_run"):
            continue
        runs = by_source.setdefault(str(report.get("source", "?")), [])
        if len(runs) < per_source:
            runs.append((run_id, report))
    charts: dict[str, Any] = {}
    for source, runs in sorted(by_source.items()):
        records, durations = [], []
        failures = 0
        for run_id, report in reversed(runs):
            counts = report.get("counts") or {}
            failed = int(counts.get("failed") or 0)
            failures += failed
            seen = int(counts.get("seen") or 0)  # a planned sync's write phase reads nothing: count what it applied
            written = int(counts.get("updated") or 0) + int(counts.get("unchanged") or 0)
            applied = max(0, seen - failed) if seen else written
            started = words.epoch_of(report.get("started_at"))
            finished = words.epoch_of(report.get("finished_at"))
            label = f"{_clock(started, True) if started else '?'} {report.get('stream', '')} {report.get('mode', '')}"
            href = f"/ui/runs/{run_id}"
            records.append(Bar(label, [Segment(applied, "ok"), Segment(failed, "bad")], href))
            seconds = max(0.0, finished - started) if started and finished else 0.0
            durations.append(Bar(label, [Segment(seconds, "wait")], href))
        charts[source] = {
            "runs": len(runs),
            "failures": failures,
            "records": bar_chart(
                f"runs-{source}-records", f"{source}: records per run", "records", records, legend=RUN_LEGEND
            ),
            "duration": bar_chart(
                f"runs-{source}-duration", f"{source}: duration per run", "seconds", durations, legend=RUN_LEGEND
            ),
        }
    return charts
