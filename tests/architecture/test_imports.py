"""Which package may import which: the import rules of issue 22 that hold today, read from every module's imports.

Each test states one rule of ``docs/architecture.md`` ("Import rules"):

- ``sync/`` (the engine, the ledger, the PostHog client and the connector protocol) imports nothing of
  ``connectors/``, ``workers/`` or ``sandbox/``;
- ``connectors/`` imports neither ``workers/`` nor ``sandbox/``;
- of the rest, only the demo and the ``crmsync sandbox`` commands import ``sandbox/``;
- the status page (``workers.ui``) does not import the command line (``workers.cli*``).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("sync", "connectors", "workers", "sandbox")


def imports() -> dict[str, set[str]]:
    """Module name → the project modules it imports (absolute and relative imports, anywhere in the module)."""
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            here = parts[:-1]
            targets: set[str] = set()
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    targets.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom):
                    base = ".".join(here[: len(here) - node.level + 1]) if node.level else ""
                    name = ".".join(p for p in (base, node.module or "") if p)
                    targets.add(name)
                    targets.update(f"{name}.{alias.name}" for alias in node.names)
            found[module] = {t for t in targets if t.split(".")[0] in PACKAGES}
    return {m: {_module_of(t, found) for t in targets} for m, targets in found.items()}


def _module_of(target: str, modules: dict[str, set[str]]) -> str:
    """The module a target names: ``sync.connector.Connector`` → ``sync.connector``."""
    while target not in modules and "." in target:
        target = target.rsplit(".", 1)[0]
    return target


def importers_of(prefix: str, graph: dict[str, set[str]]) -> set[str]:
    return {m for m, targets in graph.items() if any(t == prefix or t.startswith(prefix + ".") for t in targets)}


GRAPH = imports()


def outside(package: str, modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] != package}


def test_the_scan_reads_the_source_tree() -> None:
    assert "sync.engine" in GRAPH and "sync.connector" in GRAPH["sync.engine"]
    assert "workers.ui.links" in GRAPH and "connectors.registry" in GRAPH["workers.ui.links"]


def test_sync_imports_nothing_of_the_other_packages() -> None:
    sync = {m for m in GRAPH if m.startswith("sync")}
    for package in ("connectors", "workers", "sandbox"):
        assert importers_of(package, GRAPH) & sync == set(), package


def test_connectors_import_neither_workers_nor_sandbox() -> None:
    connectors = {m for m in GRAPH if m.startswith("connectors")}
    assert importers_of("workers", GRAPH) & connectors == set()
    assert importers_of("sandbox", GRAPH) & connectors == set()


SANDBOX_USERS = {
    "workers.demo",  # runs the stand-ins
    "workers.cli_sandbox",  # the `crmsync sandbox` commands
    "workers.cli",  # registers the sandbox commands
}


def test_only_the_demo_and_the_sandbox_commands_import_sandbox() -> None:
    assert outside("sandbox", importers_of("sandbox", GRAPH)) == SANDBOX_USERS


def test_the_status_page_does_not_import_the_command_line() -> None:
    page = {m for m in GRAPH if m.startswith("workers.ui")}
    cli = {m for m in GRAPH if m.startswith("workers.cli")}
    assert {m for m in page if GRAPH[m] & cli} == set()
