"""The connector's configuration: typed, validated at start-up, the offending key named, secrets never shown."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.stripe import StripeConfig, load_stripe_config
from sync.errors import ConfigError

KEY = "sk_live_abcdefghijklmnop"


def test_defaults_are_explicit() -> None:
    config = load_stripe_config({"api_key": KEY})
    assert config.api_base == "https://api.stripe.com"
    assert (config.connect_timeout_s, config.read_timeout_s, config.max_network_retries) == (10.0, 60.0, 2)
    assert config.page_size == 100 and config.event_retention_days == 30 and config.webhook_tolerance_s == 300
    assert config.link_statuses == ("active",) and config.link_tiebreak == "newest"
    assert "customer.deleted" in config.event_types and len(config.event_types) <= 20


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"api_key": KEY, "page_size": 101}, "sources.stripe.config.page_size"),
        ({"api_key": KEY, "api_base": "api.stripe.com"}, "sources.stripe.config.api_base"),
        ({"api_key": "pk_live_publishable"}, "sources.stripe.config.api_key"),
        ({"api_key": KEY, "retries": 3}, "sources.stripe.config.retries"),
        ({"api_key": KEY, "link_statuses": ["active", "bogus"]}, "sources.stripe.config.link_statuses.1"),
        ({"api_key": KEY, "event_types": ["invoice.paid"]}, "sources.stripe.config.event_types"),
        ({"api_key": KEY, "status_priority": ["active", "active"]}, "sources.stripe.config.status_priority"),
        ({"api_key": KEY, "event_lookback_s": 40 * 86_400}, "sources.stripe.config.event_lookback_s"),
        ({}, "sources.stripe.config.api_key"),
    ],
)
def test_bad_config_names_the_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_stripe_config(raw)
    assert caught.value.key == key
    assert "abcdefghijklmnop" not in str(caught.value)


def test_secrets_stay_secret() -> None:
    config = StripeConfig.model_validate({"api_key": KEY, "webhook_secrets": ["whsec_topsecret"]})
    shown = repr(config) + str(config.model_dump()) + config.bucket_key
    assert "abcdefghijklmnop" not in shown and "topsecret" not in shown
    assert config.bucket_key.startswith("crmsync:budget:stripe:")
    named = StripeConfig.model_validate({"api_key": KEY, "budget_key": "acme-live"})
    assert named.bucket_key == "crmsync:budget:stripe:acme-live"
