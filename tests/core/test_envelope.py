"""The job envelope: what the receiver writes is what the worker reads, and nothing else is a job."""

from __future__ import annotations

import dataclasses

import pytest

from services.envelope import _WIRE_NAMES, Envelope
from services.errors import MalformedEnvelope, PermanentJobError

WIRE = {
    "process": "resize-image", "payload": {"contentVersionId": "0685g00000XyZaBAAV"}, "source": "outbound",
    "recordId": "0685g00000XyZaBAAV", "orgId": "00D5g000000Xk2PEAS", "deliveryKey": "om:00D:04l",
    "requestId": "req-1", "receivedAt": "2026-12-06T10:00:00.000Z", "notificationId": "04l5g000000AbCdAAK",
    "instanceUrl": "https://acme.my.salesforce.com/services/Soap/u/62.0/00D", "sessionRef": "ref-1",
}


def test_every_field_has_a_wire_name() -> None:
    assert {f.name for f in dataclasses.fields(Envelope)} == set(_WIRE_NAMES)


def test_round_trip_keeps_the_wire_format_jobs_in_redis_already_hold() -> None:
    envelope = Envelope.from_json(WIRE)
    assert envelope.record_id == "0685g00000XyZaBAAV" and envelope.session_ref == "ref-1"
    assert envelope.to_json() == WIRE


def test_absent_values_are_left_out_and_the_session_ref_is_not_in_repr() -> None:
    envelope = Envelope(process="resize-image", payload={}, source="callout", session_ref="secret-ref")
    assert envelope.to_json() == {"process": "resize-image", "payload": {}, "source": "callout",
                                  "sessionRef": "secret-ref"}
    assert "secret-ref" not in repr(envelope)


@pytest.mark.parametrize("raw", [None, "resize-image", [], {}, {"process": "resize-image"},
                                 {"process": "", "payload": {}}, {"process": "resize-image", "payload": []},
                                 {**WIRE, "orgId": 42}])
def test_anything_else_is_a_permanent_malformed_envelope(raw: object) -> None:
    with pytest.raises(MalformedEnvelope) as caught:
        Envelope.from_json(raw)
    assert isinstance(caught.value, PermanentJobError) and caught.value.code == "MALFORMED_ENVELOPE"
    assert Envelope.of_job_args([raw]) is None


def test_a_worker_fails_a_malformed_job_at_once_without_retrying(redis_conn) -> None:  # type: ignore[no-untyped-def]
    from rq import Retry

    from services.queue import JOB_FUNCTION, SERIALIZER, make_queue
    from tests.support.rqworker import InProcessTestWorker

    queue = make_queue("resize-image", redis_conn)
    job = queue.enqueue(JOB_FUNCTION, {"payload": {}}, retry=Retry(max=3))
    InProcessTestWorker([queue], connection=redis_conn, serializer=SERIALIZER).work(burst=True)
    job.refresh()
    assert job.get_status() == "failed" and job.retries_left == 0
    assert job.meta["error_code"] == "MALFORMED_ENVELOPE"
