"""The Salesforce stand-in as the stack sees it (``sandbox.standin.StandIn``): identities ``[0, N)``, served over TLS
(the SDK forces https; ``stack.ca_file`` is its CA), Outbound Messages to ``/webhooks/salesforce/<token>``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from sandbox.identities import company
from sandbox.salesforce.cli import run_salesforce
from sandbox.standin import StandIn, webhook_url

if TYPE_CHECKING:
    from sandbox.stack import SandboxStack
    from workers.serving import ServerThread


def seed_range(seed: int) -> tuple[int, int]:
    return 0, seed


def server(stack: SandboxStack) -> ServerThread:
    from sandbox.salesforce.app import create_app
    from sandbox.salesforce.config import SalesforceSandboxConfig, make_tls
    from workers.serving import ServerThread

    creds = stack.credentials
    start, count = seed_range(stack.seed)
    cert, key, ca = make_tls(stack.data_dir / "salesforce")
    stack.ca_file = ca
    config = SalesforceSandboxConfig(
        username=creds.salesforce_username,
        password=creds.salesforce_password,
        client_id=creds.salesforce_client_id,
        client_secret=creds.salesforce_client_secret,
        org_id=creds.salesforce_org,
        outbound_url=webhook_url(stack, f"/webhooks/salesforce/{creds.salesforce_webhook_token}"),
        seed=count,
        seed_start=start,
        data_dir=stack.data_dir / "salesforce",
    )
    return ServerThread(create_app(config), ssl_certfile=str(cert), ssl_keyfile=str(key))


def source_block(stack: SandboxStack) -> dict[str, Any]:
    creds = stack.credentials
    return {
        "stand_in": True,
        "schedule": {"every_s": 60},
        "config": {
            "auth": {"flow": "password", **creds.salesforce_login},
            "login_url": stack.url("salesforce"),
            "ca_bundle": str(stack.ca_file),
            "trust_env": False,
            "organization_id": creds.salesforce_org,
            "webhook_token": creds.salesforce_webhook_token,
        },
    }


def endpoints(stack: SandboxStack) -> dict[str, Any]:
    return {"url": stack.url("salesforce"), "ca_file": str(stack.ca_file), **stack.credentials.salesforce_login}


def wire_webhooks(stack: SandboxStack, http: httpx.Client) -> None:
    token = stack.credentials.salesforce_webhook_token
    http.post(
        f"{stack.url('salesforce')}/_sandbox/outbound",
        json={"url": f"{stack.webhooks_url}/webhooks/salesforce/{token}"},
    )


def account_id(stack: SandboxStack, http: httpx.Client, external_id: str) -> str:
    """Find an Account by external id through the REST API, as a client would."""
    login = {"grant_type": "password", **stack.credentials.salesforce_login}
    token = http.post(f"{stack.url('salesforce')}/services/oauth2/token", data=login).json()["access_token"]
    soql = f"SELECT Id FROM Account WHERE PostHog_External_Id__c = '{external_id}'"
    rows = http.get(
        f"{stack.url('salesforce')}/services/data/v59.0/query/",
        params={"q": soql},
        headers={"Authorization": f"Bearer {token}"},
    ).json()["records"]
    return str(rows[0]["Id"])


def demo_edit(stack: SandboxStack, http: httpx.Client, seed: int) -> str:
    """Rename an Account known to Salesforce alone (identity 5)."""
    sf = company(5)
    found = account_id(stack, http, sf.external_id)
    http.patch(
        f"{stack.url('salesforce')}/_sandbox/sobjects/Account/{found}",
        json={"Name": f"{sf.name} (renamed in Salesforce)"},
    ).raise_for_status()
    return f"Salesforce Account {found} ({sf.name}): Name"


STANDIN = StandIn(
    name="salesforce",
    seed_range=seed_range,
    server=server,
    source_block=source_block,
    endpoints=endpoints,
    wire_webhooks=wire_webhooks,
    demo_edit=demo_edit,
    run=run_salesforce,
)
