"""sObject REST: CRUD, documented error bodies, limits header, versions, upsert, listeners."""

from __future__ import annotations

import pytest

from devkit.org import EmulatedOrg, OrgConfig
from services import sfids
from tests.support.org import Api, load_fixture, same_shape


def test_create_get_update_delete(api: Api) -> None:
    created = api.post("/sobjects/Account/", json={"Name": "Acme", "Document_Status__c": "NEW"})
    assert created.status_code == 201
    assert same_shape(created.json(), load_fixture("contentversion-create-response.json"))
    account_id = created.json()["id"]
    assert sfids.is_valid_id(account_id) and account_id.startswith("001") and len(account_id) == 18

    record = api.get(f"/sobjects/Account/{account_id}").json()
    assert record["attributes"] == {"type": "Account", "url": f"/services/data/v62.0/sobjects/Account/{account_id}"}
    assert record["Id"] == account_id and record["Name"] == "Acme"
    assert record["CreatedDate"].endswith("+0000") and record["IsDeleted"] is False

    patched = api.patch(f"/sobjects/Account/{account_id}", json={"document_status__c": "DONE"})
    assert patched.status_code == 204 and patched.content == b""
    some = api.get(f"/sobjects/Account/{account_id[:15]}?fields=Name,Document_Status__c").json()
    assert list(some) == ["attributes", "Id", "Name", "Document_Status__c"]  # canonical casing kept
    assert some["Document_Status__c"] == "DONE"

    assert api.delete(f"/sobjects/Account/{account_id}").status_code == 204
    gone = api.get(f"/sobjects/Account/{account_id}")
    assert gone.status_code == 404 and gone.json() == load_fixture("rest-error-404-not-found.json")


def test_documented_errors(api: Api, account: str) -> None:
    wrong_type = api.get(f"/sobjects/ContentVersion/{account}")
    assert wrong_type.status_code == 400
    assert same_shape(wrong_type.json(), load_fixture("rest-error-400-malformed-id.json"))
    assert wrong_type.json()[0]["message"] == f"ContentVersion ID: id value of incorrect type: {account}"

    unknown_type = api.post("/sobjects/NoSuchThing", json={})
    assert unknown_type.status_code == 404 and unknown_type.json()[0]["errorCode"] == "NOT_FOUND"

    missing = api.post("/sobjects/Account", json={"Industry": "x"})
    assert missing.status_code == 400
    assert missing.json() == [{"message": "Required fields are missing: [Name]", "errorCode":
                               "REQUIRED_FIELD_MISSING", "fields": ["Name"]}]

    bad_field = api.get(f"/sobjects/Account/{account}?fields=Name,Nope__c")
    assert bad_field.status_code == 400 and bad_field.json()[0]["errorCode"] == "INVALID_FIELD"

    read_only = api.patch(f"/sobjects/Account/{account}", json={"CreatedDate": "2020-01-01T00:00:00.000+0000"})
    assert read_only.json()[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"

    not_json = api.post("/sobjects/Account", data=b"{nope", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400 and not_json.json()[0]["errorCode"] == "JSON_PARSER_ERROR"

    put = api.request("PUT", f"/sobjects/Account/{account}", json={})
    assert put.status_code == 405 and put.json()[0]["errorCode"] == "METHOD_NOT_ALLOWED"


def test_limits_header_and_resource(api: Api) -> None:
    first = api.get("/limits")
    assert first.headers["Sforce-Limit-Info"] == "api-usage=1/100000"
    body = api.get("/limits/").json()
    assert body["DailyApiRequests"] == {"Max": 100000, "Remaining": 100000 - 2}
    versions = api.http.get(f"{api.org.base_url}/services/data/", timeout=10)
    assert versions.status_code == 200 and "Sforce-Limit-Info" not in versions.headers
    assert {"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"} in versions.json()


class TestDailyLimit:
    @pytest.fixture
    def org_config(self) -> OrgConfig:
        return OrgConfig(daily_api_limit=2)

    def test_request_limit_exceeded(self, api: Api) -> None:
        assert api.get("/limits").status_code == 200
        assert api.get("/limits").status_code == 200
        refused = api.get("/limits")
        assert refused.status_code == 403
        assert refused.json() == load_fixture("rest-error-403-request-limit.json")
        assert refused.headers["Sforce-Limit-Info"] == "api-usage=3/2"


def test_upsert_by_external_id(api: Api) -> None:
    created = api.patch("/sobjects/Account/External_Key__c/K-1", json={"Name": "One"})
    assert created.status_code == 201 and created.json()["created"] is True
    updated = api.patch("/sobjects/Account/External_Key__c/K-1", json={"Name": "Uno"})
    assert updated.status_code == 200 and updated.json()["created"] is False
    assert updated.json()["id"] == created.json()["id"]
    assert api.get("/sobjects/Account/External_Key__c/K-1").json()["Name"] == "Uno"


def test_custom_objects_and_describe(api: Api) -> None:
    first = api.post("/sobjects/Offload_Callout_Log__c", json={"Process__c": "resize-image"}).json()["id"]
    second = api.post("/sobjects/offload_callout_log__c", json={"Process__c": "resize-image"}).json()["id"]
    assert first[:3] == second[:3] and first[0] == "a"
    describe = api.get("/sobjects/Offload_Callout_Log__c/describe").json()
    assert describe["keyPrefix"] == first[:3] and describe["name"] == "Offload_Callout_Log__c"


def test_listeners_fire_after_writes(org: EmulatedOrg, api: Api, account: str) -> None:
    seen: list[tuple[str, str, bool]] = []
    org.state.add_listener(lambda sobject, record, created: seen.append((sobject, record["Id"], created)))
    api.patch(f"/sobjects/Account/{account}", json={"Name": "Renamed"})
    created = api.post("/sobjects/Contact", json={"LastName": "Doe", "AccountId": account}).json()["id"]
    assert seen == [("Account", account, False), ("Contact", created, True)]


def test_lookup_to_missing_record_is_rejected(api: Api) -> None:
    ghost = sfids.to_18("001000000000001")
    response = api.post("/sobjects/Contact", json={"LastName": "Doe", "AccountId": ghost})
    assert response.status_code == 400 and response.json()[0]["errorCode"] == "INVALID_CROSS_REFERENCE_KEY"


def test_query_endpoint(api: Api, account: str) -> None:
    pytest.importorskip("devkit.org.soql")
    body = api.get("/query/", params={"q": f"SELECT Id, Name FROM Account WHERE Id = '{account}'"}).json()
    assert body["totalSize"] == 1 and body["done"] is True
    assert body["records"][0]["attributes"]["type"] == "Account"
    assert body["records"][0]["Name"] == "Acme"
    bad = api.get("/query", params={"q": "SELEKT nothing"})
    assert bad.status_code == 400 and bad.json()[0]["errorCode"] == "MALFORMED_QUERY"
    api.delete(f"/sobjects/Account/{account}")
    assert api.get("/query", params={"q": "SELECT Id FROM Account"}).json()["totalSize"] == 0
    assert api.get("/queryAll", params={"q": "SELECT Id FROM Account"}).json()["totalSize"] == 1


def test_query_paging(org: EmulatedOrg, api: Api) -> None:
    pytest.importorskip("devkit.org.soql")
    for n in range(205):
        org.state.insert("Account", {"Name": f"A{n}"}, notify=False)
    first = api.get("/query", params={"q": "SELECT Id FROM Account"},
                    headers={"Sforce-Query-Options": "batchSize=200"}).json()
    assert first["totalSize"] == 205 and first["done"] is False and len(first["records"]) == 200
    rest = api.get(f"{org.base_url}{first['nextRecordsUrl']}").json()
    assert rest["done"] is True and len(rest["records"]) == 5 and rest["totalSize"] == 205


def test_a_title_over_255_characters_is_string_too_long(api: Api) -> None:
    """As a real org refuses it; the emulator used to store any length."""
    response = api.post("/sobjects/Account", json={"Name": "x" * 256})
    assert response.status_code == 400
    [error] = response.json()
    assert error["errorCode"] == "STRING_TOO_LONG" and error["fields"] == ["Name"]
    assert error["message"].endswith("(max length=255)")
