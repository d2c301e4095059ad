"""Logging in (password and JWT flows, or a given session), one session refresh, configuration and secrets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from connectors.registry import build_connector
from connectors.salesforce import (
    JwtAuth,
    PasswordAuth,
    SalesforceConnector,
    SessionAuth,
    load_salesforce_config,
)
from connectors.salesforce.client import login_target
from connectors.salesforce.errors import SalesforceAuthFailed, SalesforceRequestFailed
from sandbox.salesforce import SalesforceSandboxConfig, create_app
from sync.errors import ConfigError, FatalError
from tests.connectors.salesforce.conftest import USERNAME, StandIn
from workers.serving import ServerThread

TOKEN_ROUTE = "/services/oauth2/token"


def names(connector: SalesforceConnector) -> list[str]:
    return sorted(r.fields["Name"] for p in connector.pull("Account", None) for r in p.records)


def test_password_flow_logs_in_once(standin: StandIn) -> None:
    standin.seed(2)
    connector = standin.connector()
    assert len(names(connector)) == 2 and len(names(connector)) == 2
    assert standin.count(TOKEN_ROUTE, "POST", 200) == 1 and connector.client.logins == 1


def test_jwt_bearer_flow(standin: StandIn) -> None:
    standin.seed(2)
    auth = JwtAuth(flow="jwt", username=USERNAME, client_id="sandbox", private_key=SecretStr(standin.jwt_private_pem))
    assert len(names(standin.connector(auth=auth))) == 2
    assert standin.count(TOKEN_ROUTE, "POST", 200) == 1


def test_given_session_id_needs_no_login(standin: StandIn) -> None:
    standin.seed(2)
    auth = SessionAuth(flow="session", session_id=SecretStr(standin.token()), instance_url=standin.url)
    standin.admin("POST", "/stats/reset")
    assert len(names(standin.connector(auth=auth))) == 2
    assert standin.count(TOKEN_ROUTE) == 0


def test_expired_session_is_refreshed_once_and_the_call_retried(standin: StandIn) -> None:
    standin.seed(2)
    connector = standin.connector()
    names(connector)
    standin.admin("POST", "/tokens/expire")
    assert len(names(connector)) == 2
    assert standin.count(TOKEN_ROUTE, "POST", 200) == 2 and connector.client.refreshes == 1
    assert standin.count("/queryAll/", "GET", 401) == 1 and standin.count("/queryAll/", "GET", 200) == 2


def test_expired_given_session_cannot_be_refreshed(standin: StandIn) -> None:
    auth = SessionAuth(flow="session", session_id=SecretStr(standin.token()), instance_url=standin.url)
    connector = standin.connector(auth=auth)
    standin.admin("POST", "/tokens/expire")
    with pytest.raises(SalesforceAuthFailed, match="cannot be renewed"):
        names(connector)
    assert standin.count("/queryAll/", "GET", 401) == 1


@pytest.fixture
def short_lived(sf_tls: tuple[Path, Path, Path]) -> Iterator[StandIn]:
    """A stand-in whose access tokens are expired as soon as they are issued."""
    cert, key, ca = sf_tls
    app = create_app(SalesforceSandboxConfig(token_lifetime_s=0))
    server = ServerThread(app, ssl_certfile=str(cert), ssl_keyfile=str(key)).start()
    standin = StandIn(server, app, ca, "")
    try:
        yield standin
    finally:
        standin.close_clients()
        server.stop()


def test_a_second_expiry_after_the_refresh_fails(short_lived: StandIn) -> None:
    connector = short_lived.connector()
    with pytest.raises(SalesforceAuthFailed, match="even after a fresh login"):
        names(connector)
    assert short_lived.count(TOKEN_ROUTE, "POST", 200) == 2 and short_lived.count("/queryAll/", "GET", 401) == 2


def test_wrong_password_is_fatal_and_secret_free(standin: StandIn) -> None:
    auth = PasswordAuth(
        username=USERNAME, password=SecretStr("hunter2-wrong"), client_id="sandbox", client_secret=SecretStr("sandbox")
    )
    connector = standin.connector(auth=auth)
    with pytest.raises(SalesforceAuthFailed) as info:
        names(connector)
    text = f"{info.value} {info.value!r}"
    assert "invalid_grant" in text and "hunter2" not in text and "sandbox" not in text
    assert standin.count(TOKEN_ROUTE, "POST", 400) == 1


def test_unknown_configured_field_fails_naming_it(standin: StandIn) -> None:
    standin.seed(1)
    connector = standin.connector(fields=("Name", "AnnualRevenue"))
    with pytest.raises(SalesforceRequestFailed) as info:
        names(connector)
    assert (
        isinstance(info.value, FatalError) and info.value.code == "INVALID_FIELD" and "AnnualRevenue" in str(info.value)
    )


def test_untrusted_certificate_is_a_fatal_tls_error(standin: StandIn) -> None:
    connector = standin.connector(ca_bundle=str(standin.ca_path.parent / "server.pem"))  # a leaf, not the CA
    with pytest.raises(SalesforceRequestFailed, match="TLS") as info:
        names(connector)
    assert info.value.code == "TLS"


def test_shared_budget_pays_one_token_per_request(standin: StandIn, budget_redis: Any, budget_key: str) -> None:
    standin.seed(450)
    connector = standin.connector(budget_redis, budget_key=budget_key, page_size=200)
    names(connector)
    assert connector.client.budget is not None and connector.client.budget.taken == 3  # login is not budgeted


# -- configuration -------------------------------------------------------------------------------------------


def base(**overrides: Any) -> dict[str, Any]:
    return {
        "auth": {"flow": "password", "username": USERNAME, "password": "p4ss", "client_id": "c", "client_secret": "s"},
        **overrides,
    }


def test_config_defaults_and_secrets_stay_secret() -> None:
    config = load_salesforce_config(base(webhook_token="t" * 20))
    assert config.login_url == "https://login.salesforce.com" and config.max_share_per_run == 0.25
    assert config.external_id_field == "PostHog_External_Id__c" and config.push_batch_size == 200
    assert config.read_fields[:5] == ("Id", "IsDeleted", "SystemModstamp", "LastModifiedDate", "CreatedDate")
    text = repr(config) + str(config.model_dump())
    assert "p4ss" not in text and "tttt" not in text
    assert config.bucket_key.startswith("crmsync:budget:salesforce:") and "p4ss" not in config.bucket_key


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"login_url": "http://login.salesforce.com"}, "connectors.salesforce.login_url"),
        ({"page_size": 100}, "connectors.salesforce.page_size"),
        ({"push_batch_size": 201}, "connectors.salesforce.push_batch_size"),
        ({"fields": ("Owner.Manager.Email",)}, "connectors.salesforce.fields"),
        ({"outbound_fields": ("Owner.Email",)}, "connectors.salesforce.outbound_fields"),
        ({"organization_id": "001000000000001"}, "connectors.salesforce.organization_id"),
        ({"webhook_token": "short"}, "connectors.salesforce.webhook_token"),
        ({"colour": "red"}, "connectors.salesforce.colour"),
        ({"auth": {"flow": "jwt", "username": USERNAME, "client_id": "c", "private_key": "x"}}, "auth.jwt.private_key"),
        ({"auth": {"flow": "password", "username": USERNAME, "password": "p"}}, "auth.password.client_id"),
        ({"auth": {"flow": "session", "session_id": "x", "instance_url": "na1.salesforce.com"}}, "auth.session"),
        ({"max_share_per_run": 0.9, "max_share_total": 0.5}, "connectors.salesforce"),
    ],
)
def test_bad_config_names_the_key(overrides: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_salesforce_config(base(**overrides))
    assert key in info.value.key
    assert "p4ss" not in str(info.value)


def test_login_targets() -> None:
    assert login_target("https://login.salesforce.com") == ("login", None)
    assert login_target("https://test.salesforce.com") == ("test", None)
    assert login_target("https://acme.my.salesforce.com") == ("acme.my", None)
    assert login_target("https://127.0.0.1:8443") == ("login", "127.0.0.1:8443/services/oauth2/token#")


def test_connector_refuses_unknown_streams(standin: StandIn) -> None:
    with pytest.raises(ConfigError):
        list(standin.connector().pull("Contact", None))


def test_build_from_a_sources_block(standin: StandIn, budget_redis: Any) -> None:
    standin.seed(2)
    raw = {
        "auth": {"flow": "password", "username": USERNAME, "password": "sandbox", "client_id": "sandbox"}
        | {"client_secret": "sandbox"},
        "login_url": standin.url,
        "ca_bundle": str(standin.ca_path),
        "trust_env": False,
        "budget_key": "test-build",
    }
    connector = SalesforceConnector.from_config(raw, budget_redis)
    standin.connectors.append(connector)
    assert len(names(connector)) == 2 and connector.client.budget is not None
    with pytest.raises(ConfigError) as info:
        build_connector("salesforce", {**raw, "ca_file": str(standin.ca_path)}, budget_redis)
    assert info.value.key == "sources.salesforce.config.ca_file"
