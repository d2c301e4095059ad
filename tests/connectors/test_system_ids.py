"""``Connector.system_id()`` of every connector, through the official SDKs against the stand-ins: the identity the
vendor's API gives (HubSpot ``portalId``, Stripe account id and key mode, Salesforce ``organization_id``), one
request per connector (cached), and different for two stand-ins of one vendor."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sandbox.stack import SandboxStack
from sync.errors import ConfigError
from tests.conftest import REDIS_URL
from workers.config import parse_config
from workers.runtime import Runtime

ROUTES = {
    "hubspot": ("GET", "/account-info/v3/details"),
    "stripe": ("GET", "/v1/account"),
    "salesforce": ("GET", "/services/oauth2/userinfo"),
}


@pytest.fixture(scope="module")
def stacks(monkeypatch_module: pytest.MonkeyPatch) -> Iterator[tuple[SandboxStack, SandboxStack]]:
    with (
        SandboxStack(seed=6, redis_url=REDIS_URL, webhooks=False) as first,
        SandboxStack(seed=6, redis_url=REDIS_URL, webhooks=False) as second,
    ):
        yield first, second


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POSTHOG_PERSONAL_API_KEY", "phx_sandbox")
        yield mp


def requests_to(stack: SandboxStack, vendor: str) -> int:
    method, route = ROUTES[vendor]
    with httpx.Client(base_url=stack.url(vendor), verify=str(stack.ca_file), timeout=10) as http:
        rows = http.get("/_sandbox/stats").json()["requests"]
    return sum(r["count"] for r in rows if r["method"] == method and r["route"] == route)


def test_each_connector_names_the_system_it_talks_to(stacks: tuple[SandboxStack, SandboxStack]) -> None:
    seen: list[dict[str, str]] = []
    for stack in stacks:
        runtime = Runtime(parse_config(stack.config()))
        try:
            ids = {vendor: runtime.connector(vendor).system_id() for vendor in ROUTES}
            again = {vendor: runtime.connector(vendor).system_id() for vendor in ROUTES}
        finally:
            runtime.close()
        assert again == ids
        assert all(requests_to(stack, vendor) == 1 for vendor in ROUTES)  # asked once, then cached
        assert ids["salesforce"] == f"org {stack.credentials.salesforce_org}"
        assert ids["hubspot"].startswith("portal ") and ids["hubspot"][7:].isdigit()
        assert ids["stripe"].startswith("acct_") and ids["stripe"].endswith(" (test mode)")  # an sk_test_ key
        seen.append(ids)
    assert all(seen[0][vendor] != seen[1][vendor] for vendor in ROUTES)  # a fresh stand-in is another system


def test_a_salesforce_login_into_another_org_than_configured_is_a_config_error(
    stacks: tuple[SandboxStack, SandboxStack],
) -> None:
    first, second = stacks
    raw = first.config()
    raw["sources"]["salesforce"]["config"]["organization_id"] = second.credentials.salesforce_org
    runtime = Runtime(parse_config(raw))
    try:
        with pytest.raises(ConfigError, match="organization_id"):
            runtime.connector("salesforce").system_id()
    finally:
        runtime.close()


def test_a_config_switched_to_another_hubspot_syncs_that_one_fully(
    stacks: tuple[SandboxStack, SandboxStack],
) -> None:
    """Same PostHog, same ledger namespace; the HubSpot section now points at another portal. The incremental run
    drops the first portal's HubSpot state (cursor, links, fingerprints) and reads the second portal in full."""
    import uuid

    from sync.ledger import delete_keys

    first, second = stacks
    raw = first.config()
    raw["ledger_prefix"] = f"crmsync-switch-{uuid.uuid4().hex[:8]}"
    runtime = Runtime(parse_config(raw))
    try:
        before = runtime.engine.run(runtime.connector("hubspot"), "deals")
        assert before.status == "succeeded" and before.counts["seen"] > 0
        raw["sources"]["hubspot"] = second.config()["sources"]["hubspot"]
        switched = Runtime(parse_config(raw))
        try:
            after = switched.engine.run(switched.connector("hubspot"), "deals")  # incremental
            full = sum(len(p.records) for p in switched.connector("hubspot").pull("deals", None))
        finally:
            switched.close()
        assert after.status == "succeeded" and after.counts["failed"] == 0
        assert after.counts["seen"] == full  # the whole second portal, not what follows the first one's cursor
        (reset,) = after.state_reset
        assert reset["system"] == "hubspot" and reset["now"] != reset["was"] and reset["dropped"]["rec"] > 0
    finally:
        delete_keys(runtime.redis, f"{raw['ledger_prefix']}:*")
        runtime.close()
