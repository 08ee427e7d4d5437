"""The emulator enforces the custom fields apex/force-app deploys, as a real org enforces its metadata."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from devkit.org import EmulatedOrg, OrgConfig, apexsource, schema, standard_objects
from tests.support.org import API, Api
from workers import resize_job

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


def test_an_org_s_own_custom_fields_on_account_are_taken(api: Api) -> None:
    """Account's standard fields are known; its custom fields are the subscriber org's, which no metadata here
    declares, so the emulator takes them (and knows them from then on)."""
    assert api.post("/sobjects/Account", json={"Name": "x", "Anything__c": "y"}).status_code == 201


def test_an_object_the_org_declares_but_the_metadata_does_not_stays_schema_less(tmp_path: Path) -> None:
    with EmulatedOrg(OrgConfig(custom_objects=frozenset({"Property__c"})), state_dir=tmp_path / "org") as org:
        api = Api(org, org.issue_token())
        assert api.post("/sobjects/Property__c", json={"Name": "x", "Anything__c": "y"}).status_code == 201
        assert api.post("/sobjects/Offload_Callout_Log__c", json={}).status_code == 404, "only what it declares"


# --------------------------------------------------------------------------- standard fields on write

HINT = "Please reference your WSDL or the describe call for the appropriate names."


def test_every_standard_object_cites_its_object_reference_page() -> None:
    for described in standard_objects.STANDARD.values():
        assert described.doc_url == (
            "https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/"
            f"sforce_api_objects_{described.name.lower()}.htm")


def test_an_unknown_standard_field_on_insert_is_invalid_field(api: Api, account: str) -> None:
    response = _version(api, account, "typo", Titel="Holiday")
    assert response.status_code == 400
    assert response.json() == [{"message": "No such column 'Titel' on sobject of type ContentVersion",
                                "errorCode": "INVALID_FIELD"}]


def test_an_unknown_standard_field_on_update_is_invalid_field(api: Api, account: str) -> None:
    response = api.patch(f"/sobjects/Account/{account}", json={"Nmae": "Acme Ltd"})
    assert response.status_code == 400
    assert response.json() == [{"message": "No such column 'Nmae' on sobject of type Account",
                                "errorCode": "INVALID_FIELD"}]


def test_a_field_of_another_object_is_invalid_field(api: Api, account: str) -> None:
    """ContentDocumentLink has no CreatedDate or OwnerId (its field reference): an insert naming one fails."""
    version = _version(api, account, "linked").json()["id"]
    document = api.get(f"/sobjects/ContentVersion/{version}?fields=ContentDocumentId").json()["ContentDocumentId"]
    response = api.post("/sobjects/ContentDocumentLink", json={"ContentDocumentId": document,
                                                                "LinkedEntityId": account, "OwnerId": account})
    assert response.status_code == 400 and response.json()[0]["errorCode"] == "INVALID_FIELD"


def test_the_same_refusals_hold_in_collections_and_composite(api: Api, account: str) -> None:
    collection = api.post("/composite/sobjects", json={"allOrNone": False, "records": [
        {"attributes": {"type": "Account"}, "Name": "ok"},
        {"attributes": {"type": "Account"}, "Name": "bad", "Websiet": "x"}]}).json()
    assert collection[0]["success"] is True
    assert collection[1] == {"success": False, "errors": [
        {"statusCode": "INVALID_FIELD", "message": "No such column 'Websiet' on sobject of type Account",
         "fields": []}]}
    composite = api.post("/composite", json={"allOrNone": False, "compositeRequest": [
        {"method": "PATCH", "url": f"/services/data/v{API}/sobjects/Account/{account}", "referenceId": "a",
         "body": {"NumberOfEmployees": "many"}}]}).json()["compositeResponse"][0]
    assert composite["httpStatusCode"] == 400 and composite["body"][0]["errorCode"] == "JSON_PARSER_ERROR"


def test_a_standard_text_over_its_length_is_string_too_long(api: Api, account: str) -> None:
    response = api.patch(f"/sobjects/Account/{account}", json={"AccountNumber": "9" * 41})  # string(40)
    assert response.status_code == 400
    [error] = response.json()
    assert error["errorCode"] == "STRING_TOO_LONG" and error["fields"] == ["AccountNumber"]
    assert error["message"] == f"Account Number: data value too large: {'9' * 41} (max length=40)"
    info = _version(api, account, "info", ExternalDocumentInfo1="i" * 1001)  # string(1000)
    assert info.status_code == 400 and info.json()[0]["fields"] == ["ExternalDocumentInfo1"]


@pytest.mark.parametrize(("field", "value", "message"), [
    ("IsMajorVersion", "yes",
     "Cannot deserialize instance of boolean from VALUE_STRING value yes or request may be missing a required field"),
    ("IsMajorVersion", 1,
     "Cannot deserialize instance of boolean from VALUE_NUMBER_INT value 1 or request may be missing a required field"),
    # The exact value regican/Salesforce#2 quotes being refused for a datetime field.
    ("ContentModifiedDate", "2017-10-17 00:00:00",
     "Cannot deserialize instance of datetime from VALUE_STRING value 2017-10-17 00:00:00 or request may be "
     "missing a required field"),
    ("Description", ["a", "b"], "Cannot deserialize instance of textarea from START_ARRAY value ["),
])
def test_a_value_of_the_wrong_type_is_json_parser_error(api: Api, account: str, field: str, value: object,
                                                       message: str) -> None:
    response = _version(api, account, "typed", **{field: value})
    assert response.status_code == 400
    assert response.json() == [{"message": message, "errorCode": "JSON_PARSER_ERROR"}]


def test_typed_values_salesforce_takes_are_taken(api: Api, account: str) -> None:
    response = _version(api, account, "fine", IsMajorVersion=True, ContentModifiedDate="2024-01-02T03:04:05.000Z",
                        Description=None)
    assert response.status_code == 201, response.text
    patched = api.patch(f"/sobjects/Account/{account}", json={"NumberOfEmployees": 12, "AnnualRevenue": 1.5})
    assert patched.status_code == 204, patched.text


def test_a_reference_that_is_not_an_id_of_its_type_is_malformed_id(api: Api, account: str) -> None:
    """Worded with the field's label, as the fixture rest-error-400-malformed-id.json is."""
    not_an_id = api.patch(f"/sobjects/Account/{account}", json={"ParentId": "not-an-id"})
    assert not_an_id.status_code == 400
    assert not_an_id.json() == [{"message": "Parent Account ID: id value of incorrect type: not-an-id",
                                 "errorCode": "MALFORMED_ID", "fields": ["ParentId"]}]
    wrong_type = _version(api, account, "v2", ContentDocumentId=account)  # an Account Id, not a 069 document
    assert wrong_type.status_code == 400
    assert wrong_type.json() == [{"message": f"ContentDocument ID: id value of incorrect type: {account}",
                                  "errorCode": "MALFORMED_ID", "fields": ["ContentDocumentId"]}]


def test_fields_salesforce_computes_are_not_createable(api: Api, account: str) -> None:
    response = _version(api, account, "computed", PublishStatus="P", RatingCount=3)
    assert response.status_code == 400
    [error] = response.json()
    assert error["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert error["fields"] == ["PublishStatus", "RatingCount"]


def test_create_only_fields_are_not_updateable(api: Api, account: str) -> None:
    version = _version(api, account, "once").json()["id"]
    response = api.patch(f"/sobjects/ContentVersion/{version}", json={"Origin": "H", "Title": "renamed"})
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert response.json()[0]["fields"] == ["Origin"]
    assert api.patch(f"/sobjects/ContentVersion/{version}", json={"Title": "renamed"}).status_code == 204


def test_a_content_document_cannot_be_inserted(api: Api) -> None:
    """ContentDocument's supported calls have no create(): a document comes with its first version."""
    response = api.post("/sobjects/ContentDocument", json={"Title": "x"})
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "INVALID_TYPE_FOR_OPERATION"


def test_a_restricted_picklist_takes_only_its_values(api: Api, account: str) -> None:
    version = _version(api, account, "shared").json()["id"]
    document = api.get(f"/sobjects/ContentVersion/{version}?fields=ContentDocumentId").json()["ContentDocumentId"]
    other = api.post("/sobjects/Account", json={"Name": "Other"}).json()["id"]
    response = api.post("/sobjects/ContentDocumentLink", json={"ContentDocumentId": document,
                                                                "LinkedEntityId": other, "ShareType": "X"})
    assert response.status_code == 400
    assert response.json() == [{"message": "Share Type: bad value for restricted picklist field: X",
                                "errorCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "fields": ["ShareType"]}]


def test_custom_objects_from_the_metadata_have_their_standard_fields(api: Api) -> None:
    """Offload_Callout_Log__c: Name is an Auto Number (read-only), Status_Code__c a Number(3, 0)."""
    named = api.post("/sobjects/Offload_Callout_Log__c", json={"Name": "OCL-1"})
    assert named.status_code == 400 and named.json()[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    too_big = api.post("/sobjects/Offload_Callout_Log__c", json={"Status_Code__c": 1000})
    assert too_big.status_code == 400
    assert too_big.json() == [{"message": "HTTP Status Code: value outside of valid range on numeric field: 1000",
                               "errorCode": "NUMBER_OUTSIDE_VALID_RANGE", "fields": ["Status_Code__c"]}]
    assert api.post("/sobjects/Offload_Callout_Log__c", json={"Status_Code__c": 503}).status_code == 201


def test_a_platform_event_s_standard_fields_are_set_by_salesforce(api: Api) -> None:
    response = api.post("/sobjects/Offload_Job_Event__e", json={"Job_Id__c": "j1", "ReplayId": "7"})
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


def test_objects_apex_does_not_deploy_do_not_exist(api: Api) -> None:
    """A misspelt event or an object nobody deployed is missing in a real org: 404 in REST, INVALID_TYPE in SOQL."""
    assert api.post("/sobjects/Offload_Job_Evnt__e", json={"Job_Id__c": "j1"}).status_code == 404
    query = api.get("/query", params={"q": "SELECT Id FROM Offload_Job__c"})
    assert query.status_code == 400 and query.json()[0]["errorCode"] == "INVALID_TYPE"


# --------------------------------------------------------------------------- standard fields on read


def _query_error(api: Api, soql: str) -> dict:
    response = api.get("/query", params={"q": soql})
    assert response.status_code == 400, response.text
    [error] = response.json()
    return error


def test_soql_on_an_unknown_column_is_invalid_field_with_the_caret(api: Api) -> None:
    error = _query_error(api, "SELECT Id, Titel FROM ContentVersion")
    assert error == {"errorCode": "INVALID_FIELD", "message": (
        "\nSELECT Id, Titel FROM ContentVersion\n           ^\nERROR at Row:1:Column:12\n"
        "No such column 'Titel' on entity 'ContentVersion'. If you are attempting to use a custom field, be sure "
        f"to append the '__c' after the custom field name. {HINT}")}


@pytest.mark.parametrize(("soql", "column", "entity"), [
    ("SELECT Id FROM ContentVersion WHERE IsLatests = true", "IsLatests", "ContentVersion"),
    ("SELECT Id FROM ContentVersion ORDER BY CreatedDat", "CreatedDat", "ContentVersion"),
    ("SELECT Id FROM ContentVersion WHERE ContentDocumentId IN "
     "(SELECT ContentDocumentId FROM ContentDocumentLink WHERE CreatedDate > 2024-01-01T00:00:00Z)",
     "CreatedDate", "ContentDocumentLink"),
    ("SELECT Id, ContentDocument.Titel FROM ContentVersion", "Titel", "ContentDocument"),
    ("SELECT Id, Offload_Varient__c FROM ContentVersion", "Offload_Varient__c", "ContentVersion"),
    ("SELECT Id, Never_Written__c FROM Account", "Never_Written__c", "Account"),
])
def test_soql_checks_every_clause_against_the_schema(api: Api, soql: str, column: str, entity: str) -> None:
    error = _query_error(api, soql)
    assert error["errorCode"] == "INVALID_FIELD"
    assert f"No such column '{column}' on entity '{entity}'." in error["message"]


def test_soql_on_an_unknown_relationship_is_invalid_field(api: Api) -> None:
    error = _query_error(api, "SELECT Id, ContentDokument.Title FROM ContentVersion")
    assert error["errorCode"] == "INVALID_FIELD"
    assert error["message"].endswith(
        "Didn't understand relationship 'ContentDokument' in field path. If you are attempting to use a custom "
        f"relationship, be sure to append the '__r' after the custom relationship name. {HINT}")


def test_the_fields_offload_reads_are_all_there(api: Api, account: str) -> None:
    """Every column the resize job selects or filters on exists (a typo there would fail in a real org)."""
    version = _version(api, account, "mine").json()["id"]
    fields = ",".join(resize_job.SOURCE_FIELDS)
    assert api.get(f"/sobjects/ContentVersion/{version}?fields={fields}").status_code == 200
    rows = api.get("/query", params={"q": (
        f"SELECT {', '.join(resize_job.SOURCE_FIELDS)}, ContentDocument.Title FROM ContentVersion "
        f"WHERE ContentDocumentId IN (SELECT ContentDocumentId FROM ContentDocumentLink "
        f"WHERE LinkedEntityId = '{account}') AND IsLatest = true ORDER BY CreatedDate, Id")})
    assert rows.status_code == 200, rows.text
    assert rows.json()["totalSize"] == 1


def test_a_standard_field_no_record_holds_reads_as_null(api: Api, account: str) -> None:
    """?fields= names a real field that nothing has set yet: a real org answers null, not INVALID_FIELD."""
    version = _version(api, account, "blank").json()["id"]
    response = api.get(f"/sobjects/ContentVersion/{version}?fields=Title,TagCsv")
    assert response.status_code == 200, response.text
    assert response.json()["TagCsv"] is None
    assert api.get(f"/sobjects/ContentVersion/{version}?fields=Tags").json()[0]["errorCode"] == "INVALID_FIELD"


def test_describe_answers_from_the_schema(api: Api) -> None:
    """A client that describes before it writes sees what the org enforces."""
    document = api.get("/sobjects/ContentDocument/describe").json()
    assert document["createable"] is False and document["updateable"] is True
    version = {f["name"]: f for f in api.get("/sobjects/ContentVersion/describe").json()["fields"]}
    assert version["Title"]["type"] == "string" and version["Title"]["length"] == 255
    assert version["ContentSize"]["createable"] is False and version["PathOnClient"]["updateable"] is False
    assert version["Offload_Rendition_Key__c"]["unique"] is True and version["Offload_Rendition_Key__c"]["custom"]
