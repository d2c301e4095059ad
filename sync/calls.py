"""The one path every vendor call takes: PostHog's, HubSpot's, Stripe's, Salesforce's and Zendesk's alike.

``VendorCalls.call(operation, send)`` runs ``send`` (an SDK call, wrapped in a callable; the SDKs stay) and:

1. takes a slot of the vendor's shared budget, when it has one (``Budget``: ``BucketBudget`` for a Redis token bucket,
   ``WindowBudget`` for PostHog's sliding-window log, ``JointBudget`` for a call that pays from two), waiting for
   it or raising ``BudgetExhausted``;
2. counts the attempt in ``stats`` (``sync.vendor.CallStats``; unless the vendor counts in its transport because
   one SDK call may send several requests, as simple-salesforce's logins do: ``VendorRules.counted_by_transport``);
3. sends it and reads the vendor's rate headers from the answer or the error (``VendorRules.rate``: a budget the
   vendor reports spent is drained for every worker);
4. translates a failure through the vendor's ``ErrorTable`` into ``sync.errors`` (``RetryableError``,
   ``FatalError``, ``BadRecordError``); an exception the table does not know goes up as it is;
5. runs the vendor's response actions on the failure (``ResponseAction``: HubSpot halves its search page after a
   429; Salesforce logs in again once after an expired session and asks for an immediate retry);
6. on a rate-limit refusal (``sync.errors.RateLimitedError``) counts it and drains the budget: a token bucket is
   emptied (every worker backs off) and the path sleeps as below; a sliding-window budget is blocked for the
   server's ``Retry-After`` and waits it out itself at the next slot (``Budget.holds_back``);
7. retries what the vendor calls transient (``VendorRules.transient``, overridable per call: PostHog repeats a
   POST only when the caller says a repeat cannot duplicate) through the one ``sync.retry.RetryPolicy``:
   jittered exponential backoff, ``Retry-After`` honoured and never cut short (a longer wait than
   ``max_backoff_s`` goes up with the error, for the job to retry), bounded in count and in total time.

Waiting happens here only (``RetryPolicy.sleep``, ``VendorCalls(clock=...)``: both injectable), so no connector
module sleeps. What a vendor supplies is a ``VendorRules``: its error table, what is transient, its response
actions and its rate-header reader. ``docs/connectors/common.md`` ("How a connector calls its vendor") shows one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, TypeVar

from sync.budget import RequestBudget
from sync.errors import CrmsyncError, RateLimitedError, RetryableError
from sync.ratelimit import TokenBucket
from sync.retry import RetryPolicy
from sync.vendor import CallStats

log = logging.getLogger(__name__)
R = TypeVar("R")

Translator = Callable[[Any, str], CrmsyncError]
"""``(vendor exception, operation) → project error``: one row's translation."""


@dataclass(frozen=True)
class ErrorTable:
    """Which vendor exceptions mean which project errors: rows of ``(exception types, translator)``, the first
    row whose types match wins (as httpx's ``_exceptions`` maps transport errors through one table). An
    exception no row names is not a vendor failure (a bug, a ``BudgetExhausted``) and goes up untranslated."""

    rows: tuple[tuple[tuple[type[BaseException], ...], Translator], ...]

    @property
    def catches(self) -> tuple[type[BaseException], ...]:
        """Every exception type some row translates."""
        return tuple(t for types, _ in self.rows for t in types)

    def translate(self, exc: BaseException, operation: str) -> CrmsyncError | None:
        """The project error for ``exc``, or None when no row names it."""
        for types, translator in self.rows:
            if isinstance(exc, types):
                return translator(exc, operation)
        return None


class Verdict(Enum):
    """What a response action asks of the path, besides what it did itself."""

    RETRY_NOW = "retry_now"
    """Try again at once, outside the retry policy (e.g. after logging in again): no wait, not a counted retry."""


@dataclass(frozen=True)
class Failure:
    """One failed attempt, as response actions see it."""

    operation: str
    exc: BaseException
    """What the SDK raised."""
    error: CrmsyncError
    """Its translation."""
    attempt: int
    """1 for the first attempt."""
    immediate: int
    """How many immediate retries (``Verdict.RETRY_NOW``) this call already had."""


ResponseAction = Callable[[Failure], Verdict | None]
"""Runs on every failed attempt; may change the next request (a smaller page), ask for an immediate retry, or
raise another error in place of this one."""


def _headers_of(answer: object) -> Mapping[str, Any] | None:
    headers = getattr(answer, "headers", None)
    return headers if isinstance(headers, Mapping) else None


def _retryable(exc: BaseException, error: CrmsyncError) -> bool:
    return isinstance(error, RetryableError)


def _hinted(exc: BaseException, error: CrmsyncError) -> float | None:
    return error.retry_after if isinstance(error, RetryableError) else None


@dataclass(frozen=True)
class VendorRules:
    """What one vendor fills in; everything else is the path's.

    - ``errors``: the error table (``ErrorTable``).
    - ``transient(exc, error)``: whether the failed call may be sent again now (default: ``RetryableError``).
    - ``actions``: response actions run on every failure (per-call ones are added to them).
    - ``rate(headers) → bool``: reads the vendor's rate headers (of an answer, or of an error response) and says
      whether the vendor reports the budget spent (the path then drains it for every worker).
    - ``headers(answer or exception)``: where the headers are (default: its ``headers`` attribute).
    - ``wait_hint(exc, error)``: the server's wait for a retry (default: the error's ``retry_after``).
    - ``counted_by_transport``: the vendor's transport counts each HTTP request itself (one SDK call may send
      several, such as a login and a query); the path then counts only its retries.
    """

    name: str
    errors: ErrorTable
    transient: Callable[[BaseException, CrmsyncError], bool] = _retryable
    actions: tuple[ResponseAction, ...] = ()
    rate: Callable[[Mapping[str, Any]], bool] | None = None
    headers: Callable[[object], Mapping[str, Any] | None] = _headers_of
    wait_hint: Callable[[BaseException, CrmsyncError], float | None] = _hinted
    counted_by_transport: bool = False


class Budget(Protocol):
    """A vendor's request budget shared by every worker."""

    holds_back: bool
    """True when, after ``throttled``, the budget itself holds the next ``take`` back for the server's wait."""

    def take(self) -> None:
        """Wait for a slot; ``BudgetExhausted`` (retryable) rather than wait longer than allowed."""

    def throttled(self, retry_after: float) -> None:
        """The vendor refused a request for its rate: spend the budget for every worker."""

    def drain(self) -> None:
        """The vendor reports the budget spent (rate headers): spend what is left for every worker."""


@dataclass
class BucketBudget:
    """A Redis token bucket as a ``Budget``: a 429 empties it, the path then sleeps the server's wait."""

    tokens: TokenBucket
    max_wait_s: float = 60.0
    holds_back: bool = False

    def take(self) -> None:
        self.tokens.take(1, self.max_wait_s)

    def throttled(self, retry_after: float) -> None:
        self.tokens.drain()

    def drain(self) -> None:
        self.tokens.drain()


@dataclass
class JointBudget:
    """A call that pays from two budgets: the account's shared one and the call's own, lower one (Zendesk's
    incremental export pays from the account's per-minute budget and the export's). A slot is taken from each,
    the shared one first; a 429 spends the call's own (its lower limit is the one a refusal is about); rate headers,
    which report the account's figures, spend the shared one."""

    shared: Budget
    own: Budget
    holds_back: bool = False

    def take(self) -> None:
        self.shared.take()
        self.own.take()

    def throttled(self, retry_after: float) -> None:
        self.own.throttled(retry_after)

    def drain(self) -> None:
        self.shared.drain()


@dataclass
class WindowBudget:
    """PostHog's sliding-window log as a ``Budget``: a 429 blocks every worker until its ``Retry-After`` has
    passed, and the next ``take`` waits for that (or raises ``BudgetExhausted`` with the true wait)."""

    log: RequestBudget
    holds_back: bool = True

    def take(self) -> None:
        self.log.acquire()

    def throttled(self, retry_after: float) -> None:
        self.log.block(retry_after)

    def drain(self) -> None:
        """PostHog sends no rate headers; nothing reports the log spent but a 429."""


@dataclass
class VendorCalls:
    """The one call path of one vendor client (see the module docstring). One per client; not shared between
    threads' clients, as the SDK clients are not."""

    rules: VendorRules
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    budget: Budget | None = None
    stats: CallStats = field(default_factory=CallStats)
    clock: Callable[[], float] = time.monotonic

    def call(
        self,
        operation: str,
        send: Callable[[], R],
        *,
        budget: Budget | bool | None = True,
        rate: Callable[[Mapping[str, Any]], bool] | None = None,
        transient: Callable[[BaseException, CrmsyncError], bool] | None = None,
        actions: Sequence[ResponseAction] = (),
    ) -> R:
        """``send()``'s answer, through budget, counting, rate headers, translation, actions and retries.

        Per call: ``budget`` another budget than the client's (``None``/``False``: none), ``rate`` another
        header reader, ``transient`` another rule, ``actions`` more response actions."""
        spend = self.budget if budget is True else (budget or None)
        read_rate = rate or self.rules.rate
        is_transient = transient or self.rules.transient
        every_action = (*self.rules.actions, *actions)
        attempt = immediate = retries = 0
        spent_s = 0.0  # time in requests plus time waited between them: the policy's time bound
        while True:
            attempt += 1
            if spend is not None:
                spend.take()
            if not self.rules.counted_by_transport:
                self.stats.sent(operation)
            sent_at = self.clock()
            try:
                answer = send()
            except self.rules.errors.catches as exc:
                spent_s += self.clock() - sent_at
                error = self.rules.errors.translate(exc, operation)
                assert error is not None  # ``catches`` lists exactly the types a row translates
                self._read(read_rate, self.rules.headers(exc), spend)
                verdict = None
                for action in every_action:
                    verdict = action(Failure(operation, exc, error, attempt, immediate)) or verdict
                if verdict is Verdict.RETRY_NOW:
                    immediate += 1
                    continue
                retry, wait = self._after_failure(exc, error, is_transient, spend, retries + 1, spent_s)
                if not retry:
                    raise error from exc
                retries += 1
                self.stats.retries += 1
                when = "at the budget's next slot" if wait is None else f"in {wait:.1f}s"
                failed = type(exc).__name__
                log.warning("%s %s failed (%s); retry %d %s", self.rules.name, operation, failed, retries, when)
                if wait is not None:
                    spent_s += wait
                    self.policy.sleep(wait)
                continue
            self._read(read_rate, self.rules.headers(answer), spend)
            return answer

    def _read(
        self,
        read_rate: Callable[[Mapping[str, Any]], bool] | None,
        headers: Mapping[str, Any] | None,
        spend: Budget | None,
    ) -> None:
        """Hand the answer's headers (present, even empty) to the vendor's reader; drain when it says spent."""
        if read_rate is not None and headers is not None and read_rate(headers) and spend is not None:
            spend.drain()

    def _after_failure(
        self,
        exc: BaseException,
        error: CrmsyncError,
        is_transient: Callable[[BaseException, CrmsyncError], bool],
        spend: Budget | None,
        retry_number: int,
        spent_s: float,
    ) -> tuple[bool, float | None]:
        """Whether the failed attempt is sent again, and the path's wait before it (None: the budget waits)."""
        limited = isinstance(error, RateLimitedError)
        hint = self.rules.wait_hint(exc, error)
        if limited and not self.rules.counted_by_transport:
            self.stats.throttled += 1
        if limited and spend is not None and spend.holds_back:
            if retry_number > self.policy.max_retries:
                return False, None
            # Spent for every worker until the server's wait has passed; the next take waits for it, or raises
            # BudgetExhausted carrying the true wait when that is longer than it may wait.
            spend.throttled(hint if hint is not None else self.policy.delay(retry_number, None))
            return True, None
        if limited and spend is not None:
            spend.throttled(hint or 0.0)
        if not is_transient(exc, error):
            return False, None
        wait = self.policy.next_delay(retry_number, hint, spent_s)
        return wait is not None, wait
