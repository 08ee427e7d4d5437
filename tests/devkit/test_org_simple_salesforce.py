"""simple-salesforce 1.12.10, unchanged, works against the emulator over real HTTPS."""

from __future__ import annotations

import base64
import json

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceResourceNotFound,
)

from devkit.org import EmulatedOrg
from tests.support.org import Api


def test_crud_and_query(sf: Salesforce) -> None:
    created = sf.Account.create({"Name": "Acme"})
    assert created["success"] is True
    account_id = created["id"]
    assert sf.Account.get(account_id)["Name"] == "Acme"
    assert sf.Account.update(account_id, {"Name": "Acme Ltd"}) == 204
    pytest.importorskip("devkit.org.soql")
    result = sf.query(f"SELECT Id, Name FROM Account WHERE Id = '{account_id}'")
    assert result["totalSize"] == 1 and result["records"][0]["Name"] == "Acme Ltd"
    assert sf.query_all("SELECT Id FROM Account")["totalSize"] == 1
    assert sf.Account.delete(account_id) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Account.get(account_id)


def test_limit_info_is_parsed(sf: Salesforce) -> None:
    account_type = sf.Account
    account_type.create({"Name": "x"})
    assert account_type.api_usage["api-usage"].used == 1


def test_content_version_upload_and_download(sf: Salesforce) -> None:
    account_id = sf.Account.create({"Name": "Files"})["id"]
    data = bytes(range(256)) * 40
    created = sf.ContentVersion.create({"Title": "t", "PathOnClient": "t.png", "FirstPublishLocationId": account_id,
                                        "VersionData": base64.b64encode(data).decode()})
    assert sf.ContentVersion.get_base64(created["id"], base64_field="VersionData") == data
    info = sf.ContentVersion.get(created["id"])
    assert info["ContentDocumentId"].startswith("069") and info["FileType"] == "PNG"


def test_multipart_through_private_call(sf: Salesforce) -> None:
    """The reference's multipart recipe (E.5) through simple-salesforce's own session."""
    files = {"entity_content": (None, json.dumps({"PathOnClient": "big.gif"}), "application/json"),
             "VersionData": ("big.gif", b"GIF89a" + b"\0" * 2048, "application/octet-stream")}
    response = sf._call_salesforce("POST", sf.base_url + "sobjects/ContentVersion", name="ContentVersion",
                                   files=files, headers={"Content-Type": None})
    assert response.status_code == 201
    assert sf.ContentVersion.get(response.json()["id"])["ContentSize"] == 2054


def test_composite_via_restful(sf: Salesforce) -> None:
    body = {"compositeRequest": [
        {"method": "POST", "url": f"/services/data/v{sf.sf_version}/sobjects/Account", "referenceId": "a",
         "body": {"Name": "via composite"}},
        {"method": "GET", "url": f"/services/data/v{sf.sf_version}/sobjects/Account/@{{a.id}}?fields=Name",
         "referenceId": "b"}]}
    result = sf.restful("composite", method="POST", json=body)
    assert result["compositeResponse"][1]["body"]["Name"] == "via composite"


def test_errors_map_to_exceptions(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Account.create({"Industry": "no name"})
    assert info.value.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING"


def test_expired_session_raises(org: EmulatedOrg, sf: Salesforce, api: Api) -> None:
    account_id = sf.Account.create({"Name": "x"})["id"]
    org.state.tokens.expire_all()
    with pytest.raises(SalesforceExpiredSession) as info:
        sf.Account.get(account_id)
    assert info.value.status == 401 and info.value.content[0]["errorCode"] == "INVALID_SESSION_ID"
