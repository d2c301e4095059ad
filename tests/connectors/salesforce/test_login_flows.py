"""The client-credentials flow, JWT bearer with its audience set apart from the token host, and refused logins
that name the flow and what to check; against the stand-in's token endpoint over TLS."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from connectors.salesforce import ClientCredentialsAuth, JwtAuth, load_salesforce_config
from connectors.salesforce.config import default_audience
from connectors.salesforce.errors import SalesforceAuthFailed
from sync.errors import ConfigError
from tests.connectors.salesforce.conftest import USERNAME, StandIn

TOKEN_ROUTE = "/services/oauth2/token"
MY_DOMAIN = "https://acme.my.salesforce.com"
TEST = "https://test.salesforce.com"
SITE = "https://acme.my.site.com/customers"  # an Experience Cloud site


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
    """A sandbox org accepts only ``https://test.salesforce.com``; the assertion is posted to the login URL (the
    stand-in) whatever its audience, and an Experience Cloud site's URL is signed as given."""
    standin.seed(2)
    standin.admin("POST", "/oauth", json={"jwt_audiences": ["https://test.salesforce.com"]})
    pem = SecretStr(standin.jwt_private_pem)

    default = JwtAuth(flow="jwt", username=USERNAME, client_id="sandbox", private_key=pem)
    with pytest.raises(SalesforceAuthFailed) as info:
        names(standin, auth=default)  # login_url is the stand-in, not a sandbox host: aud = login
    text = str(info.value)
    assert "jwt flow" in text and "audience is invalid" in text
    assert "https://login.salesforce.com" in text and "auth.audience" in text
    assert "PRIVATE KEY" not in text

    test = JwtAuth(flow="jwt", username=USERNAME, client_id="sandbox", private_key=pem, audience=TEST + "/")
    assert len(names(standin, auth=test)) == 2  # posted to the stand-in, signed for test.salesforce.com
    assert standin.count(TOKEN_ROUTE, "POST", 400) == 1 and standin.count(TOKEN_ROUTE, "POST", 200) == 1

    standin.admin("POST", "/oauth", json={"jwt_audiences": [SITE]})
    site = JwtAuth(flow="jwt", username=USERNAME, client_id="sandbox", private_key=pem, audience=SITE)
    assert len(names(standin, auth=site)) == 2


@pytest.mark.parametrize(
    ("login_url", "audience"),
    [
        ("https://login.salesforce.com", "https://login.salesforce.com"),
        ("https://acme.my.salesforce.com", "https://login.salesforce.com"),  # My Domain: never the audience
        ("https://test.salesforce.com", "https://test.salesforce.com"),
        ("https://acme--uat.sandbox.my.salesforce.com", "https://test.salesforce.com"),  # a sandbox's My Domain
    ],
)
def test_the_default_audience_is_login_or_test(login_url: str, audience: str) -> None:
    pem = "-----BEGIN PRIVATE KEY-----"
    auth = JwtAuth(flow="jwt", username=USERNAME, client_id="app", private_key=SecretStr(pem))
    assert default_audience(login_url) == audience
    config = load_salesforce_config({"login_url": login_url, "auth": auth.model_dump() | {"private_key": pem}})
    assert isinstance(config.auth, JwtAuth) and config.auth.audience is None


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
    for refused in (MY_DOMAIN, "https://eu12.salesforce.com", "http://acme.my.site.com/c", "login.salesforce.com"):
        with pytest.raises(ConfigError) as info:
            load_salesforce_config({**base, "auth": {**jwt, "audience": refused}})
        assert info.value.key == "connectors.salesforce.auth.jwt.audience", refused
    accepted = {
        SITE + "/": SITE,
        "https://acme.force.com/customers": "https://acme.force.com/customers",  # a site on the legacy domain
        "HTTPS://LOGIN.salesforce.com": "https://login.salesforce.com",
    }
    for given, kept in accepted.items():
        loaded = load_salesforce_config({**base, "auth": {**jwt, "audience": given}}).auth
        assert isinstance(loaded, JwtAuth) and loaded.audience == kept
