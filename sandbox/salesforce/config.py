"""Settings of the Salesforce stand-in, its TLS material, and how to point simple-salesforce at it.

simple-salesforce always builds ``https://`` URLs, so the stand-in serves TLS with a throwaway CA
(``make_tls``); clients trust that CA through a ``requests.Session`` (``sdk_session``).

Reaching the token endpoint through the SDK's login flows needs one trick: the SDK posts to
``https://{domain}.salesforce.com/services/oauth2/token``. Passing ``domain=login_domain(url)``, i.e.
``"127.0.0.1:PORT/services/oauth2/token#"``, turns the ``.salesforce.com/...`` tail into a URL fragment,
which HTTP clients never send, so the request lands on the stand-in::

    s = sdk_session(ca_path)
    sf = Salesforce(username=..., password=..., consumer_key=..., consumer_secret=...,
                    domain=login_domain(server.url), session=s)

For the JWT bearer flow pass the same value as ``instance_url`` and leave ``domain`` alone, so the
assertion's audience stays ``https://login.salesforce.com``::

    Salesforce(username=..., consumer_key=..., privatekey=pem, instance_url=login_domain(server.url), session=s)

With a token already in hand: ``Salesforce(instance_url=server.url, session_id=token, session=s,
version="59.0")``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests
import trustme

DEFAULT_DATA_DIR = Path(".sandbox") / "salesforce"


@dataclass
class SalesforceSandboxConfig:
    """What one stand-in org looks like.

    ``seed`` accounts (identities ``seed_start ..``) are created at start-up; ``outbound_url`` receives
    Outbound Messages; ``daily_api_limit`` is the org's allowance reported in ``Sforce-Limit-Info``;
    ``batch_size`` is the default query page size (``Sforce-Query-Options: batchSize=N`` overrides it within
    200..2000); ``jwt_public_key_pem`` (certificate or public key) enables the JWT bearer flow.
    ``outbound_attempts`` and ``outbound_retry_base_s`` shape the retries of unacknowledged messages.
    ``jwt_audiences``: the JWT ``aud`` values the org accepts (None: ``https://login.salesforce.com``,
    ``https://test.salesforce.com`` and the stand-in's own URL; orgs differ, e.g. some accept only their My Domain).
    ``client_credentials_user``: whether the connected app has a Run As user for the client-credentials flow
    (without one Salesforce answers ``invalid_grant`` / ``no client credentials user enabled``).
    ``max_request_bytes``: the most a request's URI plus headers may take; more answers 431, a URI alone over it
    414 (Salesforce documents 16,384 bytes).
    ``data_dir`` is where the CLI keeps its TLS material (``make_tls``); the app itself keeps everything in
    memory.
    """

    username: str = "admin@sandbox.example"
    password: str = "sandbox"
    client_id: str = "sandbox"
    client_secret: str = "sandbox"
    org_id: str = "00D000000000001AAA"
    outbound_url: str | None = None
    seed: int = 0
    daily_api_limit: int = 15000
    batch_size: int = 2000
    token_lifetime_s: float = 7200
    data_dir: Path | str | None = None
    jwt_public_key_pem: str | None = None
    seed_start: int = 0
    outbound_attempts: int = 8
    outbound_retry_base_s: float = 0.25
    jwt_audiences: tuple[str, ...] | None = None
    client_credentials_user: bool = True
    max_request_bytes: int = 16_384


def make_tls(data_dir: Path | str, extra_names: tuple[str, ...] = ()) -> tuple[Path, Path, Path]:
    """Write (or reuse) a throwaway CA and a server certificate for 127.0.0.1, localhost and ``extra_names``
    (e.g. a container's service name).

    Returns ``(cert_path, key_path, ca_path)`` inside ``data_dir``; existing files are reused so clients
    that already trust the CA keep working across restarts.
    """
    directory = Path(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path, ca_path = directory / "server.pem", directory / "server-key.pem", directory / "ca.pem"
    if cert_path.exists() and key_path.exists() and ca_path.exists():
        return cert_path, key_path, ca_path
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost", *extra_names)
    ca.cert_pem.write_to_path(str(ca_path))
    server.private_key_pem.write_to_path(str(key_path))
    cert_path.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    return cert_path, key_path, ca_path


def sdk_session(ca_path: Path | str) -> requests.Session:
    """A ``requests.Session`` that trusts only the stand-in's CA and ignores proxy/CA environment variables."""
    session = requests.Session()
    session.verify = str(ca_path)
    session.trust_env = False
    return session


def login_domain(server_url: str) -> str:
    """The ``domain`` (or JWT ``instance_url``) value that makes simple-salesforce log in to the stand-in."""
    netloc = urlsplit(server_url).netloc or server_url
    return f"{netloc}/services/oauth2/token#"
