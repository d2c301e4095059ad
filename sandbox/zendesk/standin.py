"""The Zendesk stand-in as the stack sees it (``sandbox.standin.StandIn``): identities ``[N/2, 3N/2)``, an
organization per company (same name, ``external_id`` and domain as in the other CRMs, so they join the accounts
those made), the ``posthog_account_id`` organization field created as ``crmsync setup zendesk`` creates it, signed
organization events to ``/webhooks/zendesk``.

Its secrets come from ``Credentials.more["zendesk"]`` (``email``, ``token``, ``webhook_secret``) when a test gives
them, else ``sandbox.zendesk.config``'s. Its limits are a High Volume account's (2,500 a minute, the export 30)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from sandbox.standin import StandIn, webhook_url
from sandbox.zendesk.cli import run_zendesk
from sandbox.zendesk.config import EMAIL, TOKEN, WEBHOOK_SECRET
from sandbox.zendesk.store import ORG_BASE

if TYPE_CHECKING:
    from sandbox.stack import SandboxStack
    from workers.serving import ServerThread

NAME = "zendesk"
REQUESTS_PER_MINUTE = 2500
EXPORT_REQUESTS_PER_MINUTE = 30
FIELDS = ("posthog_account_id",)


def seed_range(seed: int) -> tuple[int, int]:
    return seed // 2, seed


def secrets(stack: SandboxStack) -> dict[str, str]:
    given = stack.credentials.more.get(NAME, {})
    return {
        "email": given.get("email", EMAIL),
        "token": given.get("token", TOKEN),
        "webhook_secret": given.get("webhook_secret", WEBHOOK_SECRET),
    }


def server(stack: SandboxStack) -> ServerThread:
    from sandbox.zendesk.app import create_app
    from sandbox.zendesk.config import ZendeskSandboxConfig
    from workers.serving import ServerThread

    start, count = seed_range(stack.seed)
    given = secrets(stack)
    config = ZendeskSandboxConfig(
        email=given["email"],
        token=given["token"],
        webhook_url=webhook_url(stack, f"/webhooks/{NAME}"),
        webhook_secret=given["webhook_secret"],
        requests_per_minute=REQUESTS_PER_MINUTE,
        export_requests_per_minute=EXPORT_REQUESTS_PER_MINUTE,
        seed=count,
        seed_start=start,
        fields=FIELDS,
    )
    return ServerThread(create_app(config))


def source_block(stack: SandboxStack) -> dict[str, Any]:
    given = secrets(stack)
    return {
        "stand_in": True,
        "schedule": {"every_s": 60},
        "config": {
            "url": stack.url(NAME),
            "email": given["email"],
            "api_token": given["token"],
            "webhook_secret": given["webhook_secret"],
            "requests_per_minute": REQUESTS_PER_MINUTE,
            "export_requests_per_minute": EXPORT_REQUESTS_PER_MINUTE,
        },
    }


def endpoints(stack: SandboxStack) -> dict[str, Any]:
    given = secrets(stack)
    return {"url": stack.url(NAME), "email": given["email"], "token": given["token"]}


def wire_webhooks(stack: SandboxStack, http: httpx.Client) -> None:
    http.put(f"{stack.url(NAME)}/_sandbox/webhooks", json={"url": f"{stack.webhooks_url}/webhooks/{NAME}"})


def demo_edit(stack: SandboxStack, http: httpx.Client, seed: int) -> str:
    """Tag an organization in Zendesk (identity ``seed // 2 + 1``), as an agent would."""
    org_id = ORG_BASE + seed // 2 + 1
    org = http.patch(f"{stack.url(NAME)}/_sandbox/organizations/{org_id}", json={"tags": ["vip"]})
    org.raise_for_status()
    return f"Zendesk organization {org_id}: tags"


STANDIN = StandIn(
    name=NAME,
    seed_range=seed_range,
    server=server,
    source_block=source_block,
    endpoints=endpoints,
    wire_webhooks=wire_webhooks,
    demo_edit=demo_edit,
    run=run_zendesk,
)
