"""The resize-image job with a real in-process rq worker: a scan flood is refused, a timeout is retried.

Two outcomes that must not be confused (Offload issue 15, item 10): a JPEG with far more scans than any
photo is refused for good before decoding (IMAGE_REJECTED, saying why), while a job that runs out of time
is a transient ``JobTimeoutException`` retried by rq's ``Retry``: the file may be fine and the worker busy.
"""

from __future__ import annotations

import pytest
import redis

from services.envelope import Envelope
from services.ops.jobs import error_code
from services.processes import PROCESSES
from services.queue import Delivery, admit, fetch_job
from tests.support.hostile_jpeg import scan_flood_jpeg
from tests.support.orgtools import create_record, renditions_of, upload_file
from workers import runner


def enqueue(conn: redis.Redis, content_version_id: str, key: str, timeout: int) -> str:
    """Enqueue a resize-image job as the receiver does, with two retries and this job timeout."""
    process = PROCESSES["resize-image"]
    payload = {"contentVersionId": content_version_id}
    envelope = Envelope(process=process.name, payload=payload, source="callout",
                        record_id=process.record_id(payload)).to_json()
    [outcome] = admit(conn, [Delivery(queue="resize-image", dedupe_key=key, envelope=envelope,
                                      description="test", timeout=timeout, retries=2)], dedupe_ttl=600)
    return outcome.job_id


def test_a_scan_flood_fails_once_with_its_scan_count(org, worker_env, redis_conn, run_jobs) -> None:
    account = create_record(org, "Account", Name="Flood")
    source = upload_file(org, account, scan_flood_jpeg(6000, 6000, 3000), "flood.jpg")
    job_id = enqueue(redis_conn, source, "flood", timeout=600)
    run_jobs()
    job = fetch_job(redis_conn, job_id)
    assert job.get_status() == "failed" and job.retries_left == 0
    assert error_code(job) == "IMAGE_REJECTED"
    assert "more than 100 scans" in job.latest_result().exc_string
    assert renditions_of(org, source) == []


def test_a_timeout_during_a_decode_is_retried_not_rejected(org, worker_env, redis_conn, run_jobs,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """rq's 1 s alarm fires inside a decode of seconds (the scan limit raised so the file is decoded)."""
    monkeypatch.setenv("OFFLOAD_MAX_JPEG_SCANS", "10000")
    runner.worker_settings.cache_clear()
    account = create_record(org, "Account", Name="Slow")
    source = upload_file(org, account, scan_flood_jpeg(2000, 2000, 700), "slow.jpg")
    job_id = enqueue(redis_conn, source, "slow", timeout=1)
    run_jobs()
    job = fetch_job(redis_conn, job_id)
    assert error_code(job) == "JobTimeoutException", job.latest_result().exc_string
    assert job.get_status() == "scheduled", "a timeout is transient: rq's Retry must schedule it again"
    assert job.retries_left == 1
    assert renditions_of(org, source) == []
