"""SIGTERM mid-job, the way Heroku stops a dyno (deploy, daily restart, scaling down): nothing is lost.

Heroku sends SIGTERM to every process of the dyno, then SIGKILL 30 s later. Both ways of running
jobs keep the same contract, and both are tested: by default ``python -m workers`` supervises a
work process that stops taking jobs on SIGTERM and raises ``ShutDownImminentException`` in a job
still running 6 s later (``InProcessWorker.imminent_shutdown_delay``); with ``--fork-per-job``
rq's ``HerokuWorker`` horse ignores SIGTERM, the worker forwards SIGRTMIN to it, and 6 s later the
horse gets the same exception. Either way a job still running fails *with its retries* and goes
back through the ``ScheduledJobRegistry`` instead of vanishing. The scheduler child releases its
lock on SIGTERM, so the next worker's scheduler can enqueue the retry at once.
``devkit.procfile.stop`` signals the whole process group, like Heroku.

A slow org (the emulator holds ``GET .../VersionData``) keeps a job in flight when SIGTERM arrives.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from devkit.devstack import LocalStack
from devkit.org.faults import FaultRule
from devkit.procfile import stop
from services.queue import SERIALIZER
from tests.support.images import photo_jpeg
from tests.support.orgtools import create_record, renditions_of, upload_file
from tests.support.stacktools import submit, wait_for

pytestmark = pytest.mark.integration

DOWNLOAD = "re:/sobjects/ContentVersion/[^/]+/VersionData$"
HEROKU_GRACE_S = 30.0
FAST_RETRY_ENV = {"OFFLOAD_JOB_RETRIES": "3", "OFFLOAD_RETRY_BASE_SECONDS": "1"}


MODES = {"supervised": (), "fork-per-job": ("--fork-per-job",)}
"""Ways to run jobs -> arguments appended to the Procfile ``worker`` line."""


@pytest.fixture(params=list(MODES))
def stack(request: pytest.FixtureRequest, redis_url: str, redis_conn: redis.Redis) -> Iterator[LocalStack]:
    with LocalStack(redis_url=redis_url, workers=1, env=FAST_RETRY_ENV, worker_args=MODES[request.param]) as running:
        yield running


def start_job_held_in_download(stack: LocalStack, hold_s: float, seed: int) -> tuple[str, str, FaultRule]:
    org = stack.org
    contact = create_record(org, "Contact", LastName="Shutdown")  # not Account: no Outbound Message job
    source = upload_file(org, contact, photo_jpeg(1000, 750, seed=seed), "shutdown.jpg")
    held = org.state.faults.add(FaultRule(pattern=DOWNLOAD, method="GET", delay=hold_s, count=1))
    job_id = submit(stack, source)
    wait_for(lambda: held.fired, 30, "the job to be downloading", stack)
    return source, job_id, held


def test_sigterm_mid_job_requeues_it_and_a_new_worker_completes_it_once(
    stack: LocalStack, redis_conn: redis.Redis
) -> None:
    """The job outlives the 6 s grace: it is failed with ShutDownImminentException and retried."""
    source, job_id, _ = start_job_held_in_download(stack, hold_s=12.0, seed=11)
    [worker] = stack.worker_processes
    signalled = time.monotonic()
    returncode = stop(worker, timeout=HEROKU_GRACE_S)  # SIGTERM to the group; SIGKILL only after 30 s
    assert time.monotonic() - signalled < HEROKU_GRACE_S, "the worker needed Heroku's SIGKILL"
    assert returncode == 0

    job = Job.fetch(job_id, connection=redis_conn, serializer=SERIALIZER)
    assert job.get_status() in (JobStatus.SCHEDULED, JobStatus.QUEUED), stack.logs()[-6000:]
    assert StartedJobRegistry("resize-image", connection=redis_conn).get_job_ids() == []
    assert "ShutDownImminentException" in stack.log("worker-0.log")
    assert renditions_of(stack.org, source) == []

    stack.add_worker()
    wait_for(lambda: job.get_status() in (JobStatus.FINISHED, JobStatus.FAILED), 60, "the retry to end", stack)
    assert job.get_status() == JobStatus.FINISHED, stack.logs()[-6000:]
    job.refresh()
    assert job.retries_left == 2
    assert sorted(r["Offload_Variant__c"] for r in renditions_of(stack.org, source)) == ["large", "medium", "thumb"]


def test_sigterm_mid_job_lets_a_short_job_finish_before_the_worker_exits(
    stack: LocalStack, redis_conn: redis.Redis
) -> None:
    """A job that ends within the 6 s grace is not interrupted: it finishes once, no retry spent."""
    source, job_id, _ = start_job_held_in_download(stack, hold_s=2.0, seed=12)
    [worker] = stack.worker_processes
    assert stop(worker, timeout=HEROKU_GRACE_S) == 0

    job = Job.fetch(job_id, connection=redis_conn, serializer=SERIALIZER)
    assert job.get_status() == JobStatus.FINISHED, stack.logs()[-6000:]
    assert job.retries_left == 3
    assert sorted(r["Offload_Variant__c"] for r in renditions_of(stack.org, source)) == ["large", "medium", "thumb"]
    assert StartedJobRegistry("resize-image", connection=redis_conn).get_job_ids() == []
