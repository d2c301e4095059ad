"""Connector settings: validated at start-up, bad keys named, secrets never shown."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from connectors.hubspot import LinkRule, load_hubspot_config
from connectors.hubspot.config import HubSpotConfig
from connectors.hubspot.properties import push_properties
from sync.errors import ConfigError

TOKEN = "pat-na1-0123456789abcdef"


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({}, "connectors.hubspot.access_token"),
        ({"access_token": TOKEN, "page_size": 101}, "connectors.hubspot.page_size"),
        ({"access_token": TOKEN, "host": "not a url"}, "connectors.hubspot.host"),
        ({"access_token": TOKEN, "link_rule": "biggest"}, "connectors.hubspot.link_rule"),
        ({"access_token": TOKEN, "read_timeout": 5}, "connectors.hubspot.read_timeout"),
        ({"access_token": TOKEN, "search_limit_per_s": 1}, "connectors.hubspot"),
    ],
)
def test_bad_settings_fail_naming_the_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_hubspot_config(raw)
    assert caught.value.key == key
    assert TOKEN not in str(caught.value)


def test_defaults_and_secrets() -> None:
    config = load_hubspot_config({"access_token": TOKEN, "client_secret": "s3cr3t-value"})
    assert config.base_url == "https://api.hubapi.com"
    assert config.request_timeout == (5.0, 30.0)
    assert config.link_rule is LinkRule.NEWEST_OPEN
    assert {"hubspot_owner_id", "hs_merged_object_ids"} <= set(config.deal_properties)
    assert push_properties(config, None) == ("posthog_account_id", "posthog_csm_email")  # no mapping: defaults
    shown = f"{config!r} {config} {config.model_dump()}"
    assert TOKEN not in shown and "s3cr3t-value" not in shown
    assert TOKEN not in config.budget_id
    other = HubSpotConfig(access_token=SecretStr("pat-other"))
    assert other.budget_id != config.budget_id  # one budget per app token
    assert HubSpotConfig(access_token=SecretStr(TOKEN), budget_name="shared").budget_id == "shared"
