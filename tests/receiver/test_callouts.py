"""POST /callouts/<process> and GET /jobs/<id>: authenticated, validated, deduplicated, never a 500."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import redis

from services.queue.loopguard import mark_own_output
from services.receiver import create_app
from services.settings import Settings
from services.sfids import to_18
from services.signing import sign
from tests.support.receiver import now_iso, signed_post

CV = "0685g00000XyZaBAAV"
ACCOUNT = "0015g00000QwErTAAV"
SECRET = "test-secret-0123456789abcdef"
API_KEY = "test-api-key-0123456789"


def test_signed_callout_is_queued(client, redis_conn: redis.Redis) -> None:
    response = signed_post(client, "/callouts/resize-image", {"contentVersionId": CV, "sentAt": now_iso()}, SECRET)
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["status"] == "queued" and body["jobId"].startswith("resize-image-")
    assert body["statusUrl"].endswith(f"/jobs/{body['jobId']}")
    assert redis_conn.llen("rq:queue:resize-image") == 1


def test_a_rotated_out_secret_still_works_while_listed(client) -> None:
    response = signed_post(client, "/callouts/resize-image", {"recordId": ACCOUNT}, "old-secret-being-rotated")
    assert response.status_code == 202


def test_bearer_key_is_accepted(client) -> None:
    response = client.post("/callouts/resize-image", json={"recordId": ACCOUNT},
                           headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status_code == 202


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "MISSING_CREDENTIALS"),
        ({"X-Offload-Signature": "sha256=" + "0" * 64}, "SIGNATURE_MISMATCH"),
        ({"X-Offload-Signature": "md5=abc"}, "SIGNATURE_MISMATCH"),
        ({"Authorization": "Bearer wrong"}, "API_KEY_MISMATCH"),
    ],
)
def test_wrong_callers_get_401_with_a_reason_and_nothing_is_queued(client, redis_conn, headers, code) -> None:
    response = client.post("/callouts/resize-image", json={"recordId": ACCOUNT}, headers=headers)
    assert response.status_code == 401
    error = response.get_json()["error"]
    assert error["code"] == code
    assert SECRET not in json.dumps(error) and API_KEY not in json.dumps(error)
    assert redis_conn.llen("rq:queue:resize-image") == 0


def test_signature_over_a_different_body_is_refused(client) -> None:
    body = json.dumps({"recordId": ACCOUNT}).encode()
    response = client.post("/callouts/resize-image", data=body + b" ", content_type="application/json",
                           headers={"X-Offload-Signature": sign(body, SECRET)})
    assert response.get_json()["error"]["code"] == "SIGNATURE_MISMATCH"


@pytest.mark.parametrize("offset", [-301, 400])
def test_stale_or_future_sent_at_is_refused(client, offset: int) -> None:
    response = signed_post(client, "/callouts/resize-image",
                           {"contentVersionId": CV, "sentAt": now_iso(offset)}, SECRET)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "STALE_REQUEST"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "_schema"),
        ({"contentVersionId": CV, "recordId": ACCOUNT}, "_schema"),
        ({"contentVersionId": ACCOUNT}, "contentVersionId"),
        ({"contentVersionId": "0685g00000XyZaBAAA"}, "contentVersionId"),
        ({"recordId": 12}, "recordId"),
        ({"recordId": ACCOUNT, "sentAt": "yesterday"}, "sentAt"),
        ({"recordId": ACCOUNT, "color": "red"}, "color"),
    ],
)
def test_invalid_payloads_get_400_with_fields(client, payload, field) -> None:
    response = signed_post(client, "/callouts/resize-image", payload, SECRET)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "VALIDATION_FAILED" and field in error["fields"]
    # The same messages as a list Flow can read (External Services makes the ``fields`` map an untyped Object).
    assert error["fieldErrors"] == [{"field": name, "message": message}
                                    for name, messages in error["fields"].items() for message in messages]


def test_malformed_json_is_400(client) -> None:
    body = b'{"recordId": '
    response = client.post("/callouts/resize-image", data=body, content_type="application/json",
                           headers={"X-Offload-Signature": sign(body, SECRET)})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "MALFORMED_JSON"


def test_non_object_json_is_400(client) -> None:
    response = signed_post(client, "/callouts/resize-image", [1, 2], SECRET)
    assert response.status_code == 400


def test_wrong_content_type_is_415(client) -> None:
    body = b"recordId=0015g00000QwErTAAV"
    response = client.post("/callouts/resize-image", data=body, content_type="application/x-www-form-urlencoded",
                           headers={"X-Offload-Signature": sign(body, SECRET)})
    assert response.status_code == 415


def test_unknown_process_is_404(client) -> None:
    response = signed_post(client, "/callouts/transcode-video", {"recordId": ACCOUNT}, SECRET)
    assert response.status_code == 404
    assert "resize-image" in response.get_json()["error"]["message"]


def test_oversized_body_is_413(client, settings: Settings) -> None:
    body = b'{"recordId": "' + b"x" * settings.max_body_bytes + b'"}'
    response = client.post("/callouts/resize-image", data=body, content_type="application/json",
                           headers={"X-Offload-Signature": sign(body, SECRET)})
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_a_repeat_gets_the_original_job(client, redis_conn) -> None:
    """The same work asked twice (new sentAt) is one job; the repeat answers 200, not 202."""
    first = signed_post(client, "/callouts/resize-image", {"contentVersionId": CV, "sentAt": now_iso()}, SECRET)
    again = signed_post(client, "/callouts/resize-image", {"contentVersionId": CV, "sentAt": now_iso(-5)}, SECRET)
    assert again.status_code == 200
    assert again.get_json()["jobId"] == first.get_json()["jobId"] and again.get_json()["duplicate"] is True
    assert redis_conn.llen("rq:queue:resize-image") == 1


@pytest.mark.parametrize("auth", ["signature", "api_key"])
def test_an_idempotency_key_reused_with_another_body_is_422_and_the_key_keeps_its_job(
        client, redis_conn, auth: str) -> None:
    """Answering "duplicate" would silently drop the second request's file (it used to)."""
    def send(payload: dict, key: str) -> Any:
        if auth == "signature":
            return signed_post(client, "/callouts/resize-image", payload, SECRET, {"Idempotency-Key": key})
        return client.post("/callouts/resize-image", json=payload,
                           headers={"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": key})

    first = send({"recordId": ACCOUNT}, "flow-run-42")
    assert first.status_code == 202
    reused = send({"contentVersionId": CV}, "flow-run-42")
    assert reused.status_code == 422, reused.get_json()
    error = reused.get_json()["error"]
    assert error["code"] == "IDEMPOTENCY_KEY_REUSED" and "Idempotency-Key" in error["fields"]
    retried = send({"recordId": ACCOUNT}, "flow-run-42")  # a retry of the first, with a new sentAt
    assert retried.status_code == 200 and retried.get_json()["jobId"] == first.get_json()["jobId"]
    assert send({"contentVersionId": CV}, "flow-run-43").status_code == 202
    assert redis_conn.llen("rq:queue:resize-image") == 2


def test_a_captured_signed_request_replayed_with_new_idempotency_keys_is_one_job(client, redis_conn) -> None:
    """Headers are not signed: a replayer can change them, so they cannot make a signed body new work."""
    body = json.dumps({"contentVersionId": CV, "sentAt": now_iso()}).encode()
    signature = sign(body, SECRET)
    answers = [client.post("/callouts/resize-image", data=body, content_type="application/json",
                           headers={"X-Offload-Signature": signature, "Idempotency-Key": f"replay-{i}"})
               for i in range(20)]
    assert [a.status_code for a in answers] == [202] + [200] * 19
    assert {a.get_json()["jobId"] for a in answers} == {answers[0].get_json()["jobId"]}
    assert redis_conn.llen("rq:queue:resize-image") == 1


def test_a_signed_body_without_sent_at_is_400_naming_it(client, redis_conn) -> None:
    body = json.dumps({"contentVersionId": CV}).encode()
    response = client.post("/callouts/resize-image", data=body, content_type="application/json",
                           headers={"X-Offload-Signature": sign(body, SECRET)})
    assert response.status_code == 400
    assert "sentAt" in response.get_json()["error"]["fields"] and "sentAt" in response.get_json()["error"]["message"]
    assert response.get_json()["error"]["fieldErrors"] == [
        {"field": "sentAt", "message": "Required in a signed request."}]
    assert redis_conn.keys("*") == []


def test_an_error_without_fields_has_an_empty_field_error_list(client) -> None:
    """Every error body has both, so a flow can read ``fieldErrors`` without checking it is there."""
    error = client.get("/jobs/nope", headers={"Authorization": f"Bearer {API_KEY}"}).get_json()["error"]
    assert error["fields"] == {} and error["fieldErrors"] == []


def test_nested_field_messages_are_named_by_their_path() -> None:
    """marshmallow nests the messages of a nested schema or a list element; the list names them by path."""
    from services.errors import InvalidRequest

    body = InvalidRequest("bad", fields={"options": {"width": ["Too big."], "height": ["Missing.", "Odd."]},
                                         "items": {0: ["Not a string."]}}).to_dict()
    assert body["error"]["fieldErrors"] == [
        {"field": "options.width", "message": "Too big."},
        {"field": "options.height", "message": "Missing."},
        {"field": "options.height", "message": "Odd."},
        {"field": "items.0", "message": "Not a string."},
    ]


def test_offloads_own_renditions_are_skipped(client, redis_conn) -> None:
    mark_own_output(redis_conn, [CV])
    response = signed_post(client, "/callouts/resize-image", {"contentVersionId": CV}, SECRET)
    assert response.status_code == 200
    assert response.get_json()["status"] == "skipped"
    assert redis_conn.llen("rq:queue:resize-image") == 0


def test_redis_down_is_503_and_never_accepted(settings: Settings) -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    client = create_app({"OFFLOAD_SETTINGS": settings, "OFFLOAD_REDIS": dead}).test_client()
    response = signed_post(client, "/callouts/resize-image", {"recordId": ACCOUNT}, SECRET)
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "ENQUEUE_FAILED"


def test_job_status_needs_credentials_and_reports_the_job(client) -> None:
    job_id = signed_post(client, "/callouts/resize-image", {"recordId": ACCOUNT}, SECRET).get_json()["jobId"]
    assert client.get(f"/jobs/{job_id}").status_code == 401
    path = f"/jobs/{job_id}"
    signed = client.get(path, headers={"X-Offload-Signature": sign(path.encode(), SECRET)})
    assert signed.status_code == 200
    body = signed.get_json()
    assert body["jobId"] == job_id and body["status"] == "queued" and body["process"] == "resize-image"
    assert body["recordId"] == ACCOUNT
    by_key = client.get(path, headers={"Authorization": f"Bearer {API_KEY}"})
    assert by_key.get_json() == body
    missing = client.get("/jobs/nope", headers={"Authorization": f"Bearer {API_KEY}"})
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "JOB_NOT_FOUND"


def test_a_body_without_content_length_is_still_read(client) -> None:
    """Chunked uploads (no Content-Length) go through werkzeug's own size-capped reader."""
    from werkzeug.test import EnvironBuilder

    body = json.dumps({"recordId": ACCOUNT, "sentAt": now_iso()}).encode()
    environ = EnvironBuilder(path="/callouts/resize-image", method="POST", input_stream=io.BytesIO(body),
                             content_type="application/json", headers={"X-Offload-Signature": sign(body, SECRET)},
                             environ_overrides={"wsgi.input_terminated": True}).get_environ()
    del environ["CONTENT_LENGTH"]
    response = client.open(environ)
    assert response.status_code == 202, response.get_json()


def test_headers_read_from_the_environ_match_werkzeug(app) -> None:
    from flask import request

    from services.receiver.intake import header

    sent = {"X-Request-Id": "abc", "Idempotency-Key": "k-1", "X-Offload-Signature": "s"}
    with app.test_request_context(headers=sent):
        for name in ("X-Request-Id", "x-request-id", "Idempotency-Key", "X-Offload-Signature", "Authorization"):
            assert header(request, name) == request.headers.get(name), name


def test_a_callout_is_checksummed_once_per_request(client, monkeypatch: pytest.MonkeyPatch) -> None:
    """The schema and the loop guard both need the 18-character id; it is computed once."""
    from services import sfids

    sfids._normalize.cache_clear()
    calls = []
    real = sfids.checksum
    monkeypatch.setattr(sfids, "checksum", lambda id15: calls.append(id15) or real(id15))
    response = signed_post(client, "/callouts/resize-image", {"contentVersionId": CV, "sentAt": now_iso()}, SECRET)
    assert response.status_code == 202
    assert calls == [CV[:15]]


def test_a_non_ascii_signature_is_a_401_mismatch_not_a_500(client, redis_conn) -> None:
    body = json.dumps({"contentVersionId": CV, "sentAt": now_iso()}).encode()
    response = client.post("/callouts/resize-image", data=body, content_type="application/json",
                           headers={"X-Offload-Signature": "sha256=\xe9" + "0" * 63})
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "SIGNATURE_MISMATCH"


def test_json_nested_100k_deep_is_a_400_not_a_500(client, redis_conn) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    response = client.post("/callouts/resize-image", data=body, content_type="application/json",
                           headers={"X-Offload-Signature": sign(body, SECRET)})
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "MALFORMED_JSON"
    assert redis_conn.keys("*") == []


USER = "0055g00000AbCdEAAV"


def test_a_user_record_is_refused_and_nothing_is_queued(client, redis_conn: redis.Redis) -> None:
    """A User id would make a job of every file that user owns: not a record Offload works on by default."""
    response = signed_post(client, "/callouts/resize-image", {"recordId": USER}, SECRET)
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "RECORD_TYPE_NOT_ALLOWED" and "OFFLOAD_RECORD_TYPES" in error["message"]
    assert redis_conn.llen("rq:queue:resize-image") == 0
    assert signed_post(client, "/callouts/resize-image", {"recordId": ACCOUNT}, SECRET).status_code == 202


def test_offload_record_types_allows_only_the_listed_types(settings: Settings, redis_conn: redis.Redis) -> None:
    listed = settings.replace(record_types=Settings.from_env({"OFFLOAD_RECORD_TYPES": "Property__c,a0B"}).record_types)
    client = create_app({"TESTING": True, "OFFLOAD_SETTINGS": listed, "OFFLOAD_REDIS": redis_conn}).test_client()
    assert signed_post(client, "/callouts/resize-image", {"recordId": ACCOUNT}, SECRET).status_code == 422
    custom = to_18("a0B5g00000ZzZzZ")
    assert signed_post(client, "/callouts/resize-image", {"recordId": custom}, SECRET).status_code == 202
    assert signed_post(client, "/callouts/resize-image", {"contentVersionId": CV}, SECRET).status_code == 202
