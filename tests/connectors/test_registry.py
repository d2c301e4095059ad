"""One construction path: ``build_connector(name, block, redis, mapping)`` → ``<Connector>.from_config``."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import redis

from connectors.hubspot import HubSpotConnector
from connectors.registry import (
    CONNECTORS,
    build_connector,
    connector_class,
    default_precedence,
    setup_command,
    vendor_facts,
)
from connectors.salesforce import SalesforceConnector
from connectors.stripe import StripeConnector
from sync.connector import Connector
from sync.errors import ConfigError
from sync.mapping import MappingConfig, OwnerRule, load_mapping_config, load_mapping_file
from sync.posthog.models import ID_KEYS
from workers.cli import setup_app
from workers.config import UiLinks

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "crmsync.yaml"
BLOCKS: dict[str, dict[str, Any]] = {name: import_module(f"tests.connectors.{name}").BLOCK for name in CONNECTORS}
"""A minimal valid config block of each registered source, declared by its test package
(``tests/connectors/<name>/__init__.py``'s ``BLOCK``), so a new source brings its own."""


@pytest.mark.parametrize(
    ("name", "kind"), [("hubspot", HubSpotConnector), ("stripe", StripeConnector), ("salesforce", SalesforceConnector)]
)
def test_every_source_is_built_the_same_way(name: str, kind: type, redis_client: redis.Redis) -> None:
    connector = build_connector(name, BLOCKS[name], redis_client, load_mapping_file(EXAMPLE))
    try:
        assert isinstance(connector, kind) and isinstance(connector, Connector)
        assert connector_class(name) is kind
    finally:
        connector.close()
    with pytest.raises(ConfigError) as info:
        build_connector(name, {**BLOCKS[name], "no_such_key": 1}, redis_client)
    assert info.value.key == f"sources.{name}.config.no_such_key"


def test_an_unknown_source_names_the_known_ones(redis_client: redis.Redis) -> None:
    with pytest.raises(ConfigError) as info:
        build_connector("pipedrive", {}, redis_client)
    assert info.value.key == "sources.pipedrive" and ", ".join(sorted(CONNECTORS)) in str(info.value)


def test_the_mapping_reaches_salesforce_and_a_bad_field_path_fails_at_start_up(redis_client: redis.Redis) -> None:
    mapping = load_mapping_file(EXAMPLE)
    connector = build_connector("salesforce", BLOCKS["salesforce"], redis_client, mapping)
    assert isinstance(connector, SalesforceConnector) and "Owner.Email" in connector.fields
    connector.close()
    bad: MappingConfig = load_mapping_config(
        {
            "mappings": {
                "salesforce": {"Account": {"link": "sfdc_id", "fields": [{"source": "A.B.C", "target": "name"}]}}
            }
        }
    )
    with pytest.raises(ConfigError) as info:
        build_connector("salesforce", BLOCKS["salesforce"], redis_client, bad)
    assert info.value.key == "mappings.salesforce.Account.fields.0.source"


LEGACY = [
    ("salesforce", {"account_id_field": "Other__c"}, "account_id_field", "mappings.salesforce.Account"),
    ("salesforce", {"outbound_fields": ["Other__c"]}, "outbound_fields", "mappings.salesforce.Account"),
    ("hubspot", {"push_properties": ["posthog_account_id"]}, "push_properties", "mappings.hubspot.deals"),
]


@pytest.mark.parametrize(("name", "setting", "key", "where"), LEGACY)
def test_a_legacy_setting_that_disagrees_with_the_mapping_fails_naming_both(
    name: str, setting: dict[str, Any], key: str, where: str, redis_client: redis.Redis
) -> None:
    with pytest.raises(ConfigError) as info:
        build_connector(name, {**BLOCKS[name], **setting}, redis_client, load_mapping_file(EXAMPLE))
    assert info.value.key == f"sources.{name}.config.{key}"
    assert where in str(info.value)


@pytest.mark.parametrize(
    ("name", "setting"),
    [
        (
            "salesforce",
            {
                "account_id_field": "posthog_account_id__c",
                "outbound_fields": ["PostHog_CSM_Email__c", "PostHog_Health_Score__c"],
            },
        ),
        ("hubspot", {"push_properties": ["posthog_csm_email", "posthog_account_id", "posthog_health_score"]}),
    ],
)
def test_a_legacy_setting_that_agrees_with_the_mapping_is_accepted(
    name: str, setting: dict[str, Any], redis_client: redis.Redis
) -> None:
    connector = build_connector(name, {**BLOCKS[name], **setting}, redis_client, load_mapping_file(EXAMPLE))
    connector.close()


def test_a_hubspot_mapping_that_writes_a_nested_path_fails_at_start_up(redis_client: redis.Redis) -> None:
    deals = {"link": "hubspot_deal_id", "account_id_field": "company.posthog_account_id"}
    bad = load_mapping_config({"mappings": {"hubspot": {"deals": deals}}})
    with pytest.raises(ConfigError) as info:
        build_connector("hubspot", BLOCKS["hubspot"], redis_client, bad)
    assert info.value.key == "mappings.hubspot.deals" and "company.posthog_account_id" in str(info.value)


SAMPLE_LINKS = UiLinks(
    posthog_account="https://app.posthog.com/accounts/{id}",
    hubspot_portal=7,
    salesforce_instance="https://acme.my.salesforce.com",
    **{s.name: s.example for name in CONNECTORS for s in vendor_facts(name).ui_links},
).model_dump()
"""Every ``ui.links`` setting filled in (those the sources declare too), so each source's record URL can be built."""


@pytest.mark.parametrize("name", sorted(CONNECTORS))
def test_every_registered_source_declares_its_vendor_facts(name: str, redis_client: redis.Redis) -> None:
    assert set(BLOCKS) == set(CONNECTORS)  # a new source gets a block here, so the checks below reach it
    facts = vendor_facts(name)
    kind = connector_class(name)
    assert kind.facts is facts  # the class declares them; the registry hands out the same facts
    assert facts.link_key in ID_KEYS
    host = "https://vendor.example.com"
    connector = build_connector(name, {**BLOCKS[name], facts.host_key: host}, redis_client)  # a key of its model
    connector.close()
    record_id = quote("rec/1?x", safe="")
    url = facts.record_url(kind.streams[0], record_id, SAMPLE_LINKS)
    assert url is not None and urlsplit(url).scheme == "https" and url.endswith("/" + record_id)
    assert facts.record_url(kind.streams[0], record_id, {}) in (None, url)  # a missing piece: no link
    assert isinstance(facts.precedence, int)
    command = setup_command(name)
    assert (command is None) == (facts.setup_command is None)
    if command is not None:  # registered as `crmsync setup <name>`
        assert any(c.name == name and c.callback is command for c in setup_app.registered_commands)


def test_the_default_precedence_is_the_declared_ranks() -> None:
    ranks = [vendor_facts(name).precedence for name in CONNECTORS]
    assert len(set(ranks)) == len(ranks)  # a total order: no two sources share a rank
    assert default_precedence()[:3] == ("salesforce", "hubspot", "stripe")  # then sources ranked after them
    assert load_mapping_config({"mappings": {}}, default_precedence()).default_rule.order == default_precedence()
    assert OwnerRule().order == ()
    with pytest.raises(ConfigError) as info:
        vendor_facts("pipedrive")
    assert info.value.key == "sources.pipedrive"


def test_ui_links_take_the_settings_sources_declare_and_no_other() -> None:
    with pytest.raises(ValueError, match="no_such_link: unknown setting"):
        UiLinks.model_validate({"no_such_link": "x"})
    for name in CONNECTORS:
        for setting in vendor_facts(name).ui_links:
            assert UiLinks.model_validate({setting.name: setting.example}).model_dump()[setting.name] == setting.example
            with pytest.raises(ValueError, match=setting.name):
                UiLinks.model_validate({setting.name: "not a valid value / ?"})
