"""A PostHog stand-in of the current generation (custom properties, relationships), for the modules that need one
while the shared ``posthog_server`` is pinned to the seed generation: ``from tests.support.current_posthog import
posthog_server`` in a test module makes its ``posthog``/``ph`` fixtures use it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.posthog.config import PostHogSandboxConfig
from tests.conftest import KEYS, MEMBERS, PostHogSandbox, running_posthog


@pytest.fixture(scope="module")
def posthog_server() -> Iterator[PostHogSandbox]:
    config = PostHogSandboxConfig(projects=(1, 2), keys=KEYS, members=MEMBERS, generation="current")
    with running_posthog(config) as sandbox:
        yield sandbox
