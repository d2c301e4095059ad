"""crmsync's coercion of custom property values against the stand-in's (both after PostHog's
``logic/custom_property_values.py``): whatever crmsync accepts, the stand-in accepts and stores equal; what crmsync
refuses, the stand-in refuses. Once on the pure functions (many examples), once over HTTP (fewer)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.posthog.custom_properties import InvalidValue
from sandbox.posthog.custom_properties import coerce as standin_coerce
from sync.custom_values import DisplayType, ValueTypeError, coerce, is_http_url, same_value
from sync.errors import ConfigError
from sync.mapping import load_mapping_config
from sync.posthog import PostHogClient
from sync.posthog.custom_properties import create_definition, set_value
from sync.posthog.errors import PostHogValidationError
from tests.conftest import PostHogSandbox
from tests.support.current_posthog import posthog_server  # noqa: F401 (this module's stand-in: current)

OPTIONS = ("Open", "Closed won", "ünïcode")

texts = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["true", " FALSE ", "1e3", "nan", "inf", "-0", "12.5", "1_000", "0x10", "yes", ""]),
    st.sampled_from(["2026-01-01", "2026-01-01T10:00:00Z", "2026-01-01T10:00:00+02:00", "2026-13-01", "20260101"]),
    st.sampled_from(["2026-01-01 10:00", "2026-W01", "2026-01-01T10:00:00.123456", "01/02/2026"]),
    st.sampled_from(
        ["https://acme.com", "http://localhost:8080/x", "ftp://acme.com", "https://acme", "http://1.2.3.4"]
    ),
    st.sampled_from(["https://[::1]/", "https://999.1.1.1", "https://a b.com", "https://acme.com/ a", "acme.com"]),
    st.sampled_from(["http://xn--bcher-kva.example", "https://user:pw@acme.io:443/p?q=1#f", "https://-acme.com"]),
    st.sampled_from(OPTIONS),
    st.from_regex(r"https?://[a-z0-9.-]{1,12}(:[0-9]{1,6})?(/[a-z]{0,4})?", fullmatch=True),
)
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    texts.filter(lambda t: "\x00" not in t),  # NUL: refused by the serializer before coercion (tested over HTTP)
    st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2026-01-01T10:00:00+02:00"]),
)
values = st.one_of(scalars, st.none(), st.lists(st.integers(), max_size=2), st.sampled_from(["a\x00b", {"a": 1}]))


def definition(kind: DisplayType) -> dict[str, Any]:
    options = [{"id": str(n), "label": label} for n, label in enumerate(OPTIONS)]
    return {"name": "P", "display_type": kind.value, "options": options if kind is DisplayType.SELECT else None}


def standin(kind: DisplayType, value: Any) -> Any:
    column, stored = standin_coerce(definition(kind), value)
    if column == "value_dt":  # the stand-in keeps an instant as UTC microseconds
        return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=stored)).isoformat()
    return stored


@settings(max_examples=1500)
@given(kind=st.sampled_from(list(DisplayType)), value=scalars)
def test_crmsync_and_the_standin_accept_and_refuse_the_same_values(kind: DisplayType, value: Any) -> None:
    try:
        mine = coerce(kind, value, "P", OPTIONS)
    except ValueTypeError as refused:
        with pytest.raises(InvalidValue) as theirs:
            standin(kind, value)
        assert str(theirs.value) == str(refused)
        return
    theirs = standin(kind, value)
    assert same_value(kind, mine, theirs), (mine, theirs)
    assert type(mine) is type(theirs)


@pytest.mark.parametrize(
    ("kind", "value", "stored"),
    [
        (DisplayType.CURRENCY, "1200", 1200.0),
        (DisplayType.PERCENT, 12, 12.0),
        (DisplayType.BOOLEAN, " True ", True),
        (DisplayType.DATE, "2026-03-01", "2026-03-01T00:00:00+00:00"),
        (DisplayType.DATETIME, "2026-03-01T10:00:00Z", "2026-03-01T10:00:00+00:00"),
        (DisplayType.DATETIME, "2026-03-01T10:00:00+02:00", "2026-03-01T08:00:00+00:00"),
        (DisplayType.TEXT, 7, "7"),
        (DisplayType.SELECT, "Open", "Open"),
        (DisplayType.LINK, "https://acme.com/x", "https://acme.com/x"),
    ],
)
def test_coercion_examples(kind: DisplayType, value: Any, stored: Any) -> None:
    assert coerce(kind, value, "P", OPTIONS) == stored


@pytest.mark.parametrize(
    ("kind", "value", "expects"),
    [
        (DisplayType.NUMBER, True, "a numeric value"),
        (DisplayType.NUMBER, "nan", "a finite numeric value"),
        (DisplayType.BOOLEAN, 1, "a boolean value"),
        (DisplayType.DATE, "tomorrow", "an ISO-8601 datetime"),
        (DisplayType.SELECT, "open", "one of its options: Open, Closed won, ünïcode"),
        (DisplayType.LINK, "ftp://acme.com", "an HTTP or HTTPS URL"),
    ],
)
def test_refusals_say_what_the_definition_expects(kind: DisplayType, value: Any, expects: str) -> None:
    with pytest.raises(ValueTypeError, match=f"^Custom property 'P' expects {expects}$"):
        coerce(kind, value, "P", OPTIONS)


def test_the_serializers_checks_come_first() -> None:
    for value in (None, ["a"], {"a": 1}):
        with pytest.raises(ValueTypeError, match=r"^Value must be a string, number, or boolean\.$"):
            coerce(DisplayType.TEXT, value, "P")
    with pytest.raises(ValueTypeError, match=r"^Null characters are not allowed\.$"):
        coerce(DisplayType.TEXT, "a\x00", "P")
    with pytest.raises(ValueTypeError, match="an ISO-8601 datetime"):
        coerce(DisplayType.DATE, "0001-01-01T00:00:00+01:00", "P")


def test_urls() -> None:
    assert is_http_url("https://acme.com") and is_http_url("http://localhost") and is_http_url("https://[::1]:8/")
    assert not is_http_url("https://acme") and not is_http_url("https://300.1.1.1") and not is_http_url("mailto:a@b.c")


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(
    kind=st.sampled_from(list(DisplayType)), value=values.filter(lambda v: not isinstance(v, float) or math.isfinite(v))
)
def test_over_http_the_standin_stores_what_crmsync_coerced(
    posthog: PostHogSandbox, kind: DisplayType, value: Any
) -> None:
    with posthog.client() as ph:
        defs = {d["name"]: d for d in ph.call("GET", f"{ph.projects_path}/custom_property_definitions/")["results"]}
        name = f"prop-{kind.value}"
        if name not in defs:
            create_definition(ph, name, kind, OPTIONS if kind is DisplayType.SELECT else ())
            defs = {d["name"]: d for d in ph.call("GET", f"{ph.projects_path}/custom_property_definitions/")["results"]}
        account = _account(ph)
        try:
            mine = coerce(kind, value, name, OPTIONS)
        except ValueTypeError as refused:
            with pytest.raises(PostHogValidationError) as theirs:
                set_value(ph, account, defs[name]["id"], value)
            assert theirs.value.detail == str(refused) and theirs.value.attr == "value"
            return
        row = set_value(ph, account, defs[name]["id"], value)
        if kind in (DisplayType.DATE, DisplayType.DATETIME):  # DRF's encoder answers milliseconds at most
            delta = datetime.fromisoformat(str(mine)) - datetime.fromisoformat(row["value"])
            assert timedelta(0) <= delta < timedelta(milliseconds=1), (mine, row["value"])
        else:
            assert same_value(kind, mine, row["value"]), (mine, row["value"])


def _account(ph: PostHogClient) -> str:
    page = ph.list_accounts(limit=1)
    if page.results:
        return page.results[0].id
    return ph.create_account("Coercion Co", None, {}).id


def test_config_names_the_key_of_a_bad_custom_field() -> None:
    def load(fields: list[dict[str, Any]]) -> None:
        load_mapping_config({"mappings": {"hubspot": {"deals": {"link": "hubspot_deal_id", "fields": fields}}}})

    with pytest.raises(ConfigError) as untyped:
        load([{"source": "x", "target": "custom.MRR"}])
    assert untyped.value.key == "mappings.hubspot.deals.fields.0" and "needs a type" in untyped.value.reason
    with pytest.raises(ConfigError) as no_options:
        load([{"source": "dealstage", "target": "custom.Deal stage", "type": "select"}])
    assert "options are required" in no_options.value.reason
    with pytest.raises(ConfigError) as bad_type:
        load([{"source": "x", "target": "custom.MRR", "type": "money"}])
    assert bad_type.value.key == "mappings.hubspot.deals.fields.0.type"
    with pytest.raises(ConfigError) as disagree:
        load(
            [
                {"source": "a", "target": "custom.MRR", "type": "currency"},
                {"source": "b", "target": "custom.MRR", "type": "number"},
            ]
        )
    assert disagree.value.key == "mappings.hubspot.deals.fields.1.type" and "currency" in disagree.value.reason
    with pytest.raises(ConfigError) as typed_plain:
        load([{"source": "x", "target": "name", "type": "text"}])
    assert "custom.<Definition name> targets only" in typed_plain.value.reason
    load([{"source": "x", "target": "custom.Health score", "type": "number", "direction": "outbound"}])


def test_datetimes_compare_as_instants() -> None:
    later = datetime(2026, 1, 1, 12, tzinfo=UTC).isoformat()
    assert same_value(DisplayType.DATETIME, "2026-01-01T14:00:00+02:00", later)
