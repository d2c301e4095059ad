"""Every Redis key crmsync writes: built here, and described here (who writes it, its type, what it holds, and
which state it belongs to), so that dropping a system's state, ``crmsync status``, the status page and the key
table in ``docs/architecture.md`` never guess.

Two places hold keys:

- **the project namespace** ``crmsync:<project id>`` (``namespace``; ``ProjectKeys`` builds its keys): the ledger,
  webhook bookkeeping, plans, leases, run history and counters of one PostHog project;
- **the budgets**, outside it (``posthog_budget``, ``BudgetKeys``, ``crm_budget``): PostHog and the CRMs count
  requests per API key, not per project, so every project reached with one key shares one budget.

Each key family (``FAMILIES``) belongs to one ``State``:

- ``source``: one CRM system's state, named by the key's second segment (``cursor:<source>:...``): what
  ``crmsync reset <source>`` drops, and what a run drops when that source's system identity changes
  (``sync.state``);
- ``posthog``: PostHog-side state (the account index and entries, what is known of the PostHog system): dropped
  with every source's state by ``crmsync reset posthog`` or a change of PostHog system;
- ``plan``: one staged plan's keys, which expire on their own;
- ``project``: the project's run history, counters, live locks, task leases and layout version: no drop touches
  them (work in progress holds them, or they describe the format rather than a system);
- ``global``: outside the namespace, shared by every project using the same API key.

``owner_of`` reads a key back into its state's owner and family; ``key_table`` renders the table the docs show.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    """Which state a key family belongs to (see the module docstring)."""

    SOURCE = "source"
    POSTHOG = "posthog"
    PLAN = "plan"
    PROJECT = "project"
    GLOBAL = "global"


POSTHOG = "posthog"
"""The name PostHog's own state goes by, where a source's name would stand (``system:posthog``)."""


@dataclass(frozen=True)
class KeyFamily:
    """One family of keys: ``prefix`` is its first segments (after the namespace, for every state but ``global``)."""

    name: str
    prefix: str
    pattern: str
    type: str
    owner: str
    state: State
    holds: str
    legacy: bool = False  # layout 1: only ever read, by the one-shot migration (``sync.ledger_layout``)


FAMILIES: tuple[KeyFamily, ...] = (
    KeyFamily(
        "rec",
        "r",
        "r:<source>:<object>:<bucket>",
        "hash",
        "sync/ledger.py",
        State.SOURCE,
        "record id → `<entry>\\t<outbound fp>`: the entry is `fp|account|version|echo|u` (fingerprint of the last "
        "applied mapping, account id, source version in base 36, expected echo, unlinked); the outbound fp is that "
        "of what was last pushed to the CRM record",
    ),
    KeyFamily(
        "idx",
        "x",
        "x:<kind>:<bucket>",
        "hash",
        "sync/ledger.py",
        State.POSTHOG,
        "value → account id, for `external_id`, `domain`, `sfdc_id`, `stripe_customer_id`, `hubspot_deal_id`, ...",
    ),
    KeyFamily(
        "acct",
        "a",
        "a:<account id>",
        "string",
        "sync/ledger.py",
        State.POSTHOG,
        "three lines: `updated_at` (µs), the account as PostHog last showed it (our last write's answer, or the last "
        "walk: a PATCH's starting point; no id or creation details), and the entry (provenance per field grouped by "
        "source and version, tags per source, fingerprint of what was last written)",
    ),
    KeyFamily(
        "idxmeta",
        "idxmeta",
        "idxmeta",
        "string",
        "sync/ledger_state.py",
        State.POSTHOG,
        "JSON: the index watermark (`updated_at` of the newest account indexed)",
    ),
    KeyFamily(
        "notags",
        "notags",
        "notags",
        "string",
        "sync/ledger_state.py",
        State.POSTHOG,
        "JSON: PostHog dropped our tags (no tagging feature), for which mapping fingerprint, since when",
    ),
    KeyFamily(
        "outwm",
        "cursor:posthog:outwm",
        "cursor:posthog:outwm:<source>:<stream>[:roles|:custom]",
        "string",
        "sync/ledger_state.py",
        State.SOURCE,
        "the outbound watermark of a source's stream (PostHog → CRM); it belongs to `<source>`",
    ),
    KeyFamily(
        "outwm_at",
        "cursor_at:posthog:outwm",
        "cursor_at:posthog:outwm:<source>:<stream>[:roles|:custom]",
        "string",
        "sync/ledger_state.py",
        State.SOURCE,
        "when that watermark was committed",
    ),
    KeyFamily(
        "cursor",
        "cursor",
        "cursor:<source>:<stream>",
        "string",
        "sync/ledger_state.py",
        State.SOURCE,
        "committed incremental cursor",
    ),
    KeyFamily(
        "cursor_at",
        "cursor_at",
        "cursor_at:<source>:<stream>",
        "string",
        "sync/ledger_state.py",
        State.SOURCE,
        "when that cursor was committed (for `crmsync status`)",
    ),
    KeyFamily(
        "system",
        "system",
        "system:<source or posthog>",
        "string",
        "sync/ledger_state.py",
        State.SOURCE,
        "JSON: the identity of the system that state was recorded for (`sync/state.py`); `system:posthog` is "
        "PostHog's (with its API generation)",
    ),
    KeyFamily(
        "evt",
        "evt",
        "evt:<source>:<event id>",
        "string",
        "sync/ledger_state.py",
        State.SOURCE,
        "a webhook event already seen (`SET NX EX`); HubSpot's id is "
        "`<subscriptionType>:<eventId>:<objectId>:<occurredAt>` (its `eventId` is not unique)",
    ),
    KeyFamily(
        "pending",
        "pending",
        "pending:<source>:<object>[:scheduled]",
        "set",
        "workers/webhooks.py",
        State.SOURCE,
        "record ids gathered by webhooks for the next coalesced refresh (HubSpot: also `company:<id>`, a company's "
        "deals); `:scheduled`, a string with an expiry: a refresh is scheduled for the window",
    ),
    KeyFamily(
        "claim",
        "claim",
        "claim:<source>:<object>[:<task id>[:lease]]",
        "set",
        "workers/claims.py",
        State.SOURCE,
        "ids a refresh task has taken and not yet committed (`:<task id>`), its lease (`:lease`, a string), the "
        "tasks holding claims (no suffix)",
    ),
    KeyFamily(
        "dryrun",
        "dryrun",
        "dryrun:<source>:<stream>",
        "string",
        "workers/dry_runs.py",
        State.SOURCE,
        "JSON: the last dry run's report, plan included, for the status page (expires after a day)",
    ),
    KeyFamily(
        "dlq",
        "dlq",
        "dlq",
        "stream",
        "sync/ledger_runs.py",
        State.POSTHOG,
        "parked records with source, id, field, reason (a source's drop deletes its entries)",
    ),
    KeyFamily(
        "dlqreplay",
        "dlqreplay",
        "dlqreplay",
        "hash",
        "workers/replay.py",
        State.POSTHOG,
        "per source, the backoff of the scheduled replay of its parked records",
    ),
    KeyFamily(
        "plan",
        "plan",
        "plan:<plan id>:{meta,groups,g:<group>,done,counts,errors,review}",
        "hash, zset, list, set",
        "sync/plan.py",
        State.PLAN,
        "a staged plan: groups of records by account, chunk bookkeeping, pending cursors (expires)",
    ),
    KeyFamily(
        "layout",
        "layout",
        "layout",
        "string",
        "sync/ledger_core.py",
        State.PROJECT,
        "`2:<buckets>`: the ledger's layout and bucket count; written by the one-shot migration from layout 1 "
        "(`sync/ledger_layout.py`)",
    ),
    KeyFamily(
        "lock",
        "lock",
        "lock:{acct:<id>,new:<external id>,run:<source>:<stream>,layout}",
        "string",
        "sync/ledger_locks.py",
        State.PROJECT,
        "lock tokens with an expiry (run locks: 30 s leases renewed by a heartbeat, `sync/lease.py`)",
    ),
    KeyFamily(
        "lease",
        "lease",
        "lease:{tasks,spec,holder,resent,done:<task id>}",
        "zset, hash, string",
        "workers/leases.py",
        State.PROJECT,
        "task leases: a dead worker's tasks are sent again by a live worker's sweep",
    ),
    KeyFamily(
        "runs",
        "runs",
        "runs",
        "stream",
        "sync/ledger_runs.py",
        State.PROJECT,
        "run reports",
    ),
    KeyFamily(
        "metrics",
        "metrics",
        "metrics",
        "hash",
        "workers/metrics.py",
        State.PROJECT,
        "counters shared by every process, read by `/metrics` (webhook labels: configured sources, else `unknown`)",
    ),
    KeyFamily(
        "posthog_budget",
        "budget:posthog",
        "<prefix>:budget:posthog:<host>:<key hash>:{w:<seconds>,blocked,stats,rt:waiting,rt:active,history:<hour>}",
        "zset, string, hash",
        "sync/budget.py",
        State.GLOBAL,
        "PostHog's request budget shared by every worker and project using the key, its realtime lane and its "
        "per-minute history for the status page's charts",
    ),
    KeyFamily(
        "crm_budget",
        "budget",
        "crmsync:budget:<source>:<budget id>[:app|:search]",
        "hash",
        "connectors/<source>/",
        State.GLOBAL,
        "a CRM's token bucket (`sync/ratelimit.py`) shared by every worker using that app or account (HubSpot: "
        "one for the app's calls, one for search)",
    ),
    KeyFamily("rec1", "rec", "rec:<source>:<object>:<id>", "string", "layout 1", State.SOURCE, "a record", True),
    KeyFamily("out1", "out", "out:<source>:<object>:<id>", "string", "layout 1", State.SOURCE, "a push fp", True),
    KeyFamily("idx1", "idx", "idx:<kind>:<value>", "string", "layout 1", State.POSTHOG, "an index entry", True),
    KeyFamily("acct1", "acct", "acct:<account id>", "string", "layout 1", State.POSTHOG, "an account entry", True),
    KeyFamily("seen1", "seen", "seen:<account id>", "string", "layout 1", State.POSTHOG, "a seen account", True),
)
"""Every key family crmsync writes (and layout 1's, which only the migration reads), most specific prefix first."""

BUCKETED = tuple(f.name for f in FAMILIES if f.pattern.endswith(":<bucket>"))
"""Families whose keys are hashes of many entries (``rec``, ``idx``): a state count counts their fields."""
_IN_NAMESPACE = tuple(f for f in FAMILIES if f.state is not State.GLOBAL)
_LEGACY_NAMES = {"rec1": "rec", "out1": "out", "idx1": "idx", "acct1": "acct", "seen1": "seen"}


def family(name: str) -> KeyFamily:
    """The family called ``name``."""
    return next(f for f in FAMILIES if f.name == name)


def namespace(project_id: int, prefix: str = "crmsync") -> str:
    """The namespace of one PostHog project's keys: ``crmsync:<project id>``."""
    return f"{prefix}:{project_id}"


def family_of(rest: str) -> KeyFamily | None:
    """The family of a key of the namespace, given without its namespace (``rec:hubspot:deals:1``); None if unknown."""
    for candidate in _IN_NAMESPACE:
        if rest == candidate.prefix or rest.startswith(candidate.prefix + ":"):
            return candidate
    return None


def owner_of(rest: str) -> tuple[str | None, str]:
    """Which system a key describes, and its family, from the key without its namespace (``r:hubspot:deals:1f``).

    Returns ``(source, family)`` for a source's state (the segment after the family's prefix names the source:
    ``posthog`` for ``system:posthog``), ``("posthog", family)`` for PostHog-side state and for any key no family
    describes, ``(None, family)`` for plans and the project's keys, which no state drop touches.
    """
    found = family_of(rest)
    if found is None:
        return POSTHOG, rest.split(":", 1)[0]
    name = _LEGACY_NAMES.get(found.name, found.name)
    if found.state is State.SOURCE:
        after = rest[len(found.prefix) + 1 :].split(":", 1)[0]
        return (after or POSTHOG), name
    if found.state is State.POSTHOG:
        return POSTHOG, name
    return None, name


def key_table() -> str:
    """The markdown table of every key family (layout 1's left out), as ``docs/architecture.md`` shows it."""
    rows = ["| key | type | state | written by | holds |", "|---|---|---|---|---|"]
    for f in FAMILIES:
        if not f.legacy:
            cells = (f"`{f.pattern}`", f.type, f.state.value, f"`{f.owner}`", f.holds)
            rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n"


class ProjectKeys:
    """The keys of one project namespace (``ns``), one method per family (``FAMILIES``)."""

    def __init__(self, ns: str) -> None:
        self.ns = ns

    def _k(self, *parts: object) -> str:
        return ":".join((self.ns, *(str(p) for p in parts)))

    def match(self, *parts: object) -> str:
        """A SCAN pattern: the namespace, then ``parts``, then anything (``match("pending")`` → ``<ns>:pending:*``)."""
        return self._k(*parts, "*")

    def prefix(self, *parts: object) -> str:
        """What every key starting with ``parts`` starts with, separator included (``<ns>:a:``)."""
        return self._k(*parts) + ":"

    # -- the ledger --------------------------------------------------------------------------------------

    def rec_bucket(self, source: str, obj: str, bucket: str) -> str:
        return self._k("r", source, obj, bucket)

    def idx_bucket(self, kind: str, bucket: str) -> str:
        return self._k("x", kind, bucket)

    def acct(self, account_id: str) -> str:
        return self._k("a", account_id)

    def layout(self) -> str:
        return self._k("layout")

    def idxmeta(self) -> str:
        return self._k("idxmeta")

    def notags(self) -> str:
        return self._k("notags")

    def cursor(self, source: str, stream: str) -> str:
        """A cursor; the outbound watermark of ``<source>`` is ``cursor("posthog", "outwm:<source>:<stream>")``."""
        return self._k("cursor", source, stream)

    def cursor_at(self, source: str, stream: str) -> str:
        return self._k("cursor_at", source, stream)

    def system(self, name: str) -> str:
        return self._k("system", name)

    def evt(self, source: str, event_id: str) -> str:
        return self._k("evt", source, event_id)

    def lock(self, name: str) -> str:
        return self._k("lock", name)

    def runs(self) -> str:
        return self._k("runs")

    def dlq(self) -> str:
        return self._k("dlq")

    # -- webhooks, refreshes, dry runs, replay, metrics, plans, leases ----------------------------------------

    def pending(self, source: str, obj: str) -> str:
        return self._k("pending", source, obj)

    def pending_scheduled(self, source: str, obj: str) -> str:
        return self._k("pending", source, obj, "scheduled")

    def claims(self, source: str, obj: str) -> str:
        """The set of the tasks holding claims on ``pending(source, obj)``; their claims are ``claim(...)``."""
        return self._k("claim", source, obj)

    def claim(self, source: str, obj: str, task_id: str) -> str:
        return self._k("claim", source, obj, task_id)

    def claim_lease(self, source: str, obj: str, task_id: str) -> str:
        return self._k("claim", source, obj, task_id, "lease")

    def dryrun(self, source: str, stream: str) -> str:
        return self._k("dryrun", source, stream)

    def dlqreplay(self) -> str:
        return self._k("dlqreplay")

    def metrics(self) -> str:
        return self._k("metrics")

    def plan(self, plan_id: str, part: str) -> str:
        return self._k("plan", plan_id, part)

    def lease(self, part: str) -> str:
        """``tasks``, ``spec``, ``holder``, ``resent`` or ``done:<task id>``."""
        return self._k("lease", part)


def claim_key(claims: str, task_id: str) -> str:
    """A task's claim, from the set of the tasks holding claims (``ProjectKeys.claims``)."""
    return f"{claims}:{task_id}"


def claim_lease_key(claims: str, task_id: str) -> str:
    return f"{claims}:{task_id}:lease"


# -- outside the namespace: budgets ------------------------------------------------------------------------


def posthog_budget(prefix: str, host: str, key_hash: str) -> str:
    """The base of PostHog's request budget for one host and personal API key (a hash of it, never the key)."""
    return f"{prefix}:budget:posthog:{host}:{key_hash}"


def crm_budget(source: str, budget_id: str, prefix: str = "crmsync:budget") -> str:
    """A CRM's shared token bucket (``sync/ratelimit.py``) for one app or account."""
    return f"{prefix}:{source}:{budget_id}"


class BudgetKeys:
    """The keys under one PostHog budget base (``posthog_budget``)."""

    def __init__(self, base: str) -> None:
        self.base = base

    def blocked(self) -> str:
        return f"{self.base}:blocked"

    def stats(self) -> str:
        return f"{self.base}:stats"

    def window(self, seconds: float) -> str:
        return f"{self.base}:w:{seconds:g}"

    def rt_waiting(self) -> str:
        return f"{self.base}:rt:waiting"

    def rt_active(self) -> str:
        return f"{self.base}:rt:active"

    def history(self, hour: int) -> str:
        return f"{self.base}:history:{hour}"


def watermark_stream(source: str, stream: str, part: str = "") -> str:
    """The stream name under which the push-back pass keeps its watermark for ``source``'s ``stream`` among
    PostHog's cursors (``Keys.cursor("posthog", ...)``): ``outwm:<source>:<stream>``, with ``:roles`` or
    ``:custom`` for the change-feed passes."""
    return ":".join(p for p in ("outwm", source, stream, part) if p)
