"""Which connectors exist, and how one is built from its ``sources.<name>.config`` block.

Each builder validates the block with the connector's own config model (a bad key raises ``ConfigError`` naming
``sources.<name>.config.<key>``) and gives the connector the shared Redis for its rate budgets. Connector
packages are imported only when used, so a worker that syncs one CRM does not import the other SDKs. A fourth
CRM is a folder plus one builder here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import redis

from connectors.base import Connector
from sync.errors import ConfigError


def _hubspot(config: Mapping[str, Any], client: redis.Redis) -> Connector:
    from connectors.hubspot import HubSpotConnector, load_hubspot_config

    return HubSpotConnector(load_hubspot_config(config, "sources.hubspot.config"), client)


def _stripe(config: Mapping[str, Any], client: redis.Redis) -> Connector:
    from connectors.stripe import StripeConnector, load_stripe_config

    return StripeConnector.with_shared_budget(load_stripe_config(config, "sources.stripe.config"), client)


def _salesforce(config: Mapping[str, Any], client: redis.Redis) -> Connector:
    from connectors.salesforce.connector import build

    return build(config, client)


BUILDERS: dict[str, Callable[[Mapping[str, Any], redis.Redis], Connector]] = {
    "hubspot": _hubspot,
    "stripe": _stripe,
    "salesforce": _salesforce,
}


def build_connector(name: str, config: Mapping[str, Any], client: redis.Redis) -> Connector:
    """Build the connector called ``name`` from its config block."""
    builder = BUILDERS.get(name)
    if builder is None:
        raise ConfigError(f"sources.{name}", f"unknown source; one of {', '.join(sorted(BUILDERS))}")
    return builder(config, client)
