"""The Salesforce stand-in driven through simple-salesforce over real TLS on loopback (httpx for wire details)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import pytest
import requests
import trustme
from fastapi import FastAPI, Request
from fastapi.responses import Response
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)
from typer.testing import CliRunner

from sandbox.cli import run_app
from sandbox.common import serving
from sandbox.identities import company, sales_rep_email
from sandbox.salesforce import SalesforceSandboxConfig, create_app, login_domain, make_tls, sdk_session
from sandbox.salesforce.org import Org
from sandbox.salesforce.outbound import OUTBOUND_NS, SOBJECT_NS, ack_response, parse_envelope
from sandbox.salesforce.store import ADMIN_USER_ID, account_id, user_id
from workers.serving import ServerThread

USERNAME = "admin@sandbox.example"
E = TypeVar("E", bound=BaseException)


@dataclass
class Harness:
    """A running stand-in plus ready clients.

    SDK sessions are made through ``session()`` so ``running`` can close them before the server stops: an
    idle TLS keep-alive connection would otherwise hold uvicorn's shutdown until its join timeout.
    """

    server: ServerThread
    app: FastAPI
    ca_path: Path
    sessions: list[requests.Session] = field(default_factory=list)

    def session(self) -> requests.Session:
        session = sdk_session(self.ca_path)
        self.sessions.append(session)
        return session

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def org(self) -> Org:
        org = self.app.state.org
        assert isinstance(org, Org)
        return org

    def http(self) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.ca_path))
        return httpx.Client(base_url=self.url, verify=context, trust_env=False)

    def token(self) -> str:
        with self.http() as http:
            response = http.post(
                "/services/oauth2/token",
                data={
                    "grant_type": "password",
                    "client_id": "sandbox",
                    "client_secret": "sandbox",
                    "username": USERNAME,
                    "password": "sandbox",
                },
            )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def sf(self, version: str = "59.0") -> Salesforce:
        return Salesforce(instance_url=self.url, session_id=self.token(), session=self.session(), version=version)

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        with self.http() as http:
            response = http.request(method, f"/_sandbox{path}", **kwargs)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[tuple[str, str, int], int]:
        rows = self.admin("GET", "/stats")["requests"]
        return {(r["method"], r["route"], r["status"]): r["count"] for r in rows}


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return make_tls(tmp_path_factory.mktemp("salesforce-tls"))


@contextmanager
def running(tls: tuple[Path, Path, Path], **config: Any) -> Iterator[Harness]:
    cert, key, ca = tls
    app = create_app(SalesforceSandboxConfig(**config))
    with ServerThread(app, ssl_certfile=str(cert), ssl_keyfile=str(key)) as server:
        harness = Harness(server, app, ca)
        try:
            yield harness
        finally:
            for session in harness.sessions:
                session.close()


@pytest.fixture(scope="module")
def shared(tls: tuple[Path, Path, Path]) -> Iterator[Harness]:
    with running(tls, outbound_retry_base_s=0.02) as harness:
        yield harness


@pytest.fixture
def org(shared: Harness) -> Harness:
    """The module's stand-in, reset and seeded with accounts 0..29 (3 sales reps)."""
    shared.admin("POST", "/reset")
    shared.admin("POST", "/outbound", json={"url": None})
    shared.admin("POST", "/seed", json={"count": 30, "users": 3})
    return shared


def caught(kind: type[E], call: Callable[[], object]) -> E:
    """Run ``call`` expecting ``kind``; the exception comes back without its traceback.

    Dropping the traceback frees the SDK's response object at once, which closes its TLS connection; a
    connection still held open that way keeps uvicorn's shutdown of a per-test server waiting.
    """
    try:
        call()
    except kind as exc:
        return exc.with_traceback(None)
    raise AssertionError(f"{kind.__name__} was not raised")


def content_of(exc: Any) -> list[dict[str, Any]]:
    content = exc.content
    assert isinstance(content, list)
    return content


# --- TLS and OAuth -------------------------------------------------------------------------------------


def test_serves_tls_with_a_throwaway_ca(tls: tuple[Path, Path, Path]) -> None:
    assert make_tls(tls[0].parent) == tls
    cert, _, ca = tls
    assert b"BEGIN CERTIFICATE" in ca.read_bytes() and b"BEGIN CERTIFICATE" in cert.read_bytes()


def test_password_flow_through_the_sdk(org: Harness) -> None:
    sf = Salesforce(
        username=USERNAME,
        password="sandbox",
        consumer_key="sandbox",
        consumer_secret="sandbox",
        domain=login_domain(org.url),
        session=org.session(),
    )
    assert sf.sf_instance == org.url.removeprefix("https://")
    assert sf.session_id.startswith("00D000000000001!")
    users = sf.query(f"SELECT Id, Username FROM User WHERE Username = '{USERNAME}'")["records"]
    assert [u["Id"] for u in users] == [ADMIN_USER_ID]
    assert org.stats()[("POST", "/services/oauth2/token", 200)] == 1


def test_token_response_shape_and_signature(org: Harness) -> None:
    with org.http() as http:
        body = http.post(
            "/services/oauth2/token",
            data={"grant_type": "password", "client_id": "sandbox", "client_secret": "sandbox"}
            | {"username": USERNAME, "password": "sandbox"},
        ).json()
    assert set(body) == {"access_token", "instance_url", "id", "token_type", "issued_at", "signature"}
    assert body["instance_url"] == org.url
    assert body["id"] == f"{org.url}/id/00D000000000001AAA/{ADMIN_USER_ID}"
    assert body["token_type"] == "Bearer"
    expected = hmac.new(b"sandbox", (body["id"] + body["issued_at"]).encode(), hashlib.sha256).digest()
    assert base64.b64decode(body["signature"]) == expected


@pytest.mark.parametrize(
    ("form", "error", "description"),
    [
        ({"password": "wrong"}, "invalid_grant", "authentication failure"),
        ({"username": "nobody@example.com"}, "invalid_grant", "authentication failure"),
        ({"client_id": "other"}, "invalid_client_id", "client identifier invalid"),
        ({"client_secret": "other"}, "invalid_client", "invalid client credentials"),
        ({"grant_type": "authorization_code"}, "unsupported_grant_type", "grant type not supported"),
    ],
)
def test_oauth_errors(org: Harness, form: dict[str, str], error: str, description: str) -> None:
    data = {
        "grant_type": "password",
        "client_id": "sandbox",
        "client_secret": "sandbox",
        "username": USERNAME,
        "password": "sandbox",
    } | form
    with org.http() as http:
        response = http.post("/services/oauth2/token", data=data)
    assert response.status_code == 400
    assert response.json() == {"error": error, "error_description": description}


def test_sdk_reports_a_wrong_password(org: Harness) -> None:
    with pytest.raises(SalesforceAuthenticationFailed) as info:
        Salesforce(
            username=USERNAME,
            password="nope",
            consumer_key="sandbox",
            consumer_secret="sandbox",
            domain=login_domain(org.url),
            session=org.session(),
        )
    assert info.value.code == "invalid_grant"
    assert info.value.auth_message == "authentication failure"


def test_client_credentials_flow(org: Harness) -> None:
    with org.http() as http:
        ok = http.post("/services/oauth2/token", data={"grant_type": "client_credentials"}, auth=("sandbox", "sandbox"))
        bad = http.post("/services/oauth2/token", data={"grant_type": "client_credentials"}, auth=("sandbox", "x"))
    assert ok.status_code == 200 and ok.json()["instance_url"] == org.url
    assert bad.json()["error"] == "invalid_client"


def test_jwt_bearer_flow(tls: tuple[Path, Path, Path]) -> None:
    signer = trustme.CA(key_type=trustme.KeyType.RSA)
    private_key = signer.private_key_pem.bytes().decode()
    with running(tls, jwt_public_key_pem=signer.cert_pem.bytes().decode(), seed=3) as harness:
        session = harness.session()
        sf = Salesforce(
            username=sales_rep_email(1),
            consumer_key="sandbox",
            privatekey=private_key,
            instance_url=login_domain(harness.url),
            session=session,
        )
        sf.Account.update(account_id(0), {"PostHog_Account_Id__c": "ph-0"})
        record = sf.Account.get(account_id(0))
        assert record["LastModifiedById"] == user_id(1)

        other = trustme.CA(key_type=trustme.KeyType.RSA).private_key_pem.bytes().decode()
        bad_key = caught(
            SalesforceAuthenticationFailed,
            lambda: Salesforce(
                username=USERNAME,
                consumer_key="sandbox",
                privatekey=other,
                instance_url=login_domain(harness.url),
                session=session,
            ),
        )
        assert (bad_key.code, bad_key.auth_message) == ("invalid_grant", "invalid assertion")
        bad_audience = caught(
            SalesforceAuthenticationFailed,
            lambda: Salesforce(
                username=USERNAME,
                consumer_key="sandbox",
                privatekey=private_key,
                domain="example",
                instance_url=login_domain(harness.url),
                session=session,
            ),
        )
        assert bad_audience.auth_message == "audience is invalid"


def test_expired_token_answers_invalid_session_and_the_sdk_logs_in_again(org: Harness) -> None:
    direct = org.sf()
    relogin = Salesforce(
        username=USERNAME,
        password="sandbox",
        consumer_key="sandbox",
        consumer_secret="sandbox",
        domain=login_domain(org.url),
        session=org.session(),
    )
    assert org.admin("POST", "/tokens/expire")["expired"] >= 2
    with pytest.raises(SalesforceExpiredSession) as info:
        direct.query("SELECT Id FROM Account LIMIT 1")
    assert content_of(info.value) == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    old = relogin.session_id
    assert relogin.query("SELECT Id FROM Account LIMIT 1")["totalSize"] == 1
    assert relogin.session_id != old
    assert org.stats()[("POST", "/services/oauth2/token", 200)] == 3


def test_token_lifetime_is_configurable(tls: tuple[Path, Path, Path]) -> None:
    with running(tls, token_lifetime_s=0) as harness, pytest.raises(SalesforceExpiredSession):
        harness.sf().query("SELECT Id FROM User")


def test_missing_or_unknown_bearer_is_401(org: Harness) -> None:
    with org.http() as http:
        for headers in ({}, {"Authorization": "Bearer nope"}):
            response = http.get("/services/data/v59.0/limits/", headers=headers)
            assert response.status_code == 401
            assert response.json()[0]["errorCode"] == "INVALID_SESSION_ID"
        legacy = http.get("/services/data/v59.0/limits/", headers={"Authorization": f"OAuth {org.token()}"})
        assert legacy.status_code == 200


# --- queries -------------------------------------------------------------------------------------------


def test_query_shapes(org: Harness) -> None:
    result = org.sf().query(
        "SELECT Id, Name, Website, Owner.Email, CSM__r.Email, PostHog_External_Id__c, SystemModstamp "
        "FROM Account WHERE Id IN ('001Sd0000000000', '001Sd0000000001IAA') ORDER BY Id"
    )
    assert result["totalSize"] == 2 and result["done"] is True and "nextRecordsUrl" not in result
    first, second = result["records"]
    assert list(first) == [
        "attributes",
        "Id",
        "Name",
        "Website",
        "Owner",
        "CSM__r",
        "PostHog_External_Id__c",
        "SystemModstamp",
    ]
    assert first["attributes"] == {"type": "Account", "url": f"/services/data/v59.0/sobjects/Account/{account_id(0)}"}
    assert first["Name"] == company(0).name and first["Website"] == company(0).website
    assert first["Owner"]["Email"] == sales_rep_email(0)
    assert first["Owner"]["attributes"]["type"] == "User"
    assert first["CSM__r"]["Email"] == sales_rep_email(1)
    assert second["CSM__r"] is None
    assert first["SystemModstamp"] == "2024-01-01T01:00:00.000+0000"


def test_query_filters_like_and_datetime_literals(org: Harness) -> None:
    sf = org.sf()
    rows = sf.query_all(
        "SELECT Id FROM Account WHERE (Name LIKE 'acme%' OR Name LIKE 'GLOBEX%') AND "
        "SystemModstamp >= 2024-01-01T01:01:00Z ORDER BY Name DESC"
    )["records"]
    assert [r["Id"] for r in rows] == [account_id(1), account_id(21), account_id(20)]
    rows = sf.query("SELECT Id FROM Account WHERE CreatedDate < 2024-01-01T01:03:00+01:00")["records"]
    assert [r["Id"] for r in rows] == [account_id(0), account_id(1), account_id(2)]


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        ("SELECT Id FROM Account WHERE Name = 'a' AND Name = 'b' OR Name = 'c'", "MALFORMED_QUERY"),
        ("SELECT Nope FROM Account", "INVALID_FIELD"),
        ("SELECT Id FROM Nope", "INVALID_TYPE"),
        ("SELECT Id FROM Account WHERE SystemModstamp > '2024-01-01T00:00:00Z'", "INVALID_FIELD"),
        ("SELECT Id FROM Account WHERE SystemModstamp > 2024-01-01T00:00:00.000+0000", "MALFORMED_QUERY"),
    ],
)
def test_query_errors_through_the_sdk(org: Harness, soql: str, code: str) -> None:
    with pytest.raises(SalesforceMalformedRequest) as info:
        org.sf().query(soql)
    assert info.value.status == 400
    assert content_of(info.value)[0]["errorCode"] == code


def test_paging_with_next_records_url(org: Harness) -> None:
    org.admin("POST", "/seed", json={"count": 450, "users": 3})
    sf = org.sf()
    headers = {"Sforce-Query-Options": "batchSize=200"}
    first = sf.query("SELECT Id FROM Account ORDER BY Id", headers=headers)
    assert (first["totalSize"], first["done"], len(first["records"])) == (450, False, 200)
    assert re.fullmatch(r"/services/data/v59\.0/query/01g[0-9A-Za-z]{15}-200", first["nextRecordsUrl"])
    second = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert second["nextRecordsUrl"].endswith("-400") and len(second["records"]) == 200
    third = sf.query_more(second["nextRecordsUrl"], identifier_is_url=True)
    assert third["done"] is True and "nextRecordsUrl" not in third and len(third["records"]) == 50
    ids = [r["Id"] for r in sf.query_all_iter("SELECT Id FROM Account ORDER BY Id", headers=headers)]
    assert ids == [account_id(i) for i in range(450)]
    small = sf.query("SELECT Id FROM Account", headers={"Sforce-Query-Options": "batchSize=5"})
    assert len(small["records"]) == 200
    assert len(sf.query("SELECT Id FROM Account")["records"]) == 450
    stats = org.stats()
    assert stats[("GET", "/services/data/{version}/query/{locator}", 200)] == 4


def test_default_batch_size_is_configurable_and_query_all_pages_too(tls: tuple[Path, Path, Path]) -> None:
    with running(tls, seed=25, batch_size=10) as harness:
        sf = harness.sf()
        sf.Account.delete(account_id(24))
        result = sf.query_all("SELECT Id, IsDeleted FROM Account", include_deleted=True)
        assert result["totalSize"] == 25 and result["records"][-1]["IsDeleted"] is True
        page = sf.query("SELECT Id FROM Account", include_deleted=True)
        assert page["nextRecordsUrl"].startswith("/services/data/v59.0/query/01g")
        locator = page["nextRecordsUrl"].rsplit("/", 1)[1]
        assert len(sf.query_more(locator, include_deleted=True)["records"]) == 10
        assert harness.stats()[("GET", "/services/data/{version}/queryAll/{locator}", 200)] == 1


def test_cursor_is_a_snapshot_and_bad_locators_fail(org: Harness) -> None:
    org.admin("POST", "/seed", json={"count": 250, "users": 3})
    sf = org.sf()
    first = sf.query("SELECT Id, Name FROM Account ORDER BY Id", headers={"Sforce-Query-Options": "batchSize=200"})
    org.admin("PATCH", f"/sobjects/Account/{account_id(240)}", json={"Name": "Renamed"})
    rest = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)["records"]
    assert rest[40]["Name"] == company(240).name
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query_more("01gSd0000000999IAA-200")
    assert content_of(info.value)[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_query_hides_the_recycle_bin_and_query_all_shows_it(org: Harness) -> None:
    sf = org.sf()
    assert sf.Account.delete(account_id(5)) == 204
    soql = f"SELECT Id, IsDeleted, SystemModstamp FROM Account WHERE Id = '{account_id(5)}'"
    assert sf.query(soql)["totalSize"] == 0
    [row] = sf.query(soql, include_deleted=True)["records"]
    assert row["IsDeleted"] is True
    assert row["SystemModstamp"] > "2024-01-01T01:05:00.000+0000"


def test_count_query(org: Harness) -> None:
    result = org.sf().query("SELECT COUNT() FROM Account WHERE Name LIKE 'Acme%'")
    assert result == {"totalSize": 2, "done": True, "records": []}


# --- records -------------------------------------------------------------------------------------------


def test_get_update_delete_a_record(org: Harness) -> None:
    sf = org.sf()
    record = sf.Account.get(account_id(7))
    assert record["Name"] == company(7).name and record["IsDeleted"] is False
    assert sf.Account.get(account_id(7)[:15])["Id"] == account_id(7)
    assert sf.Account.get(account_id(7).lower())["Id"] == account_id(7)
    partial = sf.restful(f"sobjects/Account/{account_id(7)}", params={"fields": "Name,OwnerId"})
    assert list(partial) == ["attributes", "Name", "OwnerId"]

    before = datetime.now(UTC).replace(microsecond=0)
    assert sf.Account.update(account_id(7), {"PostHog_Account_Id__c": "ph_7", "website": ""}) == 204
    updated = sf.Account.get(account_id(7))
    assert updated["PostHog_Account_Id__c"] == "ph_7" and updated["Website"] is None
    assert updated["LastModifiedById"] == ADMIN_USER_ID
    stamp = datetime.strptime(updated["SystemModstamp"], "%Y-%m-%dT%H:%M:%S.000%z")
    assert stamp >= before and updated["LastModifiedDate"] == updated["SystemModstamp"]
    assert updated["CreatedDate"] == record["CreatedDate"]

    assert sf.Account.delete(account_id(7)) == 204
    with pytest.raises(SalesforceResourceNotFound) as info:
        sf.Account.get(account_id(7))
    assert content_of(info.value)[0]["errorCode"] == "ENTITY_IS_DELETED"
    with pytest.raises(SalesforceResourceNotFound) as info:
        sf.Account.update(account_id(7), {"Name": "x"})
    assert content_of(info.value)[0]["errorCode"] == "ENTITY_IS_DELETED"


def test_missing_and_malformed_ids_are_404(org: Harness) -> None:
    sf = org.sf()
    with pytest.raises(SalesforceResourceNotFound) as info:
        sf.Account.get(account_id(999))
    assert content_of(info.value) == [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]
    with pytest.raises(SalesforceResourceNotFound) as info:
        sf.Account.get("garbage")
    assert "Provided external ID field does not exist" in content_of(info.value)[0]["message"]
    with pytest.raises(SalesforceResourceNotFound):
        sf.Account.get(user_id(0))


@pytest.mark.parametrize(
    ("data", "code", "fields"),
    [
        ({"Name": None}, "REQUIRED_FIELD_MISSING", ["Name"]),
        ({"SystemModstamp": "2024-01-01T00:00:00Z"}, "INVALID_FIELD_FOR_INSERT_UPDATE", ["SystemModstamp"]),
        ({"Name": "x" * 256}, "STRING_TOO_LONG", ["Name"]),
        ({"OwnerId": "nope"}, "MALFORMED_ID", ["OwnerId"]),
        ({"OwnerId": "005Sd0000000099"}, "INVALID_CROSS_REFERENCE_KEY", ["OwnerId"]),
        ({"Bogus__c": 1}, "INVALID_FIELD", []),
    ],
)
def test_validation_errors_carry_fields(org: Harness, data: dict[str, Any], code: str, fields: list[str]) -> None:
    with pytest.raises(SalesforceMalformedRequest) as info:
        org.sf().Account.update(account_id(1), data)
    [error] = content_of(info.value)
    assert (error["errorCode"], error["fields"]) == (code, fields)
    assert set(error) == {"message", "errorCode", "fields"}


def test_create_and_owner_rules(org: Harness) -> None:
    sf = org.sf()
    created = sf.Account.create({"Name": "Brand New", "OwnerId": user_id(2)})
    assert created["success"] is True and created["errors"] == [] and created["id"].startswith("001")
    assert sf.Account.get(created["id"])["OwnerId"] == user_id(2)
    org.admin("PATCH", f"/sobjects/User/{user_id(2)}", json={"IsActive": False})
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Account.create({"Name": "Another", "OwnerId": user_id(2)})
    assert content_of(info.value)[0]["errorCode"] == "INACTIVE_OWNER_OR_USER"


def test_upsert_by_external_id(org: Harness) -> None:
    sf = org.sf()
    updated = sf.Account.upsert(
        "PostHog_External_Id__c/ACCT-00004", {"PostHog_Account_Id__c": "ph_4"}, raw_response=True
    )
    assert updated.status_code == 200
    assert updated.json() == {"id": account_id(4), "success": True, "errors": [], "created": False}
    inserted = sf.Account.upsert("PostHog_External_Id__c/acct-new", {"Name": "New Co"}, raw_response=True)
    assert inserted.status_code == 201 and inserted.json()["created"] is True
    assert sf.Account.get_by_custom_id("PostHog_External_Id__c", "acct-new")["Name"] == "New Co"

    awkward = "a/b#c?d e"
    path = f"PostHog_External_Id__c/{quote(awkward, safe='')}"
    assert sf.Account.upsert(path, {"Name": "Awkward"}) == 201
    [row] = sf.query("SELECT PostHog_External_Id__c FROM Account WHERE Name = 'Awkward'")["records"]
    assert row["PostHog_External_Id__c"] == awkward

    old = org.sf(version="45.0")
    assert old.Account.upsert("PostHog_External_Id__c/acct-00004", {"Website": "https://x.example"}) == 204

    with pytest.raises(SalesforceResourceNotFound):
        sf.Account.upsert("PostHog_External_Id__c/acct-none?updateOnly=true", {"Name": "x"})
    with pytest.raises(SalesforceResourceNotFound):
        sf.Account.upsert("Name/whatever", {"Website": "x"})


def test_upsert_with_duplicate_external_ids_answers_300(org: Harness) -> None:
    org.admin("PATCH", f"/sobjects/Account/{account_id(9)}", json={"PostHog_External_Id__c": "acct-00008"})
    with pytest.raises(SalesforceMoreThanOneRecord) as info:
        org.sf().Account.upsert("PostHog_External_Id__c/acct-00008", {"Name": "x"})
    assert info.value.status == 300
    assert info.value.content == [
        f"/services/data/v59.0/sobjects/Account/{account_id(8)}",
        f"/services/data/v59.0/sobjects/Account/{account_id(9)}",
    ]


# --- sObject Collections -------------------------------------------------------------------------------


def _collection(*records: dict[str, Any], all_or_none: bool = False) -> dict[str, Any]:
    return {"allOrNone": all_or_none, "records": [{"attributes": {"type": "Account"}, **r} for r in records]}


def test_composite_update_partial_success(org: Harness) -> None:
    sf = org.sf()
    results = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json=_collection(
            {"id": account_id(1), "PostHog_Account_Id__c": "ph_1"},
            {"id": "001xx", "Name": "bad"},
            {"id": account_id(2), "Name": None},
            {"id": account_id(3), "PostHog_Account_Id__c": "ph_3"},
        ),
    )
    assert results[0] == {"id": account_id(1), "success": True, "errors": []}
    assert results[1] == {
        "success": False,
        "errors": [
            {"statusCode": "MALFORMED_ID", "message": "Account ID: id value of incorrect type: 001xx", "fields": ["Id"]}
        ],
    }
    assert results[2]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert results[3]["success"] is True
    rows = sf.query("SELECT Id FROM Account WHERE PostHog_Account_Id__c != null ORDER BY Id")["records"]
    assert [r["Id"] for r in rows] == [account_id(1), account_id(3)]


def test_composite_update_all_or_none_rolls_back(org: Harness) -> None:
    sf = org.sf()
    results = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json=_collection(
            {"id": account_id(1), "PostHog_Account_Id__c": "ph_1"},
            {"id": account_id(2), "Bogus": 1},
            all_or_none=True,
        ),
    )
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[1]["errors"][0]["statusCode"] == "INVALID_FIELD"
    assert sf.Account.get(account_id(1))["PostHog_Account_Id__c"] is None


def test_composite_limits_create_retrieve_delete(org: Harness) -> None:
    sf = org.sf()
    with pytest.raises(SalesforceMalformedRequest):
        sf.restful("composite/sobjects", method="PATCH", json=_collection(*({"id": account_id(1)} for _ in range(201))))
    created = sf.restful("composite/sobjects", method="POST", json=_collection({"Name": "C1"}, {"Name": "C2"}))
    new_ids = [r["id"] for r in created]
    assert all(r["success"] for r in created)
    fetched = sf.restful(
        "composite/sobjects/Account", params={"ids": ",".join([*new_ids, account_id(999)]), "fields": "Name"}
    )
    assert [r and r["Name"] for r in fetched] == ["C1", "C2", None]
    posted = sf.restful("composite/sobjects/Account", method="POST", json={"ids": new_ids[:1], "fields": ["Website"]})
    assert list(posted[0]) == ["attributes", "Id", "Website"]
    deleted = sf.restful("composite/sobjects", method="DELETE", params={"ids": ",".join(new_ids)})
    assert [r["success"] for r in deleted] == [True, True]
    again = sf.restful("composite/sobjects", method="DELETE", params={"ids": new_ids[0]})
    assert again[0]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"


# --- limits, errors, faults, counters ------------------------------------------------------------------


def test_limit_header_on_every_response_and_limits_resource(org: Harness) -> None:
    sf = org.sf()
    sf.query("SELECT Id FROM Account LIMIT 1")
    assert sf.api_usage["api-usage"].used == 1 and sf.api_usage["api-usage"].total == 15000
    limits = sf.limits()
    assert limits["DailyApiRequests"] == {"Max": 15000, "Remaining": 14998}
    token = org.token()
    with org.http() as http:
        for path, status in (
            ("/services/data/v59.0/query/?q=SELECT+Id+FROM+Account+LIMIT+1", 200),
            ("/services/data/v59.0/nothing-here", 404),
            ("/services/data/v99.0/limits/", 404),
        ):
            response = http.get(path, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == status
            assert re.fullmatch(r"api-usage=\d+/15000", response.headers["sforce-limit-info"])
        unauthenticated = http.get("/services/data/v59.0/limits/")
        assert unauthenticated.headers["sforce-limit-info"] == "api-usage=4/15000"
        missing = http.get("/services/data/v59.0/nothing-here", headers={"Authorization": f"Bearer {token}"})
        assert missing.json() == [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]


def test_daily_allowance_exhaustion_is_403_request_limit_exceeded(tls: tuple[Path, Path, Path]) -> None:
    with running(tls, daily_api_limit=3, seed=1) as harness:
        sf = harness.sf()
        for _ in range(3):
            sf.query("SELECT Id FROM Account")
        refused = caught(SalesforceRefusedRequest, lambda: sf.query("SELECT Id FROM Account"))
        assert refused.status == 403
        assert content_of(refused) == [
            {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
        ]
        assert harness.admin("GET", "/limits") == {"used": 3, "max": 3}
        harness.admin("POST", "/limits", json={"used": 0, "max": 10})
        assert sf.query("SELECT Id FROM Account")["totalSize"] == 1
        assert sf.api_usage["api-usage"].total == 10


def test_injected_faults_have_salesforce_bodies_and_are_counted(org: Harness) -> None:
    sf = org.sf()
    token = org.token()
    org.admin("POST", "/faults", json={"rate_429": 1.0, "retry_after_s": 3})
    with org.http() as http:
        response = http.get("/services/data/v59.0/limits/", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 429 and response.headers["retry-after"] == "3"
    assert response.json() == [
        {"message": "ConcurrentPerOrgLongTxn Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    assert "sforce-limit-info" in response.headers
    org.admin("POST", "/faults", json={"rate_5xx": 1.0})
    with pytest.raises(SalesforceGeneralError) as info:
        sf.query("SELECT Id FROM Account")
    assert info.value.status == 500 and content_of(info.value)[0]["errorCode"] == "UNKNOWN_EXCEPTION"
    org.admin("POST", "/faults", json={})
    sf.query("SELECT Id FROM Account")
    stats = org.admin("GET", "/stats")
    assert stats["faults_injected"] == {"429": 1, "500": 1}
    counts = org.stats()
    assert counts[("GET", "/services/data/{version}/query/", 200)] == 1
    assert counts[("GET", "<fault>", 500)] == 1


def test_describe_and_versions(org: Harness) -> None:
    sf = org.sf()
    described = sf.Account.describe()
    fields = {f["name"]: f for f in described["fields"]}
    assert fields["PostHog_External_Id__c"]["externalId"] is True
    assert fields["OwnerId"]["relationshipName"] == "Owner" and fields["OwnerId"]["referenceTo"] == ["User"]
    assert fields["SystemModstamp"]["type"] == "datetime" and fields["SystemModstamp"]["updateable"] is False
    assert {s["name"] for s in sf.describe()["sobjects"]} == {"Account", "User"}
    with org.http() as http:
        versions = http.get("/services/data/").json()
    assert {"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"} in versions


def test_updated_and_deleted_resources(org: Harness) -> None:
    sf = org.sf()
    start = datetime.now(UTC) - timedelta(minutes=5)
    sf.Account.update(account_id(1), {"Name": "Touched"})
    sf.Account.delete(account_id(2))
    end = datetime.now(UTC) + timedelta(minutes=1)
    assert sf.Account.updated(start, end)["ids"] == [account_id(1)]
    deleted = sf.Account.deleted(start, end)
    assert [d["id"] for d in deleted["deletedRecords"]] == [account_id(2)]
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Account.deleted(start - timedelta(days=40), end)
    assert content_of(info.value)[0]["errorCode"] == "INVALID_REPLICATION_DATE"


# --- Outbound Messages ---------------------------------------------------------------------------------


class Listener:
    """An Outbound Message endpoint that refuses the first ``refuse`` deliveries, then acknowledges."""

    def __init__(self, refuse: int = 0) -> None:
        self.refuse = refuse
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self.app = FastAPI()

        @self.app.post("/outbound")
        async def receive(request: Request) -> Response:
            body = await request.body()
            with self._lock:
                if self.refuse:
                    self.refuse -= 1
                    return Response(b"", media_type="text/xml")
                self.bodies.append(body)
                self.headers.append(dict(request.headers))
            return Response(ack_response(), media_type="text/xml")

    def messages(self) -> list[dict[str, Any]]:
        return [parse_envelope(b) for b in self.bodies]


def test_outbound_message_envelope(org: Harness) -> None:
    listener = Listener()
    with serving(listener.app) as hook:
        org.admin("POST", "/outbound", json={"url": f"{hook.url}/outbound"})
        sf = org.sf()
        sf.Account.update(account_id(4), {"PostHog_Account_Id__c": "ph_4"})
        assert org.org.notifier.sender.drain(10)
    [raw] = listener.bodies
    assert listener.headers[0]["content-type"] == "text/xml; charset=utf-8"
    assert listener.headers[0]["soapaction"] == '""'
    text = raw.decode()
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope')
    assert f'<notifications xmlns="{OUTBOUND_NS}">' in text
    assert f'xsi:type="sf:Account" xmlns:sf="{SOBJECT_NS}"' in text
    [message] = listener.messages()
    assert message["OrganizationId"] == "00D000000000001AAA"
    assert message["ActionId"].startswith("04k")
    assert message["EnterpriseUrl"] == f"{org.url}/services/Soap/c/59.0/00D000000000001"
    assert message["PartnerUrl"] == f"{org.url}/services/Soap/u/59.0/00D000000000001"
    [note] = message["Notification"]
    assert note["Id"].startswith("04l") and note["type"] == "sf:Account"
    assert note["sObject"]["Id"] == account_id(4)
    assert note["sObject"]["PostHog_Account_Id__c"] == "ph_4"
    assert note["sObject"]["IsDeleted"] == "false"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z", note["sObject"]["SystemModstamp"])
    assert "CSM__c" not in note["sObject"]
    callback = Salesforce(instance_url=org.url, session_id=message["SessionId"], session=org.session(), version="59.0")
    assert callback.Account.get(account_id(4))["PostHog_Account_Id__c"] == "ph_4"


def test_outbound_messages_retry_until_acked_batch_and_skip_deletes(org: Harness) -> None:
    listener = Listener(refuse=1)
    with serving(listener.app) as hook:
        org.admin("POST", "/outbound", json={"url": f"{hook.url}/outbound"})
        sf = org.sf()
        sf.Account.update(account_id(1), {"Name": "First"})
        assert org.org.notifier.sender.drain(10)
        outbound = org.admin("GET", "/outbound")
        assert (outbound["delivered"], outbound["attempts"]) == (1, 2)

        org.admin("POST", "/seed", json={"count": 150, "users": 3})
        records = [{"id": account_id(i), "PostHog_Account_Id__c": f"ph_{i}"} for i in range(150)]
        sf.restful("composite/sobjects", method="PATCH", json=_collection(*records[:100]))
        sf.restful("composite/sobjects", method="PATCH", json=_collection(*records[100:]))
        sf.Account.upsert("PostHog_External_Id__c/acct-00001", {"Website": "https://one.example"})
        sf.Account.delete(account_id(2))
        org.admin("PATCH", f"/sobjects/Account/{account_id(4)}", json={"Name": "Edited in the UI"})
        org.admin("DELETE", f"/sobjects/Account/{account_id(5)}")
        assert org.org.notifier.sender.drain(10)
    sizes = [len(m["Notification"]) for m in listener.messages()]
    assert sizes == [1, 100, 50, 1, 1]
    last = listener.messages()[-1]["Notification"][0]["sObject"]
    assert (last["Id"], last["Name"], last["LastModifiedById"]) == (account_id(4), "Edited in the UI", user_id(1))
    assert org.admin("GET", "/outbound")["delivered"] == 5


def test_seeding_with_notify_sends_messages(org: Harness) -> None:
    listener = Listener()
    with serving(listener.app) as hook:
        org.admin("POST", "/outbound", json={"url": f"{hook.url}/outbound"})
        org.admin("POST", "/seed", json={"count": 120, "start": 1000, "notify": True})
        assert org.org.notifier.sender.drain(10)
    assert [len(m["Notification"]) for m in listener.messages()] == [100, 20]


# --- admin ---------------------------------------------------------------------------------------------


def test_seeding_is_deterministic_and_overlaps_identities(tls: tuple[Path, Path, Path]) -> None:
    snapshots = []
    for _ in range(2):
        with running(tls) as harness:
            result = harness.admin("POST", "/seed", json={"count": 10_000, "start": 500})
            assert (result["accounts"], result["first_id"]) == (10_000, account_id(500))
            snapshots.append([harness.admin("GET", f"/sobjects/Account/{account_id(i)}") for i in (500, 777, 10_499)])
            assert harness.admin("GET", "/summary")["records"]["Account"] == {"total": 10_000, "deleted": 0}
            rows = harness.sf().query_all("SELECT Id FROM Account WHERE PostHog_External_Id__c = 'acct-00777'")
            assert [r["Id"] for r in rows["records"]] == [account_id(777)]
    assert snapshots[0] == snapshots[1]
    record = snapshots[0][1]
    assert (record["Name"], record["PostHog_External_Id__c"]) == (company(777).name, company(777).external_id)
    assert record["CreatedDate"] == "2024-01-01T12:57:00.000+0000"


def test_admin_edit_delete_undelete_purge(org: Harness) -> None:
    edited = org.admin("PATCH", f"/sobjects/Account/{account_id(6)}", json={"Name": "Renamed"})
    assert edited["Name"] == "Renamed" and edited["LastModifiedById"] == user_id(0)
    assert edited["SystemModstamp"] > "2024-01-02"
    deleted = org.admin("DELETE", f"/sobjects/Account/{account_id(6)}")
    assert deleted["IsDeleted"] is True
    restored = org.admin("POST", f"/sobjects/Account/{account_id(6)}/undelete")
    assert restored["IsDeleted"] is False
    assert org.admin("DELETE", f"/sobjects/Account/{account_id(6)}", params={"hard": "true"}) == {"purged": True}
    sf = org.sf()
    assert sf.query_all(f"SELECT Id FROM Account WHERE Id = '{account_id(6)}'", include_deleted=True)["totalSize"] == 0


def test_many_rows_share_one_modstamp_and_id_breaks_ties(org: Harness) -> None:
    org.admin("POST", "/seed", json={"count": 500, "users": 3})
    stamp = "2024-03-01T00:00:00Z"
    assert org.admin("POST", "/modstamp", json={"value": stamp, "limit": 450})["updated"] == 450
    sf = org.sf()
    headers = {"Sforce-Query-Options": "batchSize=200"}
    seen: list[str] = []
    cursor_stamp, cursor_id = "2024-03-01T00:00:00Z", "001000000000000AAA"
    while True:
        soql = (
            f"SELECT Id, SystemModstamp FROM Account WHERE SystemModstamp > {cursor_stamp} OR "
            f"(SystemModstamp = {cursor_stamp} AND Id > '{cursor_id}') ORDER BY SystemModstamp, Id LIMIT 200"
        )
        rows = sf.query(soql, headers=headers)["records"]
        if not rows:
            break
        seen.extend(r["Id"] for r in rows)
        cursor_id = rows[-1]["Id"]
        cursor_stamp = rows[-1]["SystemModstamp"].replace(".000+0000", "Z")
    assert seen == [account_id(i) for i in range(450)]


def test_cli_command_is_registered() -> None:
    result = CliRunner().invoke(run_app, ["salesforce", "--help"])
    assert result.exit_code == 0
    for option in ("--port", "--seed", "--ca-out", "--outbound-url", "--org-id"):
        assert option in result.output


def test_requests_over_16384_bytes_are_refused_as_salesforce_does(tls: tuple[Path, Path, Path]) -> None:
    with running(tls) as harness, harness.http() as http:
        long_uri = http.get("/services/data/v59.0/query/", params={"q": "x" * 16_400})
        assert long_uri.status_code == 414 and long_uri.text == "URI Too Long"
        with_headers = http.get(
            "/services/data/v59.0/query/", params={"q": "x" * 15_000}, headers={"X-Padding": "p" * 2_000}
        )
        assert with_headers.status_code == 431 and with_headers.text == "Request Header Fields Too Large"
        fits = http.get("/services/data/v59.0/query/", params={"q": "x" * 15_000})
        assert fits.status_code == 401  # past the size check: no session


def test_token_endpoint_switches_audiences_and_the_run_as_user(tls: tuple[Path, Path, Path]) -> None:
    with running(tls, jwt_audiences=("https://acme.my.salesforce.com",), client_credentials_user=False) as h:
        with h.http() as http:
            basic = base64.b64encode(b"sandbox:sandbox").decode()
            refused = http.post(
                "/services/oauth2/token",
                data={"grant_type": "client_credentials"},
                headers={"Authorization": f"Basic {basic}"},
            )
            assert refused.status_code == 400
            assert refused.json() == {
                "error": "invalid_grant",
                "error_description": "no client credentials user enabled",
            }
        h.admin("POST", "/oauth", json={"client_credentials_user": True})
        with h.http() as http:
            granted = http.post(
                "/services/oauth2/token",
                data={"grant_type": "client_credentials"},
                headers={"Authorization": f"Basic {basic}"},
            )
            assert granted.status_code == 200 and granted.json()["token_type"] == "Bearer"
        h.admin("POST", "/reset")
        assert h.org.oauth.settings.client_credentials_user is False  # reset restores the configured switch
        assert h.org.oauth.settings.jwt_audiences == ("https://acme.my.salesforce.com",)
