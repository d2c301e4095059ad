"""crmsync installed the way a server or a container installs it: a wheel built from the checkout, installed
(not editable) into a fresh virtualenv, run from a directory that holds no source tree.

Code that reads files by paths outside its packages (``.../site-packages/examples/crmsync.yaml``) fails here and
nowhere else: the checkout, where every other test runs, has those files next to the packages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REDIS_URL
from workers import data

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("sync", "connectors", "workers", "sandbox")


@pytest.mark.parametrize("name", [data.EXAMPLE_CONFIG, data.EXAMPLE_METRICS])
def test_the_examples_are_the_packaged_files(name: str) -> None:
    """``examples/`` documents what the package ships; the two must not drift apart."""
    assert (ROOT / "examples" / name).read_text(encoding="utf-8") == data.read_text(name)


def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, (args, result.stdout[-3000:], result.stderr[-3000:])
    return result  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel of this checkout installed; returns its ``bin`` directory."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"  # a copy, as the Dockerfile's build stage has: the build leaves nothing in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(source)])
    (wheel,) = wheels.glob("crmsync-*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)], timeout=600)
    return venv / "bin"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_installed_wheel_runs_the_demo(installed: Path, tmp_path: Path) -> None:
    own_db = REDIS_URL.rsplit("/", 1)[0] + "/11"  # Celery queues of its own, whatever else uses the server
    env = {**os.environ, "COLUMNS": "120", "REDIS_URL": own_db, "PATH": f"{installed}:{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    where = _run([str(installed / "python"), "-c", "import workers, sandbox; print(workers.__file__)"], cwd=tmp_path)
    assert "site-packages" in where.stdout  # the installed copy, not the checkout
    result = subprocess.run(
        [str(installed / "crmsync"), "demo"], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path
    )
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 0, output[-4000:]
    assert "Full sync of every CRM" in output and "PostHog showed the new name" in output


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_installed_wheel_brings_up_the_sandbox(installed: Path, tmp_path: Path) -> None:
    from tests.workers.test_cli import _sandbox_up

    env = {**os.environ, "PATH": f"{installed}:{os.environ['PATH']}", "REDIS_URL": REDIS_URL}
    env.pop("PYTHONPATH", None)
    config = tmp_path / "crmsync.sandbox.yaml"
    up = _sandbox_up(config, "crmsync-wheel", env, command=[str(installed / "crmsync")], cwd=tmp_path)
    try:
        assert "mappings" in config.read_text()
    finally:
        up.terminate()
        up.wait(timeout=30)
