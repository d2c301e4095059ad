"""The org's daily API request allowance, as Salesforce reports it on every response (``Sforce-Limit-Info``).

Every REST response carries ``Sforce-Limit-Info: api-usage=<used>/<max>`` for the whole org (all integrations
and users together). ``Allowance`` keeps the latest figures and decides when a run must stop: once the run itself
has used ``per_run`` of the daily maximum, or once the org as a whole has used ``total`` of it. The decision is
taken *before* a request, so the stopping run never overspends its share by more than the request in flight.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field

_USAGE_RE = re.compile(r"(?:^|[;,\s])api-usage=(\d+)/(\d+)")


def parse_limit_info(header: str | None) -> tuple[int, int] | None:
    """``(used, max)`` from ``api-usage=18/5000`` (other entries such as ``per-app-api-usage`` ignored)."""
    if not header:
        return None
    match = _USAGE_RE.search(header)
    if match is None:
        return None
    used, limit = int(match.group(1)), int(match.group(2))
    return (used, limit) if limit > 0 else None


@dataclass
class Allowance:
    """Latest org usage, and this run's share of it. Thread-safe (the SDK's response hook feeds it)."""

    per_run: float
    total: float
    used: int | None = None
    limit: int | None = None
    observed: int = 0
    _run_base: int | None = None
    _in_run: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def observe(self, header: str | None) -> None:
        """Record the figures of one response; the first response of a run also fixes the run's baseline."""
        parsed = parse_limit_info(header)
        if parsed is None:
            return
        with self._lock:
            self.used, self.limit = parsed
            self.observed += 1
            if self._in_run and self._run_base is None:
                self._run_base = self.used - 1  # this response's own request counts against the run

    def begin_run(self) -> None:
        """Start counting a new run from its first response."""
        with self._lock:
            self._in_run = True
            self._run_base = None

    @property
    def run_used(self) -> int:
        """Requests the org counted since this run's first request (this run's and anyone else's)."""
        with self._lock:
            if self.used is None or self._run_base is None:
                return 0
            return self.used - self._run_base

    def stop_reason(self) -> str | None:
        """Why the run must not make another request now, or None when it may."""
        with self._lock:
            used, limit, base, in_run = self.used, self.limit, self._run_base, self._in_run
        if used is None or limit is None:
            return None
        run_cap = math.floor(self.per_run * limit)
        total_cap = math.floor(self.total * limit)
        if in_run and base is not None and used - base + 1 > run_cap:
            return (
                f"stopped at this run's share of the Salesforce API allowance: {used - base} requests this run, "
                f"max_share_per_run {self.per_run:.0%} of the org's daily {limit} is {run_cap}; "
                "the committed pages stay and the next run resumes from there"
            )
        if used + 1 > total_cap:
            return (
                f"stopped at the org's share of the Salesforce API allowance: {used} of {limit} requests used "
                f"today, max_share_total {self.total:.0%} is {total_cap}; the next run resumes from the committed pages"
            )
        return None
