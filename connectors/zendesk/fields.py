"""The custom organization fields push-back writes, and their creation (``crmsync setup zendesk``).

Which fields: the keys of the ``organization_fields.<key>`` paths the mapping's push-back writes
(``mappings.zendesk.organizations``: ``account_id_field``, ``link_fields``, outbound fields), or
``posthog_account_id`` without a mapping. Zendesk lists them with ``GET /api/v2/organization_fields`` (cursor
pagination) and creates one with ``POST /api/v2/organization_fields`` (``{"organization_field": {"type": "text",
"key": ..., "title": ...}}``). Creating only what is missing makes the command safe to run again.
"""

from __future__ import annotations

from connectors.zendesk.client import ZendeskClient
from connectors.zendesk.records import field_key
from sync.mapping import ObjectMapping
from sync.paging import follow

DEFAULT_KEYS = ("posthog_account_id",)


def wanted_keys(mapping: ObjectMapping | None) -> tuple[str, ...]:
    """The organization field keys push-back writes."""
    if mapping is None:
        return DEFAULT_KEYS
    return tuple(key for key in (field_key(path) for path in mapping.written) if key is not None)


def existing_keys(client: ZendeskClient) -> set[str]:
    """Keys of the account's organization fields (every page)."""

    def fetch(after: str | None) -> tuple[list[str], str | None]:
        params: dict[str, str | int] = {"page[size]": 100}
        if after is not None:
            params["page[after]"] = after
        body = client.call("list organization fields", "GET", "/api/v2/organization_fields", params=params).body
        keys = [str(field["key"]) for field in body.get("organization_fields") or () if field.get("key")]
        meta = body.get("meta") or {}
        return keys, str(meta["after_cursor"]) if meta.get("has_more") and meta.get("after_cursor") else None

    return {key for keys in follow(fetch, "zendesk organization fields") for key in keys}


def ensure_fields(client: ZendeskClient, keys: tuple[str, ...]) -> list[str]:
    """Create the text fields among ``keys`` the account lacks; the keys created."""
    present = existing_keys(client)
    created = []
    for key in keys:
        if key in present:
            continue
        title = key.replace("_", " ").capitalize().replace("Posthog", "PostHog")
        body = {"organization_field": {"type": "text", "key": key, "title": title, "description": "Written by crmsync"}}
        client.call("create organization field", "POST", "/api/v2/organization_fields", json=body)
        created.append(key)
    return created
