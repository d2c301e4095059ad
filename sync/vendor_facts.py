"""What the rest of crmsync may know about a source without naming it: its vendor facts.

Each connector declares one ``VendorFacts`` (``connectors/<name>/facts.py``, also its class's ``facts``), and
``connectors.registry.vendor_facts(name)`` hands it out by source name. Nothing outside the connectors compares a
source with a vendor's name: the mapping's default precedence, the config's credential-host check and the status
page's record links read these facts instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

RecordUrl = Callable[[str, str, Mapping[str, Any]], "str | None"]
"""``(object, url-quoted record id, ui.links settings) -> URL of the record in the vendor's UI``, or None."""


@dataclass(frozen=True)
class VendorFacts:
    """One source's facts, readable without building (or importing) its connector.

    - ``link_key``: the PostHog account property holding this source's record id (one of ``ID_KEYS``).
    - ``host_key``: the key of ``sources.<name>.config`` naming the host crmsync sends credentials to.
    - ``record_url``: builds a record's URL in the vendor's UI from ``ui.links`` (None when a piece is missing).
    - ``setup_command``: ``module:function`` of its one-time set-up command (a typer command the CLI registers as
      ``crmsync setup <name>``), or None when there is none.
    - ``precedence``: rank in the default ownership order (lower wins).
    - ``ui_links``: the ``ui.links`` settings its ``record_url`` reads besides the ones the config names itself
      (``hubspot_portal``, ``salesforce_instance``); the config accepts them and checks each value's pattern.
    """

    link_key: str
    host_key: str
    record_url: RecordUrl
    setup_command: str | None
    precedence: int
    ui_links: tuple[UiLinkSetting, ...] = ()


@dataclass(frozen=True)
class UiLinkSetting:
    """A ``ui.links`` setting a source declares: its name, the pattern a value must match (whole), what it means,
    and an example value (the registry test and the contract suite build sample links from it)."""

    name: str
    pattern: str
    description: str
    example: str
