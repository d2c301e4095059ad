"""The status page against a hostile browser and odd input (issue 21): DNS rebinding (unknown ``Host`` → 421),
security headers on every answer whatever its status, no 500 on any input (a little hypothesis fuzzing), and no
text of a link's choosing on the page (``?queued=``). TestClient on a real Redis (the ledger, the broker)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.ledger import delete_keys
from sync.report import RunReport
from tests.faults.harness import REDIS_URL
from tests.workers.test_ui import raw_config
from workers.config import parse_config
from workers.runtime import Runtime
from workers.ui.app import create_ui_app
from workers.ui.security import SECURITY_HEADERS, Access

PASSWORD = f"ui-harden-{uuid.uuid4().hex}"
LOGIN = {"Authorization": "Basic " + base64.b64encode(f"ops:{PASSWORD}".encode()).decode()}


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    prefix = f"crmsync-uih-{uuid.uuid4().hex[:8]}"
    raw = raw_config(REDIS_URL, prefix)
    raw["ui"]["allowed_hosts"] = ["crmsync.internal.example"]
    mp = pytest.MonkeyPatch()
    mp.delenv("REDIS_URL", raising=False)
    rt = Runtime(parse_config(raw))
    mp.undo()
    yield rt
    delete_keys(rt.redis, f"{prefix}:*")
    rt.close()


def enqueue(task: str, args: tuple[object, ...], kwargs: dict[str, object]) -> str:
    return "0b6f8a52-4d1e-4c36-9a63-3d2f3a1c9e11"


@pytest.fixture(scope="module")
def client(runtime: Runtime) -> Iterator[TestClient]:
    app = create_ui_app(runtime, Access("ops", PASSWORD), enqueue=enqueue)
    with TestClient(app, base_url="http://127.0.0.1:8091", raise_server_exceptions=False) as c:
        c.headers.update(LOGIN)
        yield c


@pytest.fixture(scope="module")
def open_client(runtime: Runtime) -> Iterator[TestClient]:
    """The password-less page (loopback only), what a DNS-rebinding page would target."""
    app = create_ui_app(runtime, Access("ops", None, allowed_hosts=frozenset({"::1"})), enqueue=enqueue)
    with TestClient(app, base_url="http://127.0.0.1:8091", raise_server_exceptions=False) as c:
        yield c


def assert_headers(answer: object) -> None:
    headers = getattr(answer, "headers")  # noqa: B009
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, (name, getattr(answer, "status_code"))  # noqa: B009


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",  # a rebound name
        "evil.example:8091",
        "localhost.evil.example",
        "127.0.0.1.evil.example",
        "",
        "[::1",  # malformed
        "ünïcode.example",
    ],
)
def test_an_unknown_host_is_refused_before_anything_is_read(open_client: TestClient, host: str) -> None:
    for path in ("/ui/", "/ui/api/status", "/ui/static/ui.css"):
        answer = open_client.get(path, headers={"Host": host.encode()})
        assert answer.status_code == 421, (host, path, answer.status_code)
        assert "sources" not in answer.text
        assert_headers(answer)
    posted = open_client.post(
        "/ui/actions/sync/stripe", headers={"Host": host.encode(), "Sec-Fetch-Site": "same-origin"}
    )
    assert posted.status_code == 421


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:8091",
        "127.0.0.1",
        "localhost:8091",
        "LOCALHOST",
        "[::1]:8091",
        "127.8.9.10",
        "192.0.2.7:8091",  # a literal address cannot be rebound
        "crmsync.internal.example",  # ui.allowed_hosts (a proxy's name)
        "crmsync.internal.example:443",
    ],
)
def test_loopback_addresses_and_allowed_hosts_are_served(open_client: TestClient, host: str) -> None:
    answer = open_client.get("/ui/api/status", headers={"Host": host})
    assert answer.status_code == 200, host


def test_the_bind_address_is_allowed(runtime: Runtime) -> None:
    from workers.cli_ui import access_for

    access = access_for(runtime, "0.0.0.0", "pw-bind-address")
    assert "0.0.0.0" in access.allowed_hosts
    app = create_ui_app(runtime, access, enqueue=enqueue)
    with TestClient(app, base_url="http://0.0.0.0:8091", raise_server_exceptions=False) as bound:
        assert bound.get("/ui/api/status", auth=("ops", "pw-bind-address")).status_code == 200


def test_security_headers_on_every_answer(client: TestClient, runtime: Runtime) -> None:
    run_id = runtime.ledger.append_run(RunReport("stripe", "customers", "full").finish().as_dict())
    answers = {
        200: client.get("/ui/"),
        401: client.get("/ui/", headers={"Authorization": ""}),
        403: client.post("/ui/actions/sync/stripe", data={"csrf": "wrong"}),
        404: client.get("/ui/runs/1-1"),
        405: client.put("/ui/"),
        422: client.post("/ui/actions/sync/stripe/extra"),
        421: client.get("/ui/", headers={"Host": "evil.example"}),
    }
    answers[404] = client.get("/ui/nowhere")
    for status, answer in answers.items():
        assert answer.status_code == status or status == 422, (status, answer.status_code)
        assert_headers(answer)
    for path in ("/ui/static/ui.css", "/ui/static/refresh.js", f"/ui/runs/{run_id}"):
        answer = client.get(path)
        assert answer.status_code == 200
        assert_headers(answer)


@pytest.mark.parametrize(
    "header",
    [
        "Basic ü",
        "Basic " + "é" * 8,
        "Basic " + base64.b64encode("ops:pässwörd".encode("latin-1")).decode(),  # not UTF-8 once decoded
        "Basic " + base64.b64encode(b"\xff\xfe:\x00").decode(),
        "Bearer ☃",
        "basic",
    ],
)
def test_an_odd_authorization_header_is_a_401(client: TestClient, header: str) -> None:
    answer = client.get("/ui/", headers={"Authorization": header.encode("utf-8")})
    assert answer.status_code == 401
    assert_headers(answer)


@pytest.mark.parametrize(
    "run_id",
    [str(2**64) + "-0", "0-" + str(2**64), "99999999999999999999-1", "18446744073709551616-18446744073709551616"],
)
def test_a_run_id_beyond_redis_range_is_a_404(client: TestClient, run_id: str) -> None:
    assert client.get(f"/ui/runs/{run_id}").status_code == 404
    assert client.get(f"/ui/runs/{2**64 - 1}-{2**64 - 1}").status_code == 404  # the largest valid id: none stored


def test_queued_shows_only_what_the_page_wrote(client: TestClient) -> None:
    own = client.post("/ui/actions/sync/stripe", data={"csrf": client_token(client)}, follow_redirects=False)
    assert own.status_code == 303
    shown = client.get(own.headers["location"])
    assert "Queued: sync stripe (0b6f8a52-4d1e-4c36-9a63-3d2f3a1c9e11)" in shown.text
    for text in (
        "Your session expired: call +1 555 0100",
        "sync stripe (0b6f8a52-4d1e-4c36-9a63-3d2f3a1c9e11) call us",
        "sync nowhere (0b6f8a52-4d1e-4c36-9a63-3d2f3a1c9e11)",
        "wipe stripe (0b6f8a52-4d1e-4c36-9a63-3d2f3a1c9e11)",
    ):
        for path in ("/ui/", "/ui/dlq", "/ui/dry-runs"):
            page = client.get(path, params={"queued": text})
            assert page.status_code == 200 and "Queued:" not in page.text and "555 0100" not in page.text


def client_token(client: TestClient) -> str:
    import re

    match = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get("/ui/").text)
    assert match
    return match.group(1)


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
LATIN1 = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(["/ui/", "/ui/dlq", "/ui/dry-runs", "/ui/api/status", "/ui/runs/{}", "/ui/static/{}"]),
    part=TEXT,
    queued=TEXT,
    auth=LATIN1,
)
def test_fuzzed_gets_are_never_a_500(client: TestClient, path: str, part: str, queued: str, auth: str) -> None:
    from urllib.parse import quote

    url = path.format(quote(part, safe=""))
    plain = client.get(url, params={"queued": queued})
    odd_login = client.get(url, headers={"Authorization": auth.encode("latin-1")})
    for answer in (plain, odd_login):
        assert answer.status_code < 500, (url, answer.status_code)
        assert_headers(answer)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    action=st.sampled_from(["sync", "dry-run", "replay", "x"]),
    body=st.binary(max_size=80),
    origin=LATIN1,
    site=LATIN1,
    token=TEXT,
)
def test_fuzzed_posts_are_never_a_500(
    client: TestClient, action: str, body: bytes, origin: str, site: str, token: str
) -> None:
    headers = {
        "Origin": origin.encode("latin-1"),
        "Sec-Fetch-Site": site.encode("latin-1"),
        "Content-Type": b"application/x-www-form-urlencoded",
    }
    raw = client.post(f"/ui/actions/{action}/stripe", content=body, headers=headers)
    form = client.post(
        f"/ui/actions/{action}/stripe", data={"csrf": token}, headers={"Origin": origin.encode("latin-1")}
    )
    for answer in (raw, form):
        assert answer.status_code < 500, answer.status_code
        assert_headers(answer)
