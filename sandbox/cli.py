"""``crmsync sandbox ...``: start the local stand-ins.

Each stand-in package contributes one ``run`` sub-command (``crmsync sandbox run posthog``); they are
registered here so the CLI stays one flat list a newcomer can read.
"""

from __future__ import annotations

import typer

from sandbox.hubspot.cli import run_hubspot
from sandbox.posthog.cli import run_posthog
from sandbox.salesforce.cli import run_salesforce
from sandbox.stripe.cli import run_stripe

sandbox_app = typer.Typer(help="Local stand-ins for PostHog and the CRMs (for the demo and tests).")
run_app = typer.Typer(help="Run one stand-in in the foreground.")
sandbox_app.add_typer(run_app, name="run")

run_app.command("posthog")(run_posthog)
run_app.command("stripe")(run_stripe)
run_app.command("hubspot")(run_hubspot)
run_app.command("salesforce")(run_salesforce)
