"""Where an account's role holders are written and read, for whichever generation the PostHog server speaks.

The engine keeps one picture of an account whatever the server: ``AccountState.properties`` carries the role keys
(``csm``, ``account_executive``, ``account_owner``: ``{"id", "email"}``), so the ownership rules, the merge and
push-back read roles the same way everywhere. This module maps that picture onto the server:

- ``seed`` and ``transitional``: roles travel inside ``properties`` as they always did; nothing here sends anything.
- ``current`` (``sync.posthog.generation``): ``properties`` goes out without the role keys (the server refuses
  them), and each role whose holder changed is one ``POST .../relationships/`` to the definition PostHog's own
  backfill uses for that key (``management/commands/backfill_account_relationships.py``: "CSM", "Account
  executive", "Account owner"; get-or-create, once per process). The server hides role keys on read, so the
  holders crmsync wrote, or PostHog's change feed reported, are kept in the account's ledger entry
  (``AccountEntry.roles``) and laid over the account as read (``overlay``).

Request economy on ``current``: an account costs its one POST or PATCH (without role keys) plus one request per
role set; an unchanged role costs nothing, and a change of roles alone sends no PATCH at all.

What is not the record's fault goes to review, not to the errors: an owner email that is no member of the
project's organisation (PostHog assigns members only), and a role PostHog manages that refuses this writer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sync.errors import BadRecordError
from sync.ledger import AccountEntry
from sync.posthog.errors import PostHogConflict, PostHogError, PostHogForbidden, PostHogValidationError
from sync.posthog.generation import Generations
from sync.posthog.models import ROLE_KEYS
from sync.posthog.relationships import RelationshipApi
from sync.report import RunReport

DEFINITION_NAMES: dict[str, str] = {
    "csm": "CSM",
    "account_executive": "Account executive",
    "account_owner": "Account owner",
}
"""Role key → relationship definition name, as PostHog's backfill command maps them."""

NOT_A_MEMBER = "no PostHog member with email"


class RoleWriter:
    """Reads and writes role holders where the server keeps them (see the module docstring)."""

    def __init__(self, generations: Generations, api: RelationshipApi) -> None:
        self.generations = generations
        self.api = api
        self._definitions: dict[str, str] | None = None  # definition name → id (current servers)

    @property
    def on_relationships(self) -> bool:
        return self.generations.relationships

    def outgoing(self, properties: Mapping[str, Any]) -> dict[str, Any]:
        """The ``properties`` to send: without the role keys where roles live on relationships."""
        if not any(key in properties for key in ROLE_KEYS) or not self.on_relationships:
            return dict(properties)
        return {k: v for k, v in properties.items() if k not in ROLE_KEYS}

    def overlay(self, properties: dict[str, Any], entry: AccountEntry) -> None:
        """Put the holders the ledger knows into ``properties`` read from a server that hides them."""
        if entry.roles and self.on_relationships:
            for key in ROLE_KEYS:
                properties.pop(key, None)
            properties.update({k: dict(v) for k, v in entry.roles.items() if k in ROLE_KEYS and v})

    def triage(self, errors: list[BadRecordError], report: RunReport, account_id: str | None) -> list[BadRecordError]:
        """On relationships, an owner email that is no organisation member is a review item; the other errors
        are returned for the report."""
        if not any(e.field and e.field.startswith("roles.") for e in errors) or not self.on_relationships:
            return errors
        kept: list[BadRecordError] = []
        for error in errors:
            if error.field and error.field.startswith("roles.") and NOT_A_MEMBER in error.reason:
                report.review.append(
                    {
                        "source": error.source,
                        "id": error.record_id,
                        "account_id": account_id,
                        "field": error.field,
                        "reason": f"{error.reason}: PostHog assigns roles to organisation members only; "
                        "invite them to the organisation or change the owner",
                    }
                )
            else:
                kept.append(error)
        return kept

    def write(
        self,
        account_id: str,
        before: Mapping[str, Any],
        after: dict[str, Any],
        entry: AccountEntry,
        report: RunReport,
    ) -> int:
        """Assign each role whose holder changed from ``before`` to ``after`` (properties); returns the requests
        sent. A refused assignment goes to review and ``after`` keeps the old holder, so the ledger never claims
        a holder PostHog does not have. ``entry.roles`` ends as what PostHog holds.

        Where no role is involved the generation is not even looked up (no Redis read, no probe)."""
        involved = any(isinstance(p.get(k), dict) for p in (before, after) for k in ROLE_KEYS)
        if not involved or not self.on_relationships:
            entry.roles = {}
            return 0
        sent = 0
        for key in ROLE_KEYS:
            new, old = after.get(key), before.get(key)
            if not isinstance(new, dict) or new == old or "id" not in new:
                if isinstance(new, dict):
                    entry.roles[key] = dict(new)
                continue
            sent += 1
            try:
                self.api.assign(account_id, self.definition_id(key), int(new["id"]))
            except (PostHogValidationError, PostHogForbidden) as exc:
                if isinstance(exc, PostHogForbidden) and exc.scope is not None:
                    raise
                report.review.append(
                    {
                        "account_id": account_id,
                        "field": f"roles.{key}",
                        "email": new.get("email"),
                        "reason": f"PostHog refused the {DEFINITION_NAMES[key]} assignment: {exc.detail or exc} "
                        "(a role PostHog manages is changed by a person only)",
                    }
                )
                if isinstance(old, dict):
                    after[key] = old
                else:
                    after.pop(key, None)
                continue
            entry.roles[key] = dict(new)
            report.add("roles_assigned")
        return sent

    def definition_id(self, key: str) -> str:
        """The id of the definition for ``key``, created when the project has none by that name."""
        if self._definitions is None:
            listed = self.generations.take_definitions()
            if listed is None:
                listed = self.api.list_definitions()
            self._definitions = {str(d.get("name")): str(d.get("id")) for d in listed if d.get("id")}
        name = DEFINITION_NAMES[key]
        if name not in self._definitions:
            try:
                created = self.api.create_definition(name)
            except (PostHogConflict, PostHogValidationError):  # another writer created it meanwhile (unique names)
                listed = self.api.list_definitions()
                self._definitions.update({str(d.get("name")): str(d.get("id")) for d in listed if d.get("id")})
                if name in self._definitions:
                    return self._definitions[name]
                raise
            if not created.get("id"):
                raise PostHogError(f"PostHog created the {name!r} relationship definition without an id")
            self._definitions[name] = str(created["id"])
        return self._definitions[name]
