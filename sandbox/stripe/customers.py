"""Customer writes: parse create/update parameters into a patch, validate, apply it, diff what changed.

Stripe's rules reproduced here: an empty string unsets a field (``email=`` → ``null``); metadata keys merge, an
empty value deletes its key and ``metadata=`` clears them all; at most 50 keys, keys up to 40 characters,
values up to 500; emails are checked; ``customer.updated`` carries ``previous_attributes`` with only what
changed (for metadata, the old value of each changed key, ``null`` for keys that were absent).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sandbox.stripe.errors import StripeError, invalid_param, unknown_param
from sandbox.stripe.forms import as_hash, as_int, as_list, as_str
from sandbox.stripe.objects import JSON

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ADDRESS_KEYS = ("city", "country", "line1", "line2", "postal_code", "state")
_TEXT_FIELDS = ("name", "description", "phone", "business_name", "individual_name")
METADATA_MAX_KEYS = 50
METADATA_MAX_KEY_LENGTH = 40
METADATA_MAX_VALUE_LENGTH = 500
_METADATA_HELP = (
    "Invalid metadata: You can specify up to 50 keys, with key names up to 40 characters long "
    "and values up to 500 characters long."
)


def _too_long(kind: str, text: str, limit: int) -> StripeError:
    """Stripe's answer to a metadata key or value over its limit: ``Invalid key: <key> must be a string under 40
    characters`` / ``Invalid val: <value> must be a string under 500 characters``, ``param: metadata``."""
    return invalid_param(f"Invalid {kind}: {text} must be a string under {limit} characters", "metadata")


@dataclass
class CustomerPatch:
    """What one create/update asks for: top-level values (``None`` unsets) and metadata edits."""

    fields: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str | None] = field(default_factory=dict)
    """Key → new value, or ``None`` to delete the key."""
    clear_metadata: bool = False


def _address(value: Mapping[str, Any], param: str) -> JSON:
    for key in value:
        if key not in _ADDRESS_KEYS:
            raise unknown_param(f"{param}[{key}]")
    return {key: (value.get(key) or None) for key in _ADDRESS_KEYS}


def _metadata(params: Mapping[str, Any], patch: CustomerPatch) -> None:
    if "metadata" not in params:
        return
    metadata = as_hash(params, "metadata")
    if metadata == {}:
        patch.clear_metadata = True
        return
    for key, value in (metadata or {}).items():
        if not isinstance(value, str):
            raise invalid_param(_METADATA_HELP, f"metadata[{key}]")
        if len(key) > METADATA_MAX_KEY_LENGTH:
            raise _too_long("key", key, METADATA_MAX_KEY_LENGTH)
        if len(value) > METADATA_MAX_VALUE_LENGTH:
            raise _too_long("val", value, METADATA_MAX_VALUE_LENGTH)
        patch.metadata[key] = value or None


def parse_patch(params: Mapping[str, Any]) -> CustomerPatch:
    """Validate create/update parameters (already checked for unknown names) into a patch."""
    patch = CustomerPatch()
    for name in _TEXT_FIELDS:
        if name in params:
            patch.fields[name] = as_str(params, name) or None
    if "email" in params:
        email = as_str(params, "email") or None
        if email is not None and (len(email) > 512 or not _EMAIL.match(email)):
            raise invalid_param(f"Invalid email address: {email}", "email", "email_invalid")
        patch.fields["email"] = email
    if "balance" in params:
        patch.fields["balance"] = as_int(params, "balance")
    if "invoice_prefix" in params:
        prefix = as_str(params, "invoice_prefix") or ""
        if not re.fullmatch(r"[A-Z0-9]{3,12}", prefix):
            raise invalid_param("Invoice prefix must be 3-12 uppercase letters or numbers.", "invoice_prefix")
        patch.fields["invoice_prefix"] = prefix
    if "tax_exempt" in params:
        tax_exempt = as_str(params, "tax_exempt") or "none"
        if tax_exempt not in ("none", "exempt", "reverse"):
            raise invalid_param(
                f"Invalid tax_exempt: must be one of none, exempt, or reverse (got {tax_exempt})",
                "tax_exempt",
            )
        patch.fields["tax_exempt"] = tax_exempt
    if "preferred_locales" in params:
        patch.fields["preferred_locales"] = (
            [] if params["preferred_locales"] == "" else as_list(params, "preferred_locales")
        )
    if "address" in params:
        address = as_hash(params, "address")
        patch.fields["address"] = _address(address, "address") if address else None
    if "shipping" in params:
        shipping = as_hash(params, "shipping")
        if shipping:
            for key in shipping:
                if key not in ("name", "phone", "address"):
                    raise unknown_param(f"shipping[{key}]")
            if not shipping.get("name"):
                raise invalid_param("Missing required param: shipping[name].", "shipping[name]")
            patch.fields["shipping"] = {
                "address": _address(as_hash(shipping, "address") or {}, "shipping[address]"),
                "name": shipping["name"],
                "phone": shipping.get("phone") or None,
            }
        else:
            patch.fields["shipping"] = None
    _metadata(params, patch)
    return patch


def apply_patch(current: JSON, patch: CustomerPatch) -> tuple[JSON, JSON]:
    """The customer after ``patch`` (a new dict) and its ``previous_attributes`` (empty if nothing changed)."""
    updated = dict(current)
    previous: JSON = {}
    for name, value in patch.fields.items():
        if current.get(name) != value:
            previous[name] = current.get(name)
            updated[name] = value
    old_metadata: dict[str, str] = current.get("metadata") or {}
    metadata = {} if patch.clear_metadata else dict(old_metadata)
    for key, value in patch.metadata.items():
        if value is None:
            metadata.pop(key, None)
        else:
            metadata[key] = value
    if len(metadata) > METADATA_MAX_KEYS:
        raise invalid_param(_METADATA_HELP, "metadata")
    if metadata != old_metadata:
        changed = {key for key in metadata.keys() | old_metadata.keys() if metadata.get(key) != old_metadata.get(key)}
        previous["metadata"] = {key: old_metadata.get(key) for key in sorted(changed)}
        updated["metadata"] = metadata
    return updated, previous
