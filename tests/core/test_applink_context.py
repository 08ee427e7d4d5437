"""x-client-context parsing (services/salesforce/applink.py): Heroku's field names, strict checks, typed errors."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from services.errors import WrongOrg
from services.salesforce.applink import InvalidClientContext, encode_client_context, parse_client_context
from services.settings import Settings
from services.sfids import to_18
from tests.conftest import TEST_ORG_ID

SETTINGS = Settings.from_env({"OFFLOAD_ORG_IDS": TEST_ORG_ID[:15]})


def context(**changes: Any) -> dict[str, Any]:
    """A context as the mesh passes it (the fields of heroku_applink.ClientContext.from_header)."""
    data = {"requestId": "00DJS0000000123ABC-4Y4W3Lw_LkoskcHdEaZze", "accessToken": "00DJS0000000123!AQ8AQtoken",
            "apiVersion": "66.0", "namespace": "", "orgId": TEST_ORG_ID,
            "orgDomainUrl": "https://acme.my.salesforce.com",
            "userContext": {"userId": "005JS000000H123AAA", "username": "agent@acme.example"}}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_a_complete_context_is_read_with_herokus_field_names() -> None:
    parsed = parse_client_context(encode_client_context(context(orgId=TEST_ORG_ID[:15])), SETTINGS)
    assert parsed.org_id == TEST_ORG_ID and parsed.user_id == "005JS000000H123AAA"
    assert parsed.username == "agent@acme.example" and parsed.api_version == "66.0"
    assert parsed.org_domain_url == "https://acme.my.salesforce.com" and parsed.namespace is None
    assert parsed.access_token not in repr(parsed), "a bearer credential never reaches a log line"


@pytest.mark.parametrize("header", [None, "", "   "])
def test_no_header_says_it_must_come_through_the_mesh(header: str | None) -> None:
    with pytest.raises(InvalidClientContext) as caught:
        parse_client_context(header, SETTINGS)
    assert caught.value.code == "MISSING_CLIENT_CONTEXT" and "service-mesh" in caught.value.message


@pytest.mark.parametrize("header", [
    "not base64!", "eyJ", base64.b64encode(b"not json").decode(), base64.b64encode(b"[1, 2]").decode(),
    base64.b64encode(b'"a string"').decode(), "e" * 20_000,
    # b64decode without validate=True (the SDK's) would skip the junk and read the JSON anyway
    encode_client_context(context())[:8] + "*" + encode_client_context(context())[8:],
])
def test_malformed_headers_are_refused_with_a_typed_error(header: str) -> None:
    with pytest.raises(InvalidClientContext) as caught:
        parse_client_context(header, SETTINGS)
    assert caught.value.code == "MALFORMED_CLIENT_CONTEXT" and caught.value.status_code == 401


@pytest.mark.parametrize(("changes", "named"), [
    ({"requestId": None}, "requestId"), ({"accessToken": ""}, "accessToken"), ({"orgId": None}, "orgId"),
    ({"orgDomainUrl": None}, "orgDomainUrl"), ({"apiVersion": None}, "apiVersion"),
    ({"userContext": None}, "userContext"), ({"userContext": "005"}, "userContext"),
    ({"userContext": {"userId": "005JS000000H123AAA"}}, "userContext.username"),
    ({"requestId": 12}, "requestId"),
])
def test_a_missing_or_mistyped_field_is_named(changes: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidClientContext) as caught:
        parse_client_context(encode_client_context(context(**changes)), SETTINGS)
    assert caught.value.code == "INCOMPLETE_CLIENT_CONTEXT" and named in caught.value.message
    assert named in caught.value.fields


def test_an_org_not_in_offload_org_ids_is_refused() -> None:
    with pytest.raises(WrongOrg) as caught:
        parse_client_context(encode_client_context(context(orgId=to_18("00D5g000000AbCd"))), SETTINGS)
    assert caught.value.status_code == 403 and "OFFLOAD_ORG_IDS" in caught.value.message


@pytest.mark.parametrize(("changes", "field"), [({"orgId": "001JS0000000123"}, "orgId"),
                                                ({"orgDomainUrl": "http://acme.my.salesforce.com"}, "orgDomainUrl")])
def test_a_context_that_is_not_an_orgs_is_refused(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidClientContext) as caught:
        parse_client_context(encode_client_context(context(**changes)), SETTINGS)
    assert field in caught.value.fields


def test_the_encoding_is_the_one_the_official_package_reads() -> None:
    from heroku_applink import ClientContext, Config, Connection

    sdk = ClientContext.from_header(encode_client_context(context()), Connection(Config.default()))
    assert (sdk.org.id, sdk.org.user.username) == (TEST_ORG_ID, "agent@acme.example")
    assert json.loads(base64.b64decode(encode_client_context(context())))["userContext"]["userId"]
