"""The ceiling: how fast the stand-ins themselves serve the request mix crmsync needs.

During scenario 1 a ``Recorder`` keeps a copy of every API request crmsync's workers made to each stand-in. Here
those requests are replayed, same method, path, query, headers and body, from one tight ``httpx`` loop per stand-in,
one after another (the four stand-ins share one process, as they do while crmsync runs). Replayed writes set the
values they already hold; replayed creates meet the account that now exists (409), which costs the stand-in about
what the create did. HubSpot's stand-in enforces HubSpot's budgets (190 requests per 10 s, 5 searches per second),
so its ceiling time is at least what those budgets allow, whatever the loop's own speed.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from bench.harness import Env, RecordedRequest

HUBSPOT_APP_PER_S = 19.0
HUBSPOT_SEARCH_PER_S = 5.0
_SKIP_HEADERS = {"host", "content-length", "connection", "accept-encoding", "transfer-encoding"}


def _replay(http: httpx.Client, base: str, requests: list[RecordedRequest]) -> tuple[float, dict[str, int]]:
    statuses: dict[str, int] = {}
    started = time.perf_counter()
    for r in requests:
        headers = {k: v for k, v in r.headers if k.lower() not in _SKIP_HEADERS}
        url = f"{base}{r.path}" + (f"?{r.query}" if r.query else "")
        response = http.request(r.method, url, headers=headers, content=r.body or None)
        statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1
    return time.perf_counter() - started, statuses


def measure_ceiling(env: Env, records: int) -> dict[str, Any]:
    """Replay scenario 1's recorded requests; seconds per stand-in, their sum, and records/s at that speed."""
    assert env.stack is not None
    out: dict[str, Any] = {"stand_ins": {}}
    total = 0.0
    with httpx.Client(timeout=120, verify=str(env.stack.ca_file)) as http:
        for name, recorder in env.recorders.items():
            requests = list(recorder.requests)
            if not requests:
                continue
            seconds, statuses = _replay(http, env.url(name), requests)
            bound = seconds
            if name == "hubspot":
                searches = sum(1 for r in requests if r.path.endswith("/search"))
                bound = max(seconds, len(requests) / HUBSPOT_APP_PER_S, searches / HUBSPOT_SEARCH_PER_S)
            out["stand_ins"][name] = {
                "requests": len(requests),
                "loop_s": round(seconds, 3),
                "ceiling_s": round(bound, 3),
                "requests_per_s": round(len(requests) / seconds, 1) if seconds else None,
                "statuses": statuses,
            }
            total += bound
    out["total_s"] = round(total, 3)
    out["records"] = records
    out["records_per_s"] = round(records / total, 1) if total else None
    return out
