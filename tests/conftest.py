"""Fixtures shared by every test package: the PostHog stand-in on loopback and a client for it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis
from pydantic import SecretStr

from sandbox.posthog.app import ApiKey, Member, PostHogSandboxConfig, create_app
from sandbox.posthog.config import GENERATIONS
from sync.ledger import Ledger, delete_keys
from sync.posthog import PostHogClient
from sync.retry import RetryPolicy
from sync.settings import PostHogSettings
from tests.support.redis_counting import counting_client
from workers.serving import ServerThread

POSTHOG_KEY = "phx_test_all"
MEMBERS = (
    Member(7, "ana@example.com", "Ana"),
    Member(8, "ben@example.com", "Ben"),
    Member(9, "cy@example.com"),
)
KEYS = (
    ApiKey(POSTHOG_KEY, ("*",)),
    ApiKey("phx_test_ro", ("account:read", "usage_metric:read")),
    ApiKey("phx_test_p2", ("*",), (2,)),
)


@dataclass
class PostHogSandbox:
    """A running PostHog stand-in plus helpers to read its counters and set faults."""

    server: ServerThread
    admin: httpx.Client

    @property
    def url(self) -> str:
        return self.server.url

    def stats(self) -> dict[str, Any]:
        return dict(self.admin.get("/_sandbox/stats").json())

    def count(self, method: str | None = None, route_suffix: str = "", status: int | None = None) -> int:
        return sum(
            row["count"]
            for row in self.stats()["requests"]
            if (method is None or row["method"] == method)
            and row["route"].endswith(route_suffix)
            and (status is None or row["status"] == status)
        )

    def faults(self, **config: Any) -> None:
        self.admin.post("/_sandbox/faults", json=config).raise_for_status()

    def reset(self) -> None:
        self.admin.post("/_sandbox/reset").raise_for_status()

    def reset_counters(self) -> None:
        self.admin.post("/_sandbox/stats/reset").raise_for_status()

    def throttle(self, *rates: str) -> None:
        """Throttle every key like PostHog (``throttle("480/60", "4800/3600")``); no rates: off."""
        self.admin.post("/_sandbox/throttle", json={"rates": list(rates)}).raise_for_status()

    def client(self, key: str = POSTHOG_KEY, project_id: int = 1, **policy: Any) -> PostHogClient:
        settings = PostHogSettings(host=self.url, personal_api_key=SecretStr(key), project_id=project_id)
        retry = RetryPolicy(**{"max_retries": 3, "sleep": lambda _s: None, **policy})
        return PostHogClient(settings, retry=retry)


@contextmanager
def running_posthog(config: PostHogSandboxConfig) -> Iterator[PostHogSandbox]:
    """A PostHog stand-in on loopback for the block (session fixtures of every test package use this)."""
    with ServerThread(create_app(config)) as server, httpx.Client(base_url=server.url, trust_env=False) as admin:
        yield PostHogSandbox(server, admin)


def emptied(sandbox: PostHogSandbox) -> Iterator[PostHogSandbox]:
    """Body of a per-test fixture: the shared stand-in emptied, counters and faults cleared, faults cleared after."""
    sandbox.reset()
    yield sandbox
    sandbox.faults()


@pytest.fixture(scope="session")
def posthog_server() -> Iterator[PostHogSandbox]:
    # Today's PostHog (the stand-in's default generation, no proxy Retry-After); other generations:
    # ``posthog_generations``.
    config = PostHogSandboxConfig(projects=(1, 2), keys=KEYS, members=MEMBERS)
    with running_posthog(config) as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def posthog_generations() -> Iterator[dict[str, PostHogSandbox]]:
    """One stand-in per generation of PostHog's accounts API (``seed``, ``transitional``, ``current``), each as
    PostHog serves it: no proxy adding ``Retry-After``."""
    with ExitStack() as stack:
        yield {
            g: stack.enter_context(
                running_posthog(PostHogSandboxConfig(projects=(1, 2), keys=KEYS, members=MEMBERS, generation=g))
            )
            for g in GENERATIONS
        }


@pytest.fixture
def posthog(posthog_server: PostHogSandbox) -> Iterator[PostHogSandbox]:
    """The shared stand-in, emptied and with counters and faults cleared for this test."""
    yield from emptied(posthog_server)


@pytest.fixture
def throttle(posthog: PostHogSandbox) -> Iterator[Callable[..., None]]:
    """Set the stand-in's throttles for this test (``throttle("3/60")``); off again afterwards."""
    yield posthog.throttle
    posthog.throttle()


@pytest.fixture
def ph(posthog: PostHogSandbox) -> Iterator[PostHogClient]:
    with posthog.client() as client:
        yield client


# -- Redis: the real server, a key prefix of each test's own, cleaned up after ------------------------------

REDIS_URL = os.environ.get("CRMSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(autouse=True, scope="session")
def _no_outer_redis_url() -> Iterator[None]:
    """Tests name their Redis themselves (``CRMSYNC_TEST_REDIS_URL``, a database of their own, a private
    ``redis-server``). A ``REDIS_URL`` exported in the shell that runs them overrides every config they build
    (``parse_config``), so an in-process runtime read another Redis than its worker wrote: the Celery end-to-end
    fixture pinged the wrong database, the throttled and Redis-outage tests read or killed the wrong server.
    It is removed for the session (tests that need it set it with ``monkeypatch``)."""
    outer = os.environ.pop("REDIS_URL", None)
    yield
    if outer is not None:
        os.environ["REDIS_URL"] = outer


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = counting_client(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail(f"these tests need a Redis server at {REDIS_URL} (.ci/run starts one)")
    yield client
    client.close()


@pytest.fixture
def ledger(redis_client: redis.Redis) -> Iterator[Ledger]:
    prefix = f"crmsync-test-{uuid.uuid4().hex[:12]}"
    yield Ledger(redis_client, project_id=1, prefix=prefix)
    delete_keys(redis_client, f"{prefix}:*")
