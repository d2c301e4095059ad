"""The PostHog stand-in and every registered source's stand-in in one process, seeded with overlapping identities,
plus the config that points at them.

Used by ``crmsync sandbox up``, ``make demo``, end-to-end tests and benchmarks. Each CRM stand-in describes itself
in ``sandbox/<source>/standin.py`` (``sandbox.standin.StandIn``): the stack names no CRM. With ``seed = N``:

| system | identities (``sandbox.identities.company(i)``) |
|---|---|
| Salesforce | ``[0, N)`` |
| HubSpot | ``[N/3, N/3 + N)`` (a deal per company, some companies with two) |
| Stripe | ``[2N/3, 2N/3 + N)`` (a customer per company, with a subscription) |
| each other source | what its ``StandIn.seed_range`` says |
| PostHog | ``[0, N/5)`` already exist as accounts (same ``external_id``) |

so ``[2N/3, N)`` is in the first three CRMs, and every CRM shares some companies with PostHog. The ten sales reps
(``sales_rep_email(k)``) are CRM owners and PostHog organisation members (user ids 101..110).

``posthog_throttle`` turns on the PostHog stand-in's throttles (e.g. PostHog's own 480/60 and 4800/3600, or
those scaled down in time); the config then carries the same ``posthog.budget``, and ``posthog.budget: []``
(unthrottled) when the stand-in does not throttle.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from sandbox.hubspot.webhooks import WebhookFormat
from sandbox.identities import sales_rep_email
from sandbox.posthog.config import Generation
from sandbox.posthog.throttle import ThrottleRate
from sandbox.salesforce.ids import random_org_id
from sandbox.standin import standins
from workers import data
from workers.serving import ServerThread, free_port

STOP_TIMEOUT_S = 3.0
"""How long ``SandboxStack.stop`` waits for all its servers together (their threads are daemons: one still
finishing cannot keep the process alive)."""

POSTHOG_KEY = "phx_sandbox"
HUBSPOT_TOKEN = "pat-sandbox"
HUBSPOT_APP_SECRET = "sandbox-app-secret"
STRIPE_KEY = "sk_test_sandbox"
STRIPE_WEBHOOK_SECRET = "whsec_sandbox"
SALESFORCE_ORG = "00D000000000001AAA"
"""The org id of a stand-in given no other (``SalesforceSandboxConfig``); a ``SandboxStack`` draws its own."""
SALESFORCE_WEBHOOK_TOKEN = "sandbox-outbound-token"
SALESFORCE_LOGIN = {
    "username": "admin@sandbox.example",
    "password": "sandbox",
    "client_id": "sandbox",
    "client_secret": "sandbox",
}
UI_LOGIN = {"username": "crmsync", "password": "sandbox-ui"}


@dataclass(frozen=True)
class Credentials:
    """Every secret a stack's stand-ins accept and its config carries (the module constants by default).

    A test injects its own, e.g. long unique strings it then looks for in logs and reports."""

    posthog_key: str = POSTHOG_KEY
    hubspot_token: str = HUBSPOT_TOKEN
    hubspot_app_secret: str = HUBSPOT_APP_SECRET
    stripe_key: str = STRIPE_KEY
    stripe_webhook_secret: str = STRIPE_WEBHOOK_SECRET
    salesforce_org: str = field(default_factory=random_org_id)  # each stack is another org (``sync.state``)
    salesforce_webhook_token: str = SALESFORCE_WEBHOOK_TOKEN
    salesforce_username: str = SALESFORCE_LOGIN["username"]
    salesforce_password: str = SALESFORCE_LOGIN["password"]
    salesforce_client_id: str = SALESFORCE_LOGIN["client_id"]
    salesforce_client_secret: str = SALESFORCE_LOGIN["client_secret"]
    ui_username: str = UI_LOGIN["username"]
    ui_password: str = UI_LOGIN["password"]
    more: dict[str, dict[str, str]] = field(default_factory=dict)
    """Secrets of the other stand-ins, by source (``{"zendesk": {"token": ...}}``): each ``StandIn`` reads its own
    here, and takes its module's defaults for what is missing."""

    @property
    def salesforce_login(self) -> dict[str, str]:
        """The ``username``/``password``/``client_id``/``client_secret`` block (as ``SALESFORCE_LOGIN``)."""
        return {
            "username": self.salesforce_username,
            "password": self.salesforce_password,
            "client_id": self.salesforce_client_id,
            "client_secret": self.salesforce_client_secret,
        }


def ranges(seed: int) -> dict[str, tuple[int, int]]:
    """(start, count) of the identities each system is seeded with."""
    return {**{s.name: s.seed_range(seed) for s in standins()}, "posthog": (0, seed // 5)}


@dataclass
class SandboxStack:
    """Start with ``start()``; ``config()`` is a complete crmsync config for it; ``stop()`` ends everything."""

    seed: int = 300
    redis_url: str = "redis://127.0.0.1:6379/0"
    webhook_port: int = 0
    data_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="crmsync-sandbox-")))
    servers: dict[str, ServerThread] = field(default_factory=dict)
    ca_file: Path | None = None
    webhooks: bool = True  # False: the CRMs send no webhooks until ``wire_webhooks()``
    ledger_prefix: str = "crmsync"
    credentials: Credentials = field(default_factory=Credentials)
    posthog_throttle: tuple[ThrottleRate, ...] = ()  # the stand-in's throttles; the config's budget matches
    hubspot_webhook_format: WebhookFormat = "legacy"  # or "generic" (object.* events with objectTypeId)
    # The PostHog generation served (docs/posthog.md): today's, roles on relationships; a 429 carries its wait in
    # the detail only, as PostHog's does (True: a proxy in front adds Retry-After).
    posthog_generation: Generation = "current"
    posthog_proxy_retry_after: bool = False

    @property
    def webhooks_url(self) -> str:
        return f"http://127.0.0.1:{self.webhook_port}"

    def url(self, name: str) -> str:
        return self.servers[name].url

    def start(self) -> SandboxStack:
        from sandbox.posthog.app import ApiKey, Member, PostHogSandboxConfig
        from sandbox.posthog.app import create_app as posthog_app

        if not self.webhook_port:
            self.webhook_port = free_port()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        creds = self.credentials
        members = tuple(Member(101 + k, sales_rep_email(k), f"Rep {k}") for k in range(10))
        posthog = PostHogSandboxConfig(
            db_path=str(self.data_dir / "posthog.sqlite3"),
            keys=(ApiKey(creds.posthog_key, ("*",)),),
            members=members,
            throttle=self.posthog_throttle,
            generation=self.posthog_generation,
            proxy_retry_after=self.posthog_proxy_retry_after,
        )
        crms = standins()
        self.servers = {"posthog": ServerThread(posthog_app(posthog))}
        self.servers.update({standin.name: standin.server(self) for standin in crms})
        for server in self.servers.values():
            server.start()
        with httpx.Client(timeout=60) as http:
            for standin in crms:
                if standin.seed is not None:
                    standin.seed(self, http)
            start, count = ranges(self.seed)["posthog"]
            http.post(f"{self.url('posthog')}/_sandbox/seed", json={"count": count, "start": start}).raise_for_status()
            if self.posthog_generation == "current":  # older generations have no custom properties
                self._define_custom_properties(http)
                if self.posthog_throttle:  # that set-up was done long before a sync: its requests spend no budget
                    rates = {"rates": [str(rate) for rate in self.posthog_throttle]}
                    http.post(f"{self.url('posthog')}/_sandbox/throttle", json=rates).raise_for_status()
        return self

    def _define_custom_properties(self, http: httpx.Client) -> None:
        """The custom properties the example mapping declares, created in the PostHog stand-in as
        ``crmsync setup posthog`` creates them (a fresh stand-in project is then set up like a user's)."""
        from sync.mapping import load_mapping_config

        example = yaml.safe_load(data.read_text(data.EXAMPLE_CONFIG))
        mapping = load_mapping_config({k: example[k] for k in ("ownership", "mappings") if k in example})
        headers = {"Authorization": f"Bearer {self.credentials.posthog_key}"}
        for name, (display_type, options) in mapping.custom_definitions().items():
            body: dict[str, Any] = {"name": name, "display_type": display_type.value}
            if options:
                body["options"] = [{"label": label, "color": f"preset-{n % 10 + 1}"} for n, label in enumerate(options)]
            url = f"{self.url('posthog')}/api/projects/1/custom_property_definitions/"
            http.post(url, json=body, headers=headers).raise_for_status()

    def wire_webhooks(self) -> None:
        """Point every CRM stand-in's webhooks at the receiver (for a stack started with ``webhooks=False``)."""
        with httpx.Client(timeout=10, verify=str(self.ca_file) if self.ca_file else True) as http:
            for standin in standins():
                standin.wire_webhooks(self, http)
        self.webhooks = True

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop every server at once (each finishes its requests within uvicorn's graceful 2 s, then they are
        cancelled), waiting ``timeout`` seconds in all, not per server: one after the other, six servers with a
        request in flight each took 12 s and more, past what ``sandbox up`` promises after Ctrl-C."""
        servers, self.servers = list(self.servers.values()), {}
        for server in servers:
            server.request_stop()
        deadline = time.monotonic() + timeout
        for server in servers:
            server.join(deadline - time.monotonic())

    def __enter__(self) -> SandboxStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def config(self) -> dict[str, Any]:
        """A complete ``crmsync.yaml`` for this stack: the example mappings plus every endpoint and credential."""
        example = yaml.safe_load(data.read_text(data.EXAMPLE_CONFIG))
        creds = self.credentials
        return {
            "posthog": {
                "host": self.url("posthog"),
                "stand_in": True,  # http and a loopback address are allowed for stand-ins only
                "project_id": 1,
                "personal_api_key": creds.posthog_key,
                # the budget the stand-in enforces; none when it does not throttle (tests stay fast)
                "budget": [str(rate) for rate in self.posthog_throttle],
            },
            "redis_url": self.redis_url,
            "ledger_prefix": self.ledger_prefix,
            "sources": {standin.name: standin.source_block(self) for standin in standins()},
            "outbound": {"schedule": {"every_s": 60}},
            "webhooks": {"coalesce_s": 1.0},
            "ui": {"username": creds.ui_username},
            **{k: example[k] for k in ("ownership", "mappings", "identity") if k in example},
        }

    def endpoints(self) -> dict[str, Any]:
        """The JSON ``--endpoints-out`` writes, for scripts (``ui`` once a status page runs, ``serve_ui``)."""
        creds = self.credentials
        return {
            "posthog": {"url": self.url("posthog"), "api_key": creds.posthog_key, "project_id": 1},
            **{standin.name: standin.endpoints(self) for standin in standins()},
            "webhooks": {"url": self.webhooks_url},
            **(
                {"ui": {"url": f"{self.url('ui')}/ui/", "username": creds.ui_username, "password": creds.ui_password}}
                if "ui" in self.servers
                else {}
            ),
        }

    def write(self, config_out: Path, endpoints_out: Path | None = None) -> None:
        """Write the config (and the endpoints JSON): both hold credentials, so both are readable by the owner only."""
        write_private(config_out, yaml.safe_dump(self.config(), sort_keys=False))
        if endpoints_out is not None:
            write_private(endpoints_out, json.dumps(self.endpoints(), indent=2))


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 from the first byte (an existing file is narrowed to 0600 too)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
