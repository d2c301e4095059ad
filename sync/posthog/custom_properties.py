"""Typed custom account properties on current PostHog servers: definitions, one value per request, and the writer
the engine calls after each account it writes.

PostHog's routes (``products/customer_analytics/backend/api/views.py``, ``api/serializers.py``), under
``/api/projects/:project_id/``:

- ``custom_property_definitions/``: list, create ``{name (unique per project, ≤400), display_type, options}``
  (``options`` for ``select`` only: ``[{id, label, color}]``);
- ``accounts/:account_id/custom_property_values/``: POST ``{definition: <uuid>, value}`` sets one value (the old
  one is soft-deleted; the same value again emits no event). There is no bulk endpoint: one request per value.

A server of an older generation has no such routes (404; a transitional one serves definitions but no values):
the mapping's ``custom.*`` fields are then reported once per run, never as per-record errors. Which definitions
exist is read once per process (one list request).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sync.custom_values import DisplayType
from sync.errors import BadRecordError, ConfigError, RetryableError
from sync.ledger import AccountEntry
from sync.mapping import AccountPatch, MappingConfig, Provenance, fingerprint_of, may_write
from sync.paging import follow
from sync.posthog.client import PostHogClient
from sync.posthog.errors import PostHogNotFound, PostHogRateLimited, PostHogValidationError
from sync.report import PlannedChange, RunReport

Declared = Mapping[str, tuple[DisplayType, tuple[str, ...]]]
UNAVAILABLE = (
    "this PostHog server has no custom account properties (an older generation of its accounts API): the "
    "mapping's custom.* fields are not written"
)


@dataclass(frozen=True)
class Definition:
    """A custom property definition as PostHog serves it."""

    id: str
    name: str
    display_type: str
    options: tuple[str, ...] = ()

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Definition:
        options = tuple(str(o.get("label", "")) for o in raw.get("options") or [] if isinstance(o, Mapping))
        return cls(str(raw["id"]), str(raw["name"]), str(raw.get("display_type") or "text"), options)


def _definitions_path(client: PostHogClient) -> str:
    return f"{client.projects_path}/custom_property_definitions/"


def list_definitions(client: PostHogClient) -> list[Definition] | None:
    """Every account custom property definition of the project; None when the server has no such route."""
    try:
        answer = client.call("GET", _definitions_path(client), params={"limit": "1000"})
    except PostHogNotFound:
        return None

    def page(url: str | None) -> tuple[list[Definition], str | None]:
        got = answer if url is None else client.call("GET", url)
        items = got if isinstance(got, list) else got.get("results", [])
        nxt = got.get("next") if isinstance(got, dict) else None
        return [Definition.of(d) for d in items if d.get("target_type", "account") == "account"], nxt or None

    return [d for found in follow(page, "PostHog custom property definitions") for d in found]


def create_definition(
    client: PostHogClient, name: str, display_type: DisplayType, options: Sequence[str] = ()
) -> Definition:
    body: dict[str, Any] = {"name": name, "display_type": display_type.value, "target_type": "account"}
    if options:  # PostHog assigns option ids; a colour is required, one of preset-1..preset-10
        body["options"] = [{"label": label, "color": f"preset-{n % 10 + 1}"} for n, label in enumerate(options)]
    return Definition.of(client.call("POST", _definitions_path(client), json=body))


def set_value(client: PostHogClient, account_id: str, definition_id: str, value: Any) -> dict[str, Any]:
    """One value set: ``POST accounts/:id/custom_property_values/`` (a repeat stores the same value again)."""
    path = f"{client.projects_path}/accounts/{account_id}/custom_property_values/"
    answer = client.call("POST", path, json={"definition": definition_id, "value": value}, idempotent=True)
    return answer if isinstance(answer, dict) else {}


def problems(declared: Declared, existing: Sequence[Definition]) -> list[tuple[str, str]]:
    """(definition name, what is wrong) for each declared definition that is missing or of another type."""
    by_name = {d.name: d for d in existing}
    found: list[tuple[str, str]] = []
    for name, (display_type, options) in declared.items():
        have = by_name.get(name)
        if have is None:
            found.append((name, "missing (run `crmsync setup posthog`)"))
        elif have.display_type != display_type.value:
            found.append((name, f"is a {have.display_type} property in PostHog, the mapping says {display_type.value}"))
        elif missing := [o for o in options if o not in have.options]:
            found.append((name, f"PostHog's select has no option {', '.join(missing)}"))
    return found


def setup_definitions(client: PostHogClient, declared: Declared, dry_run: bool = False) -> list[str]:
    """Get-or-create every declared definition by name; a definition of another type is a ``ConfigError``.
    Returns one line per definition saying what was (or, dry, would be) done."""
    existing = list_definitions(client)
    if existing is None:
        raise ConfigError("posthog.base_url", UNAVAILABLE)
    by_name = {d.name: d for d in existing}
    lines: list[str] = []
    for name, (display_type, options) in declared.items():
        have = by_name.get(name)
        if have is None:
            if not dry_run:
                create_definition(client, name, display_type, options)
            lines.append(f"{'would create' if dry_run else 'created'} custom property {name!r} ({display_type.value})")
        elif have.display_type != display_type.value or any(o not in have.options for o in options):
            (problem,) = problems({name: (display_type, options)}, [have])
            raise ConfigError(f"custom.{name}", problem[1])
        else:
            lines.append(f"custom property {name!r} ({display_type.value}) exists")
    return lines


def require_definitions(client: PostHogClient, mapping: MappingConfig) -> None:
    """Start-up check (one list request, none when the mapping declares no custom property): stop naming the
    mapping key of a definition that is missing or of another type. A server without custom properties passes
    (the runs say so once)."""
    declared = mapping.custom_definitions()
    if not declared:
        return
    existing = list_definitions(client)
    if existing is None:
        return
    found = problems(declared, existing)
    if found:
        name, reason = found[0]
        raise ConfigError(mapping.custom_key(name), f"custom property {name!r} {reason}")


@dataclass
class CustomWriter:
    """Writes the custom values of the records just applied to one account, each changed value once.

    Ownership rules apply as to any field: provenance is kept under ``custom.<name>`` in the account's ledger entry,
    and ``AccountEntry.custom`` holds a fingerprint of each value PostHog holds (as crmsync wrote it or read it in
    the change feed), so an unchanged value costs no request and ``posthog_wins`` knows when a value is set."""

    client: PostHogClient
    mapping: MappingConfig
    definitions: dict[str, Definition] | None = None
    available: bool | None = None

    def _load(self) -> bool:
        if self.available is None:
            found = list_definitions(self.client)
            self.available = found is not None
            self.definitions = {d.name: d for d in found or []}
        return self.available

    def apply(self, report: RunReport, account_id: str, patches: Sequence[AccountPatch], entry: AccountEntry) -> None:
        """Plan by ownership, then POST each changed value; ``entry`` learns what was written."""
        for name, (value, patch) in self._plan(report, patches, entry).items():
            if self.available:
                self._write(report, account_id, name, value, patch, entry)

    def planned(
        self, report: RunReport, label: str, patches: Sequence[AccountPatch], entry: AccountEntry
    ) -> list[PlannedChange]:
        """What ``apply`` would write, for a dry run's plan (the entry is not changed; PostHog's old value is known
        only by its fingerprint, so ``before`` is None)."""
        writes = self._plan(report, patches, copy.deepcopy(entry))
        return [PlannedChange(label, f"custom.{n}", None, v, p.source) for n, (v, p) in writes.items()]

    def _plan(
        self, report: RunReport, patches: Sequence[AccountPatch], entry: AccountEntry
    ) -> dict[str, tuple[Any, AccountPatch]]:
        wanted = [
            (t, v, p) for p in patches if not p.deleted for t, v in sorted(p.values.items()) if t[:7] == "custom."
        ]
        writes: dict[str, tuple[Any, AccountPatch]] = {}
        if not wanted:
            return writes
        if not self._load():
            if UNAVAILABLE not in report.notes:
                report.notes.append(UNAVAILABLE)
            return writes
        for target, value, patch in wanted:
            name, fp = target[7:], fingerprint_of(value)
            prov_raw = entry.provenance.get(target)
            held = entry.custom.get(name)
            rule = self.mapping.rule_for(target)
            claim = may_write(rule, patch.source, patch.version, held, Provenance.load(prov_raw) if prov_raw else None)
            if not claim.allowed:
                if held != fp:
                    report.add("conflicts")
                continue
            entry.provenance[target] = Provenance(patch.source, patch.version, fp).dump()
            if held == fp:
                writes.pop(name, None)
            else:
                writes[name] = (value, patch)
        return writes

    def _write(
        self, report: RunReport, account_id: str, name: str, value: Any, patch: AccountPatch, entry: AccountEntry
    ) -> None:
        assert self.definitions is not None
        definition = self.definitions.get(name)
        target = f"custom.{name}"
        if definition is None:
            reason = f"PostHog has no custom property definition '{name}' (run `crmsync setup posthog`)"
            report.error(BadRecordError(patch.source, patch.record_id, target, reason), failed=False)
            return
        try:
            set_value(self.client, account_id, definition.id, value)
        except (PostHogRateLimited, RetryableError):
            raise
        except PostHogValidationError as exc:
            reason = f"PostHog refused the value for definition '{name}' ({definition.display_type}): {exc.detail}"
            report.error(BadRecordError(patch.source, patch.record_id, target, reason), failed=False)
            return
        except PostHogNotFound:
            # the account was just written, so the values route itself is missing: a transitional server serves
            # definitions but no values. Said once; nothing more is sent until the process starts again.
            self.available = False
            if UNAVAILABLE not in report.notes:
                report.notes.append(UNAVAILABLE)
            return
        entry.custom[name] = fingerprint_of(value)
        report.add("custom_values_written")
