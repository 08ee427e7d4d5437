"""Helpers shared by the chaos scenarios: submit work, wait (bounded), and check the invariants."""

from __future__ import annotations

import time

import psutil
import pytest
import redis
import requests
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from devkit.devstack import LocalStack
from services.queue import SERIALIZER
from tests.support.images import photo_jpeg
from tests.support.orgtools import create_record, renditions_of, upload_file
from tests.support.stacktools import callout, wait_for  # noqa: F401 - the chaos tests import them from here

QUEUE = "resize-image"
VARIANTS = ["large", "medium", "thumb"]
FAST_RETRY_ENV = {"OFFLOAD_JOB_RETRIES": "5", "OFFLOAD_RETRY_BASE_SECONDS": "1"}
"""Retries start after ~1 s instead of 15 s, so outages and kills recover within a test's time."""


def seed_photos(stack: LocalStack, count: int, *, sobject: str = "Contact", size: tuple[int, int] = (900, 600)
                ) -> list[tuple[str, str]]:
    """``count`` records with one photo each: [(record id, content version id)]."""
    org = stack.org
    photo = photo_jpeg(*size, seed=5)
    out = []
    for i in range(count):
        fields = {"LastName": f"Chaos {i}"} if sobject == "Contact" else {"Name": f"Chaos {i}"}
        record = create_record(org, sobject, **fields)
        out.append((record, upload_file(org, record, photo, f"chaos-{i}.jpg")))
    return out


def job_status(conn: redis.Redis, job_id: str) -> str | None:
    try:
        return str(Job.fetch(job_id, connection=conn, serializer=SERIALIZER).get_status().value)
    except Exception:  # missing or undecodable: report None
        return None


def wait_all_ended(conn: redis.Redis, job_ids: list[str], timeout: float, stack: LocalStack) -> None:
    def ended() -> bool:
        return all(job_status(conn, j) in (JobStatus.FINISHED.value, JobStatus.FAILED.value) for j in job_ids)

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not ended():
        time.sleep(0.2)
    if not ended():
        statuses = {j: job_status(conn, j) for j in job_ids}
        started = StartedJobRegistry(QUEUE, connection=conn).get_job_ids()
        pytest.fail(f"timed out after {timeout} s waiting for jobs to end: {statuses}; started={started}\n"
                    f"{stack.logs()[-8000:]}")


def assert_exactly_once(stack: LocalStack, sources: list[str]) -> None:
    """Every source has one rendition per variant: none missing, none twice."""
    bad = {}
    for source in sources:
        got = sorted(r["Offload_Variant__c"] for r in renditions_of(stack.org, source))
        if got != VARIANTS:
            bad[source] = got
    assert not bad, f"sources without exactly one rendition per variant: {bad}"


def assert_nothing_stuck(conn: redis.Redis, job_ids: list[str]) -> None:
    """No job left in started, scheduled or failed; each one finished."""
    assert StartedJobRegistry(QUEUE, connection=conn).get_job_ids() == []
    assert ScheduledJobRegistry(QUEUE, connection=conn).get_job_ids() == []
    assert FailedJobRegistry(QUEUE, connection=conn).get_job_ids() == []
    statuses = {j: job_status(conn, j) for j in job_ids}
    assert all(s == JobStatus.FINISHED.value for s in statuses.values()), statuses


def busy_horses(stack: LocalStack) -> list[psutil.Process]:
    """Processes running a job right now: descendants of worker processes that talk to the org.

    The supervisor's work process or, with ``--fork-per-job``, rq's work horse (the rq scheduler never
    calls the org)."""
    port = int(stack.org.base_url.rsplit(":", 1)[1])
    found = []
    for worker in stack.worker_processes:
        if worker.poll() is not None:
            continue
        try:
            children = psutil.Process(worker.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            continue
        for child in children:
            try:
                if any(c.raddr and c.raddr.port == port for c in child.net_connections(kind="tcp")):
                    found.append(child)
            except psutil.NoSuchProcess:
                continue
    return found


def http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False
