"""Exactly-once when Salesforce commits an upload after its sender is gone.

Salesforce finishes a request it has received whether or not the client still listens: an upload
in flight when the work process is killed, or when a deploy's SIGTERM window ends, commits anyway,
possibly after the job's retry has asked "which variants exist?" and not seen it. The org emulator
does the same: a ``FaultRule`` with a ``delay`` and no error holds the request and then handles it
normally, answering a dead client. Only Salesforce can then stop the second copy, and it does: the
rendition key (``Offload_Rendition_Key__c``, External ID + Unique, from ``apex/force-app``) makes the
later of the two inserts fail with ``DUPLICATE_VALUE``.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest
import redis
from rq.job import Job, JobStatus

from devkit.devstack import LocalStack
from devkit.org.faults import FaultRule
from devkit.procfile import stop
from services.queue import SERIALIZER
from tests.integration.test_kill_steps import FAST_RETRY_ENV, UPLOAD, VARIANTS, job_process_talking_to
from tests.support.images import photo_jpeg
from tests.support.orgtools import create_record, renditions_of, upload_file
from tests.support.stacktools import submit, wait_for

pytestmark = pytest.mark.integration

AFTER_KILL_S = 9.0
"""How long the org sits on the first upload before committing it, after a kill: past the retry's "which
variants exist?" query (the retry runs ~2.4-3.6 s after the kill, FAST_RETRY_ENV), so the retry uploads
its own copy first."""
AFTER_SIGTERM_S = 18.0
"""The same after a SIGTERM: the 6 s shutdown window, a new worker's start (~2 s) and the retry's backoff."""


@pytest.fixture
def stack(redis_url: str) -> Iterator[LocalStack]:
    with LocalStack(redis_url=redis_url, workers=1, env=FAST_RETRY_ENV) as running:
        yield running


def _start_with_first_upload_held(stack: LocalStack, late_s: float) -> tuple[str, str, float]:
    org = stack.org
    contact = create_record(org, "Contact", LastName="Late commit")
    source = upload_file(org, contact, photo_jpeg(1000, 750, seed=11), "late.jpg")
    held = org.state.faults.add(FaultRule(pattern=UPLOAD, method="POST", delay=late_s, count=1))
    job_id = submit(stack, source)
    wait_for(lambda: held.fired, 30, "the first upload to reach the org", stack)
    return source, job_id, time.monotonic() + late_s


def _assert_one_rendition_each_after_the_late_commit(stack: LocalStack, redis_conn: redis.Redis, source: str,
                                                     job_id: str, commits_at: float) -> None:
    job = Job.fetch(job_id, connection=redis_conn, serializer=SERIALIZER)
    wait_for(lambda: job.get_status() in (JobStatus.FINISHED, JobStatus.FAILED), 60, "the retried job to end", stack)
    assert job.get_status() == JobStatus.FINISHED, stack.logs()[-6000:]
    result = job.return_value()
    assert result is not None and result["renditionCount"] == 3
    # The retry did not see the held upload (else this scenario tests nothing): it made all three itself.
    assert sum(1 for r in result["renditions"] if not r.get("existing")) == 3, result
    wait_for(lambda: any(code == "DUPLICATE_VALUE" for _, _, code in stack.org.state.refusals),
             max(1.0, commits_at + 5 - time.monotonic()), "the org to handle the held upload, and refuse it", stack)
    rows = renditions_of(stack.org, source)
    assert sorted(r["Offload_Variant__c"] for r in rows) == sorted(VARIANTS), rows


def test_an_upload_that_commits_after_kill_9_of_its_sender_is_not_made_twice(
    stack: LocalStack, redis_conn: redis.Redis
) -> None:
    source, job_id, commits_at = _start_with_first_upload_held(stack, AFTER_KILL_S)
    [worker] = stack.worker_processes
    org_port = int(stack.org.base_url.rsplit(":", 1)[1])
    victim = wait_for(lambda: job_process_talking_to(worker.pid, org_port), 5, "the process running the job", stack)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    assert renditions_of(stack.org, source) == []  # nothing committed yet: the org still holds the upload
    _assert_one_rendition_each_after_the_late_commit(stack, redis_conn, source, job_id, commits_at)


def test_an_upload_that_commits_after_a_sigterm_shutdown_is_not_made_twice(
    stack: LocalStack, redis_conn: redis.Redis
) -> None:
    """A deploy: SIGTERM, the 6 s shutdown window ends mid-upload, the job goes back for a retry, and the
    next dyno's worker runs it while the org is still committing the first upload."""
    source, job_id, commits_at = _start_with_first_upload_held(stack, AFTER_SIGTERM_S)
    [worker] = stack.worker_processes
    stop(worker)
    assert renditions_of(stack.org, source) == []
    stack.add_worker()
    _assert_one_rendition_each_after_the_late_commit(stack, redis_conn, source, job_id, commits_at)
