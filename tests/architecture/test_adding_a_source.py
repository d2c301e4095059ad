"""``docs/adding-a-source.md`` lists the files a source has; every registered source has them, so the guide and the
tree agree (a source missing one fails here, naming it)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from connectors.registry import CONNECTORS

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "adding-a-source.md"
FILES = (
    "connectors/{name}/facts.py",
    "connectors/{name}/config.py",
    "connectors/{name}/errors.py",
    "connectors/{name}/client.py",
    "connectors/{name}/connector.py",
    "sandbox/{name}/standin.py",
    "tests/connectors/{name}/__init__.py",
    "tests/connectors/{name}/test_contract.py",
    "docs/connectors/{name}.md",
)


def test_the_guide_lists_the_files_checked_here() -> None:
    text = GUIDE.read_text()
    for pattern in FILES:
        assert f"`{pattern.format(name='<name>')}`" in text, pattern


@pytest.mark.parametrize("name", sorted(CONNECTORS))
def test_every_registered_source_has_the_guides_files(name: str) -> None:
    missing = [p.format(name=name) for p in FILES if not (ROOT / p.format(name=name)).is_file()]
    assert missing == []
    assert CONNECTORS[name].startswith(f"connectors.{name}.connector:")


@pytest.mark.parametrize("name", sorted(CONNECTORS))
def test_its_test_package_declares_the_block_the_registry_test_builds_it_from(name: str) -> None:
    tree = ast.parse((ROOT / "tests" / "connectors" / name / "__init__.py").read_text())
    assigned = {
        t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)
    }
    assert "BLOCK" in assigned


@pytest.mark.parametrize("name", sorted(CONNECTORS))
def test_its_mapping_is_in_both_example_configs(name: str) -> None:
    import yaml

    for config in ("examples/crmsync.yaml", "workers/data/crmsync.yaml"):
        raw = yaml.safe_load((ROOT / config).read_text())
        assert name in raw["mappings"], config
