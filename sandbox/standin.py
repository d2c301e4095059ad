"""What a CRM stand-in tells the stack about itself: its ``STANDIN`` (``sandbox/<source>/standin.py``).

The stack (``sandbox.stack.SandboxStack``), ``crmsync sandbox up|run``, the demo and the end-to-end tests drive
every registered source's stand-in through this description, so a new source joins as a folder: its stand-in
package declares one ``StandIn`` and nothing outside it names the vendor. The stand-ins are found from the
registered sources (``connectors.registry.CONNECTORS``): ``sandbox.<source>.standin.STANDIN``.

A ``StandIn`` says:

- ``seed_range(seed)``: ``(start, count)`` of the identities (``sandbox.identities.company(i)``) it is seeded
  with when the stack is seeded with ``seed``: the ranges overlap, so records of several CRMs join one account;
- ``server(stack)``: its app, served (TLS when it needs it); ``seed(stack, http)``: seeding after start, when it
  is not done by the server's own configuration;
- ``source_block(stack)``: its ``sources.<name>`` block of a complete ``crmsync.yaml`` for the stack;
- ``endpoints(stack)``: its entry of ``--endpoints-out``;
- ``wire_webhooks(stack, http)``: point its webhooks at the stack's receiver (a stack started without them);
- ``demo_edit(stack, http, seed)``: one edit a person would make in its UI, for ``crmsync demo`` (a line saying
  what changed);
- ``run``: the typer command ``crmsync sandbox run <name>``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from sandbox.stack import SandboxStack
    from workers.serving import ServerThread


@dataclass(frozen=True)
class StandIn:
    """One CRM stand-in, as the stack and the sandbox commands see it (see the module docstring)."""

    name: str
    seed_range: Callable[[int], tuple[int, int]]
    server: Callable[[SandboxStack], ServerThread]
    source_block: Callable[[SandboxStack], dict[str, Any]]
    endpoints: Callable[[SandboxStack], dict[str, Any]]
    wire_webhooks: Callable[[SandboxStack, httpx.Client], None]
    demo_edit: Callable[[SandboxStack, httpx.Client, int], str]
    run: Callable[..., None]
    seed: Callable[[SandboxStack, httpx.Client], None] | None = None


def standin(name: str) -> StandIn:
    """The stand-in of source ``name`` (``sandbox/<name>/standin.py``)."""
    found: StandIn = import_module(f"sandbox.{name}.standin").STANDIN
    return found


def standins() -> tuple[StandIn, ...]:
    """Every registered source's stand-in, in the registry's order."""
    from connectors.registry import CONNECTORS

    return tuple(standin(name) for name in CONNECTORS)


def webhook_url(stack: SandboxStack, path: str) -> str | None:
    """The receiver's URL for ``path`` (``/webhooks/<source>...``), or None for a stack started without webhooks."""
    return f"{stack.webhooks_url}{path}" if stack.webhooks else None
