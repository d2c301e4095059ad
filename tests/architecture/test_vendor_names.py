"""Vendor names stay inside the connectors: ``sync/`` and ``workers/`` read a source's facts from the registry.

A module outside ``connectors/`` that compares a value with a source's name (``source == "hubspot"``, ``in
("stripe", ...)``, ``case "salesforce":``) or keys a table by source names (``{"hubspot": ...}``, a tuple of them)
is a place a new source would have to edit; the facts belong to the connector (``sync.vendor_facts``). The same
holds for the stand-ins' shared modules (``sandbox/*.py``: the stack, the sandbox commands): each source's stand-in
describes itself in ``sandbox/<source>/standin.py`` (``sandbox.standin.StandIn``). The demo and ``sandbox up``
still call one vendor's piece by name (the demo's webhook round trip renames a Stripe customer; ``sandbox up`` takes
HubSpot's webhook format), which this scan does not forbid; neither holds a table of sources.
"""

from __future__ import annotations

import ast
from pathlib import Path

from connectors.registry import CONNECTORS

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("sync", "workers")
SANDBOX_SHARED = "sandbox"  # its top-level modules only: sandbox/<source>/ is that source's own folder
NAMES = frozenset(CONNECTORS)


def _is_name(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value in NAMES


def vendor_branches(tree: ast.AST) -> list[tuple[int, str]]:
    """``(line, what)`` for every comparison with, match on, or table of literal source names in ``tree``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for operand in operands:
                elements = operand.elts if isinstance(operand, ast.Tuple | ast.List | ast.Set) else [operand]
                if any(_is_name(e) for e in elements):
                    found.append((node.lineno, "comparison with a source name"))
                    break
        elif isinstance(node, ast.MatchValue) and _is_name(node.value):
            found.append((node.lineno, "match on a source name"))
        elif isinstance(node, ast.Dict) and any(_is_name(k) for k in node.keys):
            found.append((node.lineno, "table keyed by source names"))
        elif isinstance(node, ast.Tuple | ast.List | ast.Set) and sum(_is_name(e) for e in node.elts) >= 2:
            found.append((node.lineno, "collection of source names"))
    return found


def test_no_module_in_sync_or_workers_branches_on_a_vendor_name() -> None:
    offenders = []
    paths = [path for package in SCANNED for path in sorted((ROOT / package).rglob("*.py"))]
    paths += sorted((ROOT / SANDBOX_SHARED).glob("*.py"))
    for path in paths:
        relative = path.relative_to(ROOT).as_posix()
        for line, what in vendor_branches(ast.parse(path.read_text(), relative)):
            offenders.append(f"{relative}:{line}: {what}")
    assert offenders == []


def test_the_scan_sees_each_form_it_forbids() -> None:
    samples = {
        'if source == "hubspot": pass': "comparison with a source name",
        'ok = s in ("stripe", "x")': "comparison with a source name",
        'match s:\n    case "salesforce": pass': "match on a source name",
        'KEYS = {"hubspot": "host"}': "table keyed by source names",
        'ORDER = ("salesforce", "stripe")': "collection of source names",
    }
    for source, what in samples.items():
        assert [w for _, w in vendor_branches(ast.parse(source))] == [what], source
    assert vendor_branches(ast.parse('runtime.connector("hubspot")\nname = "stripe"')) == []
