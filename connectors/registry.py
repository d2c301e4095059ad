"""Which connectors exist, and how one is built from its ``sources.<name>.config`` block.

A connector package exposes ``build(config: Mapping[str, Any], redis: Redis) -> Connector`` in its
``__init__``; the config mapping is validated there (a bad key raises ``ConfigError`` naming
``sources.<name>.config.<key>``). Packages are imported only when used, so a worker that syncs one CRM does not
import the other SDKs. A fourth CRM is a folder plus one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any, cast

import redis

from connectors.base import Connector
from sync.errors import ConfigError

KNOWN: dict[str, str] = {
    "hubspot": "connectors.hubspot",
    "stripe": "connectors.stripe",
    "salesforce": "connectors.salesforce",
}

Builder = Callable[[Mapping[str, Any], redis.Redis], Connector]


def build_connector(name: str, config: Mapping[str, Any], client: redis.Redis) -> Connector:
    """Build the connector called ``name`` from its config block."""
    module_name = KNOWN.get(name)
    if module_name is None:
        raise ConfigError(f"sources.{name}", f"unknown source; one of {', '.join(sorted(KNOWN))}")
    module = importlib.import_module(module_name)
    builder = cast(Builder, module.build)
    return builder(config, client)
