"""The HubSpot connector: deals enriched with their primary company and owner, through the official SDK.

See ``connectors.hubspot.connector`` for what it reads and writes, ``docs/connectors/hubspot.md`` for the guide.

Names are imported on first use, so reading ``connectors.hubspot.facts`` does not import the SDK.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connectors.hubspot.client import HubSpotClient
    from connectors.hubspot.config import HubSpotConfig, LinkRule, load_hubspot_config
    from connectors.hubspot.connector import HubSpotConnector
    from connectors.hubspot.cursor import HubSpotCursor
    from connectors.hubspot.properties import ensure_properties, push_properties

_EXPORTS: dict[str, str] = {
    "HubSpotClient": "connectors.hubspot.client",
    "HubSpotConfig": "connectors.hubspot.config",
    "LinkRule": "connectors.hubspot.config",
    "load_hubspot_config": "connectors.hubspot.config",
    "HubSpotConnector": "connectors.hubspot.connector",
    "HubSpotCursor": "connectors.hubspot.cursor",
    "ensure_properties": "connectors.hubspot.properties",
    "push_properties": "connectors.hubspot.properties",
}

__all__ = [
    "HubSpotClient",
    "HubSpotConfig",
    "HubSpotConnector",
    "HubSpotCursor",
    "LinkRule",
    "ensure_properties",
    "load_hubspot_config",
    "push_properties",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module), name)
