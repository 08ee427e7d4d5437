"""Property-based fuzzing of both doors: no 500 from a callout, and no ACK without the jobs in Redis.

* ``POST /callouts/<process>``: bodies drawn from the OpenAPI request schema (valid ids, fresh
  ``sentAt``) and from arbitrary JSON and bytes, signed right, signed wrong, with a Bearer key or
  nothing, under random content types, process names and ``Idempotency-Key`` headers. Every answer is
  a documented status with the JSON error body, never a 5xx (Redis is up), and the queue grows by
  exactly one job for a 202 and by none otherwise.
* ``POST /outbound/resize-image``: SOAP envelopes mutated from the Salesforce fixture (fresh or repeated
  notification ids, more notifications, wrong orgs, broken markup, byte-level damage). A Fault is
  allowed (that is how Salesforce is told to retry), but ``<Ack>true</Ack>`` is only allowed when
  every notification of the message has its job in Redis and the queue grew by the number of
  notifications that were new.

Bounded: ``max_examples`` per test, no deadline, well under 30 s together.
"""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
import redis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from services.clock import utc_iso
from services.errors import OffloadError
from services.processes import PROCESSES
from services.queue import Delivery
from services.receiver.soap import parse_outbound_message
from services.sfids import checksum, to_18
from services.signing import sign
from tests.support.receiver import OUTBOUND_TOKEN, fixture_bytes

SECRET = "test-secret-0123456789abcdef"
API_KEY = "test-api-key-0123456789"
QUEUE = "rq:queue:resize-image"
QUEUES = [f"rq:queue:{process.queue}" for process in PROCESSES.values()]


def queued(conn: redis.Redis) -> int:
    """Jobs waiting on every process's queue (a callout to any process may enqueue)."""
    return sum(conn.llen(queue) for queue in QUEUES)
ACK = b"<Ack>true</Ack>"
FUZZ = settings(max_examples=200, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much])
CALLOUT_STATUSES = {200, 202, 400, 401, 404, 405, 413, 415, 422}  # 422: an Idempotency-Key reused
REDIRECT = 308  # werkzeug merges "//" in a path (a process name holding "/"): a redirect, nothing enqueued

# --- JSON callouts -------------------------------------------------------------------------------------

ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


@st.composite
def sf_ids(draw: st.DrawFn, prefix: str | None = None) -> str:
    """A well-formed 15- or 18-character Salesforce id (optionally of a key prefix), sometimes broken."""
    head = prefix or draw(st.sampled_from(["068", "001", "003", "a0B", "00D"]))
    id15 = head + draw(st.text(ALNUM, min_size=12, max_size=12))
    form = draw(st.sampled_from(["18", "18", "15", "bad-checksum", "short"]))
    if form == "18":
        return id15 + checksum(id15)
    if form == "15":
        return id15
    if form == "bad-checksum":
        return id15 + ("AAA" if checksum(id15) != "AAA" else "BBB")
    return id15[: draw(st.integers(0, 14))]


def mostly(good: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` three times out of four, so the deep paths (202, duplicates, skips) are reached too."""
    return st.integers(0, 3).flatmap(lambda n: other if n == 0 else good)


@st.composite
def valid_ids(draw: st.DrawFn, prefix: str) -> str:
    id15 = prefix + draw(st.text(ALNUM, min_size=12, max_size=12))
    return id15 + checksum(id15)


def iso(offset: float) -> str:
    return utc_iso(datetime.now(UTC) + timedelta(seconds=offset))


json_leaves = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(
    max_size=40)
arbitrary_json = st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=12), inner, max_size=4), max_leaves=12)
sent_at = mostly(st.floats(-60, 60).map(iso), st.one_of(st.floats(-600, 600).map(iso), st.text(max_size=30),
                                                          arbitrary_json))
field_value = {
    "contentVersionId": mostly(valid_ids("068"), st.one_of(sf_ids("068"), sf_ids(), arbitrary_json)),
    "recordId": mostly(valid_ids("001"), st.one_of(sf_ids(), arbitrary_json)),
    "sentAt": sent_at,
}


@st.composite
def schema_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """Objects shaped by the OpenAPI request schema: some keys, plausible or hostile values, maybe extras."""
    target = draw(st.sampled_from(["contentVersionId", "recordId"]))
    keys = draw(mostly(st.sampled_from([[target], [target, "sentAt"]]),
                       st.lists(st.sampled_from(sorted(field_value)), unique=True, max_size=3)))
    body = {k: draw(field_value[k]) for k in keys}
    if draw(st.integers(0, 4)) == 0:
        body.update(draw(st.dictionaries(st.text(max_size=10), arbitrary_json, max_size=2)))
    return body


bodies = mostly(schema_bodies().map(lambda b: json.dumps(b).encode()), st.one_of(
    arbitrary_json.map(lambda b: json.dumps(b).encode()),
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
))
content_types = mostly(st.just("application/json"), st.one_of(
    st.sampled_from(["application/json", "application/json; charset=utf-8", "application/vnd.api+json",
                     "text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "", "text/xml"]),
    st.text(max_size=30).filter(lambda t: "\n" not in t and "\r" not in t),
))
process_names = mostly(st.sampled_from(sorted(PROCESSES)), st.text(min_size=1, max_size=30))
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=300)


@st.composite
def credentials(draw: st.DrawFn, body: bytes) -> dict[str, str]:
    kind = draw(mostly(st.sampled_from(["signed", "old-secret", "bearer"]),
                       st.sampled_from(["wrong-secret", "garbage", "wrong-bearer", "none"])))
    if kind == "signed":
        return {"X-Offload-Signature": sign(body, SECRET)}
    if kind == "old-secret":
        return {"X-Offload-Signature": sign(body, "old-secret-being-rotated")}
    if kind == "wrong-secret":
        return {"X-Offload-Signature": sign(body, "not-the-secret")}
    if kind == "garbage":
        return {"X-Offload-Signature": draw(header_text)}
    if kind == "bearer":
        return {"Authorization": f"Bearer {API_KEY}"}
    if kind == "wrong-bearer":
        return {"Authorization": "Bearer " + draw(header_text)}
    return {}


@FUZZ
@given(data=st.data(), body=bodies, content_type=content_types, name=process_names)
def test_callouts_never_answer_5xx_and_enqueue_only_on_202(client, redis_conn: redis.Redis, data: st.DataObject,
                                                          body: bytes, content_type: str, name: str) -> None:
    headers = data.draw(credentials(body))
    if data.draw(st.integers(0, 3)) == 0:
        headers["Idempotency-Key"] = data.draw(st.one_of(st.sampled_from(["flow-run-1", "flow-run-2"]), header_text))
    before = queued(redis_conn)
    response = client.post(f"/callouts/{quote(name, safe='')}", data=body, headers=headers,
                           content_type=content_type or None)
    grown = queued(redis_conn) - before
    event(f"status {response.status_code}")
    if response.status_code == REDIRECT:
        assert grown == 0
        return
    assert response.status_code in CALLOUT_STATUSES, (response.status_code, response.data[:300])
    payload = response.get_json(silent=True)
    assert isinstance(payload, dict), response.data[:300]
    if response.status_code >= 400:
        assert set(payload["error"]) == {"code", "message", "fields", "fieldErrors"}
        assert SECRET not in response.get_data(as_text=True) and API_KEY not in response.get_data(as_text=True)
    assert grown == (1 if response.status_code == 202 else 0), (response.status_code, payload)
    if response.status_code == 202:
        assert payload["status"] == "queued" and redis_conn.exists(f"rq:job:{payload['jobId']}")


# --- Outbound Messages ---------------------------------------------------------------------------------

FIXTURE = fixture_bytes("outbound-account-batch.xml").decode()
_HEAD, _REST = FIXTURE.split("<Notification>", 1)
_FIRST = "<Notification>" + _REST.split("</Notification>", 1)[0] + "</Notification>"
_TAIL = FIXTURE.rsplit("</Notification>", 1)[1]
_NOTE_ID = re.search(r"<Id>(\w+)</Id>", _FIRST).group(1)  # type: ignore[union-attr]
_RECORD_ID = re.search(r"<sf:Id>(\w+)</sf:Id>", _FIRST).group(1)  # type: ignore[union-attr]


def _id18(prefix: str, rng: random.Random) -> str:
    id15 = prefix + "".join(rng.choice(ALNUM) for _ in range(12))
    return id15 + checksum(id15)


@st.composite
def envelopes(draw: st.DrawFn) -> bytes:
    """The fixture with 1..8 notifications (new or repeated ids), then zero or more mutations."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    count = draw(st.integers(1, 8))
    notes = []
    for _ in range(count):
        if draw(st.integers(0, 4)) == 0:  # a redelivery of the fixture's notification
            notes.append(_FIRST)
        else:
            notes.append(_FIRST.replace(_NOTE_ID, _id18("04l", rng)).replace(_RECORD_ID, _id18("001", rng)))
    text = _HEAD + "\n".join(notes) + _TAIL
    for mutation in draw(st.lists(st.sampled_from(MUTATIONS), max_size=3)):
        text = mutation(text, draw)
    return text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text


def _replace_some(pattern: str, make: Any) -> Any:
    def mutate(text: str, draw: st.DrawFn) -> str:
        matches = list(re.finditer(pattern, text))
        if not matches:
            return text
        m = matches[draw(st.integers(0, len(matches) - 1))]
        return text[: m.start()] + make(m, draw) + text[m.end():]
    return mutate


def _cut(text: str, draw: st.DrawFn) -> str:
    start = draw(st.integers(0, len(text)))
    return text[:start] + text[start + draw(st.integers(0, 200)):]


def _insert(text: str, draw: st.DrawFn) -> str:
    at = draw(st.integers(0, len(text)))
    return text[:at] + draw(st.sampled_from(["<", ">", "&", "&amp;", "]]>", "<![CDATA[x]]>", "<!--",
                                             "<!DOCTYPE x>", "\x00", "\ud800", "<sf:Extra>1</sf:Extra>",
                                             'xsi:nil="true"', "<x:y>", "</Notification>"])) + text[at:]


def _duplicate_notification(text: str, draw: st.DrawFn) -> str:
    return text.replace("</Notification>", "</Notification>\n" + _FIRST, 1)


MUTATIONS = [
    _cut,
    _insert,
    _duplicate_notification,
    _replace_some(r"00D5g000000Xk2PEAS", lambda m, d: d(st.sampled_from(
        ["00D5g000000Zz9QEAS", "00D5g000000Xk2P", "00d5g000000xk2peas", "", "00D5g000000Xk2PEAA"]))),
    _replace_some(r"<Id>\w+</Id>", lambda m, d: "<Id>" + d(st.one_of(sf_ids(), st.text(max_size=20))) + "</Id>"),
    _replace_some(r"<sf:Id>\w+</sf:Id>", lambda m, d: "<sf:Id>" + d(st.one_of(sf_ids(), st.text(max_size=20)))
                  + "</sf:Id>"),
    _replace_some(r'xsi:type="sf:\w+"', lambda m, d: 'xsi:type="' + d(st.sampled_from(
        ["sf:ContentVersion", "sf:", "xx:Account", "sf:Bad Name", "Account"])) + '"'),
    _replace_some(r"<sf:\w+>[^<]*</sf:\w+>", lambda m, d: d(st.sampled_from(
        ["", "<sf:Name xsi:nil=\"true\"/>", "<sf:Name><b>nested</b></sf:Name>", m.group(0) + m.group(0),
         "<sf:Offload_Rendition_Of__c>0685g00000XyZaBAAV</sf:Offload_Rendition_Of__c>"]))),
    _replace_some(r"http://schemas.xmlsoap.org/soap/envelope/", lambda m, d: d(st.sampled_from(
        ["http://www.w3.org/2003/05/soap-envelope", "urn:wrong"]))),
    _replace_some(r'encoding="UTF-8"', lambda m, d: d(st.sampled_from(['encoding="UTF-16"', 'encoding="UTF-7"',
                                                                       'encoding="latin-1"']))),
    _replace_some(r"[A-Za-z]", lambda m, d: d(st.characters(blacklist_categories=("Cs",)))),
]


def _expected_jobs(body: bytes, org18: str) -> list[str] | None:
    """Job ids the receiver must have for this envelope if it ACKs; None if it must not ACK at all."""
    try:
        message = parse_outbound_message(body)
        if to_18(message.organization_id) != org18:
            return None
        process = PROCESSES["resize-image"]
        ids = []
        for note in message.notifications:
            try:  # a notification that cannot start the process is refused alone, and the message ACKed
                payload = process.from_notification(note.sobject_type, note.fields)
                process.schema().load(payload)
            except (ValueError, ValidationError):
                continue
            if process.skip_reason(note.sobject_type, note.fields):
                continue
            ids.append(Delivery(queue=process.queue, dedupe_key=f"om:{org18}:{to_18(note.id)}", envelope={},
                                description="").job_id)
        return ids
    except (OffloadError, ValueError, Exception):  # anything that fails parsing must not ACK
        return None


@FUZZ
@given(body=envelopes())
def test_outbound_acks_only_what_is_really_enqueued(client, redis_conn: redis.Redis, org_id18: str,
                                                     body: bytes) -> None:
    expected = _expected_jobs(body, org_id18)
    existed = {job_id for job_id in (expected or []) if redis_conn.exists(f"rq:job:{job_id}")}
    before = redis_conn.llen(QUEUE)
    response = client.post(f"/outbound/resize-image?token={OUTBOUND_TOKEN}", data=body,
                           content_type="text/xml; charset=utf-8", headers={"SOAPAction": '""'})
    grown = redis_conn.llen(QUEUE) - before
    acked = response.status_code == 200 and ACK in response.data
    event("acked" if acked else "fault")
    assert response.status_code in (200, 500), response.status_code
    assert response.content_type.startswith("text/xml")
    if response.status_code == 500:
        assert b"<faultstring>" in response.data and ACK not in response.data
        assert grown == 0, "a refused message must enqueue nothing"
        return
    assert acked, response.data[:300]
    assert expected is not None, f"ACKed a message that should have been refused: {body[:400]!r}"
    assert all(redis_conn.exists(f"rq:job:{job_id}") for job_id in expected)
    assert grown == len(set(expected) - existed), (grown, len(expected), len(existed))


@pytest.mark.parametrize("base_url", ["http://localhost/", "https://offload.example.com/mounted/under/"])
def test_status_url_is_what_url_for_builds(client, base_url: str) -> None:
    """callouts.py builds statusUrl by hand on the hot path; it must equal Flask's url_for."""
    from flask import url_for

    body = json.dumps({"contentVersionId": "0685g00000XyZaBAAV", "sentAt": utc_iso()}).encode()
    response = client.post("/callouts/resize-image", data=body, base_url=base_url,
                           content_type="application/json", headers={"X-Offload-Signature": sign(body, SECRET)})
    assert response.status_code == 202
    job_id = response.get_json()["jobId"]
    with client.application.test_request_context("/", base_url=base_url):
        assert response.get_json()["statusUrl"] == url_for("callouts.job_status", job_id=job_id, _external=True)
