"""The Salesforce stand-in's SOQL tokenizer/parser, query semantics and record ids, tested without HTTP."""

from __future__ import annotations

import string
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.salesforce import ids, soql
from sandbox.salesforce.errors import SalesforceError
from sandbox.salesforce.query import execute, like_regex
from sandbox.salesforce.schema import ACCOUNT
from sandbox.salesforce.store import ADMIN_USER_ID, Store, account_id

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def run(store: Store, text: str, include_deleted: bool = False) -> list[dict[str, Any]]:
    return execute(store, text, include_deleted, "59.0", NOW).records


def error_of(store: Store, text: str) -> tuple[str, str]:
    with pytest.raises(SalesforceError) as info:
        execute(store, text, False, "59.0", NOW)
    body = info.value.body()[0]
    return body["errorCode"], body["message"]


@pytest.fixture
def store() -> Store:
    store = Store()
    store.seed(30, users=3)
    return store


# --- parser ----------------------------------------------------------------------------------------------


def test_parses_the_full_subset() -> None:
    query = soql.parse(
        "select Id, Owner.Email from account where (SystemModstamp >= 2024-05-01T10:00:00.000Z and "
        "Name like 'Acme%') or Id in ('001Sd0000000000IAA') order by SystemModstamp asc, Id desc nulls last "
        "limit 10 offset 5"
    )
    assert [f.parts for f in query.fields] == [("Id",), ("Owner", "Email")]
    assert query.sobject == "account"
    assert isinstance(query.where, soql.Or)
    first, second = query.where.operands
    assert isinstance(first, soql.And) and isinstance(second, soql.InList)
    comparison = first.operands[0]
    assert isinstance(comparison, soql.Comparison)
    assert isinstance(comparison.value, soql.DateTimeValue)
    assert comparison.value.value == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert [(o.path.parts, o.descending, o.nulls_first) for o in query.order_by] == [
        (("SystemModstamp",), False, None),
        (("Id",), True, False),
    ]
    assert (query.limit, query.offset) == (10, 5)


def test_datetime_literals_with_offsets_and_fractions() -> None:
    where = soql.parse("SELECT Id FROM Account WHERE CreatedDate > 2024-05-01T12:00:00.250+02:00").where
    assert isinstance(where, soql.Comparison) and isinstance(where.value, soql.DateTimeValue)
    assert where.value.value == datetime(2024, 5, 1, 10, 0, 0, 250000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "token", "col"),
    [
        ("SELECT Id FROM Account WHERE Name = 'a' AND Name = 'b' OR Name = 'c'", "'OR'", 56),
        ("SELECT Id FORM Account", "'FORM'", 11),
        (
            "SELECT Id FROM Account WHERE CreatedDate > 2024-05-01T10:00:00.000+0000",
            "'2024-05-01T10:00:00.000+0000'",
            44,
        ),
        ("SELECT FROM Account", "'FROM'", 8),
        ("SELECT Id FROM Account LIMIT 5 ORDER BY Id", "'ORDER'", 32),
        ('SELECT Id FROM Account WHERE Name = "x"', "'\"'", 37),
        ("SELECT Id FROM Account WHERE Name IN ()", "')'", 39),
        ("SELECT Id FROM Account WHERE Name = 'open", "<EOF>", 42),
    ],
)
def test_syntax_errors_point_at_the_token(text: str, token: str, col: int) -> None:
    with pytest.raises(soql.SoqlSyntaxError) as info:
        soql.parse(text)
    assert info.value.message == f"unexpected token: {token}"
    assert info.value.pos == soql.Pos(1, col)


def test_string_escapes() -> None:
    where = soql.parse(r"SELECT Id FROM Account WHERE Name = 'O\'Brien \\ \n'").where
    assert isinstance(where, soql.Comparison) and isinstance(where.value, soql.StringValue)
    assert where.value.value == "O'Brien \\ \n"
    with pytest.raises(soql.SoqlSyntaxError, match="Illegal character sequence"):
        soql.parse(r"SELECT Id FROM Account WHERE Name = 'a\q'")


# --- property: render(parse(render(q))) == render(q) -------------------------------------------------

_names = st.sampled_from(["Id", "Name", "Website", "SystemModstamp", "IsDeleted", "PostHog_External_Id__c"])
_paths = st.one_of(
    _names.map(lambda n: (n,)),
    st.tuples(st.sampled_from(["Owner", "CSM__r"]), st.sampled_from(["Email", "Name", "IsActive"])),
)
_safe_text = st.text(alphabet=st.characters(blacklist_characters="'\\", blacklist_categories=("Cs", "Cc")))
_values: st.SearchStrategy[soql.Value] = st.one_of(
    _safe_text.map(lambda s: soql.StringValue(s, s)),
    st.integers(-10_000, 10_000).map(lambda n: soql.NumberValue(str(n))),
    st.booleans().map(soql.BoolValue),
    st.just(soql.NullValue()),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1), timezones=st.just(UTC)).map(
        lambda d: soql.DateTimeValue(d.replace(microsecond=0), d.strftime("%Y-%m-%dT%H:%M:%SZ"))
    ),
    st.sampled_from(["TODAY", "YESTERDAY"]).map(soql.DateLiteral),
    st.integers(1, 90).map(lambda n: soql.DateLiteral("LAST_N_DAYS", n)),
)
_pos = soql.Pos(1, 1)
_leaves: st.SearchStrategy[soql.Condition] = st.one_of(
    st.builds(
        lambda p, op, v: soql.Comparison(soql.FieldPath(p, _pos), op, v, _pos),
        _paths,
        st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
        _values,
    ),
    st.builds(
        lambda p, neg, vs: soql.InList(soql.FieldPath(p, _pos), neg, tuple(vs), _pos),
        _paths,
        st.booleans(),
        st.lists(_values, min_size=1, max_size=3),
    ),
    st.builds(lambda p, s: soql.Like(soql.FieldPath(p, _pos), soql.StringValue(s, s), _pos), _paths, _safe_text),
)
_conditions = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        inner.map(soql.Not),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: soql.And(tuple(xs))),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: soql.Or(tuple(xs))),
    ),
    max_leaves=6,
)
_queries = st.builds(
    lambda fields, where, order, limit, offset: soql.Query(
        tuple(soql.FieldPath(p, _pos) for p in fields),
        False,
        "Account",
        _pos,
        where,
        tuple(soql.OrderItem(soql.FieldPath(p, _pos), d, n) for p, d, n in order),
        limit,
        offset,
    ),
    st.lists(_paths, min_size=1, max_size=4),
    st.none() | _conditions,
    st.lists(st.tuples(_paths, st.booleans(), st.none() | st.booleans()), max_size=3),
    st.none() | st.integers(0, 50_000),
    st.none() | st.integers(0, 2000),
)


@settings(max_examples=150, deadline=None)
@given(_queries)
def test_render_parse_round_trip(query: soql.Query) -> None:
    text = soql.render(query)
    assert soql.render(soql.parse(text)) == text


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=string.ascii_letters + string.digits + " %_\\'.-", max_size=20))
def test_like_with_escaped_wildcards_matches_the_literal_text(value: str) -> None:
    raw = "".join("\\" + c if c in "%_\\'" else c for c in value)
    assert like_regex(raw).fullmatch(value) is not None
    assert like_regex(raw).fullmatch(value.swapcase()) is not None
    assert like_regex(raw).fullmatch(value + "x") is None
    assert like_regex(raw + "%").fullmatch(value + "tail") is not None


# --- semantics -------------------------------------------------------------------------------------------


def test_select_projection_with_relationships(store: Store) -> None:
    rows = run(store, "SELECT id, NAME, owner.email, CSM__r.Name FROM ACCOUNT WHERE Id = '001Sd0000000001'")
    assert rows == [
        {
            "attributes": {"type": "Account", "url": "/services/data/v59.0/sobjects/Account/001Sd0000000001IAA"},
            "Id": "001Sd0000000001IAA",
            "Name": "Globex Labs 00001",
            "Owner": {
                "attributes": {"type": "User", "url": "/services/data/v59.0/sobjects/User/005Sd0000000001IAA"},
                "Email": "ben.rep1@crmsync-demo.example.com",
            },
            "CSM__r": None,
        }
    ]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("Name = 'acme labs 00000'", [0]),
        ("Name != 'Acme Labs 00000' AND Name LIKE 'ACME%'", [20]),
        ("Name LIKE '%labs 0001_'", list(range(10, 20))),
        ("PostHog_External_Id__c IN ('acct-00003', 'ACCT-00004', 'nope')", [3, 4]),
        ("PostHog_External_Id__c NOT IN ('acct-00003') AND PostHog_External_Id__c < 'acct-00002'", [0, 1]),
        ("CreatedDate >= 2024-01-01T00:28:00Z", [28, 29]),
        ("CreatedDate > 2024-01-01T00:28:00Z", [29]),
        ("CreatedDate < 2024-01-01T02:02:00+02:00", [0, 1]),
        ("CreatedDate <= 2024-01-01T00:01:00.000Z", [0, 1]),
        ("CSM__c = null AND (Id = '001Sd0000000001IAA' OR Id = '001sd0000000002iaa')", [1, 2]),
        ("CSM__c != null AND CreatedDate < 2024-01-01T00:07:00Z", [0, 3, 6]),
        ("Owner.Email = 'chloe.rep2@crmsync-demo.example.com' AND CreatedDate < 2024-01-01T00:09:00Z", [2, 5, 8]),
        ("NOT (Name LIKE '%0000_') AND CreatedDate < 2024-01-01T00:12:00Z", [10, 11]),
        ("IsDeleted = false AND CreatedDate > 2024-01-01T00:28:30Z", [29]),
        ("CreatedDate = LAST_N_DAYS:30", []),
    ],
)
def test_where_operators(store: Store, where: str, expected: list[int]) -> None:
    rows = run(store, f"SELECT Id FROM Account WHERE {where}")
    assert [r["Id"] for r in rows] == [account_id(i) for i in expected]


def test_order_by_several_fields_nulls_and_limit_offset(store: Store) -> None:
    rows = run(store, "SELECT Id, CSM__c FROM Account ORDER BY CSM__c DESC NULLS FIRST, Name DESC LIMIT 4 OFFSET 1")
    assert [r["Id"] for r in rows] == [account_id(i) for i in (28, 7, 5, 25)]
    rows = run(store, "SELECT Id FROM Account ORDER BY OwnerId, CreatedDate DESC LIMIT 3")
    assert [r["Id"] for r in rows] == [account_id(i) for i in (27, 24, 21)]


def test_recycle_bin_rows_only_in_query_all(store: Store) -> None:
    store.delete(ACCOUNT, account_id(3), ADMIN_USER_ID)
    assert account_id(3) not in [r["Id"] for r in run(store, "SELECT Id FROM Account")]
    rows = run(store, "SELECT Id, IsDeleted FROM Account WHERE IsDeleted = true", include_deleted=True)
    assert [(r["Id"], r["IsDeleted"]) for r in rows] == [(account_id(3), True)]


@pytest.mark.parametrize(
    ("text", "code", "detail"),
    [
        ("SELECT Foo FROM Account", "INVALID_FIELD", "No such column 'Foo' on entity 'Account'."),
        ("SELECT Id FROM Contact", "INVALID_TYPE", "sObject type 'Contact' is not supported."),
        ("SELECT Boss.Email FROM Account", "INVALID_FIELD", "Didn't understand relationship 'Boss'"),
        ("SELECT Owner.Foo FROM Account", "INVALID_FIELD", "No such column 'Foo' on entity 'User'."),
        ("SELECT Id, id FROM Account", "INVALID_FIELD", "duplicate field selected: id"),
        ("SELECT Id FROM User WHERE IsDeleted = false", "INVALID_FIELD", "No such column 'IsDeleted'"),
        (
            "SELECT Id FROM Account WHERE CreatedDate > '2024-01-01T00:00:00Z'",
            "INVALID_FIELD",
            "must be of type dateTime and should not be enclosed in quotes",
        ),
        (
            "SELECT Id FROM Account WHERE CreatedDate > 2024-01-01",
            "INVALID_FIELD",
            "must be of type dateTime",
        ),
        ("SELECT Id FROM Account WHERE IsDeleted = 'false'", "INVALID_FIELD", "must be of type boolean"),
        ("SELECT Id FROM Account WHERE Name = 5", "INVALID_FIELD", "must be of type string"),
        ("SELECT Id FROM Account WHERE Id = 'nope'", "INVALID_QUERY_FILTER_OPERATOR", "invalid ID field: nope"),
        ("SELECT Id FROM Account WHERE CreatedDate LIKE 'x'", "INVALID_QUERY_FILTER_OPERATOR", "invalid operator"),
        ("SELECT Id FROM Account WHERE a = 1 OR b = 2 AND c = 3", "MALFORMED_QUERY", "unexpected token: 'AND'"),
    ],
)
def test_query_errors(store: Store, text: str, code: str, detail: str) -> None:
    got_code, message = error_of(store, text)
    assert got_code == code
    assert detail in message
    assert message.startswith(f"\n{text}\n")
    assert "ERROR at Row:1:Column:" in message


def test_offset_above_2000_is_refused(store: Store) -> None:
    assert error_of(store, "SELECT Id FROM Account LIMIT 1 OFFSET 2001")[0] == "NUMBER_OUTSIDE_VALID_RANGE"


def test_count(store: Store) -> None:
    result = execute(store, "SELECT COUNT() FROM Account WHERE Name LIKE 'acme%'", False, "59.0", NOW)
    assert result.count_only and result.total_size == 2


# --- ids -------------------------------------------------------------------------------------------------


@given(st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", min_size=15, max_size=15))
def test_id_checksum_round_trips(id15: str) -> None:
    id18 = ids.normalize_id(id15)
    assert id18 is not None and id18[:15] == id15
    assert ids.normalize_id(id18) == id18
    assert ids.normalize_id(id18.lower()) == id18
    assert ids.normalize_id(id18.upper()) == id18


def test_known_salesforce_id_conversion() -> None:
    assert ids.normalize_id("001A0000006Vm9r") == "001A0000006Vm9rIAC"
    assert ids.normalize_id("001a0000006vm9riac") == "001A0000006Vm9rIAC"
    assert ids.normalize_id("001A0000006Vm9rIAX") is None
    assert ids.normalize_id("001-bad") is None
