"""The ``crmsync`` command line (typer + rich)."""

from __future__ import annotations

import redis
import typer

from connectors.registry import CONNECTORS, setup_command
from sandbox.cli import sandbox_app
from workers.cli_dlq import dlq_app
from workers.cli_metrics import metrics_app
from workers.cli_ops import beat_command, config_option, webhooks_app, worker_command
from workers.cli_sandbox import sandbox_up
from workers.cli_setup import setup_posthog
from workers.cli_status import reset_command, status_command
from workers.cli_sync import sync_command
from workers.cli_ui import ui_command
from workers.demo import demo_command

app = typer.Typer(
    help="crmsync: keep PostHog accounts and your CRMs in agreement.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.callback()(config_option)
sandbox_app.command("up")(sandbox_up)
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(metrics_app, name="metrics")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(dlq_app, name="dlq")
app.command("worker")(worker_command)
app.command("beat")(beat_command)
app.command("sync")(sync_command)
app.command("status")(status_command)
app.command("reset")(reset_command)
app.command("demo")(demo_command)
app.command("ui")(ui_command)
setup_app = typer.Typer(help="One-time set-up in PostHog or a CRM (the custom properties crmsync writes).")
for _source in CONNECTORS:  # `crmsync setup <source>` for each source that declares one (its vendor facts)
    _command = setup_command(_source)
    if _command is not None:
        setup_app.command(_source)(_command)
setup_app.command("posthog")(setup_posthog)
app.add_typer(setup_app, name="setup")


def main() -> None:
    """The ``crmsync`` entry point: an unreachable or silent Redis is one line naming ``REDIS_URL``, not a traceback.

    The URL itself is never echoed, not even masked: a password with ``@`` or ``%`` in it, unescaped, defeats any
    masking, so the line names the setting to check instead."""
    try:
        app()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        typer.echo(f"error: cannot reach Redis (check REDIS_URL or redis_url; {type(exc).__name__})", err=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
