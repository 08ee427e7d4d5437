"""The receiver writes RQ jobs itself (services.queue.admit): they must be RQ 2.12 jobs in every way.

Checked against RQ's own ``Queue.enqueue_many`` (what the receiver used before), field by field, and by
running the jobs with a real ``SimpleWorker``: success, failure with retries, and ``Job.fetch``. If an RQ
upgrade changes the job format, these tests fail before the receiver writes jobs RQ cannot read.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import pytest
import redis
import rq
from rq import Queue, Retry, SimpleWorker
from rq.job import Job, JobStatus

from services.errors import EnqueueFailed
from services.queue import JOB_FUNCTION, SERIALIZER, Delivery, admit, enqueue_deliveries, fetch_job, make_queue
from services.queue.loopguard import mark_own_output, own_output_key

CV = "0685g00000XyZaBAAV"
TIME_FIELDS = {"created_at", "enqueued_at"}


def _delivery(key: str, record: str = CV, **kwargs: Any) -> Delivery:
    return Delivery(queue="resize-image", dedupe_key=key, description=f"resize-image {record}",
                    envelope={"process": "resize-image", "payload": {"contentVersionId": record}, "source": "callout",
                              "note": "ünïcode ✓"}, **kwargs)


def _rq_reference(conn: redis.Redis, d: Delivery, intervals: list[int]) -> str:
    """The same delivery enqueued the way services.queue did it before (RQ's enqueue_many)."""
    job_id = "reference-" + d.job_id
    pipe = conn.pipeline()
    make_queue(d.queue, conn).enqueue_many([Queue.prepare_data(
        JOB_FUNCTION, args=(d.envelope,), job_id=job_id, description=d.description, timeout=d.timeout,
        result_ttl=86400, failure_ttl=7 * 86400, meta={"max_retries": d.retries},
        retry=Retry(max=d.retries, interval=intervals),
    )], pipeline=pipe)
    pipe.execute()
    return job_id


def test_the_format_is_pinned_to_rq_2_12() -> None:
    """Bumping rq means re-reading Job.to_dict and Queue.enqueue_many, then updating this pin."""
    assert rq.__version__.startswith("2.12."), rq.__version__


def test_the_job_hash_equals_what_rq_writes(redis_conn: redis.Redis) -> None:
    d = _delivery("k1")
    [outcome] = enqueue_deliveries(redis_conn, [d], dedupe_ttl=90000)
    ours = redis_conn.hgetall(f"rq:job:{outcome.job_id}")
    intervals = json.loads(ours[b"retry_intervals"])
    reference = redis_conn.hgetall(f"rq:job:{_rq_reference(redis_conn, d, intervals)}")

    assert set(ours) == set(reference)
    for name in set(ours) - {b"data"} - {t.encode() for t in TIME_FIELDS}:
        assert ours[name] == reference[name], name
    assert zlib.decompress(ours[b"data"]) == zlib.decompress(reference[b"data"])
    for name in TIME_FIELDS:  # same format, a few microseconds apart
        assert len(ours[name.encode()]) == len(reference[name.encode()]) and ours[name.encode()].endswith(b"Z")
    assert redis_conn.ttl(f"rq:job:{outcome.job_id}") == redis_conn.ttl(f"rq:job:{outcome.job_id}") == -1

    # same queue list and queue registry as RQ keeps
    assert redis_conn.lrange("rq:queue:resize-image", 0, -1) == [outcome.job_id.encode(),
                                                                  f"reference-{d.job_id}".encode()]
    assert redis_conn.smembers("rq:queues") == {b"rq:queue:resize-image"}
    rq_keys = {k for k in redis_conn.keys("rq:*")}
    assert rq_keys == {b"rq:queues", b"rq:queue:resize-image", f"rq:job:{outcome.job_id}".encode(),
                       f"rq:job:reference-{d.job_id}".encode()}


def test_job_fetch_reads_every_attribute(redis_conn: redis.Redis) -> None:
    d = _delivery("k2", timeout=123, retries=3)
    [outcome] = enqueue_deliveries(redis_conn, [d], dedupe_ttl=90000)
    job = Job.fetch(outcome.job_id, connection=redis_conn, serializer=SERIALIZER)
    assert job.func_name == JOB_FUNCTION and list(job.args) == [d.envelope] and job.kwargs == {}
    assert job.get_status() == JobStatus.QUEUED and job.origin == "resize-image"
    assert job.description == d.description and job.timeout == 123
    assert job.result_ttl == 86400 and job.failure_ttl == 7 * 86400
    assert job.meta == {"max_retries": 3}
    assert job.retries_left == 3 and len(job.retry_intervals) == 3
    assert job.enqueued_at is not None and job.created_at is not None
    assert make_queue("resize-image", redis_conn).job_ids == [outcome.job_id]
    assert fetch_job(redis_conn, outcome.job_id).id == outcome.job_id


def test_a_real_worker_runs_the_job(redis_conn: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    import workers.runner

    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(workers.runner, "execute", lambda envelope: seen.append(envelope) or {"ok": True})
    [outcome] = enqueue_deliveries(redis_conn, [_delivery("k3")], dedupe_ttl=90000)
    worker = SimpleWorker([make_queue("resize-image", redis_conn)], connection=redis_conn, serializer=SERIALIZER)
    assert worker.work(burst=True, with_scheduler=False)
    assert seen == [_delivery("k3").envelope]
    job = Job.fetch(outcome.job_id, connection=redis_conn, serializer=SERIALIZER)
    assert job.get_status() == JobStatus.FINISHED and job.return_value() == {"ok": True}


def test_a_failing_job_is_retried_with_the_stored_intervals(redis_conn: redis.Redis,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import workers.runner

    def fail(envelope: dict[str, Any]) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(workers.runner, "execute", fail)
    [outcome] = enqueue_deliveries(redis_conn, [_delivery("k4", retries=2)], dedupe_ttl=90000)
    worker = SimpleWorker([make_queue("resize-image", redis_conn)], connection=redis_conn, serializer=SERIALIZER)
    worker.work(burst=True, with_scheduler=False)
    job = Job.fetch(outcome.job_id, connection=redis_conn, serializer=SERIALIZER)
    assert job.get_status() == JobStatus.SCHEDULED  # retry scheduled after the first interval
    assert job.retries_left == 1


def test_a_job_without_retries_fails_at_once(redis_conn: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    import workers.runner

    monkeypatch.setattr(workers.runner, "execute", lambda envelope: 1 / 0)
    [outcome] = enqueue_deliveries(redis_conn, [_delivery("k5", retries=0)], dedupe_ttl=90000)
    assert b"retries_left" not in redis_conn.hkeys(f"rq:job:{outcome.job_id}")
    SimpleWorker([make_queue("resize-image", redis_conn)], connection=redis_conn,
                 serializer=SERIALIZER).work(burst=True, with_scheduler=False)
    assert fetch_job(redis_conn, outcome.job_id).get_status() == JobStatus.FAILED


def test_guarded_deliveries_write_nothing(redis_conn: redis.Redis) -> None:
    mark_own_output(redis_conn, [CV])
    other = "0685g00000XyZaCAAV"
    before = set(redis_conn.keys("*"))
    results = admit(redis_conn, [_delivery("g1"), _delivery("g2", other)], dedupe_ttl=90000,
                    guard_keys=[own_output_key(CV), own_output_key(other)])
    assert results[0] is None and results[1] is not None and not results[1].duplicate
    assert redis_conn.llen("rq:queue:resize-image") == 1
    assert not any(k.startswith(b"offload:ledger:") for k in before)
    assert len([k for k in redis_conn.keys("offload:ledger:*")]) == 1  # only the enqueued one is claimed


def test_the_same_delivery_twice_in_one_message_is_one_job(redis_conn: redis.Redis) -> None:
    first, second = enqueue_deliveries(redis_conn, [_delivery("same"), _delivery("same")], dedupe_ttl=90000)
    assert not first.duplicate and second.duplicate and first.job_id == second.job_id
    assert redis_conn.llen("rq:queue:resize-image") == 1


def test_a_reply_lost_after_the_script_ran_is_answered_as_duplicate_on_retry(redis_conn: redis.Redis) -> None:
    """The script is one transaction: a retry after a lost reply finds the jobs, never a half-written state."""
    deliveries = [_delivery(f"m{i}") for i in range(5)]
    enqueue_deliveries(redis_conn, deliveries, dedupe_ttl=90000)
    again = enqueue_deliveries(redis_conn, deliveries, dedupe_ttl=90000)
    assert all(e.duplicate for e in again) and redis_conn.llen("rq:queue:resize-image") == 5


def test_a_script_flush_is_survived(redis_conn: redis.Redis) -> None:
    """Redis forgets scripts on restart or SCRIPT FLUSH; the next call loads it again."""
    redis_conn.script_flush()
    [outcome] = enqueue_deliveries(redis_conn, [_delivery("after-flush")], dedupe_ttl=90000)
    assert not outcome.duplicate and redis_conn.llen("rq:queue:resize-image") == 1


def test_a_wrong_type_key_fails_loudly_and_keeps_earlier_jobs_consistent(redis_conn: redis.Redis) -> None:
    """A Redis error part-way raises EnqueueFailed; every ledger entry that exists has its job."""
    redis_conn.set("rq:queue:broken", "not a list")
    good = _delivery("ok")
    bad = Delivery(queue="broken", dedupe_key="bad", envelope={"process": "x"}, description="x")
    with pytest.raises(EnqueueFailed):
        admit(redis_conn, [good, bad], dedupe_ttl=90000)
    for key in redis_conn.keys("offload:ledger:*"):
        assert redis_conn.exists(f"rq:job:{redis_conn.get(key).decode()}")


def test_the_hand_packed_command_is_what_redis_py_sends(redis_conn: redis.Redis) -> None:
    """services.queue packs the script call itself; the bytes must equal redis-py's own packing."""
    from services.queue import _pack

    conn = redis_conn.connection_pool.make_connection()
    for args in (("EVALSHA", "0" * 40, 2, "k1", "k2", 86400, b"\x00\xffzlib", "ünïcode ✓"), ("SCRIPT", "LOAD", "")):
        assert _pack(*args) == b"".join(conn.pack_command(*args)), args


def test_the_enqueue_stamp_is_rq_s_format() -> None:
    from datetime import UTC, datetime

    from services.queue import _TIMESTAMP_FORMAT, _rq_timestamp

    for moment in (datetime.now(UTC), datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
                   datetime(2026, 1, 2, 3, 4, 5, 7, tzinfo=UTC)):
        assert _rq_timestamp(moment) == moment.strftime(_TIMESTAMP_FORMAT)


def test_the_script_connection_is_reused_and_dropped_after_an_error(redis_conn: redis.Redis,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """One kept-aside connection per client and process; a failed exchange never leaves it for the next request."""
    from services import queue as queueing

    enqueue_deliveries(redis_conn, [_delivery("c1")], dedupe_ttl=90000)
    [kept] = queueing._script_connections._idle[redis_conn]
    enqueue_deliveries(redis_conn, [_delivery("c2")], dedupe_ttl=90000)
    assert queueing._script_connections._idle[redis_conn] == [kept]

    def broken(*args: Any, **kwargs: Any) -> None:
        raise redis.ConnectionError("reset by peer")

    monkeypatch.setattr(kept, "read_response", broken)
    with pytest.raises(EnqueueFailed):
        enqueue_deliveries(redis_conn, [_delivery("c3")], dedupe_ttl=90000)
    assert queueing._script_connections._idle[redis_conn] == []  # not given back
    monkeypatch.undo()
    [outcome] = enqueue_deliveries(redis_conn, [_delivery("c3")], dedupe_ttl=90000)  # the script did run: a duplicate
    assert outcome.duplicate and redis_conn.llen("rq:queue:resize-image") == 3


def test_a_forked_child_does_not_share_the_parent_s_script_connection(redis_conn: redis.Redis,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from services import queue as queueing

    enqueue_deliveries(redis_conn, [_delivery("p1")], dedupe_ttl=90000)
    [parent_conn] = queueing._script_connections._idle[redis_conn]
    monkeypatch.setattr(queueing.os, "getpid", lambda: -1)  # as in a gunicorn worker forked after preload
    enqueue_deliveries(redis_conn, [_delivery("p2")], dedupe_ttl=90000)
    [child_conn] = queueing._script_connections._idle[redis_conn]
    assert child_conn is not parent_conn
