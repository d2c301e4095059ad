"""``crmsync sandbox run posthog``: the PostHog stand-in in the foreground."""

from __future__ import annotations

import typer
import uvicorn

from sandbox.posthog.app import create_app
from sandbox.posthog.config import (
    GENERATIONS,
    LEVEL_OWNER,
    PostHogSandboxConfig,
    parse_key_spec,
    parse_member_spec,
)
from sandbox.posthog.throttle import parse_throttle_spec

DEFAULT_KEY_SPEC = "phx_sandbox=*"


def run_posthog(
    host: str = typer.Option("127.0.0.1", help="Interface to bind (keep it on loopback)."),
    port: int = typer.Option(8010, help="Port to listen on."),
    db: str = typer.Option(":memory:", help="SQLite file to keep data across restarts, or :memory:."),
    project: list[int] = typer.Option(None, "--project", help="Project id served (repeat; default 1)."),
    key: list[str] = typer.Option(
        None,
        "--key",
        help="Personal API key KEY=SCOPES or KEY=SCOPES@PROJECT,PROJECT (repeat; default phx_sandbox='*').",
    ),
    member: list[str] = typer.Option(None, "--member", help="Organisation member ID:EMAIL (repeat)."),
    throttle: list[str] = typer.Option(
        None,
        "--throttle",
        help="Throttle every personal API key to N requests per SECONDS, as PostHog does (repeat; PostHog's own: "
        "--throttle 480/60 --throttle 4800/3600). Off when not given.",
    ),
    generation: str = typer.Option(
        "current",
        "--generation",
        help="PostHog API generation to serve: seed (the public docs page), transitional (roles in properties, "
        "mirrored into relationships) or current (roles on relationships, custom properties).",
    ),
    proxy_retry_after: bool = typer.Option(
        False,
        "--proxy-retry-after",
        help="Add Retry-After to a throttled 429, as a proxy in front of PostHog might (PostHog itself does not).",
    ),
    key_owner_level: int = typer.Option(
        LEVEL_OWNER, "--key-owner-level", help="Membership level of the keys' user: 1 member, 8 admin, 15 owner."
    ),
    no_tagging: bool = typer.Option(
        False,
        "--no-tagging",
        help="Act as an organisation without PostHog's tagging feature: tags written are dropped, [] is shown.",
    ),
) -> None:
    """Serve PostHog's accounts, usage-metrics and members API on HOST:PORT until interrupted."""
    try:
        keys = tuple(parse_key_spec(spec) for spec in (key or [DEFAULT_KEY_SPEC]))
        members = tuple(parse_member_spec(spec) for spec in (member or []))
        rates = tuple(parse_throttle_spec(spec) for spec in (throttle or []))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if generation not in GENERATIONS:
        raise typer.BadParameter(f"expected one of {', '.join(GENERATIONS)}", param_hint="--generation")
    config = PostHogSandboxConfig(
        db_path=db,
        projects=tuple(project or [1]),
        keys=keys,
        members=members,
        throttle=rates,
        tagging=not no_tagging,
        generation=generation,
        proxy_retry_after=proxy_retry_after,
        key_owner_level=key_owner_level,
    )
    app = create_app(config)
    url = f"http://{host}:{port}"
    typer.echo(f"PostHog stand-in on {url}  (db: {db})")
    typer.echo(f"  projects: {', '.join(str(p) for p in config.projects)}")
    for api_key in keys:
        where = "all projects" if api_key.projects is None else "projects " + ",".join(map(str, api_key.projects))
        typer.echo(f"  key {api_key.key}: scopes {','.join(api_key.scopes)} on {where}")
    for m in members:
        typer.echo(f"  member {m.id}: {m.email}")
    typer.echo(f"  generation: {generation}  (organization {config.organization_id})")
    typer.echo(f"  tagging: {'off (tags dropped, as without the tagging feature)' if no_tagging else 'on'}")
    typer.echo(f"  throttle: {', '.join(str(r) for r in rates) + ' (requests/seconds) per key' if rates else 'off'}")
    typer.echo(
        f"  try: curl -H 'Authorization: Bearer {keys[0].key}' {url}/api/environments/{config.projects[0]}/accounts/"
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")
