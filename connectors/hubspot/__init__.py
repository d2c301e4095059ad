"""The HubSpot connector: deals enriched with their primary company and owner, through the official SDK.

See ``connectors.hubspot.connector`` for what it reads and writes, ``docs/connectors/hubspot.md`` for the guide.
"""

from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.config import HubSpotConfig, LinkRule, load_hubspot_config
from connectors.hubspot.connector import HubSpotConnector
from connectors.hubspot.cursor import HubSpotCursor
from connectors.hubspot.properties import ensure_properties, push_properties

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
