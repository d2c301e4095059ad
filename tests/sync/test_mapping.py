"""Mapping: config validation (bad keys named), transforms and ownership rules; property-based where wide."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.connector import CrmRecord
from sync.errors import ConfigError
from sync.mapping import (
    OwnerRule,
    Provenance,
    RuleKind,
    domain_of,
    get_path,
    load_mapping_config,
    load_mapping_file,
    map_record,
    may_write,
    normalise_tags,
    set_path,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "crmsync.yaml"


def obj(*fields: dict[str, Any], link: str = "sfdc_id") -> dict[str, Any]:
    return {"mappings": {"salesforce": {"Account": {"link": link, "fields": list(fields)}}}}


def test_example_config_loads() -> None:
    config = load_mapping_file(EXAMPLE)
    assert config.rule_for("name").order == ("salesforce", "hubspot", "stripe", "zendesk")
    assert config.object("hubspot", "deals").link == "hubspot_deal_id"
    assert config.rule_for("roles.csm").rule is RuleKind.POSTHOG_WINS


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (obj({"source": "Name", "target": "nam"}), "mappings.salesforce.Account.fields.0.target"),
        (obj({"source": "Name", "target": "properties.domain"}), "mappings.salesforce.Account.fields.0.target"),
        (obj({"source": "X", "target": "roles.boss"}), "mappings.salesforce.Account.fields.0.target"),
        (
            obj({"source": "Name", "target": "name", "transforms": ["shout"]}),
            "mappings.salesforce.Account.fields.0.transforms.0",
        ),
        (obj({"target": "name"}), "mappings.salesforce.Account.fields.0"),
        (obj({"source": "Name", "target": "name"}, link="nope"), "mappings.salesforce.Account.link"),
        (obj({"source": "Name", "target": "name", "colour": "red"}), "mappings.salesforce.Account.fields.0.colour"),
        ({**obj(), "ownership": {"name": {"rule": "loudest"}}}, "ownership.name.rule"),
    ],
)
def test_bad_config_names_the_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_mapping_config(raw)
    assert exc.value.key.startswith(key), exc.value.key


def test_missing_object_mapping_names_it() -> None:
    with pytest.raises(ConfigError) as exc:
        load_mapping_config(obj()).object("salesforce", "Contact")
    assert exc.value.key == "mappings.salesforce.Contact"


def test_map_record_paths_fallbacks_transforms() -> None:
    config = load_mapping_config(
        obj(
            {"source": ["Company.Name", "Name"], "target": "name", "transforms": ["strip"]},
            {"source": "Owner.Email", "target": "roles.account_owner", "transforms": ["lower"]},
            {"source": "Website", "target": "domain", "transforms": ["domain"]},
            {"target": "tags", "transforms": [{"constant": "From-SFDC"}]},
            {"source": "Tier", "target": "tags", "transforms": [{"template": "tier-{Tier}"}]},
            {"source": "Ext", "target": "external_id"},
        )
    )
    record = CrmRecord(
        "salesforce",
        "Account",
        "001",
        {"Name": "  Acme  ", "Owner": {"Email": "Ana@X.io"}, "Website": "https://www.acme.com/about", "Tier": 1},
    )
    patch = map_record(record, config.object("salesforce", "Account"))
    assert patch.values == {
        "name": "Acme",
        "roles.account_owner": "ana@x.io",
        "domain": "acme.com",
        "tags": ["from-sfdc", "tier-1"],
    }
    assert patch.errors == ()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ana@Acme.COM", "acme.com"),
        ("https://www.acme.com/x?y", "acme.com"),
        ("acme.co.uk", "acme.co.uk"),
        ("http://localhost", None),
        ("", None),
        ("not a domain", None),
    ],
)
def test_domain_of(value: str, expected: str | None) -> None:
    assert domain_of(value) == expected


# -- properties ----------------------------------------------------------------------------------------------

texts = st.text(max_size=30)
paths = st.lists(st.text(alphabet="abcXY_", min_size=1, max_size=4), min_size=1, max_size=3).map(".".join)


@given(st.lists(texts, max_size=10))
def test_tag_normalisation_is_idempotent_and_canonical(tags: list[str]) -> None:
    once = normalise_tags(tags)
    assert normalise_tags(once) == once
    assert all(t == t.strip().lower() and t for t in once)
    assert len(set(once)) == len(once)


@given(paths, texts)
def test_set_then_get_path_round_trips(path: str, value: str) -> None:
    assert get_path(set_path({"keep": 1}, path, value), path) == value


@given(st.text(max_size=60))
def test_domain_of_is_total_and_lowercase(value: str) -> None:
    result = domain_of(value)
    assert result is None or (result == result.lower() and "." in result and " " not in result)


@given(
    st.dictionaries(
        st.sampled_from(["Name", "Ext", "Tier", "Owner"]),
        st.one_of(
            st.none(),
            texts,
            st.integers(),
            st.booleans(),
            st.lists(texts, max_size=2),
            st.dictionaries(texts, texts, max_size=2),
        ),
    )
)
def test_mapping_never_raises_and_reports_bad_fields(fields: dict[str, Any]) -> None:
    config = load_mapping_config(
        obj(
            {"source": "Name", "target": "name", "transforms": ["strip"]},
            {"source": "Ext", "target": "external_id"},
            {"source": "Tier", "target": "tags", "transforms": [{"template": "t-{Tier}"}]},
            {"source": "Owner", "target": "roles.csm", "transforms": ["strip"]},
        )
    )
    patch = map_record(CrmRecord("salesforce", "Account", "001", fields), config.object("salesforce", "Account"))
    assert set(patch.values) <= {"name", "external_id", "tags", "roles.csm"}
    assert all(e.source == "salesforce" and e.record_id == "001" and e.reason for e in patch.errors)
    assert "name" not in patch.values or 0 < len(patch.values["name"]) <= 400


sources = st.sampled_from(["salesforce", "hubspot", "stripe", "zendesk"])


@given(sources, sources, st.integers(0, 10), st.integers(0, 10))
def test_precedence_is_a_total_order(a: str, b: str, va: int, vb: int) -> None:
    rule = OwnerRule()
    a_over_b = may_write(rule, a, va, "x", Provenance(b, vb)).allowed
    b_over_a = may_write(rule, b, vb, "x", Provenance(a, va)).allowed
    assert a_over_b or b_over_a  # one of the two may always write
    if a == b:
        assert a_over_b and b_over_a


@given(sources, st.integers(0, 10), st.integers(0, 10))
def test_newest_wins_and_set_if_empty(source: str, mine: int, theirs: int) -> None:
    newest = OwnerRule(rule=RuleKind.NEWEST_WINS)
    assert may_write(newest, source, mine, "x", Provenance("other", theirs)).allowed == (mine >= theirs)
    for kind in (RuleKind.SET_IF_EMPTY, RuleKind.POSTHOG_WINS):
        rule = OwnerRule(rule=kind)
        assert may_write(rule, source, mine, None, None).allowed
        assert not may_write(rule, source, mine, "set", Provenance(source, mine)).allowed
