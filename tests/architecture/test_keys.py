"""One module builds every Redis key (``sync/keys.py``): the docs' key table is rendered from it, no other module of
``sync/`` or ``workers/`` builds a key of the namespace, and the webhook receiver takes its key names from it, not
from the task module."""

from __future__ import annotations

import re
from pathlib import Path

from sync.keys import key_table
from tests.architecture.test_imports import GRAPH

ROOT = Path(__file__).resolve().parents[2]
START = "<!-- key table: rendered by sync.keys.key_table(); tests/architecture/test_keys.py checks it -->\n"
END = "<!-- end key table -->\n"
NAMESPACED = re.compile(r"""f["'][^"']*(\{[\w.]*\bns\}:|:budget:|crmsync:budget)""")
"""An f-string building a key of the namespace (``f"{self.ns}:..."``) or of a budget (PostHog's or a CRM's)."""


def test_the_docs_key_table_is_the_one_the_key_module_renders() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    assert START in doc and END in doc
    shown = doc.split(START, 1)[1].split(END, 1)[0]
    assert shown == key_table(), "re-render it: python -c 'from sync.keys import key_table; print(key_table())'"


def test_no_other_module_builds_a_key_of_the_namespace() -> None:
    builders = []
    for package in ("sync", "workers", "connectors"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.relative_to(ROOT).as_posix() == "sync/keys.py":
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if NAMESPACED.search(line):
                    builders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert builders == []


def test_the_webhook_receiver_does_not_load_the_tasks() -> None:
    assert "workers.tasks" not in GRAPH["workers.webhooks"]
