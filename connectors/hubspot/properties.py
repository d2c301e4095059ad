"""Custom properties crmsync writes: which ones a mapping needs, and creating those a portal lacks.

HubSpot refuses a whole batch update that names a property the portal does not have (400
``PROPERTY_DOESNT_EXIST``), so ``crmsync setup hubspot`` (and the connector before its first push) lists the
object's properties once and creates each missing one through the properties API (201; 409 if another worker
created it first, which is fine).
"""

from __future__ import annotations

from collections.abc import Iterable

from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.config import DEFAULT_PUSH_PROPERTIES, HubSpotConfig
from connectors.mapped import check_setting
from sync.connector import StreamFields
from sync.errors import ConfigError


def push_properties(
    config: HubSpotConfig, fields: StreamFields | None, key: str = "sources.hubspot.config"
) -> tuple[str, ...]:
    """The deal properties push-back writes, which every read asks for too: the mapping's (the account id field,
    the other systems' ids, the outbound fields: ``StreamFields.write``), or without a mapping the legacy
    ``push_properties`` setting or its default. A ``push_properties`` setting naming other properties than the
    mapping raises ``ConfigError`` naming ``<key>.push_properties`` (``connectors.mapped``); so does a written
    path with a ``.`` (not a deal property), naming the mapping key."""
    if fields is None:
        return DEFAULT_PUSH_PROPERTIES if config.push_properties is None else config.push_properties
    nested = [name for name in fields.write if "." in name]
    if nested:
        raise ConfigError(fields.key, f"{nested[0]!r}: only deal properties can be written")
    where = f"{fields.key} (account_id_field, link_fields and fields with direction: outbound)"
    check_setting(f"{key}.push_properties", config.push_properties, fields.write, where)
    return fields.write


def _label(name: str) -> str:
    words = name.replace("_", " ").split()
    return " ".join(w if w.lower() != "posthog" else "PostHog" for w in (w.capitalize() for w in words))


def ensure_properties(
    client: HubSpotClient, object_type: str, names: Iterable[str], group: str
) -> tuple[list[str], list[str]]:
    """Make ``names`` exist on ``object_type`` (single-line text, in property group ``group``).

    Returns (created, already present). Costs one request to list the properties plus one per missing one."""
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return [], []
    existing = client.property_names(object_type)
    created: list[str] = []
    present = [n for n in wanted if n in existing]
    for name in wanted:
        if name in existing:
            continue
        description = "Written by crmsync (PostHog account sync). Do not edit by hand."
        if client.create_property(object_type, name, _label(name), group, description):
            created.append(name)
        else:
            present.append(name)
    return created, present
