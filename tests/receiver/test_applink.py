"""POST /applink/<process>: only through the mesh, from an allowed org; same validation, dedupe and answers."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from services import keys
from services.errors import WrongOrg
from services.queue import fetch_job
from services.receiver import create_app
from services.salesforce.applink import encode_client_context
from services.salesforce.sessions import load_session
from services.settings import Settings
from services.sfids import to_18
from tests.conftest import TEST_ORG_ID
from tests.core.test_applink_context import context

CV = "0685g00000XyZaBAAV"
TOKEN = "00D5g000000Xk2P!AQ8AQcontext-token"
LOOPBACK = {"REMOTE_ADDR": "127.0.0.1"}


@pytest.fixture
def mesh_client(settings: Settings, redis_conn: redis.Redis):
    """The receiver as it runs behind the mesh (APP_PORT set), called from the loopback interface."""
    app = create_app({"TESTING": True, "OFFLOAD_SETTINGS": settings.replace(app_port=3000),
                      "OFFLOAD_REDIS": redis_conn})
    return app.test_client()


def invoke(client: Any, body: Any, *, environ: dict[str, str] | None = None, **changes: Any) -> Any:
    ctx = context(**{"orgId": TEST_ORG_ID, "accessToken": TOKEN, **changes})
    return client.post("/applink/resize-image", json=body, headers={"x-client-context": encode_client_context(ctx)},
                       environ_base=LOOPBACK if environ is None else environ)


def test_an_invocation_through_the_mesh_is_queued_with_its_token_encrypted(mesh_client, redis_conn,
                                                                          settings: Settings) -> None:
    response = invoke(mesh_client, {"contentVersionId": CV})
    assert response.status_code == 202, response.get_json()
    job = fetch_job(redis_conn, response.get_json()["jobId"])
    envelope = job.args[0]
    assert (envelope["source"], envelope["orgId"]) == ("applink", TEST_ORG_ID)
    assert envelope["userId"] == "005JS000000H123AAA"
    assert envelope["instanceUrl"] == "https://acme.my.salesforce.com"
    assert TOKEN not in str(job.args)
    assert TOKEN.encode() not in redis_conn.get(keys.SESSION_PREFIX + envelope["sessionRef"])
    assert load_session(redis_conn, settings.secret_key, envelope["sessionRef"]) == TOKEN


def test_the_same_request_id_is_a_duplicate_and_a_new_one_new_work(mesh_client) -> None:
    first = invoke(mesh_client, {"contentVersionId": CV}, requestId="req-1")
    again = invoke(mesh_client, {"contentVersionId": CV}, requestId="req-1")
    other = invoke(mesh_client, {"contentVersionId": CV}, requestId="req-2")
    assert first.status_code == 202 and again.status_code == 200 and other.status_code == 202
    assert again.get_json()["duplicate"] is True and again.get_json()["jobId"] == first.get_json()["jobId"]
    assert other.get_json()["jobId"] != first.get_json()["jobId"]


def test_without_app_port_the_door_is_closed(client, redis_conn) -> None:
    response = invoke(client, {"contentVersionId": CV})
    assert response.status_code == 403 and response.get_json()["error"]["code"] == "APPLINK_NOT_ENABLED"
    assert not list(redis_conn.scan_iter("rq:job:*"))


@pytest.mark.parametrize("peer", ["10.1.2.3", "203.0.113.9", "::ffff:10.0.0.1", ""])
def test_a_request_not_from_the_mesh_is_refused(mesh_client, redis_conn, peer: str) -> None:
    response = invoke(mesh_client, {"contentVersionId": CV}, environ={"REMOTE_ADDR": peer})
    assert response.status_code == 403 and response.get_json()["error"]["code"] == "NOT_THROUGH_MESH"
    assert not list(redis_conn.scan_iter("rq:job:*"))


def test_no_context_wrong_org_and_invalid_bodies_are_refused_like_the_other_doors(mesh_client) -> None:
    missing = mesh_client.post("/applink/resize-image", json={"contentVersionId": CV}, environ_base=LOOPBACK)
    assert missing.status_code == 401 and missing.get_json()["error"]["code"] == "MISSING_CLIENT_CONTEXT"
    wrong_org = invoke(mesh_client, {"contentVersionId": CV}, orgId=to_18("00D5g000000AbCd"))
    assert wrong_org.status_code == 403 and wrong_org.get_json()["error"]["code"] == WrongOrg.code
    invalid = invoke(mesh_client, {"contentVersionId": "nope"})
    assert invalid.status_code == 400 and invalid.get_json()["error"]["code"] == "VALIDATION_FAILED"
    assert invalid.get_json()["error"]["fieldErrors"][0]["field"] == "contentVersionId"
    unknown = mesh_client.post("/applink/no-such", json={}, environ_base=LOOPBACK,
                               headers={"x-client-context": encode_client_context(context(orgId=TEST_ORG_ID))})
    assert unknown.status_code == 404


def test_without_a_secret_key_no_token_is_stored_in_clear(settings: Settings, redis_conn) -> None:
    app = create_app({"TESTING": True, "OFFLOAD_REDIS": redis_conn,
                      "OFFLOAD_SETTINGS": settings.replace(app_port=3000, secret_key="")})
    response = invoke(app.test_client(), {"contentVersionId": CV})
    assert response.get_json()["error"]["code"] == "SECRET_KEY_NOT_SET"
    assert not list(redis_conn.scan_iter(keys.SESSION_PREFIX + "*"))
