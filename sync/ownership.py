"""Owner rules: who may write one account field, decided from the rule, the field's value and its provenance. Pure.

The rule of each account field is configured in ``ownership`` (``MappingConfig.rule_for``); the provenance of its
value (who set it last, and when by the source's clock) is kept in the ledger's account entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, model_validator


class RuleKind(StrEnum):
    PRECEDENCE = "precedence"
    NEWEST_WINS = "newest_wins"
    POSTHOG_WINS = "posthog_wins"
    SET_IF_EMPTY = "set_if_empty"


class OwnerRule(BaseModel):
    """Who may write one account field.

    - ``precedence``: the sources in ``order`` (earlier wins); a source may overwrite a value set by itself or
      by a source ranked below it, never one ranked above. Sources not listed rank last. Without ``order``, the
      registered sources in their declared default precedence (given to ``load_mapping_config`` by the caller,
      which reads it from ``connectors.registry.default_precedence``).
    - ``newest_wins``: the record modified most recently wins (by the source's own modification time).
    - ``posthog_wins``: PostHog owns it; CRMs only fill it while empty, and it flows out to the CRMs.
    - ``set_if_empty``: any source may fill it while empty; nobody overwrites it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: RuleKind = RuleKind.PRECEDENCE
    order: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _default_order(cls, data: Any, info: ValidationInfo) -> Any:
        """Without ``order``, the registered sources' default precedence, when the loader was given it."""
        precedence = (info.context or {}).get("precedence")
        if isinstance(data, dict) and "order" not in data and precedence:
            return {**data, "order": tuple(precedence)}
        return data


@dataclass
class Provenance:
    """Who set one account field last (as far as crmsync knows) and when, by the source's own clock."""

    source: str
    version: int | None = None
    value_fp: str = ""

    def dump(self) -> dict[str, Any]:
        return {"s": self.source, "v": self.version, "f": self.value_fp}

    @classmethod
    def load(cls, raw: Mapping[str, Any]) -> Provenance:
        return cls(source=str(raw["s"]), version=raw.get("v"), value_fp=str(raw.get("f", "")))


@dataclass
class Permission:
    """Whether a source may write a field now, and why not when it may not."""

    allowed: bool
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def may_write(
    rule: OwnerRule,
    source: str,
    version: int | None,
    current_value: Any,
    provenance: Provenance | None,
) -> Permission:
    """Decide whether ``source`` may set a field whose current PostHog value and provenance are given."""
    empty = current_value in (None, "", [], {})
    if rule.rule in (RuleKind.POSTHOG_WINS, RuleKind.SET_IF_EMPTY):
        return Permission(empty, "" if empty else f"{rule.rule.value}: already set")
    if empty or provenance is None:
        return Permission(True)
    if rule.rule is RuleKind.NEWEST_WINS:
        if provenance.source == source or provenance.version is None or version is None:
            return Permission(True)
        newer = version >= provenance.version
        return Permission(newer, "" if newer else f"newest_wins: {provenance.source} is newer")

    def rank(s: str) -> int:
        return rule.order.index(s) if s in rule.order else len(rule.order)

    ok = rank(source) <= rank(provenance.source)
    return Permission(ok, "" if ok else f"precedence: owned by {provenance.source}")
