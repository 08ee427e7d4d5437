"""Files the integration user may not see, and libraries it may not publish into, as a real org enforces."""

from __future__ import annotations

import base64

import pytest

from devkit.org import EmulatedOrg, OrgConfig
from tests.support.org import Api
from tests.support.orgtools import upload_file

PHOTO = base64.b64encode(b"\xff\xd8\xff\xe0 bytes").decode()


def _agent(org: EmulatedOrg) -> str:
    """A person in the org (not the integration user)."""
    return org.state.insert("User", {"Username": "agent@example.com", "LastName": "Agent", "IsActive": True})["Id"]


def _personal_file(org: EmulatedOrg, user: str) -> str:
    """What an agent's upload on the Files tab is: in their own library, linked to them only."""
    return upload_file(org, user, b"\xff\xd8\xff personal", "mine.jpg", OwnerId=user)


def test_a_file_in_another_users_personal_library_is_invisible(org: EmulatedOrg, api: Api) -> None:
    version = _personal_file(org, _agent(org))
    assert api.get(f"/sobjects/ContentVersion/{version}").status_code == 404
    assert api.get(f"/sobjects/ContentVersion/{version}/VersionData").status_code == 404
    rows = api.get("/query", params={"q": f"SELECT Id FROM ContentVersion WHERE Id = '{version}'"}).json()
    assert rows["totalSize"] == 0


def test_once_shared_with_a_record_the_file_is_visible(org: EmulatedOrg, api: Api, account: str) -> None:
    version = _personal_file(org, _agent(org))
    document = org.state.get_record(version)[1]["ContentDocumentId"]
    org.state.insert("ContentDocumentLink", {"ContentDocumentId": document, "LinkedEntityId": account,
                                             "ShareType": "V", "Visibility": "AllUsers"})
    assert api.get(f"/sobjects/ContentVersion/{version}").status_code == 200
    rows = api.get("/query", params={"q": f"SELECT Id FROM ContentVersion WHERE Id = '{version}'"}).json()
    assert rows["totalSize"] == 1


@pytest.mark.parametrize("org_config", [OrgConfig(query_all_files=True)])
def test_query_all_files_sees_personal_libraries(org: EmulatedOrg, api: Api) -> None:
    version = _personal_file(org, _agent(org))
    assert api.get(f"/sobjects/ContentVersion/{version}").status_code == 200


def test_publishing_into_another_users_personal_library_is_refused(org: EmulatedOrg, api: Api) -> None:
    agent = _agent(org)
    refused = api.post("/sobjects/ContentVersion",
                       json={"PathOnClient": "x.jpg", "VersionData": PHOTO, "FirstPublishLocationId": agent})
    assert refused.status_code == 400
    [error] = refused.json()
    assert error["errorCode"] == "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY"
    assert error["fields"] == ["FirstPublishLocationId"]
    own = api.post("/sobjects/ContentVersion", json={"PathOnClient": "x.jpg", "VersionData": PHOTO,
                                                     "FirstPublishLocationId": org.state.user_id})
    assert own.status_code == 201, "one's own library is fine"
