"""The client-credentials flow, JWT bearer with its audience set apart from the token host, and refused logins
that name the flow and what to check; against the stand-in's token endpoint over TLS."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from connectors.salesforce import ClientCredentialsAuth, JwtAuth, load_salesforce_config
from connectors.salesforce.client import audience_domain
from connectors.salesforce.errors import SalesforceAuthFailed
from sync.errors import ConfigError
from tests.connectors.salesforce.conftest import USERNAME, StandIn

TOKEN_ROUTE = "/services/oauth2/token"
MY_DOMAIN = "https://acme.my.salesforce.com"


def names(standin: StandIn, **overrides: object) -> list[str]:
    connector = standin.connector(**overrides)
    return sorted(r.fields["Name"] for p in connector.pull("Account", None) for r in p.records)


def credentials(secret: str = "sandbox") -> ClientCredentialsAuth:
    return ClientCredentialsAuth(flow="client_credentials", client_id="sandbox", client_secret=SecretStr(secret))


def test_client_credentials_flow_logs_in_without_a_user(standin: StandIn) -> None:
    standin.seed(2)
    assert len(names(standin, auth=credentials())) == 2
    assert standin.count(TOKEN_ROUTE, "POST", 200) == 1


def test_client_credentials_without_a_run_as_user_names_the_flow_and_what_to_check(standin: StandIn) -> None:
    standin.admin("POST", "/oauth", json={"client_credentials_user": False})
    with pytest.raises(SalesforceAuthFailed) as info:
        names(standin, auth=credentials())
    text = str(info.value)
    assert "client_credentials flow" in text and "invalid_grant" in text
    assert "no client credentials user enabled" in text and "Run As user" in text
    assert "sandbox" not in text  # neither the client id's secret nor any other credential


def test_jwt_audience_is_set_apart_from_the_token_host(standin: StandIn) -> None:
    standin.seed(2)
    standin.admin("POST", "/oauth", json={"jwt_audiences": [MY_DOMAIN]})
    pem = SecretStr(standin.jwt_private_pem)

    default = JwtAuth(flow="jwt", username=USERNAME, client_id="sandbox", private_key=pem)
    with pytest.raises(SalesforceAuthFailed) as info:
        names(standin, auth=default)
    text = str(info.value)
    assert "jwt flow" in text and "audience is invalid" in text
    assert "https://login.salesforce.com" in text and "auth.audience" in text
    assert "PRIVATE KEY" not in text

    mine = JwtAuth(flow="jwt", username=USERNAME, client_id="sandbox", private_key=pem, audience=MY_DOMAIN + "/")
    assert len(names(standin, auth=mine)) == 2  # posted to the stand-in, signed for the My Domain
    assert standin.count(TOKEN_ROUTE, "POST", 400) == 1 and standin.count(TOKEN_ROUTE, "POST", 200) == 1


def test_a_wrong_password_names_the_legacy_flow_and_its_retirement(standin: StandIn) -> None:
    raw = standin.config().auth.model_dump() | {"password": SecretStr("wrong-p4ss")}
    with pytest.raises(SalesforceAuthFailed) as info:
        names(standin, auth=type(standin.config().auth).model_validate(raw))
    text = str(info.value)
    assert "password flow" in text and "invalid_grant" in text and "retiring" in text and "p4ss" not in text


def test_audience_and_flow_config_is_checked_at_start_up() -> None:
    base = {"login_url": MY_DOMAIN}
    auth = {"flow": "client_credentials", "client_id": "app", "client_secret": "s3cret-value"}
    assert load_salesforce_config({**base, "auth": auth}).auth.flow == "client_credentials"
    with pytest.raises(ConfigError) as info:
        load_salesforce_config({"login_url": "https://login.salesforce.com", "auth": auth})
    assert "login_url" in str(info.value) and "s3cret" not in str(info.value)
    jwt = {"flow": "jwt", "username": USERNAME, "client_id": "app", "private_key": "-----BEGIN PRIVATE KEY-----"}
    with pytest.raises(ConfigError) as info:
        load_salesforce_config({**base, "auth": {**jwt, "audience": "https://acme.force.com/customers"}})
    assert info.value.key == "connectors.salesforce.auth.jwt.audience"
    assert audience_domain("https://acme.my.salesforce.com") == "acme.my"
    assert audience_domain("https://test.salesforce.com") == "test"
