"""Operating commands: ``worker``, ``beat``, ``webhooks serve``, and what every command shares (the runtime from the
config, start-up checks, the ``--config`` option). ``sync`` is in ``workers/cli_sync.py``, ``status`` and ``reset``
in ``workers/cli_status.py``, ``dlq`` in ``workers/cli_dlq.py``.

Every command reads the config from ``--config`` / ``CRMSYNC_CONFIG`` (default ``crmsync.yaml``); a bad key stops
it at once, naming the key.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from sync.errors import CrmsyncError
from workers.config import load_config
from workers.eviction import check_no_eviction
from workers.logs import configure_logging, remember_secrets, secrets_of
from workers.runtime import Runtime, set_runtime

console = Console(stderr=True)
out = Console()
webhooks_app = typer.Typer(help="The webhook receiver.")


def runtime_from_env() -> Runtime:
    """Load and validate the config (failing with the bad key named), and install it for this process."""
    try:
        config = load_config()
        runtime = Runtime(config)
        remember_secrets([*secrets_of(config), runtime.settings.personal_api_key.get_secret_value()])
    except CrmsyncError as exc:
        console.print(f"[red]config error:[/] {exc}")
        raise typer.Exit(2) from None
    set_runtime(runtime)
    return runtime


def start_checks(runtime: Runtime, *checks: Callable[[], object]) -> None:
    """Run start-up checks; the first ``CrmsyncError`` stops the command (status 2), naming the bad key."""
    try:
        for check in checks:
            check()
    except CrmsyncError as exc:
        console.print(f"[red]config error:[/] {exc}", soft_wrap=True)  # one line, however narrow the terminal
        raise typer.Exit(2) from None


def check_redis(runtime: Runtime) -> None:
    """Start-up check of the long-running commands and ``sync``: a Redis that may evict keys stops the command
    (``ConfigError`` naming ``maxmemory-policy``; ``workers/eviction.py``); one whose policy cannot be read warns."""
    warning = check_no_eviction(runtime.redis)
    if warning:
        console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)


def chosen_sources(runtime: Runtime, source: str) -> list[str]:
    if source == "all":
        return runtime.config.enabled_sources()
    if source not in runtime.config.sources:
        console.print(f"[red]unknown source {source!r}[/]; configured: {', '.join(runtime.config.sources) or 'none'}")
        raise typer.Exit(2)
    return [source]


def default_node_name() -> str:
    """``crmsync-<pid>@%h``: distinct for every worker process on one host (Celery expands ``%h``), so control
    replies (``inspect``, ``ping``, queue depth in ``status``) never mix two workers up."""
    return f"crmsync-{os.getpid()}@%h"


def worker_command(
    queues: Annotated[str, typer.Option(help="Comma-separated queues to consume.")] = "bulk,realtime",
    concurrency: Annotated[int, typer.Option(min=1, help="Worker processes (for bulk, with a realtime node).")] = 2,
    realtime_processes: Annotated[
        int,
        typer.Option(
            min=0,
            help="Processes of a node of their own for the realtime queue (webhook refreshes), which bulk work "
            "cannot occupy; 0: one pool for every queue.",
        ),
    ] = 1,
    loglevel: Annotated[str, typer.Option()] = "INFO",
    hostname: Annotated[
        str | None,
        typer.Option("--hostname", "-n", help="Celery node name (default crmsync-<pid>@<host>, unique per process)."),
    ] = None,
    checked: Annotated[bool, typer.Option("--checked", hidden=True)] = False,  # a realtime node: its parent checked
) -> None:
    """Run a Celery worker (scale out by running more of them, on any host, against the same Redis).

    Consuming ``bulk`` and ``realtime`` (the default), it is two Celery nodes: this one for ``bulk`` with
    ``--concurrency`` processes, and a child for ``realtime`` with ``--realtime-processes`` (``workers/lanes.py``)."""
    from workers.lanes import split_queues, start_realtime_node, stop_node

    runtime = runtime_from_env()
    configure_logging(loglevel)
    # Redis's eviction policy, every enabled connector's config, then the PostHog key's scopes and the mapping's
    # custom property definitions: each stops the worker here, named (a realtime node started by a worker skips
    # the PostHog probes: its parent made them)
    checks = [lambda: check_redis(runtime), runtime.check_sources]
    posthog_checks = [] if checked else [runtime.check_posthog_key, runtime.check_custom_properties]
    start_checks(runtime, *checks, *posthog_checks)
    from workers.celery_app import app

    own_queues, with_realtime_node = split_queues(queues, realtime_processes)
    node = hostname or default_node_name()
    child = start_realtime_node(realtime_processes, loglevel, hostname) if with_realtime_node else None
    try:
        app.worker_main(["worker", "-Q", own_queues, "-c", str(concurrency), "--loglevel", loglevel, "-n", node])
    finally:
        if child is not None:
            stop_node(child)


def beat_command(loglevel: Annotated[str, typer.Option()] = "INFO") -> None:
    """Run Celery beat: exactly one per deployment; it only enqueues, workers do the work."""
    runtime = runtime_from_env()
    configure_logging(loglevel)
    start_checks(runtime, lambda: check_redis(runtime), runtime.check_sources)
    from workers.celery_app import configure_for
    from workers.schedule import beat_schedule

    app = configure_for(runtime.config, beat_schedule(runtime.config))
    state = Path(tempfile.gettempdir()) / "crmsync-beat-schedule"
    app.Beat(schedule=str(state), loglevel=loglevel).run()


@webhooks_app.command("serve")
def webhooks_serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8090,
) -> None:
    """Serve /webhooks/{hubspot,stripe}, /webhooks/salesforce/<token>, /healthz, /readyz, /metrics."""
    import uvicorn

    from workers.webhooks import check_public_url, create_webhook_app

    runtime = runtime_from_env()
    configure_logging()
    apps: list[Any] = []
    start_checks(
        runtime,
        lambda: check_redis(runtime),
        lambda: console.print(check_public_url(runtime.config.webhooks, host)),
        lambda: apps.append(create_webhook_app(runtime)),  # builds every enabled connector: bad config stops here
    )
    uvicorn.run(apps[0], host=host, port=port, log_level="warning", access_log=False)


def config_option(
    config: Annotated[
        Path | None, typer.Option("--config", help="Config file (default: $CRMSYNC_CONFIG or crmsync.yaml).")
    ] = None,
) -> None:
    """Global ``--config``: exported as ``CRMSYNC_CONFIG`` so worker processes read the same file."""
    if config is not None:
        os.environ["CRMSYNC_CONFIG"] = str(config)
    set_runtime(None)  # each command builds the runtime from this config
