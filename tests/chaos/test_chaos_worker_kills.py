"""kill -9 of worker processes on a real stack: random kills of the process running a job, under load,
and a whole-dyno crash. The process running a job is the supervisor's work process (the Procfile
default) or, with ``--fork-per-job``, rq's work horse; ``busy_horses`` finds either."""

from __future__ import annotations

import os
import random
import signal
import time

import pytest
import redis
from rq.job import Job

from devkit.devstack import LocalStack
from devkit.org.faults import FaultRule
from services.queue import SERIALIZER
from tests.support.chaos import (
    assert_exactly_once,
    assert_nothing_stuck,
    busy_horses,
    callout,
    seed_photos,
    wait_all_ended,
    wait_for,
)
from tests.support.orgtools import renditions_of

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

FAST_RETRY_ENV = {"OFFLOAD_JOB_RETRIES": "3", "OFFLOAD_RETRY_BASE_SECONDS": "1"}
UPLOAD = "*/composite/sobjects"
"""Renditions are uploaded in one sObject Collections call per source."""


def test_three_random_horse_kills_over_twenty_jobs(chaos_stack: LocalStack, own_redis) -> None:
    conn = redis.Redis.from_url(own_redis.url)
    sources = [cv for _, cv in seed_photos(chaos_stack, 20)]
    # A slightly slow org (every upload takes 0.2 s more) so that jobs overlap the kills.
    chaos_stack.org.state.faults.add(FaultRule(pattern=UPLOAD, method="POST", delay=0.2))
    job_ids = []
    for cv in sources:
        status, job_id = callout(chaos_stack, cv)
        assert status == 202 and job_id
        job_ids.append(job_id)

    rng = random.Random(20261126)
    kills = 0
    deadline = time.monotonic() + 60
    while kills < 3 and time.monotonic() < deadline:
        time.sleep(rng.uniform(0.2, 1.5))
        horses = busy_horses(chaos_stack)
        if horses:
            rng.choice(horses).send_signal(signal.SIGKILL)
            kills += 1
    assert kills == 3, "the jobs ended before three horses could be killed"

    wait_all_ended(conn, job_ids, 120, chaos_stack)
    assert_exactly_once(chaos_stack, sources)
    assert_nothing_stuck(conn, job_ids)
    # A process found talking to the org may already have finished its job when the signal lands (its
    # keep-alive connection outlives the job): such a kill tests nothing, and is not logged as mid-job.
    # Every kill that did land mid-job must have cost its job exactly one retry, and no more.
    logs = chaos_stack.logs()
    mid_job = (logs.count("work process died while running a job")  # the supervisor's report
               + logs.count("Work-horse terminated unexpectedly"))  # rq's, with --fork-per-job
    assert 1 <= mid_job <= kills, f"no kill landed while a job was running ({mid_job} of {kills})"
    retries_spent = sum(int(job.meta["max_retries"]) - int(job.retries_left)
                        for job in (Job.fetch(j, connection=conn, serializer=SERIALIZER) for j in job_ids))
    assert retries_spent == mid_job


def test_a_whole_worker_killed_mid_job_is_recovered_by_the_next_worker(own_redis) -> None:
    """A dyno crash (kill -9 of supervisor, work process and scheduler at once). The job's execution stays in the
    StartedJobRegistry until its heartbeat (30 s) lapses; the next worker's maintenance (every 30 s, also
    while idle) gives it to rq's retry, and releases the dead scheduler's stale lock so its own scheduler
    enqueues the retry. Before workers/worker.py did both, this took ~7-10 minutes."""
    conn = redis.Redis.from_url(own_redis.url)
    with LocalStack(redis_url=own_redis.url, workers=1, env=FAST_RETRY_ENV) as stack:
        [(_, source)] = seed_photos(stack, 1)
        org = stack.org
        held = org.state.faults.add(FaultRule(pattern=UPLOAD, method="POST", delay=5, error="SERVER_UNAVAILABLE",
                                              count=1))
        status, job_id = callout(stack, source)
        assert status == 202 and job_id
        wait_for(lambda: held.fired, 30, "the renditions upload", stack)
        [worker] = stack.worker_processes
        os.killpg(worker.pid, signal.SIGKILL)  # the dyno dies: every process at once
        worker.wait(timeout=10)
        assert renditions_of(org, source) == []  # the held upload is answered 503: all or none, so none
        stack.add_worker()
        wait_all_ended(conn, [job_id], 90, stack)
        assert_exactly_once(stack, [source])
        assert_nothing_stuck(conn, [job_id])


def test_a_frozen_worker_whose_job_is_taken_over_does_not_write_twice(chaos_stack: LocalStack, own_redis) -> None:
    """SIGSTOP of the process running a job, mid-download, past its heartbeat: the other worker takes the job
    over and finishes it. Then the frozen one wakes (SIGCONT) and carries on where it stopped, with the same
    job id (so the per-file lock lets it in). Its upload is refused by Salesforce (DUPLICATE_VALUE on the unique
    rendition key) and taken as done: one rendition per variant. Its completion event may be a second one
    for the job, with the same Job_Id__c, which subscribers dedupe."""
    conn = redis.Redis.from_url(own_redis.url)
    [(_, source)] = seed_photos(chaos_stack, 1)
    held = chaos_stack.org.state.faults.add(FaultRule(pattern="*/VersionData", method="GET", delay=1.0, count=1))
    status, job_id = callout(chaos_stack, source)
    assert status == 202 and job_id
    wait_for(lambda: held.fired, 30, "the job's download", chaos_stack)
    [frozen] = wait_for(lambda: busy_horses(chaos_stack), 5, "the process running the job", chaos_stack)
    frozen.send_signal(signal.SIGSTOP)
    try:
        job = Job.fetch(job_id, connection=conn, serializer=SERIALIZER)
        # rq's own recovery: the heartbeat lapses (30 s), the other worker's maintenance retries the job.
        wait_for(lambda: job.get_status(refresh=True).value == "finished", 120,
                 "the other worker to take over and finish the job", chaos_stack)
        assert len(renditions_of(chaos_stack.org, source)) == 3
    finally:
        frozen.send_signal(signal.SIGCONT)
    wait_for(lambda: any(code == "DUPLICATE_VALUE" for _, _, code in chaos_stack.org.state.refusals), 30,
             "the woken worker to try its next upload, and the org to refuse it", chaos_stack)
    time.sleep(2)  # let the woken worker finish its job's remaining steps
    assert_exactly_once(chaos_stack, [source])
    events = [e["fields"] for e in chaos_stack.org.state.events if e["fields"].get("Job_Id__c") == job_id]
    assert events and {e["Status__c"] for e in events} == {"Succeeded"}
