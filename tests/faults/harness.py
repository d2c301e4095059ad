"""The harness of the fault and security suites: a whole deployment on loopback, a bounded sync, and its final state.

A ``Deployment`` is the four stand-ins (``sandbox.stack.SandboxStack``), a ``Runtime`` on the real Redis under a
ledger prefix of its own, and everything needed to remove it again (servers, Redis keys). ``sync_all`` runs every
mapped stream inbound and then the outbound pass in this process, re-running a run that ends with a retryable
error the way Celery's ``autoretry`` would (bounded, no sleeping through countdowns). ``final_state`` is what a
fault test compares with a clean run's: the PostHog accounts (name, external_id, properties, tags; no ids or
timestamps) and, per CRM record, what crmsync pushed to it, with the PostHog account id it holds replaced by that
account's identity, since ids differ between two stacks.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from sandbox.stack import POSTHOG_KEY, SandboxStack
from sync.errors import RetryableError
from sync.ledger import delete_keys
from sync.mapping import get_path
from sync.report import RunReport
from workers.config import parse_config
from workers.runtime import Runtime

REDIS_URL = os.environ.get("CRMSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_SERVER = os.environ.get("CRMSYNC_TEST_REDIS_SERVER", "/usr/bin/redis-server")
SOURCES = ("salesforce", "hubspot", "stripe")
MAX_ATTEMPTS = 25
"""Job-level attempts of one run (Celery's ``MAX_RETRIES`` is 6 with long countdowns; here countdowns are 0)."""

FAST_POSTHOG_RETRIES = {
    "POSTHOG_MAX_RETRIES": "8",
    "POSTHOG_RETRY_BACKOFF_S": "0.005",
    "POSTHOG_RETRY_MAX_BACKOFF_S": "0.02",
}
"""Short HTTP retries for the PostHog client, so that hundreds of injected faults cost seconds, not minutes."""

FAST_CONNECTOR_RETRIES: dict[str, dict[str, Any]] = {
    "salesforce": {"max_retries": 8, "backoff_s": 0.005, "max_backoff_s": 0.02},
    "hubspot": {"max_retries": 8, "backoff_s": 0.005, "max_backoff_s": 0.02},
    "stripe": {"max_network_retries": 3},
}


@dataclass
class Deployment:
    """A running stack and the runtime pointed at it; ``close`` removes every server and Redis key it made."""

    stack: SandboxStack
    runtime: Runtime
    prefix: str

    def admin(self, vendor: str) -> httpx.Client:
        return httpx.Client(base_url=self.stack.url(vendor), timeout=30, verify=str(self.stack.ca_file))

    def faults(self, vendor: str, **config: Any) -> None:
        """Set a stand-in's fault injection (``{}`` clears it)."""
        with self.admin(vendor) as http:
            http.post("/_sandbox/faults", json=config).raise_for_status()

    def injected(self, vendor: str) -> dict[str, int]:
        """Faults the stand-in injected since its counters were last reset, by status."""
        with self.admin(vendor) as http:
            stats = http.get("/_sandbox/stats").json()
        return {str(k): int(v) for k, v in stats.get("faults_injected", {}).items()}

    def close(self) -> None:
        try:
            delete_keys(self.runtime.redis, f"{self.prefix}:*")
        finally:
            self.runtime.close()
            self.stack.stop()


def stack_config(stack: SandboxStack, fast_retries: bool = True) -> dict[str, Any]:
    """The stack's config for ``SOURCES`` (the sources whose records the fault suites edit and compare; the other
    registered sources' stand-ins run idle), with short connector retries (the PostHog ones come from the
    environment)."""
    raw = stack.config()
    raw["sources"] = {source: raw["sources"][source] for source in SOURCES}
    if fast_retries:
        for source, extra in FAST_CONNECTOR_RETRIES.items():
            raw["sources"][source]["config"].update(extra)
    return raw


@contextmanager
def deployment(
    seed: int, *, redis_url: str = REDIS_URL, webhooks: bool = False, fast_retries: bool = True
) -> Iterator[Deployment]:
    """Start a stack with ``seed`` companies per CRM and a runtime under a fresh ledger prefix; remove both after.

    The caller sets ``POSTHOG_PERSONAL_API_KEY`` (and the fast PostHog retries) in the environment."""
    prefix = f"crmsync-fault-{uuid.uuid4().hex[:10]}"
    stack = SandboxStack(seed=seed, redis_url=redis_url, webhooks=webhooks, ledger_prefix=prefix).start()
    try:
        runtime = Runtime(parse_config(stack_config(stack, fast_retries)))
    except BaseException:
        stack.stop()
        raise
    dep = Deployment(stack, runtime, prefix)
    try:
        yield dep
    finally:
        dep.close()


def run_until_done(runtime: Runtime, source: str, stream: str, mode: str, attempts: int = MAX_ATTEMPTS) -> RunReport:
    """One inbound run, re-run after a retryable failure as a Celery retry would (at most ``attempts`` times)."""
    for _ in range(attempts):
        try:
            return runtime.engine.run(runtime.connector(source), stream, mode)
        except RetryableError:
            continue
    raise AssertionError(f"{source}/{stream} still failing after {attempts} attempts")


def sync_all(runtime: Runtime, mode: str = "full", sources: tuple[str, ...] = SOURCES) -> list[RunReport]:
    """Every mapped stream of every source inbound, then the outbound pass; each run bounded by ``MAX_ATTEMPTS``."""
    reports = [run_until_done(runtime, s, stream, mode) for s in sources for stream in runtime.streams(s)]
    for source in sources:
        for stream in runtime.streams(source):
            for _ in range(MAX_ATTEMPTS):
                try:
                    reports.append(runtime.engine.push_back_pass(runtime.connector(source), stream))
                    break
                except RetryableError:
                    continue
            else:
                raise AssertionError(f"outbound {source}/{stream} still failing after {MAX_ATTEMPTS} attempts")
    return reports


def replay_all(runtime: Runtime, sources: tuple[str, ...] = SOURCES) -> list[RunReport]:
    """Replay the dead-letter stream of every source (what ``crmsync dlq replay`` does)."""
    return [
        runtime.engine.replay_dead_letters(runtime.connector(s), stream)
        for s in sources
        for stream in runtime.streams(s)
    ]


def settle(runtime: Runtime, rounds: int = 10) -> list[RunReport]:
    """Replay the dead-letter stream until it is empty (bounded), as ``crmsync dlq replay`` would be run."""
    reports: list[RunReport] = []
    for _ in range(rounds):
        if not runtime.ledger.dead_letters(1000):
            return reports
        reports += replay_all(runtime)
    raise AssertionError(f"dead letters left after {rounds} replays: {runtime.ledger.dead_letters(10)}")


def _account_key(name: str, external_id: str | None) -> str:
    return json.dumps([name, external_id])


def posthog_state(runtime: Runtime) -> list[str]:
    """Every account as sorted JSON of (name, external_id, properties, tags): ids and timestamps left out."""
    rows = []
    for account in runtime.posthog.iter_accounts():
        properties = account.properties.payload()
        rows.append(
            json.dumps(
                {
                    "name": account.name,
                    "external_id": account.external_id,
                    "properties": properties,
                    "tags": sorted(account.tags),
                },
                sort_keys=True,
            )
        )
    return sorted(rows)


def crm_state(runtime: Runtime, sources: tuple[str, ...] = SOURCES) -> list[str]:
    """What crmsync pushed to each CRM record: the account it points at (by identity) and every outbound field."""
    accounts = {a.id: _account_key(a.name, a.external_id) for a in runtime.posthog.iter_accounts()}
    rows = []
    for source in sources:
        connector = runtime.connector(source)
        mappings = runtime.config.mapping.mappings[source]
        for stream in runtime.streams(source):
            mapping = mappings[stream]
            pushed_paths = [f.source for f in mapping.outbound if isinstance(f.source, str)]
            pushed_paths += list(mapping.link_fields.values())
            for page in connector.pull(stream, None):
                for record in page.records:
                    row: dict[str, Any] = {"source": source, "id": record.id}
                    if mapping.account_id_field:
                        account_id = get_path(record.fields, mapping.account_id_field)
                        row["account"] = accounts.get(str(account_id), f"missing:{account_id}") if account_id else None
                    for path in pushed_paths:
                        row[path] = get_path(record.fields, path)
                    rows.append(json.dumps(row, sort_keys=True, default=str))
    return sorted(rows)


def final_state(runtime: Runtime) -> dict[str, list[str]]:
    return {"posthog": posthog_state(runtime), "crm": crm_state(runtime)}


def diff(clean: dict[str, list[str]], faulty: dict[str, list[str]], limit: int = 5) -> str:
    """A short human-readable difference of two final states, for assertion messages."""
    lines = []
    for side in ("posthog", "crm"):
        a, b = set(clean[side]), set(faulty[side])
        lines += [f"{side} only in clean: {row}" for row in sorted(a - b)[:limit]]
        lines += [f"{side} only in faulty: {row}" for row in sorted(b - a)[:limit]]
        if len(clean[side]) != len(faulty[side]):
            lines.append(f"{side}: {len(clean[side])} rows clean, {len(faulty[side])} faulty")
    return "\n".join(lines)


def posthog_env() -> dict[str, str]:
    """The environment a test process (and a worker subprocess) needs: the stand-in's key and fast retries."""
    return {"POSTHOG_PERSONAL_API_KEY": POSTHOG_KEY, **FAST_POSTHOG_RETRIES}


def edit_targets(dep: Deployment) -> dict[str, list[str]]:
    """Two record ids per CRM (the first two its main stream lists: the same on two stacks of one seed)."""
    targets = {}
    for source in SOURCES:
        stream = dep.runtime.streams(source)[0]
        ids = [r.id for page in dep.runtime.connector(source).pull(stream, None) for r in page.records]
        targets[source] = sorted(ids)[:2]
    return targets


def rename(dep: Deployment, targets: dict[str, list[str]], round_: int) -> None:
    """Rename each target as a person would in the CRM's UI (each edit sends a webhook when wired)."""
    for source, ids in targets.items():
        with dep.admin(source) as http:
            for rid in ids:
                name = f"Renamed {round_} {source} {rid[-4:]}"
                if source == "salesforce":
                    http.patch(f"/_sandbox/sobjects/Account/{rid}", json={"Name": name}).raise_for_status()
                elif source == "hubspot":
                    http.patch(
                        f"/_sandbox/objects/deals/{rid}", json={"properties": {"dealname": name}}
                    ).raise_for_status()
                else:
                    http.post(f"/_sandbox/customers/{rid}", json={"name": name}).raise_for_status()
