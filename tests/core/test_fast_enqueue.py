"""The receiver enqueues RQ jobs inside its own Lua script (services.queue.admit): they must be RQ jobs in every way.

The jobs are built by ``Job.create`` and written as ``Job.to_dict()``; which writes make up an enqueue is
services.queue.rqcompat's knowledge of RQ. Checked against RQ's own ``Queue.enqueue_many`` and
``Queue.enqueue_call``, field by field, and by running the jobs with a real ``SimpleWorker``: success,
failure with retries, and ``Job.fetch``. If an RQ upgrade changes what an enqueue writes, these tests fail,
naming the RQ version, before the receiver writes jobs RQ cannot read.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import rq
from rq import Queue, Retry
from rq.job import Job, JobStatus

from services.errors import EnqueueFailed
from services.queue import JOB_FUNCTION, SERIALIZER, Delivery, admit, fetch_job, make_queue, rqcompat
from services.queue.loopguard import mark_own_output, own_output_key
from tests.support.rqworker import InProcessTestWorker

CV = "0685g00000XyZaBAAV"
TIME_FIELDS = {"created_at", "enqueued_at"}


def _delivery(key: str, record: str = CV, **kwargs: Any) -> Delivery:
    return Delivery(queue="resize-image", dedupe_key=key, description=f"resize-image {record}",
                    envelope={"process": "resize-image", "payload": {"contentVersionId": record}, "source": "callout",
                              "note": "ünïcode ✓"}, **kwargs)


DRIFT = (f"rq {rq.__version__} enqueues differently from rq {rqcompat.TESTED_RQ}, which services.queue.rqcompat "
         "was read against: re-read Queue.enqueue_many / _enqueue_async_job and Job.to_dict, then update rqcompat")


def _rq_reference(conn: redis.Redis, d: Delivery, intervals: list[int] | None, how: str) -> str:
    """The same delivery enqueued by RQ itself: ``Queue.enqueue_many`` in a pipeline, or ``Queue.enqueue_call``."""
    job_id = "reference-" + d.job_id
    queue = make_queue(d.queue, conn)
    options: dict[str, Any] = dict(
        description=d.description, timeout=d.timeout, result_ttl=86400, failure_ttl=7 * 86400,
        meta={"max_retries": d.retries}, retry=Retry(max=d.retries, interval=intervals) if intervals else None,
    )
    if how == "enqueue_many":
        pipe = conn.pipeline()
        queue.enqueue_many([Queue.prepare_data(JOB_FUNCTION, args=(d.envelope,), job_id=job_id, **options)],
                           pipeline=pipe)
        pipe.execute()
    else:
        queue.enqueue_call(JOB_FUNCTION, args=(d.envelope,), job_id=job_id, **options)
    return job_id


@pytest.mark.parametrize("how", ["enqueue_many", "enqueue_call"])
@pytest.mark.parametrize("retries", [5, 0])
def test_the_job_hash_equals_what_rq_writes(redis_conn: redis.Redis, how: str, retries: int) -> None:
    d = _delivery("k1", retries=retries)
    [outcome] = admit(redis_conn, [d], dedupe_ttl=90000)
    ours = redis_conn.hgetall(f"rq:job:{outcome.job_id}")
    intervals = json.loads(ours[b"retry_intervals"]) if retries else None
    reference_id = _rq_reference(redis_conn, d, intervals, how)
    reference = redis_conn.hgetall(f"rq:job:{reference_id}")

    assert set(ours) == set(reference), DRIFT
    for name in set(ours) - {t.encode() for t in TIME_FIELDS}:
        assert ours[name] == reference[name], f"{name!r}: {DRIFT}"
    for name in TIME_FIELDS:  # same format, a few microseconds apart
        assert len(ours[name.encode()]) == len(reference[name.encode()]) and ours[name.encode()].endswith(b"Z"), DRIFT
    assert redis_conn.ttl(f"rq:job:{outcome.job_id}") == redis_conn.ttl(f"rq:job:{reference_id}") == -1, DRIFT

    # same queue list and queue registry as RQ keeps, and nothing else of rq's
    assert redis_conn.lrange("rq:queue:resize-image", 0, -1) == [outcome.job_id.encode(), reference_id.encode()], DRIFT
    assert redis_conn.smembers("rq:queues") == {b"rq:queue:resize-image"}, DRIFT
    rq_keys = {k for k in redis_conn.keys("rq:*")}
    assert rq_keys == {b"rq:queues", b"rq:queue:resize-image", f"rq:job:{outcome.job_id}".encode(),
                       f"rq:job:{reference_id}".encode()}, DRIFT


def test_rqcompat_names_rq_s_own_keys(redis_conn: redis.Redis) -> None:
    queue = make_queue("resize-image", redis_conn)
    assert rqcompat.queue_key("resize-image") == queue.key, DRIFT
    assert rqcompat.QUEUES_KEY == Queue.redis_queues_keys == "rq:queues", DRIFT
    assert Job.key_for("x") == rqcompat.JOB_KEY_PREFIX + "x", DRIFT


def test_enqueue_writes_refuses_a_job_rq_would_not_enqueue(redis_conn: redis.Redis) -> None:
    with pytest.raises(ValueError, match="origin"):
        rqcompat.enqueue_writes(Job.create(JOB_FUNCTION, connection=redis_conn, status=JobStatus.QUEUED))
    with pytest.raises(ValueError, match="origin"):
        rqcompat.enqueue_writes(Job.create(JOB_FUNCTION, connection=redis_conn, origin="q"))


def test_one_request_is_one_redis_command(redis_conn: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop guard, ledger claims and job writes of a whole message travel as one EVALSHA."""
    admit(redis_conn, [_delivery("warm")], dedupe_ttl=90000)  # the first call also loads the script
    sent: list[Any] = []
    execute = redis_conn.execute_command
    monkeypatch.setattr(redis_conn, "execute_command", lambda *args, **kw: sent.append(args[0]) or execute(*args, **kw))
    outcomes = admit(redis_conn, [_delivery(f"n{i}") for i in range(3)], dedupe_ttl=90000)
    assert sent == ["EVALSHA"] and not any(o.duplicate for o in outcomes)
    assert redis_conn.llen("rq:queue:resize-image") == 4


def test_job_fetch_reads_every_attribute(redis_conn: redis.Redis) -> None:
    d = _delivery("k2", timeout=123, retries=3)
    [outcome] = admit(redis_conn, [d], dedupe_ttl=90000)
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
    [outcome] = admit(redis_conn, [_delivery("k3")], dedupe_ttl=90000)
    worker = InProcessTestWorker([make_queue("resize-image", redis_conn)], connection=redis_conn, serializer=SERIALIZER)
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
    [outcome] = admit(redis_conn, [_delivery("k4", retries=2)], dedupe_ttl=90000)
    queue = make_queue("resize-image", redis_conn)
    first_interval = json.loads(redis_conn.hget(f"rq:job:{outcome.job_id}", "retry_intervals"))[0]
    before = datetime.now(UTC)
    InProcessTestWorker([queue], connection=redis_conn, serializer=SERIALIZER).work(burst=True, with_scheduler=False)
    job = Job.fetch(outcome.job_id, connection=redis_conn, serializer=SERIALIZER)
    assert job.get_status() == JobStatus.SCHEDULED, DRIFT  # retry scheduled after the first interval
    assert job.retries_left == 1, DRIFT
    at = queue.scheduled_job_registry.get_scheduled_time(job)
    assert before + timedelta(seconds=first_interval - 1) <= at <= datetime.now(UTC) + timedelta(
        seconds=first_interval + 1), DRIFT


def test_a_job_without_retries_fails_at_once(redis_conn: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    import workers.runner

    monkeypatch.setattr(workers.runner, "execute", lambda envelope: 1 / 0)
    [outcome] = admit(redis_conn, [_delivery("k5", retries=0)], dedupe_ttl=90000)
    assert b"retries_left" not in redis_conn.hkeys(f"rq:job:{outcome.job_id}")
    InProcessTestWorker([make_queue("resize-image", redis_conn)], connection=redis_conn,
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
    first, second = admit(redis_conn, [_delivery("same"), _delivery("same")], dedupe_ttl=90000)
    assert not first.duplicate and second.duplicate and first.job_id == second.job_id
    assert redis_conn.llen("rq:queue:resize-image") == 1


def test_a_reply_lost_after_the_script_ran_is_answered_as_duplicate_on_retry(redis_conn: redis.Redis) -> None:
    """The script is one transaction: a retry after a lost reply finds the jobs, never a half-written state."""
    deliveries = [_delivery(f"m{i}") for i in range(5)]
    admit(redis_conn, deliveries, dedupe_ttl=90000)
    again = admit(redis_conn, deliveries, dedupe_ttl=90000)
    assert all(e.duplicate for e in again) and redis_conn.llen("rq:queue:resize-image") == 5


def test_a_script_flush_is_survived(redis_conn: redis.Redis) -> None:
    """Redis forgets scripts on restart or SCRIPT FLUSH; the next call loads it again."""
    redis_conn.script_flush()
    [outcome] = admit(redis_conn, [_delivery("after-flush")], dedupe_ttl=90000)
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
