"""Salesforce Files: base64 and multipart ContentVersion inserts, versions, links, bytes, size caps."""

from __future__ import annotations

import base64
import hashlib
import json
import os

import pytest

from devkit.org import EmulatedOrg, OrgConfig
from devkit.org.config import MAX_BASE64_BLOB_CHARS
from tests.support.org import Api, fixture_path, load_fixture, same_shape


def _links(org: EmulatedOrg, document_id: str) -> list[dict]:
    return org.state.find("ContentDocumentLink", ContentDocumentId=document_id)


def test_base64_fixture_request(org: EmulatedOrg, api: Api) -> None:
    """The fixture body (FirstPublishLocationId = fixture Account) creates version 1 and its links."""
    request = load_fixture("contentversion-create-base64-request.json")
    org.state.insert("Account", {"Name": "Fixture"}, record_id=request["FirstPublishLocationId"])
    created = api.post("/sobjects/ContentVersion/", json=request)
    assert created.status_code == 201
    assert same_shape(created.json(), load_fixture("contentversion-create-response.json"))
    version_id = created.json()["id"]
    assert version_id.startswith("068")

    version = api.get(f"/sobjects/ContentVersion/{version_id}").json()
    data = base64.b64decode(request["VersionData"])
    assert version["VersionNumber"] == "1" and version["IsLatest"] is True
    assert version["ContentSize"] == len(data) and version["Checksum"] == hashlib.md5(data).hexdigest()
    assert (version["FileExtension"], version["FileType"], version["Title"]) == ("pdf", "PDF", "invoice-2025-11")
    assert version["VersionData"] == f"/services/data/v62.0/sobjects/ContentVersion/{version_id}/VersionData"

    document_id = version["ContentDocumentId"]
    document = api.get(f"/sobjects/ContentDocument/{document_id}").json()
    assert document_id.startswith("069")
    assert document["LatestPublishedVersionId"] == version_id and document["ContentSize"] == len(data)
    linked = {(link["LinkedEntityId"], link["ShareType"]) for link in _links(org, document_id)}
    assert linked == {(request["FirstPublishLocationId"], "V"), (org.state.user_id, "I")}
    assert all(link["Id"].startswith("06A") for link in _links(org, document_id))

    raw = api.get(f"/sobjects/ContentVersion/{version_id}/VersionData")
    assert raw.status_code == 200 and raw.content == data
    assert raw.headers["Content-Type"] == "application/octet-stream"


def test_multipart_fixture_bytes_roundtrip(org: EmulatedOrg, api: Api) -> None:
    """The literal multipart fixture (quoted boundary, entity_content + VersionData) is accepted."""
    text = fixture_path("contentversion-multipart-request.http").read_text()
    head, _, body = text.partition("\n\n")
    payload = os.urandom(300_000) + b"\r\n--boundary_string not the end\r\n"
    body = body.replace("<binary PDF bytes>\n", "\0BLOB\0").replace("\n", "\r\n")
    raw = body.encode().replace(b"\0BLOB\0", payload)  # the CRLF before a boundary is the delimiter
    org.state.insert("Account", {"Name": "Fixture"}, record_id="0015g00000QwErTAAV")
    response = api.post("/sobjects/ContentVersion", data=raw,
                        headers={"Content-Type": 'multipart/form-data; boundary="boundary_string"'})
    assert response.status_code == 201, response.text
    version_id = response.json()["id"]
    download = api.get(f"/sobjects/ContentVersion/{version_id}/VersionData")
    assert download.content == payload
    fields = api.get(f"/sobjects/ContentVersion/{version_id}?fields=ContentSize,PathOnClient,Title").json()
    assert fields["ContentSize"] == len(payload) and fields["PathOnClient"] == "invoice-2025-11.pdf"


def test_multipart_with_requests_files(api: Api, account: str) -> None:
    meta = {"Title": "photo", "PathOnClient": "photo.webp", "FirstPublishLocationId": account,
            "Offload_Rendition_Of__c": "source-id"}
    files = {"entity_content": (None, json.dumps(meta), "application/json"),
             "VersionData": ("photo.webp", b"RIFF....WEBPVP8 ", "application/octet-stream")}
    response = api.post("/sobjects/ContentVersion", files=files)
    assert response.status_code == 201
    version = api.get(f"/sobjects/ContentVersion/{response.json()['id']}").json()
    assert version["FileType"] == "WEBP" and version["Offload_Rendition_Of__c"] == "source-id"


def test_new_version_bumps_number_and_flips_latest(org: EmulatedOrg, api: Api, account: str) -> None:
    first = api.post("/sobjects/ContentVersion", json={
        "PathOnClient": "a.png", "FirstPublishLocationId": account,
        "VersionData": base64.b64encode(b"one").decode()}).json()["id"]
    document_id = api.get(f"/sobjects/ContentVersion/{first}").json()["ContentDocumentId"]
    request = load_fixture("contentversion-new-version-request.json") | {"ContentDocumentId": document_id}
    second = api.post("/sobjects/ContentVersion", json=request)
    assert second.status_code == 201, second.text
    new = api.get(f"/sobjects/ContentVersion/{second.json()['id']}").json()
    old = api.get(f"/sobjects/ContentVersion/{first}").json()
    assert (new["VersionNumber"], new["IsLatest"], old["IsLatest"]) == ("2", True, False)
    assert new["ReasonForChange"] == request["ReasonForChange"] and new["ContentDocumentId"] == document_id
    document = api.get(f"/sobjects/ContentDocument/{document_id}").json()
    assert document["LatestPublishedVersionId"] == new["Id"] and document["FileType"] == "PDF"
    assert len(_links(org, document_id)) == 2  # a new version adds no links


def test_required_and_read_only_fields(api: Api) -> None:
    missing = api.post("/sobjects/ContentVersion", json={"Title": "x", "VersionData": "eA=="})
    assert missing.json() == load_fixture("rest-error-400-required-field-missing.json")
    read_only = api.post("/sobjects/ContentVersion", json={"PathOnClient": "a.txt", "VersionData": "eA==",
                                                            "VersionNumber": "7"})
    assert read_only.json()[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


def test_unknown_extension_is_unknown_type(api: Api) -> None:
    created = api.post("/sobjects/ContentVersion", json={"PathOnClient": "blob.xyz", "VersionData": "eA=="})
    version = api.get(f"/sobjects/ContentVersion/{created.json()['id']}").json()
    assert (version["FileType"], version["FileExtension"]) == ("UNKNOWN", "xyz")


def test_default_base64_cap_is_37_5_mib() -> None:
    assert MAX_BASE64_BLOB_CHARS == int(37.5 * 1024 * 1024)
    assert OrgConfig().max_base64_blob_chars == MAX_BASE64_BLOB_CHARS


class TestBase64Cap:
    @pytest.fixture
    def org_config(self) -> OrgConfig:
        return OrgConfig(max_base64_blob_chars=4096)

    def test_over_cap_is_refused_like_salesforce(self, org: EmulatedOrg, api: Api) -> None:
        ok = api.post("/sobjects/ContentVersion", json={"PathOnClient": "a.bin", "VersionData": "A" * 4096})
        assert ok.status_code == 201
        too_big = api.post("/sobjects/ContentVersion", json={"PathOnClient": "a.bin", "VersionData": "A" * 4100})
        assert too_big.status_code == 400
        assert too_big.json() == [{"message": "Maximum size of request reached. Maximum size of request is "
                                   "52428800 bytes.", "errorCode": "JSON_PARSER_ERROR"}]
        assert len(org.state.all_records("ContentVersion")) == 1
        # Multipart is not subject to the base64 cap (2 GB for ContentVersion).
        files = {"entity_content": (None, json.dumps({"PathOnClient": "big.bin"}), "application/json"),
                 "VersionData": ("big.bin", b"\0" * 10_000, "application/octet-stream")}
        assert api.post("/sobjects/ContentVersion", files=files).status_code == 201


def test_admin_upload_and_listing(org: EmulatedOrg, api: Api, account: str, tmp_path) -> None:
    response = api.admin("POST", "/files", data={"record_id": account},
                         files={"file": ("scan.jpg", b"\xff\xd8\xff\xe0jpeg", "image/jpeg")})
    assert response.status_code == 201
    listed = api.admin("GET", "/files").json()
    assert listed[0]["FileType"] == "JPG" and account in listed[0]["LinkedEntityIds"]
    raw = api.get(f"/sobjects/ContentVersion/{response.json()['id']}/VersionData")
    assert raw.content == b"\xff\xd8\xff\xe0jpeg"


def _multipart_body(parts: list[tuple[str, str, bytes]]) -> bytes:
    out = b""
    for name, content_type, data in parts:
        filename = '; filename="x.jpg"' if name == "VersionData" else ""
        out += (f'--b\r\nContent-Disposition: form-data; name="{name}"{filename}\r\n'
                f"Content-Type: {content_type}\r\n\r\n").encode() + data + b"\r\n"
    return out + b"--b--\r\n"


@pytest.mark.parametrize("order", [("VersionData", "entity_content"), ("entity_content", "Blob")])
def test_multipart_parts_in_the_documented_order_and_names_only(org: EmulatedOrg, api: Api, account: str,
                                                               order: tuple[str, str]) -> None:
    """First the non-binary JSON part, then the binary part, named after the blob field (VersionData)."""
    entity = json.dumps({"PathOnClient": "x.jpg", "FirstPublishLocationId": account}).encode()
    parts = {"entity_content": ("application/json", entity), "VersionData": ("application/octet-stream", b"\xff"),
             "Blob": ("application/octet-stream", b"\xff")}
    body = _multipart_body([(name, *parts[name]) for name in order])
    response = api.post("/sobjects/ContentVersion", data=body,
                        headers={"Content-Type": 'multipart/form-data; boundary="b"'})
    assert response.status_code == 400 and response.json()[0]["errorCode"] == "INVALID_MULTIPART_REQUEST"
    good = _multipart_body([(name, *parts[name]) for name in ("entity_content", "VersionData")])
    assert api.post("/sobjects/ContentVersion", data=good,
                    headers={"Content-Type": 'multipart/form-data; boundary="b"'}).status_code == 201


def _collection_body(records: list[dict], blobs: dict[str, bytes]) -> bytes:
    out = ('--b\r\nContent-Disposition: form-data; name="entity_content"\r\nContent-Type: application/json\r\n\r\n'
           + json.dumps({"allOrNone": True, "records": records}) + "\r\n").encode()
    for name, data in blobs.items():
        out += (f'--b\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.jpg"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    return out + b"--b--\r\n"


def _record(part: str, account: str) -> dict:
    return {"attributes": {"type": "ContentVersion", "binaryPartName": part, "binaryPartNameAlias": "VersionData"},
            "PathOnClient": f"{part}.jpg", "FirstPublishLocationId": account}


def test_a_collections_insert_carries_several_files_in_one_call(org: EmulatedOrg, api: Api, account: str) -> None:
    calls = org.state.api_calls
    body = _collection_body([_record("f0", account), _record("f1", account)], {"f0": b"zero", "f1": b"one"})
    response = api.post("/composite/sobjects", data=body, headers={"Content-Type": 'multipart/form-data; boundary="b"'})
    assert response.status_code == 200 and all(r["success"] for r in response.json())
    ids = [r["id"] for r in response.json()]
    assert [org.state.blob_path(i).read_bytes() for i in ids] == [b"zero", b"one"]
    assert org.state.api_calls == calls + 1


def test_a_collections_insert_missing_a_binary_part_writes_nothing(org: EmulatedOrg, api: Api, account: str) -> None:
    body = _collection_body([_record("f0", account), _record("f1", account)], {"f0": b"zero"})
    response = api.post("/composite/sobjects", data=body, headers={"Content-Type": 'multipart/form-data; boundary="b"'})
    codes = [r["errors"][0]["statusCode"] for r in response.json()]
    assert codes == ["ALL_OR_NONE_OPERATION_ROLLED_BACK", "INVALID_MULTIPART_REQUEST"]
    assert org.state.all_records("ContentVersion") == []


def test_limits_report_the_daily_file_cap_and_uploads_past_it_are_refused(org: EmulatedOrg, api: Api,
                                                                          account: str) -> None:
    """ContentPublicationLimit (/limits) counts every new file and version in 24 h; at the cap the org refuses
    the insert, and an all-or-none collections insert that reaches it creates nothing."""
    org.state.config.content_publication_limit = 3
    entry = api.get("/limits").json()["ContentPublicationLimit"]
    assert entry == {"Max": 3, "Remaining": 3}
    body = _collection_body([_record("f0", account), _record("f1", account)], {"f0": b"zero", "f1": b"one"})
    response = api.post("/composite/sobjects", data=body, headers={"Content-Type": 'multipart/form-data; boundary="b"'})
    assert all(r["success"] for r in response.json())
    assert api.get("/limits").json()["ContentPublicationLimit"] == {"Max": 3, "Remaining": 1}

    body = _collection_body([_record("f0", account), _record("f1", account)], {"f0": b"two", "f1": b"three"})
    response = api.post("/composite/sobjects", data=body, headers={"Content-Type": 'multipart/form-data; boundary="b"'})
    errors = [r["errors"][0] for r in response.json()]
    assert not any(r["success"] for r in response.json())
    assert errors[1] == {"statusCode": "LIMIT_EXCEEDED", "message": "ContentPublication Limit exceeded.",
                         "fields": []}
    assert len(org.state.all_records("ContentVersion")) == 2, "all or none: the first of the pair is rolled back"
    single = api.post("/sobjects/ContentVersion", json={
        "Title": "late", "PathOnClient": "late.txt", "VersionData": base64.b64encode(b"late").decode(),
        "FirstPublishLocationId": account})
    assert single.status_code == 400 and single.json()[0]["errorCode"] == "LIMIT_EXCEEDED"


def test_a_collections_insert_over_the_multipart_cap_is_refused_whole(org: EmulatedOrg, api: Api, account: str) -> None:
    """Blob collections inserts carry at most 500 MB in one request; past it nothing is created."""
    org.state.config.max_collections_multipart_bytes = 1000
    body = _collection_body([_record("f0", account)], {"f0": b"x" * 2000})
    response = api.post("/composite/sobjects", data=body, headers={"Content-Type": 'multipart/form-data; boundary="b"'})
    assert response.status_code == 400 and response.json()[0]["errorCode"] == "JSON_PARSER_ERROR"
    assert "Maximum size of request is 1000 bytes" in response.json()[0]["message"]
    assert org.state.all_records("ContentVersion") == []
