"""The PostHog client against the PostHog stand-in, over loopback HTTP: every endpoint, filter and error."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from sync.errors import ConfigError, FatalError, RetryableError
from sync.posthog import (
    AccountFilter,
    AccountOrdering,
    AccountProperties,
    MetricMath,
    PostHogClient,
    Role,
    UsageMetricSpec,
)
from sync.posthog.errors import (
    PostHogConflict,
    PostHogForbidden,
    PostHogNotFound,
    PostHogRateLimited,
    PostHogServerError,
    PostHogTransportError,
    PostHogUnauthorized,
    PostHogValidationError,
)
from sync.retry import RetryPolicy
from sync.settings import PostHogSettings, load_posthog_settings
from tests.conftest import POSTHOG_KEY, PostHogSandbox, emptied

ANA = Role(id=7, email="ana@example.com")
BEN = Role(id=8, email="ben@example.com")


@pytest.fixture
def posthog(posthog_generations: dict[str, PostHogSandbox]) -> Iterator[PostHogSandbox]:
    """The seed generation: these tests pin the accounts API of the public docs page (roles in ``properties``, role
    filters); today's server is covered by tests/sync/posthog/test_today.py and tests/sync/test_roles.py."""
    yield from emptied(posthog_generations["seed"])


def names(client: PostHogClient, **filters: object) -> list[str]:
    return sorted(a.name for a in client.iter_accounts(AccountFilter.model_validate(filters)))


# -- accounts: CRUD and replace semantics ---------------------------------------------------------------


def test_create_retrieve_update_delete(ph: PostHogClient) -> None:
    created = ph.create_account(
        "Acme",
        "acct-1",
        AccountProperties(csm=ANA, stripe_customer_id="cus_1"),
        [" Enterprise ", "enterprise"],
    )
    assert created.name == "Acme"
    assert created.tags == ["enterprise"]
    assert created.properties.csm == ANA
    assert created.created_by is not None and created.updated_at is not None

    fetched = ph.get_account(created.id)
    assert fetched == created

    renamed = ph.update_account(created.id, name="Acme Corp")
    assert renamed.name == "Acme Corp"
    assert renamed.properties == created.properties  # fields left out stay as they were
    assert renamed.updated_at is not None and renamed.updated_at > created.updated_at  # type: ignore[operator]

    ph.delete_account(created.id)
    with pytest.raises(PostHogNotFound):
        ph.get_account(created.id)


def test_patch_replaces_properties_and_tags_whole(ph: PostHogClient) -> None:
    account = ph.create_account("Acme", None, {"sfdc_id": "001A", "stripe_customer_id": "cus_1"}, ["a", "b"])
    partial = ph.update_account(account.id, properties={"hubspot_deal_id": "42"}, tags=["c"])
    assert partial.properties.payload() == {"hubspot_deal_id": "42"}  # the other ids were erased: replace
    assert partial.tags == ["c"]
    cleared = ph.update_account(account.id, tags=[])
    assert cleared.tags == []
    assert ph.update_account(account.id, properties=None).properties.payload() == {}


def test_unknown_property_keys_survive_a_read_modify_write(ph: PostHogClient) -> None:
    account = ph.create_account("Acme", None, {"slack_channel_id": "C123", "sfdc_id": "001A"})
    props = ph.get_account(account.id).properties
    assert props.model_extra == {"slack_channel_id": "C123"}
    props.hubspot_deal_id = "42"
    written = ph.update_account(account.id, properties=props)
    assert written.properties.payload() == {
        "slack_channel_id": "C123",
        "sfdc_id": "001A",
        "hubspot_deal_id": "42",
    }


def test_create_without_properties_stores_empty_object(ph: PostHogClient) -> None:
    account = ph.create_account("Bare")
    assert account.properties.payload() == {}
    assert account.external_id is None


# -- list filters ------------------------------------------------------------------------------------------


@pytest.fixture
def seeded(ph: PostHogClient) -> PostHogClient:
    ph.create_account("Acme Labs", "ext-acme", {"csm": ANA.model_dump(), "account_owner": BEN.model_dump()}, ["vip"])
    ph.create_account("Globex", "ext-globex", {"account_executive": ANA.model_dump()}, ["billing", "vip"])
    ph.create_account("Initech", "zz-acme-ref", {}, ["billing"])
    ph.create_account("Hooli", None, {"csm": BEN.model_dump()}, [])
    return ph


def test_search_matches_name_or_external_id_case_insensitively(seeded: PostHogClient) -> None:
    assert names(seeded, search="ACME") == ["Acme Labs", "Initech"]  # name, and external_id "zz-acme-ref"
    assert names(seeded, search="  globex  ") == ["Globex"]  # trimmed
    assert len(names(seeded, search="   ")) == 4  # blank: no filter


def test_tags_filter_is_any_of_a_json_list(seeded: PostHogClient, posthog: PostHogSandbox) -> None:
    assert names(seeded, tags=("billing",)) == ["Globex", "Initech"]
    assert names(seeded, tags=("vip", "billing")) == ["Acme Labs", "Globex", "Initech"]  # ANY, each once
    assert len(names(seeded, tags=())) == 4  # [] is ignored
    with pytest.raises(PostHogValidationError) as bad:
        seeded._request("GET", seeded._accounts_path, params={"tags": "billing"})
    assert bad.value.attr == "tags"
    assert bad.value.detail == "Must be a JSON-encoded list of strings."
    with pytest.raises(PostHogValidationError):
        seeded._request("GET", seeded._accounts_path, params={"tags": "[1, 2]"})


def test_role_filters(seeded: PostHogClient) -> None:
    assert names(seeded, csm=7) == ["Acme Labs"]
    assert names(seeded, csm="unassigned") == ["Globex", "Initech"]
    assert names(seeded, account_executive=7) == ["Globex"]
    assert names(seeded, account_owner=8, csm=7) == ["Acme Labs"]  # AND
    assert names(seeded, all_roles_unassigned=True) == ["Initech"]
    junk = seeded._request("GET", seeded._accounts_path, params={"csm": "ana@example.com"})
    assert junk["count"] == 4  # a value that is neither 'unassigned' nor an integer is ignored
    not_true = seeded._request("GET", seeded._accounts_path, params={"all_roles_unassigned": "yes"})
    assert not_true["count"] == 4
    upper = seeded._request("GET", seeded._accounts_path, params={"all_roles_unassigned": "TRUE"})
    assert upper["count"] == 1


def test_ordering(seeded: PostHogClient) -> None:
    by_name = [a.name for a in seeded.iter_accounts(AccountFilter(ordering=AccountOrdering.NAME))]
    assert by_name == ["Acme Labs", "Globex", "Hooli", "Initech"]
    newest_first = [a.name for a in seeded.iter_accounts()]
    assert newest_first == ["Hooli", "Initech", "Globex", "Acme Labs"]  # default -created_at
    ignored = seeded._request("GET", seeded._accounts_path, params={"ordering": "external_id"})
    assert [a["name"] for a in ignored["results"]] == newest_first  # unknown ordering ignored, no 400


def test_pagination_follows_absolute_next_urls(ph: PostHogClient, posthog: PostHogSandbox) -> None:
    for i in range(7):
        ph.create_account(f"Company {i}", f"ext-{i}")
    page = ph.list_accounts(limit=3, offset=3)
    assert page.count == 7
    assert page.next is not None and page.next.startswith(posthog.url) and "offset=6" in page.next
    assert page.previous is not None and "offset" not in page.previous.split("?", 1)[1]  # first page
    before = posthog.count("GET", "/accounts/")
    everything = list(ph.iter_accounts(AccountFilter(search="company"), page_size=3))
    assert sorted(a.external_id or "" for a in everything) == [f"ext-{i}" for i in range(7)]
    assert posthog.count("GET", "/accounts/") - before == 3  # ceil(7 / 3) pages


# -- errors -------------------------------------------------------------------------------------------------


def test_validation_error_names_the_field(ph: PostHogClient) -> None:
    with pytest.raises(PostHogValidationError) as exc:
        ph.create_account("x" * 401)
    assert exc.value.status == 400 and exc.value.attr == "name" and exc.value.code == "max_length"
    with pytest.raises(PostHogValidationError) as exc:
        ph.create_account("Acme", None, {"csm": {"id": 7}})
    assert exc.value.attr == "properties" and exc.value.detail == "csm.email: Field required"


def test_duplicate_external_id_is_a_conflict(ph: PostHogClient, posthog: PostHogSandbox) -> None:
    ph.create_account("Acme", "ext-1")
    with pytest.raises(PostHogConflict) as exc:
        ph.create_account("Acme again", "ext-1")
    assert exc.value.status == 409
    assert posthog.count("POST", status=409) == 1  # a 409 is never retried


def test_unauthorised_and_forbidden(posthog: PostHogSandbox) -> None:
    with posthog.client(key="phx_wrong") as bad, pytest.raises(PostHogUnauthorized) as unauthorised:
        bad.list_accounts()
    assert isinstance(unauthorised.value, FatalError)
    assert "phx_wrong" not in str(unauthorised.value)
    with posthog.client(key="phx_test_ro") as read_only:
        assert read_only.list_accounts().count == 0  # :read is enough to list
        with pytest.raises(PostHogForbidden) as forbidden:
            read_only.create_account("Acme")
    assert forbidden.value.scope == "account:write"
    with posthog.client(key="phx_test_p2", project_id=1) as other_project, pytest.raises(PostHogForbidden):
        other_project.list_accounts()
    assert posthog.count(status=403) == 2


def test_another_projects_account_is_not_found(posthog: PostHogSandbox) -> None:
    with posthog.client() as p1, posthog.client(project_id=2) as p2:
        account = p1.create_account("Acme")
        for call in (
            lambda: p2.get_account(account.id),
            lambda: p2.update_account(account.id, name="x"),
            lambda: p2.delete_account(account.id),
        ):
            with pytest.raises(PostHogNotFound):
                call()
        assert p1.get_account(account.id).name == "Acme"


# -- retries, asserted by counts -----------------------------------------------------------------------------


def test_429_is_retried_honouring_retry_after_then_raised(posthog: PostHogSandbox) -> None:
    waits: list[float] = []
    posthog.faults(rate_429=1.0, retry_after_s=3)
    with (
        posthog.client(max_retries=4, sleep=waits.append) as client,
        pytest.raises(PostHogRateLimited) as exc,
    ):
        client.list_accounts()
    assert exc.value.retry_after == 3 and isinstance(exc.value, RetryableError)
    assert waits == [3, 3, 3, 3]
    assert client.stats.retries == 4
    assert posthog.stats()["faults_injected"] == {"429": 5}  # 1 try + 4 retries, all seen by the server


def test_retries_are_bounded_by_total_time(posthog: PostHogSandbox) -> None:
    posthog.faults(rate_429=1.0, retry_after_s=10)
    with posthog.client(max_retries=10, max_total_s=25) as client, pytest.raises(PostHogRateLimited):
        client.list_accounts()
    assert client.stats.retries == 2  # 10 s + 10 s fit in 25 s; a third wait would not


def test_flaky_server_converges_with_exact_request_counts(posthog: PostHogSandbox) -> None:
    posthog.faults(rate_429=0.3, rate_5xx=0.2, seed=7)
    with posthog.client(max_retries=10) as client:
        created = [client.create_account(f"Company {i}", f"ext-{i}") for i in range(20)]
        listed = list(client.iter_accounts(page_size=5))
    assert sorted(a.id for a in listed) == sorted(a.id for a in created)
    stats = posthog.stats()
    assert stats["total"] == client.stats.requests  # every attempt reached the server and was counted
    assert sum(stats["faults_injected"].values()) == client.stats.retries
    assert client.stats.retries > 0


def test_post_without_external_id_is_not_retried_after_5xx(posthog: PostHogSandbox) -> None:
    posthog.faults(rate_5xx=1.0)
    with posthog.client() as client:
        with pytest.raises(PostHogServerError):
            client.create_account("No external id")
        assert client.stats.by_operation["POST"] == 1
        with pytest.raises(PostHogServerError):
            client.create_account("With external id", "ext-1")
        assert client.stats.by_operation["POST"] == 1 + 4  # 1 try + max_retries=3, retried: a repeat would 409


def test_client_errors_are_never_retried(ph: PostHogClient, posthog: PostHogSandbox) -> None:
    for call in (
        lambda: ph.get_account("0190b3a4-0000-7000-8000-000000000000"),
        lambda: ph.create_account(""),
    ):
        with pytest.raises((PostHogNotFound, PostHogValidationError)):
            call()
    assert ph.stats.retries == 0 and posthog.stats()["total"] == 2


def test_connection_errors_are_transport_errors_and_retried() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket closes
    settings = PostHogSettings(host=f"http://127.0.0.1:{port}", personal_api_key=SecretStr("k"), project_id=1)
    with PostHogClient(settings, retry=RetryPolicy(max_retries=2, sleep=lambda _s: None)) as client:
        with pytest.raises(PostHogTransportError):
            client.list_accounts()
        assert client.stats.by_operation["GET"] == 3


# -- usage metrics and members -------------------------------------------------------------------------------


def test_usage_metric_crud_scoped_by_group_type(ph: PostHogClient) -> None:
    spec = UsageMetricSpec(name="Pageviews", filters={"events": [{"id": "$pageview", "type": "events"}]})
    metric = ph.create_usage_metric(0, spec)
    assert metric.spec() == spec and metric.interval == 7 and metric.math is MetricMath.COUNT
    assert [m.id for m in ph.iter_usage_metrics(0)] == [metric.id]
    assert list(ph.iter_usage_metrics(1)) == []
    with pytest.raises(PostHogNotFound):
        ph.get_usage_metric(1, metric.id)
    patched = ph.update_usage_metric(0, metric.id, {"interval": 30})
    assert patched.interval == 30 and patched.name == "Pageviews"
    summed = ph.replace_usage_metric(
        0, metric.id, UsageMetricSpec.model_validate({**spec.model_dump(), "math": "sum", "math_property": "n"})
    )
    assert summed.math is MetricMath.SUM and summed.math_property == "n" and summed.interval == 7
    with pytest.raises(PostHogValidationError) as exc:
        ph.update_usage_metric(0, metric.id, {"math_property": None})
    assert "math_property is required" in (exc.value.detail or "")
    ph.delete_usage_metric(0, metric.id)
    with pytest.raises(PostHogNotFound):
        ph.get_usage_metric(0, metric.id)


def test_members_iterate_across_pages(ph: PostHogClient) -> None:
    members = list(ph.iter_members(page_size=2))
    assert sorted((m.user.id, m.user.email) for m in members) == [
        (7, "ana@example.com"),
        (8, "ben@example.com"),
        (9, "cy@example.com"),
    ]
    assert next(m for m in members if m.user.id == 7).role() == ANA


# -- settings ---------------------------------------------------------------------------------------------------


def test_settings_from_environment_and_errors_name_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTHOG_HOST", "http://127.0.0.1:8010")
    monkeypatch.setenv("POSTHOG_PROJECT_ID", "3")
    monkeypatch.delenv("POSTHOG_PERSONAL_API_KEY", raising=False)
    with pytest.raises(ConfigError) as missing:
        load_posthog_settings()
    assert missing.value.key == "POSTHOG_PERSONAL_API_KEY"
    monkeypatch.setenv("POSTHOG_PERSONAL_API_KEY", POSTHOG_KEY)
    monkeypatch.setenv("POSTHOG_PROJECT_ID", "zero")
    with pytest.raises(ConfigError) as bad:
        load_posthog_settings()
    assert bad.value.key == "POSTHOG_PROJECT_ID"
    monkeypatch.setenv("POSTHOG_PROJECT_ID", "3")
    settings = load_posthog_settings()
    assert settings.project_id == 3 and settings.base_url == "http://127.0.0.1:8010"
    assert POSTHOG_KEY not in repr(settings) and POSTHOG_KEY not in repr(PostHogClient(settings))
