"""``crmsync setup hubspot`` (``connectors.hubspot.cli.setup_command``) against the stand-in."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from connectors.hubspot.cli import setup_command
from tests.connectors.hubspot.conftest import EXAMPLE_CONFIG, TOKEN, HubSpotSandbox


def run(hubspot: HubSpotSandbox, *args: str) -> tuple[int, str]:
    app = typer.Typer()
    app.command()(setup_command)
    result = CliRunner().invoke(
        app, ["--config", str(EXAMPLE_CONFIG), *args], env={"HUBSPOT_ACCESS_TOKEN": TOKEN, "HUBSPOT_HOST": hubspot.url}
    )
    return result.exit_code, result.output


def deal_properties(hubspot: HubSpotSandbox) -> set[str]:
    return {p["name"] for p in hubspot.api("GET", "/crm/v3/properties/deals")["results"]}


def test_setup_creates_the_missing_properties_once(hubspot: HubSpotSandbox) -> None:
    code, output = run(hubspot, "--dry-run")
    assert code == 0 and "missing" in output and "nothing was created" in output
    assert "posthog_account_id" not in deal_properties(hubspot)

    code, output = run(hubspot)
    assert code == 0, output
    assert {"posthog_account_id", "posthog_csm_email", "posthog_health_score"} <= deal_properties(hubspot)
    assert hubspot.count("/properties/{objectType}", "POST", 201) == 3  # the company external id exists already

    hubspot.reset_counters()
    code, output = run(hubspot)
    assert code == 0 and "0 created" in output
    assert hubspot.count("/properties/{objectType}", "POST") == 0


def test_setup_reports_a_bad_token_without_showing_it(hubspot: HubSpotSandbox) -> None:
    app = typer.Typer()
    app.command()(setup_command)
    result = CliRunner().invoke(app, ["--token", "pat-wrong", "--host", hubspot.url])
    assert result.exit_code == 2
    assert "401" in result.output and "pat-wrong" not in result.output
