"""The shared vendor-call pieces: one ``Retry-After`` reading for every connector (both forms RFC 9110 allows, in
every SDK's header mapping), and the call statistics every connector reports."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
import requests
import stripe
from hubspot.crm.deals import ApiException
from requests.structures import CaseInsensitiveDict
from urllib3 import HTTPHeaderDict

from connectors.hubspot.errors import HubSpotRateLimited
from connectors.hubspot.errors import translate as translate_hubspot
from connectors.stripe.errors import StripeRateLimited
from connectors.stripe.errors import translate as translate_stripe
from sync.vendor import CallStats, header, retry_after

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC).timestamp()
IN_90_S = format_datetime(datetime(2026, 5, 1, 12, 1, 30, tzinfo=UTC), usegmt=True)  # "Fri, 01 May 2026 12:01:30 GMT"


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "90"},
        {"retry-after": IN_90_S},
        HTTPHeaderDict({"RETRY-AFTER": "90"}),
        CaseInsensitiveDict({"Retry-After": IN_90_S}),
    ],
)
def test_retry_after_reads_seconds_and_http_dates_from_any_header_mapping(headers: object) -> None:
    assert retry_after(headers, now=NOW) == pytest.approx(90.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["soon", "", "-5"])
def test_unreadable_or_negative_retry_after(value: str) -> None:
    assert retry_after({"Retry-After": value}, now=NOW) in (None, 0.0)
    assert retry_after(None) is None and header({}, "Retry-After") is None


def _later(seconds: float) -> str:
    return format_datetime(datetime.fromtimestamp(datetime.now(UTC).timestamp() + seconds, UTC), usegmt=True)


def test_hubspot_and_stripe_errors_take_the_http_date_form() -> None:
    response_headers = HTTPHeaderDict({"Retry-After": _later(600)})
    hubspot = ApiException(status=429, reason="Too Many Requests")
    hubspot.headers = response_headers
    hubspot.body = '{"status": "error", "category": "RATE_LIMITS", "policyName": "SECONDLY", "message": "slow"}'
    error = translate_hubspot(hubspot, "deals.search")
    assert isinstance(error, HubSpotRateLimited) and error.retry_after is not None and 590 < error.retry_after <= 600

    refused = stripe.RateLimitError("Too many requests", http_status=429, headers={"retry-after": _later(600)})
    translated = translate_stripe(refused, "list customers")
    assert isinstance(translated, StripeRateLimited)
    assert translated.retry_after is not None and 590 < translated.retry_after <= 600


def test_salesforce_reads_retry_after_from_the_response_headers() -> None:
    response = requests.Response()
    response.headers = CaseInsensitiveDict({"Retry-After": _later(120)})
    wait = retry_after(response.headers)
    assert wait is not None and 110 < wait <= 120


def test_call_stats_count_per_operation_and_hand_over_once() -> None:
    stats = CallStats()
    stats.sent("deals.search")
    stats.sent("deals.search")
    stats.sent("owners.get_page")
    stats.throttled += 1
    assert stats.by_operation == {"deals.search": 2, "owners.get_page": 1}
    assert stats.take() == (3, 1)
    assert stats.take() == (0, 0) and not stats.by_operation
