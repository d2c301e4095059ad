"""One Redis client factory: Celery's Sentinel URL form for broker, results and ledger, checked at start-up."""

from __future__ import annotations

import pytest

from sync.errors import ConfigError
from tests.workers.test_config import raw
from workers.config import parse_config
from workers.redis_conn import sentinel_nodes, transport_options

SENTINELS = "sentinel://:s3cret-pw@10.0.0.1:26379/2;sentinel://10.0.0.2:26380;sentinel://10.0.0.3;"


def test_celerys_sentinel_form_is_read_node_by_node() -> None:
    nodes, master = sentinel_nodes(SENTINELS)
    assert nodes == [("10.0.0.1", 26379), ("10.0.0.2", 26380), ("10.0.0.3", 26379)]  # a trailing ';' is no node
    assert master == {"db": 2, "password": "s3cret-pw"}  # the master's, from the first node, as kombu and Celery


def test_a_sentinel_url_needs_the_master_name_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", SENTINELS)
    monkeypatch.delenv("REDIS_SENTINEL_MASTER", raising=False)
    with pytest.raises(ConfigError) as missing:
        parse_config(raw())
    assert missing.value.key == "REDIS_SENTINEL_MASTER"
    monkeypatch.setenv("REDIS_SENTINEL_MASTER", "mymaster")
    config = parse_config(raw())
    assert config.redis_sentinel_master == "mymaster"
    assert parse_config(raw(redis_sentinel_master="from-file")).redis_sentinel_master == "mymaster"  # env wins


@pytest.mark.parametrize(
    "url", ["sentinel://:pw-in-url@h:26379;redis://h:6379", "sentinel://:pw-in-url@h:notaport", "sentinel://:pw@h/x"]
)
def test_a_malformed_sentinel_url_is_named_never_echoed(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("REDIS_URL", url)
    monkeypatch.setenv("REDIS_SENTINEL_MASTER", "mymaster")
    with pytest.raises(ConfigError) as bad:
        parse_config(raw())
    assert bad.value.key == "REDIS_URL" and "pw" not in str(bad.value)


def test_celery_gets_the_master_name_for_broker_and_results() -> None:
    from workers.celery_app import VISIBILITY_TIMEOUT_S, app, configure
    from workers.config import REDIS_TIMEOUT_S

    assert transport_options("redis://h:6379/0", "mymaster") == {}
    previous = app.conf.broker_url
    try:
        configure("sentinel://127.0.0.1:1;sentinel://127.0.0.1:2", sentinel_master="mymaster")
        expected = {"visibility_timeout": VISIBILITY_TIMEOUT_S, "master_name": "mymaster"}
        assert app.conf.result_backend_transport_options == expected
        timeouts = {"socket_timeout": REDIS_TIMEOUT_S, "socket_connect_timeout": REDIS_TIMEOUT_S}
        assert app.conf.broker_transport_options == {**expected, **timeouts}
    finally:
        configure(previous)
    assert "master_name" not in app.conf.broker_transport_options
