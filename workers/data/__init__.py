"""Files the code reads at run time, shipped inside the package (read through ``importlib.resources``, so they
are found in a wheel installed into ``site-packages`` as well as in a checkout).

- ``crmsync.yaml``: the example mappings, ownership and identity rules (``sandbox up`` and the demo use them).
- ``metrics.yaml``: the example usage metrics the demo applies.

``examples/`` at the top of the repository holds the same two files as documentation;
``tests/workers/test_package.py`` checks that they stay equal.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import as_file, files
from pathlib import Path

EXAMPLE_CONFIG = "crmsync.yaml"
EXAMPLE_METRICS = "metrics.yaml"


def read_text(name: str) -> str:
    """The text of the packaged file ``name`` (``EXAMPLE_CONFIG`` or ``EXAMPLE_METRICS``)."""
    return files(__name__).joinpath(name).read_text(encoding="utf-8")


@contextmanager
def path_of(name: str) -> Iterator[Path]:
    """A real file path for the packaged file ``name`` for the block (for readers that want a path)."""
    with as_file(files(__name__).joinpath(name)) as path:
        yield path
