"""Every vendor call takes the one path (``sync.calls``): no connector sleeps, retries or spends a budget itself.

Scanned over the source tree of ``connectors/`` (and the PostHog client):

- no module sleeps: no call of ``sleep`` and no reference to ``time.sleep`` (waits are the path's, injectable);
- no module has a retry loop of its own: no ``while`` loop, and no ``for`` loop whose ``except`` goes round again;
- no module takes, drains or blocks a budget itself (``.take(``, ``.drain(``, ``.acquire(``, ``.block(``);
- each connector's client builds a ``VendorCalls``, and the SDKs' own retries are off (HubSpot's urllib3
  ``Retry(total=0)``, Stripe's ``max_network_retries=0``);
- every SDK call is made inside a function or lambda handed to the path (``call``/``_call``): HubSpot's
  ``*_with_http_info`` methods and ``call_api``, Stripe's ``sdk.v1...`` services, and the simple-salesforce client
  the path passes in (``sf``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from connectors.registry import CONNECTORS

ROOT = Path(__file__).resolve().parents[2]
PATH_CALLS = frozenset({"call", "_call"})
BUDGET_METHODS = frozenset({"take", "drain", "acquire", "block", "try_take", "try_acquire"})
CLIENTS = {
    "hubspot": "connectors/hubspot/client.py",
    "stripe": "connectors/stripe/client.py",
    "salesforce": "connectors/salesforce/client.py",
    "zendesk": "connectors/zendesk/client.py",
}
"""The module of each connector that builds its SDK client, and so its one call path."""


def modules() -> list[Path]:
    return sorted((ROOT / "connectors").rglob("*.py"))


def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def called_name(call: ast.Call) -> str | None:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


def sleeps(module: ast.Module) -> list[int]:
    """Calls of ``sleep``, references to ``time.sleep``/``asyncio.sleep``, and imports of either."""
    found = []
    for node in ast.walk(module):
        called = isinstance(node, ast.Call) and called_name(node) == "sleep"
        named = (
            isinstance(node, ast.Attribute)
            and node.attr == "sleep"
            and isinstance(node.value, ast.Name)
            and node.value.id in ("time", "asyncio")
        )
        imported = (
            isinstance(node, ast.ImportFrom)
            and node.module in ("time", "asyncio")
            and any(alias.name == "sleep" for alias in node.names)
        )
        if called or named or imported:
            found.append(getattr(node, "lineno", 0))
    return found


def counts_attempts(loop: ast.For | ast.AsyncFor) -> bool:
    """A ``for`` over ``range(...)`` or ``itertools.count(...)``: a loop of attempts, not of items."""
    source = loop.iter
    return isinstance(source, ast.Call) and called_name(source) in ("range", "count")


def retry_loops(module: ast.Module) -> list[int]:
    """``while`` loops, and loops of attempts that catch an exception (a loop over items that skips a failed one
    is not a retry)."""
    found = []
    for node in ast.walk(module):
        attempts = isinstance(node, ast.For | ast.AsyncFor) and counts_attempts(node)
        catching = attempts and any(isinstance(inner, ast.ExceptHandler) for inner in ast.walk(node))
        if isinstance(node, ast.While) or catching:
            found.append(getattr(node, "lineno", 0))
    return found


def budget_spending(module: ast.Module) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(module)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in BUDGET_METHODS
    ]


def parents(module: ast.Module) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(module) for child in ast.iter_child_nodes(node)}


def handed_to_path(node: ast.AST, module: ast.Module, up: dict[ast.AST, ast.AST]) -> bool:
    """Whether ``node`` sits inside an argument of a call of the path, or inside a function whose name is one."""
    handed = {
        arg.id
        for call in ast.walk(module)
        if isinstance(call, ast.Call) and called_name(call) in PATH_CALLS
        for arg in call.args
        if isinstance(arg, ast.Name)
    }
    child, parent = node, up.get(node)
    while parent is not None:
        if isinstance(parent, ast.Call) and called_name(parent) in PATH_CALLS and child in parent.args:
            return True
        if isinstance(parent, ast.FunctionDef) and parent.name in handed:
            return True
        child, parent = parent, up.get(parent)
    return False


def sdk_calls(module: ast.Module, up: dict[ast.AST, ast.AST]) -> list[ast.AST]:
    """Uses of a vendor SDK's request methods: HubSpot's ``*_with_http_info``/``call_api``, Stripe's ``.v1``
    services, and methods called on the simple-salesforce client handed in by the path (``sf``)."""
    found: list[ast.AST] = []
    for node in ast.walk(module):
        if not isinstance(node, ast.Attribute):
            continue
        request = node.attr.endswith("_with_http_info") or node.attr in ("call_api", "v1")
        parent = up.get(node)
        on_sf = isinstance(node.value, ast.Name) and node.value.id == "sf"
        if request or (on_sf and isinstance(parent, ast.Call) and parent.func is node):
            found.append(node)
    return found


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_connector_module_sleeps_retries_or_spends_a_budget_itself(path: Path) -> None:
    module = tree(path)
    assert sleeps(module) == [], "waiting is the call path's (sync.calls)"
    assert retry_loops(module) == [], "retrying is the call path's; paging is sync.paging.follow's"
    assert budget_spending(module) == [], "budgets are taken and drained by the call path"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_sdk_call_is_handed_to_the_one_path(path: Path) -> None:
    module = tree(path)
    up = parents(module)
    outside = [node.lineno for node in sdk_calls(module, up) if not handed_to_path(node, module, up)]
    assert outside == [], f"SDK calls outside the call path at lines {outside}"


@pytest.mark.parametrize("name", sorted(CONNECTORS))
def test_each_connector_client_builds_the_one_path(name: str) -> None:
    text = (ROOT / CLIENTS[name]).read_text()
    assert "VendorCalls(" in text
    assert "VendorRules(" in text


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_connector_module_is_over_500_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= 500


def test_the_sdks_own_retries_are_off() -> None:
    assert "Retry(total=0" in (ROOT / CLIENTS["hubspot"]).read_text()
    assert "max_network_retries=0" in (ROOT / CLIENTS["stripe"]).read_text()


def test_every_stripe_write_names_its_idempotency_key() -> None:
    """A retry by the path is a new SDK call, and stripe-python generates a new key per call for a POST without one:
    so every create or update the connector sends carries ``options={"idempotency_key": ...}``."""
    writes = []
    for path in (ROOT / "connectors" / "stripe").glob("*.py"):
        for node in ast.walk(tree(path)):
            if isinstance(node, ast.Call) and called_name(node) in ("create", "update", "modify"):
                chain = ast.unparse(node.func)
                if ".v1." in chain:
                    writes.append((path.name, chain, any(k.arg == "options" for k in node.keywords)))
    assert writes and all(named for _, _, named in writes), writes


def test_the_posthog_client_takes_the_same_path() -> None:
    path = ROOT / "sync" / "posthog" / "client.py"
    module = tree(path)
    assert "VendorCalls(" in path.read_text()
    assert sleeps(module) == [] and retry_loops(module) == [] and budget_spending(module) == []


def test_the_checks_find_what_they_look_for() -> None:
    """The scanners see a sleep, a retry loop, a budget spent and an SDK call made outside the path."""
    sample = ast.parse(
        "import time\n"
        "def f(sdk, bucket):\n"
        "    for attempt in range(3):\n"
        "        try:\n"
        "            return sdk.v1.customers.list()\n"
        "        except Exception:\n"
        "            bucket.drain()\n"
        "            time.sleep(1)\n"
        "            continue\n"
    )
    assert sleeps(sample) == [8, 8]
    assert retry_loops(sample) == [3]
    assert budget_spending(sample) == [7]
    up = parents(sample)
    assert [n.lineno for n in sdk_calls(sample, up) if not handed_to_path(n, sample, up)] == [5]
    handed = ast.parse("def g(client):\n    return client.call('list', lambda sdk: sdk.v1.customers.list())\n")
    up = parents(handed)
    assert [n for n in sdk_calls(handed, up) if not handed_to_path(n, handed, up)] == []
    items = ast.parse("for chunk in chunks:\n    try:\n        send(chunk)\n    except OSError:\n        continue\n")
    assert retry_loops(items) == []
