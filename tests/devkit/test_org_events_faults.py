"""Platform events, and fault injection (errors, delays, counts, probabilities)."""

from __future__ import annotations

import time

import pytest

from devkit.org import EmulatedOrg, OrgConfig
from tests.support.org import Api, load_fixture, same_shape


def test_publish_platform_event(org: EmulatedOrg, api: Api) -> None:
    response = api.post("/sobjects/Offload_Job_Event__e/", json={"Job_Id__c": "j-1", "Status__c": "done"})
    assert response.status_code == 201
    body = response.json()
    assert same_shape(body, load_fixture("platform-event-publish-response.json"))
    assert body["id"].startswith("e00") and body["errors"][0]["statusCode"] == "OPERATION_ENQUEUED"
    events = api.admin("GET", "/events", params={"type": "Offload_Job_Event__e"}).json()
    assert events[0]["fields"] == {"Job_Id__c": "j-1", "Status__c": "done"}
    assert events[0]["EventUuid"] == body["errors"][0]["message"]


class TestOrgWithoutEvent:
    @pytest.fixture
    def org_config(self) -> OrgConfig:
        return OrgConfig(platform_events=frozenset({"Other_Event__e"}))

    def test_unknown_event_type_is_not_found(self, api: Api) -> None:
        response = api.post("/sobjects/Offload_Job_Event__e", json={"Job_Id__c": "j"})
        assert response.status_code == 404
        assert response.json() == load_fixture("rest-error-404-not-found.json")
        assert api.post("/sobjects/Other_Event__e", json={}).status_code == 201

    def test_admin_can_add_the_event(self, api: Api) -> None:
        api.admin("PATCH", "/config", json={"platform_events": ["Offload_Job_Event__e"]})
        assert api.post("/sobjects/Offload_Job_Event__e", json={}).status_code == 201


@pytest.mark.parametrize(("code", "status", "fixture"), [
    ("SERVER_UNAVAILABLE", 503, "rest-error-503-server-unavailable.json"),
    ("REQUEST_LIMIT_EXCEEDED", 403, "rest-error-403-request-limit.json"),
    ("INVALID_SESSION_ID", 401, "rest-error-401-invalid-session.json"),
])
def test_fault_next_call_only(api: Api, account: str, code: str, status: int, fixture: str) -> None:
    added = api.admin("POST", "/faults", json={"pattern": "*/sobjects/Account/*", "error": code, "count": 1})
    assert added.status_code == 201
    failed = api.get(f"/sobjects/Account/{account}")
    assert failed.status_code == status and failed.json() == load_fixture(fixture)
    assert "Sforce-Limit-Info" in failed.headers
    assert api.get(f"/sobjects/Account/{account}").status_code == 200
    assert api.admin("GET", "/faults").json() == []


def test_lock_fault_names_the_record(api: Api, account: str) -> None:
    api.admin("POST", "/faults", json={"pattern": "re:/sobjects/Account/", "error": "UNABLE_TO_LOCK_ROW",
                                       "method": "PATCH", "count": 2})
    assert api.get(f"/sobjects/Account/{account}").status_code == 200  # GET not matched
    failed = api.patch(f"/sobjects/Account/{account}", json={"Name": "x"})
    assert failed.status_code == 400
    assert same_shape(failed.json(), load_fixture("rest-error-400-unable-to-lock-row.json"))
    assert failed.json()[0]["message"].endswith(account)


def test_probability_and_clear(api: Api) -> None:
    api.admin("POST", "/faults", json={"pattern": "*/limits", "error": "SERVER_UNAVAILABLE", "probability": 1.0})
    assert [api.get("/limits").status_code for _ in range(3)] == [503, 503, 503]
    api.admin("DELETE", "/faults")
    api.admin("POST", "/faults", json={"pattern": "*/limits", "error": "SERVER_UNAVAILABLE", "probability": 0.0})
    assert api.get("/limits").status_code == 200


def test_delay(api: Api) -> None:
    api.admin("POST", "/faults", json={"pattern": "*/limits", "delay": 0.3, "count": 1})
    start = time.monotonic()
    assert api.get("/limits").status_code == 200
    assert time.monotonic() - start >= 0.3


def test_bad_fault_rule_is_refused(api: Api) -> None:
    response = api.admin("POST", "/faults", json={"pattern": "*", "error": "NOPE"})
    assert response.status_code == 400 and "unknown fault error" in response.json()["error"]
