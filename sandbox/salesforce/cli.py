"""``crmsync sandbox run salesforce``: the Salesforce stand-in in the foreground, over TLS on 127.0.0.1."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer
import uvicorn

from sandbox.salesforce.app import create_app
from sandbox.salesforce.config import DEFAULT_DATA_DIR, SalesforceSandboxConfig, login_domain, make_tls
from sandbox.salesforce.ids import random_org_id

HOST = "127.0.0.1"


def run_salesforce(
    host: str = typer.Option(HOST, help="Interface to bind (127.0.0.1 unless told; 0.0.0.0 in a container)."),
    port: int = typer.Option(8040, help="Port to listen on."),
    tls_name: list[str] = typer.Option([], help="Extra host name for the certificate (e.g. a service name)."),
    seed: int = typer.Option(0, help="Seed this many deterministic accounts (and 10 sales-rep users) at start."),
    seed_start: int = typer.Option(0, help="Identity index of the first seeded account."),
    ca_out: Path | None = typer.Option(None, help="Also write the CA certificate (PEM) here for clients."),
    outbound_url: str | None = typer.Option(None, help="Listener URL for Outbound Messages (SOAP)."),
    org_id: str | None = typer.Option(None, help="Organization id (18 characters); random unless given."),
    username: str = typer.Option("admin@sandbox.example", help="API user's username."),
    password: str = typer.Option("sandbox", help="API user's password."),
    client_id: str = typer.Option("sandbox", help="Connected app consumer key."),
    client_secret: str = typer.Option("sandbox", help="Connected app consumer secret."),
    daily_api_limit: int = typer.Option(15000, help="Daily API request allowance (Sforce-Limit-Info)."),
    batch_size: int = typer.Option(2000, help="Default query page size."),
    token_lifetime: float = typer.Option(7200, help="Access token lifetime in seconds."),
    data_dir: Path = typer.Option(DEFAULT_DATA_DIR, help="Where TLS material is kept."),
    jwt_public_key: Path | None = typer.Option(
        None, help="Certificate or public key (PEM) that verifies JWT bearer assertions."
    ),
) -> None:
    """Run the Salesforce stand-in (REST API over TLS, Outbound Messages, admin routes under /_sandbox)."""
    cert_path, key_path, ca_path = make_tls(data_dir, tuple(tls_name))
    if ca_out is not None:
        ca_out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ca_path, ca_out)
    config = SalesforceSandboxConfig(
        username=username,
        password=password,
        client_id=client_id,
        client_secret=client_secret,
        org_id=org_id or random_org_id(),
        outbound_url=outbound_url,
        seed=seed,
        seed_start=seed_start,
        daily_api_limit=daily_api_limit,
        batch_size=batch_size,
        token_lifetime_s=token_lifetime,
        data_dir=data_dir,
        jwt_public_key_pem=jwt_public_key.read_text() if jwt_public_key else None,
    )
    app = create_app(config)
    url = f"https://{host if host != '0.0.0.0' else HOST}:{port}"
    typer.echo(f"Salesforce stand-in on {url}  (instance_url; API v59.0)")
    typer.echo(f"  CA certificate:  {ca_out or ca_path}")
    typer.echo(
        f"  OAuth:           username={username} password={password} client_id={client_id} "
        f"client_secret={client_secret}"
    )
    typer.echo(f"  SDK login:       domain={login_domain(url)!r} with a requests.Session trusting the CA")
    typer.echo(f"  Outbound URL:    {outbound_url or '(none; POST /_sandbox/outbound to set)'}")
    typer.echo(f"  Seeded accounts: {seed} from index {seed_start}; admin routes under {url}/_sandbox/")
    uvicorn.run(app, host=host, port=port, ssl_certfile=str(cert_path), ssl_keyfile=str(key_path), log_level="info")
