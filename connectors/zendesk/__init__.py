"""The Zendesk Support connector: organizations ↔ accounts, over Zendesk's REST API with httpx.

See ``connectors.zendesk.connector`` for what it reads and writes, ``docs/connectors/zendesk.md`` for the guide.

Names are imported on first use, so reading ``connectors.zendesk.facts`` imports nothing else.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connectors.zendesk.client import ZendeskClient
    from connectors.zendesk.config import ZendeskConfig, load_zendesk_config
    from connectors.zendesk.connector import ZendeskConnector
    from connectors.zendesk.cursor import ZendeskCursor

_EXPORTS: dict[str, str] = {
    "ZendeskClient": "connectors.zendesk.client",
    "ZendeskConfig": "connectors.zendesk.config",
    "load_zendesk_config": "connectors.zendesk.config",
    "ZendeskConnector": "connectors.zendesk.connector",
    "ZendeskCursor": "connectors.zendesk.cursor",
}

__all__ = ["ZendeskClient", "ZendeskConfig", "ZendeskConnector", "ZendeskCursor", "load_zendesk_config"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module), name)
