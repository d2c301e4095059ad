"""PostHog's account relationships (current servers): who holds a role such as "CSM" on an account.

Routes (``products/customer_analytics/backend/``: ``presentation/views/views.py``, ``logic/relationships.py``),
all under ``/api/projects/:project_id/`` with the ``account`` scope:

- ``account_relationship_definitions/``: list (limit/offset pages) and create ``{name, description,
  is_single_holder}``; ``name`` is unique per project.
- ``accounts/:account_id/relationships/``: GET the active assignments (not paginated); POST ``{definition, user}``
  assigns a user (an organisation member, else 400). A single-holder definition hands off from the previous
  holder in the same transaction, and assigning the current holder again is a no-op, so a repeated POST is safe.
  A role the account *manages* (``_enforce_managed_role_policy``) refuses writers other than a person.

Every call goes through the client's one request path (budget, retries, error translation).
"""

from __future__ import annotations

from typing import Any

from sync.paging import follow
from sync.posthog.generation import Caller, definitions_path


class RelationshipApi:
    """Typed access to the relationship routes of one project."""

    def __init__(self, client: Caller) -> None:
        self.client = client

    def list_definitions(self) -> list[dict[str, Any]]:
        """Every relationship definition of the project (following ``next``: a project has a handful)."""

        def page(offset: int | None) -> tuple[list[dict[str, Any]], int | None]:
            params = {"limit": "100", "offset": str(offset or 0)}
            answer = self.client.call("GET", definitions_path(self.client.project_id), params=params)
            results = answer.get("results") if isinstance(answer, dict) else answer
            batch = [d for d in results or [] if isinstance(d, dict)]
            more = isinstance(answer, dict) and answer.get("next") and batch
            return batch, (offset or 0) + len(batch) if more else None

        return [d for batch in follow(page, "PostHog relationship definitions") for d in batch]

    def create_definition(self, name: str) -> dict[str, Any]:
        body = {"name": name, "is_single_holder": True}
        answer = self.client.call("POST", definitions_path(self.client.project_id), json=body)
        return answer if isinstance(answer, dict) else {}

    def assign(self, account_id: str, definition_id: str, user_id: int) -> dict[str, Any]:
        """Make ``user_id`` the holder (a repeat is a no-op on the server, so it is safe to retry)."""
        path = f"/api/projects/{self.client.project_id}/accounts/{account_id}/relationships/"
        answer = self.client.call("POST", path, json={"definition": definition_id, "user": user_id}, idempotent=True)
        return answer if isinstance(answer, dict) else {}

    def active(self, account_id: str) -> list[dict[str, Any]]:
        """The account's active assignments: ``{id, definition: {id, name, ...}, user: {id, email} | null, ...}``."""
        path = f"/api/projects/{self.client.project_id}/accounts/{account_id}/relationships/"
        answer = self.client.call("GET", path)
        results = answer.get("results") if isinstance(answer, dict) else answer
        return [r for r in results or [] if isinstance(r, dict)]
