"""``crmsync demo`` (``make demo``): a real run against the embedded PostHog stand-in.

It starts the stand-in in this process on a free loopback port, applies ``examples/metrics.yaml`` through
the client, creates a few accounts (idempotently: a second run finds them by ``external_id``), lists them
with a filter, and prints what PostHog now holds. Nothing is canned: every line comes from an HTTP answer.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from sandbox.common import serving
from sandbox.posthog.app import ApiKey, Member, PostHogSandboxConfig, create_app
from sync.posthog import AccountFilter, AccountOrdering, AccountProperties, PostHogClient
from sync.posthog.errors import PostHogConflict
from sync.settings import PostHogSettings
from sync.usage_metrics import apply_plan, build_plan, load_metrics_file
from workers.cli_metrics import plan_table

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DEMO_KEY = "phx_demo_key"

_MEMBERS = (Member(7, "ana@example.com", "Ana"), Member(8, "ben@example.com", "Ben"))
_ACCOUNTS: tuple[tuple[str, str, dict[str, object], list[str]], ...] = (
    (
        "Acme Labs",
        "acct-00001",
        {"stripe_customer_id": "cus_A1", "csm": {"id": 7, "email": "ana@example.com"}},
        ["Enterprise", "billing"],
    ),
    (
        "Globex Analytics",
        "acct-00002",
        {"hubspot_deal_id": "9001", "sfdc_id": "001000000000001AAA"},
        ["startup"],
    ),
    ("Initech Systems", "acct-00003", {"account_owner": {"id": 8, "email": "ben@example.com"}}, []),
)


def _accounts_table(title: str, client: PostHogClient, filter: AccountFilter | None = None) -> Table:
    table = Table(title=title)
    for column in ("name", "external_id", "links", "roles", "tags", "updated_at"):
        table.add_column(column)
    for account in client.iter_accounts(filter):
        props = account.properties
        links = ", ".join(f"{k}={v}" for k, v in props.payload().items() if isinstance(v, str) and v)
        roles = ", ".join(
            f"{k}={r.email}" for k in ("csm", "account_executive", "account_owner") if (r := getattr(props, k))
        )
        table.add_row(
            account.name,
            account.external_id or "",
            links,
            roles,
            ", ".join(sorted(account.tags)),
            account.updated_at.isoformat() if account.updated_at else "",
        )
    return table


def demo_command() -> None:
    """Run the demo against the embedded PostHog stand-in."""
    console = Console()
    config = PostHogSandboxConfig(keys=(ApiKey(DEMO_KEY, ("*",)),), members=_MEMBERS)
    with serving(create_app(config)) as server:
        console.print(f"[bold]PostHog stand-in[/] listening on {server.url} (project 1)")
        settings = PostHogSettings(host=server.url, personal_api_key=SecretStr(DEMO_KEY), project_id=1)
        with PostHogClient(settings) as client:
            metrics = load_metrics_file(EXAMPLES / "metrics.yaml")
            plan = build_plan(client, metrics, metrics.group_type_index or 0, prune=False)
            console.print(plan_table(plan))
            console.print(f"applied {apply_plan(client, plan)} metric writes")
            again = build_plan(client, metrics, metrics.group_type_index or 0, prune=False)
            console.print(f"second apply: {'changes pending' if again.has_changes else 'nothing to change'}")

            for name, external_id, properties, tags in _ACCOUNTS:
                try:
                    client.create_account(name, external_id, AccountProperties.model_validate(properties), tags)
                except PostHogConflict:
                    console.print(f"{external_id} already exists")
            ana = next(m.role() for m in client.iter_members() if m.user.email == "ana@example.com")
            console.print(f"organisation member ana@example.com is user {ana.id}")

            console.print(_accounts_table("PostHog accounts", client, AccountFilter(ordering=AccountOrdering.NAME)))
            console.print(_accounts_table(f"Accounts whose CSM is user {ana.id}", client, AccountFilter(csm=ana.id)))
            console.print(_accounts_table("Accounts tagged 'billing'", client, AccountFilter(tags=("billing",))))
            console.print(f"requests made: {dict(client.stats.requests)}, retries: {client.stats.retries}")
