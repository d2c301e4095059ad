"""Which connectors exist, and the one way each is built: ``<Connector>.from_config(raw, redis, fields, key)``.

Every connector class validates its ``sources.<name>.config`` block with its own config model (a bad key raises
``ConfigError`` naming ``sources.<name>.config.<key>``), takes the shared Redis for its rate budgets, and takes
the fields its streams' mappings read and write (``stream_fields``: one ``sync.connector.StreamFields`` per mapped
stream, never the mapping config itself): they say what push-back writes (and every pull reads back), and a
connector that reads fields the mapping addresses, such as Salesforce, checks them at start-up.
Connector packages are imported only when used, so a worker that syncs one CRM does not import the other SDKs.
Each connector also declares its vendor facts (``sync.vendor_facts``) in ``connectors/<name>/facts.py``, read by
``vendor_facts(name)`` without importing the connector or its SDK.
A fourth CRM is a folder plus one line in ``CONNECTORS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import TYPE_CHECKING, Any, Protocol

import redis

from sync.connector import Connector, StreamFields
from sync.errors import ConfigError
from sync.vendor_facts import VendorFacts

if TYPE_CHECKING:
    from sync.mapping import MappingConfig


class ConnectorClass(Protocol):
    """What the registry needs of a connector class: the one construction path, its streams and vendor facts."""

    facts: VendorFacts
    streams: tuple[str, ...]

    def from_config(
        self,
        raw: Mapping[str, Any],
        redis_client: redis.Redis | None,
        fields: Mapping[str, StreamFields] | None,
        key: str,
    ) -> Connector: ...


CONNECTORS: dict[str, str] = {
    "hubspot": "connectors.hubspot.connector:HubSpotConnector",
    "stripe": "connectors.stripe.connector:StripeConnector",
    "salesforce": "connectors.salesforce.connector:SalesforceConnector",
    "zendesk": "connectors.zendesk.connector:ZendeskConnector",
}
"""Source name → ``module:class`` of its connector (imported on first use)."""


def connector_class(name: str) -> ConnectorClass:
    """The connector class for source ``name``; ``ConfigError`` naming ``sources.<name>`` for an unknown one."""
    target = CONNECTORS.get(name)
    if target is None:
        raise ConfigError(f"sources.{name}", f"unknown source; one of {', '.join(sorted(CONNECTORS))}")
    module, _, attribute = target.partition(":")
    found: ConnectorClass = getattr(import_module(module), attribute)
    return found


def vendor_facts(name: str) -> VendorFacts:
    """The vendor facts of source ``name`` (``connectors/<name>/facts.py``); ``ConfigError`` for an unknown one."""
    target = CONNECTORS.get(name)
    if target is None:
        raise ConfigError(f"sources.{name}", f"unknown source; one of {', '.join(sorted(CONNECTORS))}")
    module = target.partition(":")[0].rsplit(".", 1)[0]
    facts: VendorFacts = import_module(f"{module}.facts").FACTS
    return facts


def setup_command(name: str) -> Callable[..., Any] | None:
    """Source ``name``'s one-time set-up command (``crmsync setup <name>``), imported now; None when it has none."""
    target = vendor_facts(name).setup_command
    if target is None:
        return None
    module, _, attribute = target.partition(":")
    command: Callable[..., Any] = getattr(import_module(module), attribute)
    return command


def default_precedence() -> tuple[str, ...]:
    """Every registered source, in its declared default precedence (the ownership order when none is given)."""
    return tuple(sorted(CONNECTORS, key=lambda name: vendor_facts(name).precedence))


def stream_fields(name: str, mapping: MappingConfig) -> dict[str, StreamFields]:
    """What each mapped stream of source ``name`` reads and writes (``mappings.<name>.<stream>``)."""
    return {
        stream: StreamFields.of(section, f"mappings.{name}.{stream}")
        for stream, section in mapping.mappings.get(name, {}).items()
    }


def build_connector(
    name: str, config: Mapping[str, Any], client: redis.Redis, mapping: MappingConfig | None = None
) -> Connector:
    """Build the connector called ``name`` from its config block, the shared Redis and the fields the mapping
    gives its streams (``stream_fields``; none without a mapping)."""
    fields = stream_fields(name, mapping) if mapping is not None else None
    return connector_class(name).from_config(config, client, fields, f"sources.{name}.config")
