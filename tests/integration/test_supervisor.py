"""The supervisor that ``python -m workers`` runs by default (``workers/supervisor.py``), with real processes.

A crash of the work process must not wait for a dyno restart nor for the job's heartbeat to lapse:
the supervisor retries the job at once, stops the dead process's orphaned rq scheduler, and starts a
new work process that finishes the job. A work process retires after ``OFFLOAD_WORKER_MAX_JOBS`` jobs
and a fresh one takes over, with nothing lost in between.
"""

from __future__ import annotations

import signal
import time

import psutil
import pytest
import redis
from rq.job import Job, JobStatus
from rq.worker import Worker

from devkit.devstack import LocalStack
from devkit.org.faults import FaultRule
from services.queue import SERIALIZER
from tests.support.images import photo_jpeg
from tests.support.orgtools import create_record, renditions_of, upload_file
from tests.support.stacktools import submit, wait_for
from workers.backfill_feeder import PROCESS_NAME as FEEDER_NAME
from workers.worker import HEARTBEAT_TTL

pytestmark = pytest.mark.integration

DOWNLOAD = "re:/sobjects/ContentVersion/[^/]+/VersionData$"
FAST_RETRY_ENV = {"OFFLOAD_JOB_RETRIES": "3", "OFFLOAD_RETRY_BASE_SECONDS": "1"}
VARIANTS = ["large", "medium", "thumb"]


def work_processes_of(supervisor: psutil.Process) -> list[psutil.Process]:
    """The supervisor's children that run jobs: all but the backfill feeder beside them."""
    return [child for child in supervisor.children() if child.name() != FEEDER_NAME]


def test_the_backfill_feeder_runs_beside_the_work_processes_and_is_replaced_when_it_dies(redis_url: str) -> None:
    with LocalStack(redis_url=redis_url, workers=1) as stack:
        _feeder_is_replaced(stack)


def _feeder_is_replaced(stack: LocalStack) -> None:
    [worker] = stack.worker_processes
    supervisor = psutil.Process(worker.pid)
    wait_for(lambda: [c for c in supervisor.children() if c.name() == FEEDER_NAME], 10, "the feeder", stack)
    [feeder] = [c for c in supervisor.children() if c.name() == FEEDER_NAME]
    feeder.send_signal(signal.SIGKILL)
    wait_for(lambda: [c for c in supervisor.children() if c.name() == FEEDER_NAME and c.pid != feeder.pid], 15,
             "a new feeder", stack)
    assert "companion process ended; starting it again" in stack.log("worker-0.log")
    assert len(work_processes_of(supervisor)) == 1, "the work process is left alone"


def wait_finished(job: Job, stack: LocalStack) -> None:
    """Wait for the job to end, require that it finished, and refresh it."""
    wait_for(lambda: job.get_status() in (JobStatus.FINISHED, JobStatus.FAILED), 60, f"job {job.id} to end", stack)
    assert job.get_status() == JobStatus.FINISHED, stack.logs()[-6000:]
    job.refresh()


def test_a_killed_work_process_is_replaced_and_its_job_retried_at_once(
    redis_url: str, redis_conn: redis.Redis
) -> None:
    with LocalStack(redis_url=redis_url, workers=1, env=FAST_RETRY_ENV) as stack:
        org = stack.org
        contact = create_record(org, "Contact", LastName="Supervised")
        source = upload_file(org, contact, photo_jpeg(1000, 750, seed=21), "supervised.jpg")
        held = org.state.faults.add(FaultRule(pattern=DOWNLOAD, method="GET", delay=6.0,
                                              error="SERVER_UNAVAILABLE", count=1))
        job_id = submit(stack, source)
        wait_for(lambda: held.fired, 30, "the job to be downloading", stack)
        job = Job.fetch(job_id, connection=redis_conn, serializer=SERIALIZER)
        dead_name = job.worker_name
        [worker] = stack.worker_processes
        supervisor = psutil.Process(worker.pid)
        [work_process] = work_processes_of(supervisor)
        left_behind = work_process.children()  # its rq scheduler
        assert left_behind, "the work process should run rq's scheduler"

        killed_at = time.monotonic()
        work_process.send_signal(signal.SIGKILL)

        def retry_spent() -> bool:  # rq's retry decrements retries_left (3 -> 2) when it reschedules the job
            job.refresh()
            return job.retries_left == 2

        wait_for(retry_spent, HEARTBEAT_TTL * 2, "the killed job to be retried", stack)
        assert time.monotonic() - killed_at < HEARTBEAT_TTL / 2, "recovery waited for the heartbeat to lapse"

        wait_for(lambda: job.get_status() in (JobStatus.FINISHED, JobStatus.FAILED), 60, "the retry to end", stack)
        assert job.get_status() == JobStatus.FINISHED, stack.logs()[-6000:]
        job.refresh()
        assert job.retries_left == 2  # the kill cost exactly one retry
        assert job.worker_name != dead_name
        assert sorted(r["Offload_Variant__c"] for r in renditions_of(org, source)) == VARIANTS

        assert worker.poll() is None, "the supervisor must outlive its work process"
        assert not any(p.is_running() for p in left_behind), "the dead work process's scheduler was orphaned"
        assert dead_name not in {w.name for w in Worker.all(connection=redis_conn)}
        log = stack.log("worker-0.log")
        assert "work process died while running a job" in log and "signal 9" in log and job_id in log


def test_a_work_process_retires_after_its_share_of_jobs_and_a_fresh_one_takes_over(
    redis_url: str, redis_conn: redis.Redis
) -> None:
    with LocalStack(redis_url=redis_url, workers=1, env={"OFFLOAD_WORKER_MAX_JOBS": "1"}) as stack:
        org = stack.org
        contact = create_record(org, "Contact", LastName="Retiring")
        sources = [upload_file(org, contact, photo_jpeg(800, 600, seed=seed), f"retire-{seed}.jpg")
                   for seed in (31, 32, 33)]
        jobs = [Job.fetch(submit(stack, source), connection=redis_conn, serializer=SERIALIZER)
                for source in sources]
        for job in jobs:
            wait_finished(job, stack)
            assert job.retries_left == 5, "retiring must not cost a job a retry (OFFLOAD_JOB_RETRIES=5)"
        assert len({job.worker_name for job in jobs}) == 3, "each work process should have run one job"
        for source in sources:
            assert sorted(r["Offload_Variant__c"] for r in renditions_of(org, source)) == VARIANTS
        [worker] = stack.worker_processes
        assert worker.poll() is None
        assert stack.log("worker-0.log").count("work process retired") >= 2


def test_with_two_work_processes_a_crash_of_one_leaves_the_other_job_running(
    redis_url: str, redis_conn: redis.Redis
) -> None:
    """OFFLOAD_WORKER_CONCURRENCY=2: both work processes hold a job; kill -9 one. Its job is retried at once
    and finishes; the other job finishes in its own work process without losing a retry; the supervisor
    replaces the dead one, so two work processes run again."""
    with LocalStack(redis_url=redis_url, workers=1, env={**FAST_RETRY_ENV, "OFFLOAD_WORKER_CONCURRENCY": "2"}) as stack:
        org = stack.org
        contact = create_record(org, "Contact", LastName="Concurrent")
        sources = [upload_file(org, contact, photo_jpeg(1000, 750, seed=seed), f"concurrent-{seed}.jpg")
                   for seed in (41, 42)]
        held = org.state.faults.add(FaultRule(pattern=DOWNLOAD, method="GET", delay=4.0, count=2))
        jobs = [Job.fetch(submit(stack, source), connection=redis_conn, serializer=SERIALIZER) for source in sources]
        wait_for(lambda: held.fired == 2, 30, "both jobs to be downloading at once", stack)
        for job in jobs:
            job.refresh()
        victim, survivor = jobs
        assert victim.worker_name and survivor.worker_name and victim.worker_name != survivor.worker_name
        [worker] = stack.worker_processes
        supervisor = psutil.Process(worker.pid)
        work_processes = work_processes_of(supervisor)
        assert len(work_processes) == 2, "OFFLOAD_WORKER_CONCURRENCY=2 should run two work processes"
        registered = Worker.find_by_key(Worker.redis_worker_namespace_prefix + victim.worker_name,
                                        connection=redis_conn, serializer=SERIALIZER)
        assert registered is not None and registered.pid in {p.pid for p in work_processes}
        survivor_name = survivor.worker_name
        psutil.Process(registered.pid).send_signal(signal.SIGKILL)

        for job in jobs:
            wait_finished(job, stack)
        assert victim.retries_left == 2, "the killed job should have been retried exactly once"
        assert survivor.retries_left == 3, "the other work process's job must not be disturbed"
        assert survivor.worker_name == survivor_name
        for source in sources:
            assert sorted(r["Offload_Variant__c"] for r in renditions_of(org, source)) == VARIANTS

        assert worker.poll() is None, "the supervisor must outlive its work process"
        wait_for(lambda: len(work_processes_of(supervisor)) == 2, 10, "the dead work process to be replaced", stack)
        log = stack.log("worker-0.log")
        assert "work process died while running a job" in log and victim.id in log
        assert log.count("work process died") == 1
