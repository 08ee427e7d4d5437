"""Bulk API 2.0 query jobs on the org emulator, over real HTTPS with plain requests (no simple-salesforce).

The documented lifecycle (create -> UploadComplete, poll -> JobComplete, CSV results paged by Sforce-Locator,
abort, delete, list) and the refusals a real org gives, including the ones Bulk API 2.0 adds to SOQL.
"""

from __future__ import annotations

import csv
import io

import pytest
import requests

from devkit.org import EmulatedOrg, OrgConfig
from tests.support.org import Api
from tests.support.orgtools import upload_file

JOB_KEYS = {"id", "operation", "object", "createdById", "createdDate", "systemModstamp", "state",
            "concurrencyMode", "contentType", "apiVersion", "lineEnding", "columnDelimiter"}
"""Create a Query Job's response body (query_create_job.htm)."""

INFO_KEYS = JOB_KEYS | {"jobType", "numberRecordsProcessed", "retries", "totalProcessingTime"}
"""Get Information About a Query Job's response body (query_get_one_job.htm)."""


def _accounts(api: Api, *names: str) -> list[str]:
    ids = []
    for name in names:
        response = api.post("/sobjects/Account", json={"Name": name})
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


def _create(api: Api, query: str, **extra: str) -> dict:
    response = api.post("/jobs/query", json={"operation": "query", "query": query, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def _poll(api: Api, job_id: str) -> dict:
    response = api.get(f"/jobs/query/{job_id}")
    assert response.status_code == 200, response.text
    return response.json()


def _rows(response: requests.Response, delimiter: str = ",") -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text, newline=""), delimiter=delimiter))


def _error(response: requests.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    [error] = response.json()
    return error


def test_create_poll_and_page_through_results(api: Api) -> None:
    ids = _accounts(api, *(f"Acme {n}" for n in range(7)))
    job = _create(api, "SELECT Id, Name FROM Account")
    assert set(job) == JOB_KEYS
    assert job["id"].startswith("750") and len(job["id"]) == 18
    assert (job["state"], job["operation"], job["object"]) == ("UploadComplete", "query", "Account")
    assert (job["contentType"], job["columnDelimiter"], job["lineEnding"], job["apiVersion"]) == (
        "CSV", "COMMA", "LF", 62.0)

    info = _poll(api, job["id"])
    assert set(info) == INFO_KEYS
    assert (info["state"], info["jobType"], info["numberRecordsProcessed"], info["retries"]) == (
        "JobComplete", "V2Query", 7, 0)

    seen: list[str] = []
    locator: str | None = None
    pages = 0
    while True:
        params = {"maxRecords": "3", **({"locator": locator} if locator else {})}
        response = api.get(f"/jobs/query/{job['id']}/results", params=params)
        rows = _rows(response)
        assert list(rows[0]) == ["Id", "Name"], "every set starts with the header row"
        assert response.headers["Sforce-NumberOfRecords"] == str(len(rows))
        seen += [row["Id"] for row in rows]
        pages += 1
        locator = response.headers["Sforce-Locator"]
        if locator == "null":
            break
    assert pages == 3 and sorted(seen) == sorted(ids)


def test_a_locator_gives_the_same_set_every_time(api: Api) -> None:
    _accounts(api, "a", "b", "c")
    job = _create(api, "SELECT Id FROM Account")
    _poll(api, job["id"])
    first = api.get(f"/jobs/query/{job['id']}/results", params={"maxRecords": "1"})
    locator = first.headers["Sforce-Locator"]
    again = [api.get(f"/jobs/query/{job['id']}/results", params={"maxRecords": "1", "locator": locator})
             for _ in range(2)]
    assert again[0].text == again[1].text and again[0].text != first.text
    assert again[0].headers["Sforce-Locator"] == again[1].headers["Sforce-Locator"]


def test_the_result_set_is_fixed_when_the_job_runs(api: Api) -> None:
    _accounts(api, "before create")
    job = _create(api, "SELECT Id, Name FROM Account")
    _accounts(api, "after create, before processing")
    assert _poll(api, job["id"])["numberRecordsProcessed"] == 2
    _accounts(api, "after processing")
    names = {row["Name"] for row in _rows(api.get(f"/jobs/query/{job['id']}/results"))}
    assert names == {"before create", "after create, before processing"}


@pytest.mark.parametrize("org_config", [OrgConfig(bulk_query_polls_in_progress=2)])
def test_a_job_can_stay_in_progress_for_some_polls(api: Api) -> None:
    _accounts(api, "x")
    job = _create(api, "SELECT Id FROM Account")
    states = []
    for _ in range(3):
        states.append(_poll(api, job["id"])["state"])
        _accounts(api, "created while the job runs")  # not in its snapshot, taken when processing started
        if states[-1] != "JobComplete":
            early = _error(api.get(f"/jobs/query/{job['id']}/results"), 400)
            assert early["errorCode"] == "API_ERROR" and "JobComplete" in early["message"]
    assert states == ["InProgress", "InProgress", "JobComplete"]
    assert len(_rows(api.get(f"/jobs/query/{job['id']}/results"))) == 1


def test_results_before_completion_are_refused(api: Api) -> None:
    job = _create(api, "SELECT Id FROM Account")
    error = _error(api.get(f"/jobs/query/{job['id']}/results"), 400)
    assert error["errorCode"] == "API_ERROR" and "UploadComplete" in error["message"]


def test_csv_quoting_nulls_and_parent_fields(api: Api) -> None:
    tricky = 'Smith, Jones & "Partners"\nSecond line'
    parent = _accounts(api, "Parent Co")[0]
    child = api.post("/sobjects/Account", json={"Name": tricky, "ParentId": parent, "NumberOfEmployees": 12})
    assert child.status_code == 201
    job = _create(api, "SELECT Id, Name, Parent.Name, NumberOfEmployees, Description, CreatedDate FROM Account "
                       "WHERE ParentId != null")
    _poll(api, job["id"])
    response = api.get(f"/jobs/query/{job['id']}/results")
    [row] = _rows(response)
    assert list(row) == ["Id", "Name", "Parent.Name", "NumberOfEmployees", "Description", "CreatedDate"]
    assert row["Name"] == tricky and row["Parent.Name"] == "Parent Co" and row["NumberOfEmployees"] == "12"
    assert row["Description"] == "", "a null is an empty value"
    assert row["CreatedDate"].endswith("Z")
    assert '"Smith, Jones & ""Partners""\nSecond line"' in response.text, "RFC 4180: quoted, quotes doubled"


def test_other_delimiters_and_line_endings(api: Api) -> None:
    _accounts(api, "pipe|in name")
    job = _create(api, "SELECT Id, Name FROM Account", columnDelimiter="PIPE", lineEnding="CRLF")
    assert (job["columnDelimiter"], job["lineEnding"]) == ("PIPE", "CRLF")
    _poll(api, job["id"])
    response = api.get(f"/jobs/query/{job['id']}/results")
    assert response.text.startswith('"Id"|"Name"\r\n')
    assert _rows(response, "|")[0]["Name"] == "pipe|in name"


def test_query_all_includes_deleted_rows(api: Api) -> None:
    kept, gone = _accounts(api, "kept", "gone")
    assert api.delete(f"/sobjects/Account/{gone}").status_code == 204
    live = _create(api, "SELECT Id, IsDeleted FROM Account")
    every = api.post("/jobs/query", json={"operation": "queryAll", "query": "SELECT Id, IsDeleted FROM Account"})
    assert every.status_code == 200 and every.json()["operation"] == "queryAll"
    for job in (live, every.json()):
        _poll(api, job["id"])
    assert {r["Id"] for r in _rows(api.get(f"/jobs/query/{live['id']}/results"))} == {kept}
    rows = _rows(api.get(f"/jobs/query/{every.json()['id']}/results"))
    assert {r["Id"]: r["IsDeleted"] for r in rows} == {kept: "false", gone: "true"}


def test_order_by_and_limit_are_accepted(api: Api) -> None:
    _accounts(api, "b", "c", "a")
    job = _create(api, "SELECT Name FROM Account ORDER BY Name DESC LIMIT 2")
    _poll(api, job["id"])
    assert [r["Name"] for r in _rows(api.get(f"/jobs/query/{job['id']}/results"))] == ["c", "b"]


@pytest.mark.parametrize(("query", "code"), [
    ("SELECT Id FROM Account WHERE", "MALFORMED_QUERY"),
    ("SELECT Nope__c FROM ContentVersion", "INVALID_FIELD"),
    ("SELECT Id FROM Nope__c", "INVALID_TYPE"),
])
def test_invalid_soql_is_refused_at_creation(api: Api, query: str, code: str) -> None:
    error = _error(api.post("/jobs/query", json={"operation": "query", "query": query}), 400)
    assert error["errorCode"] == code


@pytest.mark.parametrize(("query", "feature"), [
    ("SELECT COUNT() FROM Account", "COUNT()"),
    ("SELECT Name, COUNT(Id) FROM Account GROUP BY Name", "COUNT()"),
    ("SELECT Name FROM Account GROUP BY Name", "GROUP BY"),
    ("SELECT Id FROM Account OFFSET 10", "OFFSET"),
    ("SELECT TYPEOF Owner WHEN User THEN Name END FROM Account", "TYPEOF"),
    ("SELECT Id, (SELECT Id FROM Contacts) FROM Account", "Parent-to-child"),
    ("SELECT FIELDS(STANDARD) FROM Account", "FIELDS()"),
])
def test_soql_bulk_api_2_does_not_run_is_refused(api: Api, query: str, feature: str) -> None:
    error = _error(api.post("/jobs/query", json={"operation": "query", "query": query}), 400)
    assert error["errorCode"] == "FUNCTIONALITY_NOT_ENABLED" and feature in error["message"]


def test_the_object_may_be_named_as_api_47_allowed(api: Api) -> None:
    assert _create(api, "SELECT Id FROM Account", object="account")["object"] == "Account"


def test_a_semi_join_in_where_is_not_a_parent_to_child_query(api: Api) -> None:
    _accounts(api, "x")
    _create(api, "SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact)")


@pytest.mark.parametrize("body", [
    {"operation": "upsert", "query": "SELECT Id FROM Account"},
    {"query": "SELECT Id FROM Account"},
    {"operation": "query"},
    {"operation": "query", "query": "SELECT Id FROM Account", "contentType": "JSON"},
    {"operation": "query", "query": "SELECT Id FROM Account", "columnDelimiter": "COLON"},
    {"operation": "query", "query": "SELECT Id FROM Account", "lineEnding": "CR"},
    {"operation": "query", "query": "SELECT Id FROM Account", "object": "Contact"},
    {"operation": "query", "query": "SELECT Id FROM Account", "pkChunking": True},
])
def test_bad_job_requests_are_refused(api: Api, body: dict) -> None:
    assert _error(api.post("/jobs/query", json=body), 400)["errorCode"] == "API_ERROR"


def test_abort(api: Api) -> None:
    job = _create(api, "SELECT Id FROM Account")
    aborted = api.patch(f"/jobs/query/{job['id']}", json={"state": "Aborted"})
    assert aborted.status_code == 200 and aborted.json()["state"] == "Aborted"
    assert _poll(api, job["id"])["state"] == "Aborted", "polling does not revive an aborted job"
    assert _error(api.get(f"/jobs/query/{job['id']}/results"), 400)["errorCode"] == "API_ERROR"
    again = _error(api.patch(f"/jobs/query/{job['id']}", json={"state": "Aborted"}), 400)
    assert again["errorCode"] == "INVALIDJOBSTATE"

    done = _create(api, "SELECT Id FROM Account")
    _poll(api, done["id"])
    assert _error(api.patch(f"/jobs/query/{done['id']}", json={"state": "Aborted"}), 400)["errorCode"] == (
        "INVALIDJOBSTATE")
    other = _create(api, "SELECT Id FROM Account")
    assert _error(api.patch(f"/jobs/query/{other['id']}", json={"state": "JobComplete"}), 400)["errorCode"] == (
        "INVALIDJOBSTATE")


def test_delete(api: Api) -> None:
    job = _create(api, "SELECT Id FROM Account")
    refused = _error(api.delete(f"/jobs/query/{job['id']}"), 400)
    assert refused == {"errorCode": "API_ERROR",
                       "message": "Error encountered when deleting the job because the job is not terminated"}
    _poll(api, job["id"])
    deleted = api.delete(f"/jobs/query/{job['id']}")
    assert deleted.status_code == 204 and deleted.content == b""
    for gone in (api.get(f"/jobs/query/{job['id']}"), api.get(f"/jobs/query/{job['id']}/results")):
        assert _error(gone, 404)["errorCode"] == "NOT_FOUND"
    assert job["id"] not in {j["id"] for j in api.get("/jobs/query").json()["records"]}


@pytest.mark.parametrize("job_id", ["7505g0000GSTEDzAQP", "not-an-id"])
def test_unknown_job_is_404(api: Api, job_id: str) -> None:
    for response in (api.get(f"/jobs/query/{job_id}"), api.get(f"/jobs/query/{job_id}/results"),
                     api.delete(f"/jobs/query/{job_id}"),
                     api.patch(f"/jobs/query/{job_id}", json={"state": "Aborted"})):
        assert _error(response, 404) == {"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}


def test_a_locator_is_only_good_for_its_own_job(api: Api) -> None:
    _accounts(api, "a", "b", "c")
    first, second = (_create(api, "SELECT Id FROM Account") for _ in range(2))
    for job in (first, second):
        _poll(api, job["id"])
    locator = api.get(f"/jobs/query/{first['id']}/results", params={"maxRecords": "1"}).headers["Sforce-Locator"]
    assert locator != "null"
    for bad in (locator, "MTAwMDA", locator[:-1] + ("A" if locator[-1] != "A" else "B")):
        refused = api.get(f"/jobs/query/{second['id']}/results", params={"maxRecords": "1", "locator": bad})
        assert _error(refused, 400)["errorCode"] == "API_ERROR"


@pytest.mark.parametrize("max_records", ["0", "-5", "ten"])
def test_max_records_must_be_a_positive_number(api: Api, max_records: str) -> None:
    job = _create(api, "SELECT Id FROM Account")
    _poll(api, job["id"])
    refused = api.get(f"/jobs/query/{job['id']}/results", params={"maxRecords": max_records})
    assert _error(refused, 400)["errorCode"] == "API_ERROR"


def test_results_need_the_api_version_that_created_the_job(api: Api) -> None:
    job = _create(api, "SELECT Id FROM Account")
    _poll(api, job["id"])
    other = api.http.get(f"{api.org.base_url}/services/data/v61.0/jobs/query/{job['id']}/results",
                         headers=api.headers(), timeout=10)
    assert other.status_code == 409


def test_list_jobs(api: Api) -> None:
    made = {_create(api, "SELECT Id FROM Account")["id"] for _ in range(3)}
    body = api.get("/jobs/query").json()
    assert body["done"] is True and body["nextRecordsUrl"] is None
    assert {j["id"] for j in body["records"]} == made
    assert all(set(j) == INFO_KEYS for j in body["records"])
    assert api.get("/jobs/query", params={"jobType": "Classic"}).json()["records"] == []
    assert api.get("/jobs/query", params={"jobType": "V2Query"}).json()["records"]


def test_every_call_counts_as_an_api_request(api: Api) -> None:
    def usage(response: requests.Response) -> int:
        return int(response.headers["Sforce-Limit-Info"].removeprefix("api-usage=").split("/")[0])

    created = api.post("/jobs/query", json={"operation": "query", "query": "SELECT Id FROM Account"})
    polled = api.get(f"/jobs/query/{created.json()['id']}")
    results = api.get(f"/jobs/query/{created.json()['id']}/results")
    assert [usage(r) for r in (created, polled, results)] == [1, 2, 3]
    limits = api.get("/limits").json()
    assert limits["DailyApiRequests"]["Remaining"] == 100_000 - 4
    assert limits["DailyBulkV2QueryJobs"] == {"Max": 10_000, "Remaining": 9_999}


def test_calls_need_a_session(org: EmulatedOrg) -> None:
    response = org.session().post(f"{org.base_url}/services/data/v62.0/jobs/query", timeout=10,
                                  json={"operation": "query", "query": "SELECT Id FROM Account"})
    assert _error(response, 401)["errorCode"] == "INVALID_SESSION_ID"


class TestLimits:
    @pytest.fixture
    def org_config(self) -> OrgConfig:
        return OrgConfig(daily_api_limit=2, bulk_query_daily_jobs=1)

    def test_past_the_daily_api_limit(self, api: Api) -> None:
        job = _create(api, "SELECT Id FROM Account")
        assert _error(api.post("/jobs/query", json={"operation": "query", "query": "SELECT Id FROM Account"}),
                      400)["errorCode"] == "EXCEEDEDQUOTA"
        assert _error(api.get(f"/jobs/query/{job['id']}"), 403)["errorCode"] == "REQUEST_LIMIT_EXCEEDED"


def _agent(org: EmulatedOrg) -> str:
    return org.state.insert("User", {"Username": "agent@example.com", "LastName": "Agent", "IsActive": True})["Id"]


def test_results_show_only_files_the_integration_user_sees(org: EmulatedOrg, api: Api, account: str) -> None:
    agent = _agent(org)
    personal = upload_file(org, agent, b"\xff\xd8\xff personal", "mine.jpg", OwnerId=agent)
    shared = upload_file(org, account, b"\xff\xd8\xff shared", "house.jpg")
    job = _create(api, "SELECT Id, ContentDocument.Title FROM ContentVersion")
    _poll(api, job["id"])
    rows = _rows(api.get(f"/jobs/query/{job['id']}/results"))
    assert [(r["Id"], r["ContentDocument.Title"]) for r in rows] == [(shared, "house")]
    assert personal not in {r["Id"] for r in rows}
    rest = api.get("/query", params={"q": "SELECT Id FROM ContentVersion"}).json()
    assert [r["Id"] for r in rest["records"]] == [shared], "the same rows as the REST query"


@pytest.mark.parametrize("org_config", [OrgConfig(query_all_files=True)])
def test_query_all_files_sees_personal_libraries_in_bulk_too(org: EmulatedOrg, api: Api) -> None:
    agent = _agent(org)
    personal = upload_file(org, agent, b"\xff\xd8\xff personal", "mine.jpg", OwnerId=agent)
    job = _create(api, "SELECT Id FROM ContentVersion")
    _poll(api, job["id"])
    assert [r["Id"] for r in _rows(api.get(f"/jobs/query/{job['id']}/results"))] == [personal]
