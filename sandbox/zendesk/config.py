"""Settings of the Zendesk stand-in."""

from __future__ import annotations

from dataclasses import dataclass

EMAIL = "admin@sandbox.example"
TOKEN = "zendesk-sandbox-token"
WEBHOOK_SECRET = "zendesk-sandbox-signing-secret"


@dataclass
class ZendeskSandboxConfig:
    """What the stand-in accepts and how it limits.

    ``email``/``token``: the API token credentials (basic auth ``{email}/token:{token}``). ``requests_per_minute``:
    the account's limit (Zendesk's plans allow 200 to 2,500); ``export_requests_per_minute``: the incremental
    exports' own limit (10, 30 with the High Volume add-on); 0 turns a limit off. ``export_page_size``: organizations
    per export page (Zendesk's 1,000). ``job_polls``: how many job status reads answer ``working`` before a bulk
    job is ``completed`` (0: done at the first read). ``webhook_url``: where signed organization events go.
    ``fields``: organization field keys that exist from the start (as ``crmsync setup zendesk`` would create).
    """

    email: str = EMAIL
    token: str = TOKEN
    webhook_url: str | None = None
    webhook_secret: str = WEBHOOK_SECRET
    requests_per_minute: int = 700
    export_requests_per_minute: int = 10
    export_page_size: int = 1000
    job_polls: int = 1
    seed: int = 0
    seed_start: int = 0
    fields: tuple[str, ...] = ()
