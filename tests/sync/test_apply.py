"""The merge function: property-based — it never drops what it does not own, and it is idempotent."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from sync.apply import AccountState, merge
from sync.ledger import AccountEntry
from sync.mapping import AccountPatch, load_mapping_config
from sync.posthog import Role

CONFIG = load_mapping_config(
    {
        "ownership": {"name": {"rule": "precedence", "order": ["salesforce", "hubspot", "stripe"]}},
        "mappings": {
            src: {obj: {"link": link, "fields": [{"source": "n", "target": "name"}]}}
            for src, obj, link in (
                ("salesforce", "Account", "sfdc_id"),
                ("hubspot", "deals", "hubspot_deal_id"),
                ("stripe", "customers", "stripe_customer_id"),
            )
        },
    }
)
OBJECTS = {
    "salesforce": ("Account", "sfdc_id"),
    "hubspot": ("deals", "hubspot_deal_id"),
    "stripe": ("customers", "stripe_customer_id"),
}
ROLES = {"ana@example.com": Role(id=7, email="ana@example.com")}

words = st.text(alphabet="abcdefgh", min_size=1, max_size=6)
unknown_props = st.dictionaries(
    st.sampled_from(["slack_channel_id", "zendesk_id", "billing_id", "x_custom"]), words, max_size=3
)


@st.composite
def patches(draw: st.DrawFn) -> AccountPatch:
    source = draw(st.sampled_from(sorted(OBJECTS)))
    obj, link = OBJECTS[source]
    values: dict[str, Any] = {}
    if draw(st.booleans()):
        values["name"] = draw(words)
    if draw(st.booleans()):
        values["tags"] = sorted(set(draw(st.lists(words, max_size=3))))
    if draw(st.booleans()):
        values["roles.csm"] = draw(st.sampled_from(["ana@example.com", "ghost@example.com"]))
    return AccountPatch(
        source,
        obj,
        draw(st.sampled_from(["r1", "r2"])),
        link,
        values,
        version=draw(st.integers(0, 5)),
        deleted=draw(st.booleans()),
    )


@st.composite
def states(draw: st.DrawFn) -> AccountState:
    return AccountState(draw(words), None, draw(unknown_props), sorted(set(draw(st.lists(words, max_size=3)))))


@given(states(), st.lists(patches(), max_size=5))
def test_merge_never_drops_a_key_or_tag_it_does_not_own(state: AccountState, ps: list[AccountPatch]) -> None:
    result = merge(state, AccountEntry(), ps, CONFIG, ROLES)
    for key, value in state.properties.items():
        assert result.state.properties.get(key) == value  # unknown and unmapped keys untouched
    sourced = {t for p in ps for t in p.tags} | {
        t for p in ps for t in [CONFIG.object(p.source, p.object).unlink_tag] if t
    }
    assert set(state.tags) - sourced <= set(result.state.tags)  # tags nobody maps stay


@given(states(), st.lists(patches(), max_size=5))
def test_merge_is_idempotent(state: AccountState, ps: list[AccountPatch]) -> None:
    first = merge(state, AccountEntry(), ps, CONFIG, ROLES)
    second = merge(first.state, first.entry, ps, CONFIG, ROLES)
    assert second.state == first.state
    assert not second.changes


def test_unknown_role_email_is_reported_not_invented() -> None:
    patch = AccountPatch("salesforce", "Account", "001", "sfdc_id", {"roles.csm": "ghost@example.com"})
    result = merge(AccountState.empty(), AccountEntry(), [patch], CONFIG, ROLES)
    assert "csm" not in result.state.properties
    assert result.errors[0].field == "roles.csm"


def test_higher_ranked_record_takes_the_link_and_the_other_is_superseded() -> None:
    old = AccountPatch("hubspot", "deals", "d-old", "hubspot_deal_id", {"name": "Acme"})
    new = AccountPatch("hubspot", "deals", "d-new", "hubspot_deal_id", {"name": "Acme"})
    first = merge(AccountState.empty(), AccountEntry(), [old], CONFIG, ROLES, {("hubspot", "d-old"): 1})
    second = merge(first.state, first.entry, [new], CONFIG, ROLES, {("hubspot", "d-new"): 5})
    assert second.state.properties["hubspot_deal_id"] == "d-new"
    third = merge(second.state, second.entry, [old], CONFIG, ROLES, {("hubspot", "d-old"): 1})
    assert third.state.properties["hubspot_deal_id"] == "d-new" and third.superseded == [old]


def test_merge_records_when_each_field_changed_and_what_each_source_sent() -> None:
    """The status page's "why does this account say that?": when a field last changed, and each source's value
    while it differs from the account's (a source that agrees costs no bytes)."""
    sf = AccountPatch("salesforce", "Account", "001", "sfdc_id", {"name": "Acme Corp"}, version=1)
    hs = AccountPatch("hubspot", "deals", "9", "hubspot_deal_id", {"name": "Acme HS"}, version=2)
    first = merge(AccountState.empty(), AccountEntry(), [hs], CONFIG, ROLES, now=1000)
    assert first.entry.changed == {"name": 1000, "properties.hubspot_deal_id": 1000} and first.entry.sent == {}
    second = merge(first.state, first.entry, [sf], CONFIG, ROLES, now=2000)  # salesforce ranks first: it wins
    assert second.state.name == "Acme Corp" and second.entry.changed["name"] == 2000
    assert second.entry.sent == {"hubspot": {"name": "Acme HS"}}  # the value it sent, overwritten
    third = merge(second.state, second.entry, [hs], CONFIG, ROLES, now=3000)  # refused: still shown as sent
    assert third.state.name == "Acme Corp" and third.entry.changed["name"] == 2000
    assert third.entry.sent == {"hubspot": {"name": "Acme HS"}}
    agree = AccountPatch("hubspot", "deals", "9", "hubspot_deal_id", {"name": "Acme Corp"}, version=3)
    fourth = merge(third.state, third.entry, [agree], CONFIG, ROLES, now=4000)
    assert fourth.entry.sent == {} and fourth.entry.changed["name"] == 2000
