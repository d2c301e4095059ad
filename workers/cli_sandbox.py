"""``crmsync sandbox up``: PostHog's and every registered source's stand-in and the webhook receiver, wired together,
until Ctrl-C."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, cast

import typer
import yaml
from rich.console import Console

from sandbox.hubspot.cli import webhook_format_option
from sandbox.hubspot.webhooks import WebhookFormat
from sandbox.posthog.config import GENERATIONS
from sandbox.posthog.throttle import parse_throttle_spec
from sandbox.stack import STOP_TIMEOUT_S, SandboxStack
from workers.config import parse_config
from workers.runtime import Runtime, set_runtime
from workers.serving import ServerThread

console = Console()

EXIT_WITHIN_S = 4.0
"""``sandbox up`` ends this long after Ctrl-C or SIGTERM at the latest (docs/reliability.md)."""


def sandbox_up(
    seed: Annotated[int, typer.Option(min=0, help="Records per CRM (overlapping identities).")] = 300,
    config_out: Annotated[Path, typer.Option(help="Where to write the crmsync config.")] = Path("crmsync.sandbox.yaml"),
    endpoints_out: Annotated[Path | None, typer.Option(help="Also write endpoints and credentials as JSON.")] = None,
    webhook_port: Annotated[int, typer.Option(help="Port of the webhook receiver (0: any free port).")] = 0,
    ledger_prefix: Annotated[str, typer.Option(help="Redis key prefix of the ledger in the config.")] = "crmsync",
    posthog_throttle: Annotated[
        list[str] | None,
        typer.Option(
            help="Throttle the PostHog stand-in to N requests per SECONDS per key, as PostHog does (repeat; "
            "PostHog's own: 480/60 and 4800/3600); the config's posthog.budget matches. Off when not given."
        ),
    ] = None,
    webhook_format: Annotated[
        str,
        typer.Option(
            callback=webhook_format_option,
            help="HubSpot webhooks: legacy (deal.propertyChange) or generic (object.propertyChange + objectTypeId).",
        ),
    ] = "legacy",
    ui_port: Annotated[int, typer.Option(help="Port of the status page (0: any free port).")] = 0,
    posthog_generation: Annotated[
        str,
        typer.Option(
            help="PostHog API generation the stand-in serves: seed, transitional or current (see docs/posthog.md)."
        ),
    ] = "current",
) -> None:
    """Start every stand-in, seeded, the webhook receiver and the status page; write a config that works at once
    with ``crmsync --config PATH sync all --inline --json``."""
    from workers.ui.server import serve_ui
    from workers.webhooks import create_webhook_app

    try:
        throttle = tuple(parse_throttle_spec(spec) for spec in posthog_throttle or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--posthog-throttle") from None
    if posthog_generation not in GENERATIONS:
        raise typer.BadParameter(f"expected one of {', '.join(GENERATIONS)}", param_hint="--posthog-generation")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    stack = SandboxStack(
        seed=seed,
        redis_url=redis_url,
        webhook_port=webhook_port,
        ledger_prefix=ledger_prefix,
        posthog_throttle=throttle,
        posthog_generation=posthog_generation,
        hubspot_webhook_format=cast(WebhookFormat, webhook_format),
    )
    runtime: Runtime | None = None
    previous = signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops it as Ctrl-C does, cleanly
    try:
        stack.start()
        stack.write(config_out)
        runtime = Runtime(parse_config(yaml.safe_load(config_out.read_text()), str(config_out)))
        set_runtime(runtime)
        receiver = ServerThread(create_webhook_app(runtime), port=stack.webhook_port).start()
        stack.servers["webhooks"] = receiver  # stopped with the rest
        creds = stack.credentials
        stack.servers["ui"] = serve_ui(runtime, creds.ui_username, creds.ui_password, ui_port)
        stack.write(config_out, endpoints_out)  # the endpoints now include the status page
        for name in stack.servers:
            if name not in ("webhooks", "ui"):
                console.print(f"[bold]{name:<10}[/] {stack.url(name)}")
        console.print(f"[bold]{'webhooks':<10}[/] {receiver.url}")
        login = f"user {stack.credentials.ui_username}, password {stack.credentials.ui_password}"
        console.print(f"[bold]{'ui':<10}[/] {stack.url('ui')}/ui/  ({login})")
        console.print(f"config written to {config_out}" + (f", endpoints to {endpoints_out}" if endpoints_out else ""))
        console.print(f"try: crmsync --config {config_out} sync all --inline   (Ctrl-C stops everything)")
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        console.print("stopping")
    finally:
        _stop(stack, runtime)
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop(stack: SandboxStack, runtime: Runtime | None) -> None:
    """Stop every server together (``STOP_TIMEOUT_S`` in all) and close the runtime; a second Ctrl-C or SIGTERM
    meanwhile, or a stop still running ``EXIT_WITHIN_S`` after the first signal, ends the process at once: its
    threads are daemons and its state is in a temporary directory, so nothing is lost."""
    watchdog = threading.Timer(EXIT_WITHIN_S, _exit_now)
    watchdog.daemon = True
    watchdog.start()
    signal.signal(signal.SIGINT, lambda *_: _exit_now())
    signal.signal(signal.SIGTERM, lambda *_: _exit_now())
    try:
        stack.stop(STOP_TIMEOUT_S)
        if runtime is not None:
            runtime.close()
    finally:
        watchdog.cancel()
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _exit_now() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)
