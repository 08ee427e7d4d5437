"""/composite and /composite/sobjects against the fixture requests and responses."""

from __future__ import annotations

import pytest

from devkit.org import EmulatedOrg
from tests.support.org import Api, load_fixture, same_shape

FIXTURE_ACCOUNTS = ("0015g00000QwErTAAV", "0015g00000QwErUAAV")


@pytest.fixture
def fixture_accounts(org: EmulatedOrg) -> None:
    for account_id in FIXTURE_ACCOUNTS:
        org.state.insert("Account", {"Name": account_id}, record_id=account_id, notify=False)


@pytest.mark.usefixtures("fixture_accounts")
def test_composite_fixture_with_references(org: EmulatedOrg, api: Api) -> None:
    response = api.post("/composite", json=load_fixture("composite-request.json"))
    assert response.status_code == 200
    body = response.json()
    assert same_shape(body, load_fixture("composite-response.json"))
    cv, info, acct = body["compositeResponse"]
    assert (cv["httpStatusCode"], info["httpStatusCode"], acct["httpStatusCode"]) == (201, 200, 204)
    assert cv["httpHeaders"]["Location"] == f"/services/data/v62.0/sobjects/ContentVersion/{cv['body']['id']}"
    account = org.state.get_record(FIXTURE_ACCOUNTS[0])[1]
    assert account["Last_Document_Id__c"] == info["body"]["ContentDocumentId"]
    assert account["Document_Status__c"] == "GENERATED"
    assert response.headers["Sforce-Limit-Info"] == "api-usage=1/100000"  # one call, not four


@pytest.mark.usefixtures("fixture_accounts")
def test_all_or_none_rolls_back(org: EmulatedOrg, api: Api) -> None:
    request = load_fixture("composite-request.json")
    request["compositeRequest"][2]["url"] = "/services/data/v62.0/sobjects/Account/0015g00000QwErZAAV"
    seen: list[str] = []
    org.state.add_listener(lambda sobject, record, created: seen.append(sobject))
    body = api.post("/composite", json=request).json()["compositeResponse"]
    assert [item["httpStatusCode"] for item in body] == [400, 400, 404]
    assert body[0]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert org.state.all_records("ContentVersion") == [] and seen == []


def test_forbidden_subrequest_header(api: Api) -> None:
    request = {"compositeRequest": [{"method": "GET", "url": "/services/data/v62.0/limits", "referenceId": "a",
                                     "httpHeaders": {"Authorization": "Bearer x"}}]}
    assert api.post("/composite", json=request).status_code == 400


@pytest.mark.usefixtures("fixture_accounts")
def test_collection_update_with_lock_matches_fixture(org: EmulatedOrg, api: Api) -> None:
    api.admin("POST", "/locks", json={"ids": [FIXTURE_ACCOUNTS[1]]})
    response = api.patch("/composite/sobjects", json=load_fixture("composite-sobjects-request.json"))
    assert response.status_code == 200
    assert response.json() == load_fixture("composite-sobjects-response.json")
    assert org.state.get_record(FIXTURE_ACCOUNTS[0])[1]["Document_Status__c"] == "GENERATED"


@pytest.mark.usefixtures("fixture_accounts")
def test_collection_all_or_none(org: EmulatedOrg, api: Api) -> None:
    request = load_fixture("composite-sobjects-request.json") | {"allOrNone": True}
    api.admin("POST", "/locks", json={"ids": [FIXTURE_ACCOUNTS[1]]})
    results = api.patch("/composite/sobjects", json=request).json()
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[1]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    assert "Document_Status__c" not in org.state.get_record(FIXTURE_ACCOUNTS[0])[1]


def test_collection_create_and_limits(api: Api) -> None:
    records = [{"attributes": {"type": "Contact"}, "LastName": f"N{i}"} for i in range(3)]
    records.append({"attributes": {"type": "Contact"}, "FirstName": "no last name"})
    results = api.post("/composite/sobjects", json={"records": records}).json()
    assert [r["success"] for r in results] == [True, True, True, False]
    assert results[3]["errors"][0] == {"statusCode": "REQUIRED_FIELD_MISSING", "fields": ["LastName"],
                                       "message": "Required fields are missing: [LastName]"}
    too_many = [{"attributes": {"type": "Contact"}, "LastName": "x"}] * 201
    assert api.post("/composite/sobjects", json={"records": too_many}).status_code == 400
