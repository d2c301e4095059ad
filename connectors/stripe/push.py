"""Writing fields back to Stripe customers, each write idempotent by construction.

A ``PushUpdate`` names fields by dotted path: ``metadata.<key>`` (metadata keys merge; ``None`` deletes the key)
or a top-level customer field in ``WRITABLE``. Stripe has no batch update, so each customer costs one
``POST /v1/customers/{id}``, sent with ``Idempotency-Key: <prefix><digest of (customer id, parameters)>``: the
same write retried (by the SDK, by Celery, by a re-run) is replayed by Stripe and cannot apply twice, and a
different write gets a different key.

Stripe replays a key's first response for 24 hours, whatever happened since. So a replayed answer is checked
against the customer as it is now: if it already holds the values (the usual case: a retry after a lost
response), the push is done; if not (the same values were written, changed by someone, and are written again
within 24 hours), the write is sent once more under a key that also names the state it found, itself stable
under retries.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import stripe

from connectors.stripe.client import StripeCalls
from connectors.stripe.errors import StripeRequestFailed, StripeUnavailable, described, missing
from connectors.stripe.records import JSON
from sync.connector import PushResult, PushUpdate
from sync.errors import CrmsyncError, RetryableError
from sync.mapping import get_path

WRITABLE: tuple[str, ...] = ("name", "email", "description", "phone")
"""Top-level customer fields a push may set (besides ``metadata.<key>``)."""
METADATA_MAX_KEYS = 50
METADATA_MAX_KEY_LENGTH = 40
METADATA_MAX_VALUE_LENGTH = 500
"""Stripe's metadata limits (docs.stripe.com/metadata): 50 keys, key names up to 40 characters, values up to 500;
square brackets cannot appear in a key. Past them Stripe answers 400 ``invalid_request_error``."""


@dataclass
class PushStats:
    """What pushes cost and how Stripe answered."""

    sent: int = 0
    replayed: int = 0
    rewritten: int = 0
    checks: int = 0


class InvalidPushField(ValueError):
    """A field path this connector cannot write on a Stripe customer."""


def update_params(fields: Mapping[str, str | None]) -> JSON:
    """Stripe update parameters for ``fields``; ``None`` becomes ``""`` (Stripe's way to unset or delete).

    Metadata is checked against Stripe's limits first, so a value Stripe would refuse costs no request and the
    record's error names the key and the limit (``InvalidPushField``)."""
    params: JSON = {}
    metadata: dict[str, str] = {}
    for path, value in sorted(fields.items()):
        text = "" if value is None else str(value)
        head, _, key = path.partition(".")
        if head == "metadata" and key and "." not in key:
            check_metadata_entry(key, text)
            metadata[key] = text
        elif path in WRITABLE:
            params[path] = text
        else:
            raise InvalidPushField(f"{path}: not writable (metadata.<key> or one of {', '.join(WRITABLE)})")
    if len(metadata) > METADATA_MAX_KEYS:
        raise InvalidPushField(
            f"metadata: {len(metadata)} keys in one update; Stripe allows at most {METADATA_MAX_KEYS} per customer"
        )
    if metadata:
        params["metadata"] = metadata
    return params


def merged_metadata_problem(existing: frozenset[str] | None, metadata: Mapping[str, str] | None) -> str | None:
    """Why an update's ``metadata`` would leave the customer over Stripe's 50 keys, or None. Stripe merges metadata
    (docs.stripe.com/api/metadata: "Individual keys can be unset by posting an empty value to them"), so the
    limit is on the customer's keys after the update: existing keys + new keys - keys set to empty. ``existing``
    None: the customer's keys are not known here (Stripe checks, and its 400 names the same limit)."""
    if existing is None or not metadata:
        return None
    after = keys_after(existing, metadata)
    if len(after) <= METADATA_MAX_KEYS:
        return None
    added = len(after - existing)
    return (
        f"metadata: {len(after)} keys after this update ({len(existing)} on the customer, {added} added); Stripe "
        f"allows at most {METADATA_MAX_KEYS} per customer"
    )


def keys_after(existing: frozenset[str], metadata: Mapping[str, str]) -> frozenset[str]:
    """A customer's metadata keys after an update that sets or (with ``""``) deletes ``metadata``."""
    return (existing | {k for k, v in metadata.items() if v}) - {k for k, v in metadata.items() if not v}


KNOWN_CUSTOMERS = 100_000
"""Customers whose metadata keys a pusher remembers (the oldest are forgotten first)."""


def check_metadata_entry(key: str, value: str) -> None:
    """``InvalidPushField`` naming the key and the limit when ``key``/``value`` pass Stripe's metadata limits."""
    if len(key) > METADATA_MAX_KEY_LENGTH:
        raise InvalidPushField(
            f"metadata.{key}: the key is {len(key)} characters; Stripe allows at most {METADATA_MAX_KEY_LENGTH}"
        )
    if "[" in key or "]" in key:
        raise InvalidPushField(f"metadata.{key}: Stripe does not allow square brackets in metadata keys")
    if len(value) > METADATA_MAX_VALUE_LENGTH:
        raise InvalidPushField(
            f"metadata.{key}: the value is {len(value)} characters; Stripe allows at most {METADATA_MAX_VALUE_LENGTH}"
        )


def idempotency_key(prefix: str, customer_id: str, params: Mapping[str, Any], found: str = "") -> str:
    """``<prefix><sha256 of (customer id, parameters[, state found])>``: stable for one write, unique per write."""
    raw = json.dumps([customer_id, params, found], sort_keys=True, separators=(",", ":"))
    return prefix + hashlib.sha256(raw.encode()).hexdigest()[:48]


def holds(customer: Mapping[str, Any], fields: Mapping[str, str | None]) -> bool:
    """Whether the customer already holds every value of ``fields`` (``None``: absent or empty)."""
    for path, want in fields.items():
        have = get_path(customer, path)
        if want is None or want == "":
            if have not in (None, ""):
                return False
        elif have is None or str(have) != want:
            return False
    return True


class StripePusher:
    """Sends ``PushUpdate``s, one idempotent request each."""

    def __init__(self, client: StripeCalls, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.stats = PushStats()
        self._metadata_keys: dict[str, frozenset[str]] = {}

    def remember(self, customer_id: str, metadata: object) -> None:
        """The metadata keys a customer holds, as just read (the connector calls it for every customer it reads),
        so an update is checked against the merged total without a request of its own."""
        keys = frozenset(metadata) if isinstance(metadata, Mapping) else frozenset()
        self._metadata_keys.pop(customer_id, None)
        self._metadata_keys[customer_id] = keys
        if len(self._metadata_keys) > KNOWN_CUSTOMERS:
            del self._metadata_keys[next(iter(self._metadata_keys))]

    def push(self, update: PushUpdate) -> PushResult:
        """Write one update and say how it went.

        Raises ``FatalError`` when no write can succeed (bad key, missing permission) and ``RetryableError`` when
        Stripe's rate limit or the shared budget says to stop for now; other failures concern this record only.
        """
        customer_id = update.record_id
        try:
            params = update_params(update.fields)
        except InvalidPushField as exc:
            return PushResult(customer_id, ok=False, error=str(exc))
        metadata = cast(dict[str, str] | None, params.get("metadata"))
        existing = self._metadata_keys.get(customer_id)
        too_many = merged_metadata_problem(existing, metadata)
        if too_many:
            return PushResult(customer_id, ok=False, error=too_many)
        try:
            replayed = self._send(customer_id, params, idempotency_key(self.prefix, customer_id, params))
            if replayed:
                found = self._current(customer_id)
                if not holds(found, update.fields):
                    state = json.dumps({p: get_path(found, p) for p in sorted(update.fields)}, sort_keys=True)
                    self._send(customer_id, params, idempotency_key(self.prefix, customer_id, params, state))
                    self.stats.rewritten += 1
        except (StripeUnavailable, StripeRequestFailed) as error:  # bad keys, 429s and the budget stop the push
            return self._failed(customer_id, error)
        if existing is not None and metadata:
            self.remember(customer_id, dict.fromkeys(keys_after(existing, metadata)))
        return PushResult(customer_id, ok=True)

    def _send(self, customer_id: str, params: JSON, key: str) -> bool:
        """POST the update under ``key``; True when Stripe replayed an earlier response for that key."""
        self.stats.sent += 1
        customer = self.client.call(
            f"update customer {customer_id}",
            lambda sdk: sdk.v1.customers.update(
                customer_id, params=cast(stripe.params.CustomerUpdateParams, params), options={"idempotency_key": key}
            ),
        )
        response = customer.last_response
        replayed = response is not None and str(response.headers.get("Idempotent-Replayed", "")).lower() == "true"
        self.stats.replayed += replayed
        return replayed

    def _current(self, customer_id: str) -> JSON:
        self.stats.checks += 1
        return self.client.call(
            f"retrieve customer {customer_id}", lambda sdk: sdk.v1.customers.retrieve(customer_id)
        ).to_dict()

    @staticmethod
    def _failed(customer_id: str, error: CrmsyncError) -> PushResult:
        """A failure of this record only (a missing customer, a refused value, a transient failure left after the
        retries); bad keys and rate limits were raised, they stop the whole push."""
        if missing(error):
            return PushResult(customer_id, ok=False, error=f"customer is gone: {described(error)}")
        retryable = isinstance(error, RetryableError)
        return PushResult(customer_id, ok=False, error=str(error), retryable=retryable)
