"""The emulator enforces the custom fields apex/force-app deploys, as a real org enforces its metadata."""

from __future__ import annotations

import base64

import pytest

from devkit.org import EmulatedOrg, apexsource, schema
from tests.support.org import Api

PHOTO = base64.b64encode(b"\xff\xd8\xff\xe0 bytes").decode()


def _version(api: Api, account: str, name: str, **fields: object):
    body = {"PathOnClient": f"{name}.jpg", "VersionData": PHOTO, "FirstPublishLocationId": account, **fields}
    return api.post("/sobjects/ContentVersion", json=body)


def test_the_packaged_copy_of_the_metadata_equals_apex() -> None:
    """Installs without apex/ read the copy; it must be the deployed metadata, byte for byte."""
    assert apexsource.differences() == [], "devkit/org/apex_snapshot is stale: python -m devkit.org.apexsource --write"
    packaged = schema.read_metadata(apexsource.SNAPSHOT / "objects")
    assert packaged == schema.read_metadata(apexsource.CHECKOUT / "objects")
    key = schema.deployed().fields_of("ContentVersion")["offload_rendition_key__c"]
    assert key.unique and key.external_id and key.length == 80


def test_a_custom_field_the_metadata_does_not_define_is_invalid_field(api: Api, account: str) -> None:
    response = _version(api, account, "nope", Offload_Varient__c="thumb")
    assert response.status_code == 400
    [error] = response.json()
    assert error["errorCode"] == "INVALID_FIELD"
    assert error["message"] == "No such column 'Offload_Varient__c' on sobject of type ContentVersion"


def test_a_custom_text_over_its_deployed_length_is_string_too_long(api: Api, account: str) -> None:
    response = _version(api, account, "long", Offload_Variant__c="v" * 41)  # Text(40) in apex/force-app
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "STRING_TOO_LONG"
    assert response.json()[0]["fields"] == ["Offload_Variant__c"]


def test_a_second_record_with_a_unique_value_is_duplicate_value(org: EmulatedOrg, api: Api, account: str) -> None:
    first = _version(api, account, "a", Offload_Rendition_Key__c="0685g00000XyZaBAAV:thumb")
    assert first.status_code == 201
    # Case-insensitive: the field is not caseSensitive, as Salesforce's default for a unique text field.
    again = _version(api, account, "b", Offload_Rendition_Key__c="0685G00000XYZABAAV:THUMB")
    assert again.status_code == 400
    [error] = again.json()
    assert error["errorCode"] == "DUPLICATE_VALUE" and error["fields"] == []
    assert error["message"] == ("duplicate value found: Offload_Rendition_Key__c duplicates value on record "
                                f"with id: {first.json()['id'][:15]}")
    assert len(org.state.all_records("ContentVersion")) == 1, "a refused insert leaves nothing behind"
    other = _version(api, account, "c", Offload_Rendition_Key__c="0685g00000XyZaBAAV:medium")
    assert other.status_code == 201


def test_an_update_to_a_value_another_record_holds_is_duplicate_value(api: Api, account: str) -> None:
    _version(api, account, "a", Offload_Rendition_Key__c="k:1")
    second = _version(api, account, "b", Offload_Rendition_Key__c="k:2").json()["id"]
    assert api.patch(f"/sobjects/ContentVersion/{second}", json={"Offload_Rendition_Key__c": "k:2"}).status_code == 204
    clash = api.patch(f"/sobjects/ContentVersion/{second}", json={"Offload_Rendition_Key__c": "K:1"})
    assert clash.status_code == 400 and clash.json()[0]["errorCode"] == "DUPLICATE_VALUE"


@pytest.mark.parametrize("sobject", ["Account", "Property__c"])
def test_objects_the_metadata_does_not_define_stay_schema_less(api: Api, sobject: str) -> None:
    assert api.post(f"/sobjects/{sobject}", json={"Name": "x", "Anything__c": "y"}).status_code == 201
