"""Connector settings that the mapping now says: the check that keeps an older config from saying otherwise.

What a connector writes on push-back, and so must read back on every pull, is configured once, in the mapping
(``account_id_field``, ``link_fields``, fields with ``direction: outbound``). Older configs also named those fields
in connector settings (Salesforce ``account_id_field`` / ``outbound_fields``, HubSpot ``push_properties``). The
rule: such a setting may stay only while it names exactly the fields the mapping implies (in any order); any other
value fails at start-up naming the setting and the mapping key that configures it now.
"""

from __future__ import annotations

from collections.abc import Iterable

from sync.errors import ConfigError


def _names(value: str | Iterable[str] | None, fold_case: bool) -> frozenset[str]:
    items = () if value is None else (value,) if isinstance(value, str) else tuple(value)
    return frozenset(item.lower() if fold_case else item for item in items)


def check_setting(
    key: str,
    configured: str | Iterable[str] | None,
    implied: str | Iterable[str] | None,
    where: str,
    *,
    fold_case: bool = False,
) -> None:
    """Accept a legacy setting ``key`` left unset (None) or naming the same fields as the mapping implies (as a
    set; ``fold_case`` for vendors whose field names ignore case, such as Salesforce). Otherwise ``ConfigError``
    naming ``key`` and ``where`` (the mapping key that configures those fields now). Field names are not secret."""
    if configured is None or _names(configured, fold_case) == _names(implied, fold_case):
        return
    said = sorted(_names(implied, False)) or "none"
    raise ConfigError(
        key,
        f"now configured in the mapping, at {where}, which implies {said}; remove this setting "
        "(or make it name the same fields)",
    )
