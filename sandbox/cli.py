"""``crmsync sandbox ...``: start the local stand-ins.

Each stand-in package contributes one ``run`` sub-command (``crmsync sandbox run posthog``): PostHog's here, each
registered source's from its ``StandIn`` (``sandbox/<source>/standin.py``), so a new source's stand-in joins the
command line from its own folder.
"""

from __future__ import annotations

import typer

from sandbox.posthog.cli import run_posthog
from sandbox.standin import standins

sandbox_app = typer.Typer(help="Local stand-ins for PostHog and the CRMs (for the demo and tests).")
run_app = typer.Typer(help="Run one stand-in in the foreground.")
sandbox_app.add_typer(run_app, name="run")

run_app.command("posthog")(run_posthog)
for _standin in standins():
    run_app.command(_standin.name)(_standin.run)
