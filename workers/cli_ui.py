"""``crmsync ui``: serve the status page (uvicorn), with the login from the config and ``CRMSYNC_UI_PASSWORD``."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from sync.errors import ConfigError
from workers.cli_ops import console, runtime_from_env
from workers.logs import configure_logging, remember_secrets
from workers.runtime import Runtime
from workers.ui.security import PASSWORD_ENV, Access, check_bind


def access_for(runtime: Runtime, host: str, password: str | None = None) -> Access:
    """The login for a page bound to ``host`` (``ConfigError`` for an open page off loopback)."""
    password = password if password is not None else os.environ.get(PASSWORD_ENV) or None
    check_bind(host, password)
    if password:
        remember_secrets([password])
    return Access(runtime.config.ui.username, password, allowed_hosts=frozenset({host.strip("[]").lower()}))


def ui_command(
    host: Annotated[str, typer.Option(help="Interface to bind (anything but loopback needs CRMSYNC_UI_PASSWORD).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8091,
) -> None:
    """Serve the status page at http://HOST:PORT/ui/ (HTTP Basic: ui.username and CRMSYNC_UI_PASSWORD)."""
    import uvicorn

    from workers.ui.app import create_ui_app

    runtime = runtime_from_env()
    configure_logging("WARNING")
    try:
        access = access_for(runtime, host)
    except ConfigError as exc:
        console.print(f"[red]config error:[/] {exc}")
        raise typer.Exit(2) from None
    login = f"user {access.username}" if access.password else "no login (loopback only)"
    console.print(f"status page: http://{host}:{port}/ui/ ({login})")
    uvicorn.run(create_ui_app(runtime, access), host=host, port=port, log_level="warning", access_log=False)
