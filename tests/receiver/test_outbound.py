"""POST /outbound/<process>: Salesforce gets Ack true only for messages durably enqueued."""

from __future__ import annotations

import json
import logging
import zlib

import pytest
import redis

from services.receiver import create_app
from services.salesforce.sessions import SESSION_PREFIX, load_session
from services.settings import Settings
from tests.support.receiver import OUTBOUND_TOKEN, fixture_bytes

SOAP = "text/xml; charset=utf-8"
ACK = b"<Ack>true</Ack>"


def post(client, body: bytes, process: str = "resize-image", content_type: str = SOAP,
         token: str | None = OUTBOUND_TOKEN):
    query = "" if token is None else f"?token={token}"
    return client.post(f"/outbound/{process}{query}", data=body, content_type=content_type,
                       headers={"SOAPAction": '""'})


def queued_envelopes(conn: redis.Redis) -> list[dict]:
    envelopes = []
    for job_id in conn.lrange("rq:queue:resize-image", 0, -1):
        data = conn.hget(f"rq:job:{job_id.decode()}", "data")
        envelopes.append(json.loads(zlib.decompress(data))[2][0])
    return envelopes


def test_a_batch_is_acked_after_one_job_per_notification(client, redis_conn) -> None:
    response = post(client, fixture_bytes("outbound-account-batch.xml"))
    assert response.status_code == 200, response.data
    assert ACK in response.data and response.content_type.startswith("text/xml")
    envelopes = queued_envelopes(redis_conn)
    assert [e["payload"] for e in envelopes] == [
        {"recordId": "0015g00000QwErTAAV"}, {"recordId": "0015g00000QwErUAAV"}, {"recordId": "0015g00000QwErVAAV"}
    ]
    assert {e["source"] for e in envelopes} == {"outbound"}
    assert {e["orgId"] for e in envelopes} == {"00D5g000000Xk2PEAS"}


def test_a_redelivery_is_acked_without_new_work(client, redis_conn) -> None:
    post(client, fixture_bytes("outbound-account-batch.xml"))
    response = post(client, fixture_bytes("outbound-account-single-redelivery.xml"))
    assert response.status_code == 200 and ACK in response.data
    assert redis_conn.llen("rq:queue:resize-image") == 3


def test_a_contentversion_notification_names_the_file(client, redis_conn) -> None:
    response = post(client, fixture_bytes("outbound-contentversion.xml"))
    assert ACK in response.data
    [envelope] = queued_envelopes(redis_conn)
    assert envelope["payload"] == {"contentVersionId": "0685g00000XyZaBAAV"}


def test_a_rendition_notification_is_acked_and_skipped(client, redis_conn) -> None:
    body = fixture_bytes("outbound-contentversion.xml").replace(
        b"</sObject>", b"<sf:Offload_Rendition_Of__c>0685g00000XyZaBAAV</sf:Offload_Rendition_Of__c></sObject>"
    )
    assert b"Offload_Rendition_Of__c" in body
    response = post(client, body)
    assert ACK in response.data
    assert redis_conn.llen("rq:queue:resize-image") == 0


def test_wrong_org_is_a_fault_and_nothing_is_enqueued(client, redis_conn) -> None:
    body = fixture_bytes("outbound-account-batch.xml").replace(b"00D5g000000Xk2PEAS", b"00D5g000000Zz9QEAS")
    response = post(client, body)
    assert response.status_code == 500
    assert b"faultstring" in response.data and ACK not in response.data
    assert b"OFFLOAD_ORG_IDS" in response.data
    assert redis_conn.llen("rq:queue:resize-image") == 0


@pytest.mark.parametrize(("token", "code"), [
    (None, b"MISSING_OUTBOUND_TOKEN"),
    ("", b"MISSING_OUTBOUND_TOKEN"),
    ("a-guess-at-the-token-0123456789", b"OUTBOUND_TOKEN_MISMATCH"),
    (OUTBOUND_TOKEN[:-1], b"OUTBOUND_TOKEN_MISMATCH"),
    (f"{OUTBOUND_TOKEN}&token={OUTBOUND_TOKEN}", b"MISSING_OUTBOUND_TOKEN"),  # two: which one was meant?
])
def test_a_message_from_the_right_org_without_the_token_is_a_fault_and_enqueues_nothing(
        client, redis_conn, caplog: pytest.LogCaptureFixture, token: str | None, code: bytes) -> None:
    """The org id is public (Web-to-Lead forms publish it), so a message naming it proves nothing alone."""
    with caplog.at_level(logging.INFO):
        response = post(client, fixture_bytes("outbound-account-batch.xml"), token=token)
    assert response.status_code == 500 and ACK not in response.data
    assert code in response.data and b"OFFLOAD_OUTBOUND_TOKENS" in response.data
    assert redis_conn.keys("*") == [], "a refused message must write nothing to Redis"
    if token:
        assert token.encode() not in response.data and token not in caplog.text


def test_either_token_works_while_rotating(client, redis_conn) -> None:
    for token in ("old-outbound-token-being-rotated", OUTBOUND_TOKEN):
        assert ACK in post(client, fixture_bytes("outbound-account-batch.xml"), token=token).data
    assert redis_conn.llen("rq:queue:resize-image") == 3  # the second delivery is the same message


def test_xxe_is_refused_without_expansion(client, redis_conn) -> None:
    body = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            + fixture_bytes("outbound-account-batch.xml").split(b"?>", 1)[1].replace(b"Springfield", b"&xxe;"))
    response = post(client, body)
    assert response.status_code == 500 and ACK not in response.data
    assert b"root:" not in response.data
    assert redis_conn.llen("rq:queue:resize-image") == 0


def test_billion_laughs_is_refused(client, redis_conn) -> None:
    lol = b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">' + b"".join(
        b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10) for i in range(1, 10)
    ) + b"]><lolz>&lol9;</lolz>"
    response = post(client, lol)
    assert response.status_code == 500 and ACK not in response.data


def test_malformed_xml_is_a_fault(client, redis_conn) -> None:
    response = post(client, fixture_bytes("outbound-account-batch.xml")[:400])
    assert response.status_code == 500 and b"faultstring" in response.data and ACK not in response.data


def test_wrong_content_type_is_a_fault(client) -> None:
    response = post(client, fixture_bytes("outbound-account-batch.xml"), content_type="application/json")
    assert response.status_code == 500 and b"UNSUPPORTED_MEDIA_TYPE" in response.data


def test_unknown_process_is_a_fault(client) -> None:
    response = post(client, fixture_bytes("outbound-account-batch.xml"), process="nope")
    assert response.status_code == 500 and b"UNKNOWN_PROCESS" in response.data


def test_oversized_message_is_a_fault(client, settings: Settings) -> None:
    response = post(client, b"<x>" + b"a" * settings.max_body_bytes + b"</x>")
    assert response.status_code == 500 and b"PAYLOAD_TOO_LARGE" in response.data


def test_redis_down_means_no_ack(settings: Settings) -> None:
    """Salesforce must never get an ACK for a message we did not durably enqueue."""
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    client = create_app({"OFFLOAD_SETTINGS": settings, "OFFLOAD_REDIS": dead}).test_client()
    response = post(client, fixture_bytes("outbound-account-batch.xml"))
    assert response.status_code == 500
    assert ACK not in response.data and b"soapenv:Server" in response.data


def test_session_id_is_stored_encrypted_and_only_by_reference(client, redis_conn) -> None:
    """Without Connected App credentials, the session is the way back in: encrypted, never in the job."""
    body = fixture_bytes("outbound-account-batch.xml")
    session_id = body.split(b"<SessionId>")[1].split(b"</SessionId>")[0].decode()
    post(client, body)
    envelope = queued_envelopes(redis_conn)[0]
    assert session_id not in json.dumps(envelope)
    stored = redis_conn.get(SESSION_PREFIX + envelope["sessionRef"])
    assert stored is not None and session_id.encode() not in stored
    assert load_session(redis_conn, "test-encryption-key", envelope["sessionRef"]) == session_id
    assert envelope["instanceUrl"].startswith("https://")


def test_session_is_not_kept_when_credentials_are_configured(settings: Settings, redis_conn) -> None:
    with_creds = settings.replace(salesforce_client_id="id", salesforce_client_secret="secret")
    client = create_app({"OFFLOAD_SETTINGS": with_creds, "OFFLOAD_REDIS": redis_conn}).test_client()
    post(client, fixture_bytes("outbound-account-batch.xml"))
    assert "sessionRef" not in queued_envelopes(redis_conn)[0]
    assert list(redis_conn.scan_iter(SESSION_PREFIX + "*")) == []


def test_one_unmappable_notification_is_refused_alone_and_the_rest_are_enqueued(client, redis_conn, caplog) -> None:
    """A Fault would make Salesforce retry all of them for 24 h and then drop them, the good ones too."""
    body = fixture_bytes("outbound-account-batch.xml").replace(b"<sf:Id>0015g00000QwErUAAV</sf:Id>", b"")
    with caplog.at_level(logging.WARNING):
        response = post(client, body)
    assert response.status_code == 200 and ACK in response.data, response.data
    assert [e["payload"] for e in queued_envelopes(redis_conn)] == [
        {"recordId": "0015g00000QwErTAAV"}, {"recordId": "0015g00000QwErVAAV"}]
    refused = [r for r in caplog.records if r.getMessage() == "notification refused"]
    assert len(refused) == 1 and "notification 04l5g00000Ab1CeAAJ (Account)" in refused[0].fields["reason"]
    assert redis_conn.hget("offload:metrics:intake", "refused|resize-image") == b"1"


def test_a_user_notification_is_refused_alone_and_acked(client, redis_conn, caplog) -> None:
    """A forged notification naming a User would resize every file that user owns; the rest go on."""
    body = fixture_bytes("outbound-account-batch.xml").replace(
        b'<sObject xsi:type="sf:Account" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">\n     '
        b"<sf:Id>0015g00000QwErUAAV</sf:Id>",
        b'<sObject xsi:type="sf:User" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">\n     '
        b"<sf:Id>0055g00000AbCdEAAV</sf:Id>")
    assert b"sf:User" in body
    with caplog.at_level(logging.WARNING):
        response = post(client, body)
    assert response.status_code == 200 and ACK in response.data, response.data
    assert [e["payload"] for e in queued_envelopes(redis_conn)] == [
        {"recordId": "0015g00000QwErTAAV"}, {"recordId": "0015g00000QwErVAAV"}]
    [refused] = [r for r in caplog.records if r.getMessage() == "notification refused"]
    assert "(User)" in refused.fields["reason"] and "OFFLOAD_RECORD_TYPES" in refused.fields["reason"]
