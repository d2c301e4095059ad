"""Who holds which role on a PostHog account, read where today's PostHog keeps it: the relationship endpoint."""

from __future__ import annotations

from sync.posthog import PostHogClient
from sync.posthog.relationships import RelationshipApi
from sync.roles import DEFINITION_NAMES

ROLE_OF_DEFINITION = {name: key for key, name in DEFINITION_NAMES.items()}


def role_holders(client: PostHogClient, account_id: str) -> dict[str, str]:
    """Role key (``csm``, ``account_executive``, ``account_owner``) → the holder's email."""
    return {
        ROLE_OF_DEFINITION[r["definition"]["name"]]: str(r["user"]["email"])
        for r in RelationshipApi(client).active(account_id)
        if r.get("user") and r["definition"]["name"] in ROLE_OF_DEFINITION
    }


def assign_in_posthog(client: PostHogClient, account_id: str, role: str, user_id: int) -> None:
    """What a person does in PostHog's UI: make ``user_id`` the holder of ``role`` (the definition is created
    when the project has none by that name)."""
    api = RelationshipApi(client)
    name = DEFINITION_NAMES[role]
    found = [d for d in api.list_definitions() if d.get("name") == name]
    definition = found[0] if found else api.create_definition(name)
    api.assign(account_id, str(definition["id"]), user_id)
