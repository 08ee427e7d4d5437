"""Fixtures for the operations layer: the receiver with the dashboard and /metrics on, and jobs to look at.

The app is built by calling ``metrics.init_app`` and ``dashboard.init_app`` on
``create_app``'s result (both are idempotent, so this keeps working once
``create_app`` calls them itself).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis
from rq.job import Job

from services.queue import SERIALIZER, Delivery, admit, fetch_job, make_queue
from services.settings import Settings
from tests.support.ops import PASSWORD, QUEUE, SESSION_REF, build_app, envelope
from tests.support.rqworker import InProcessTestWorker


@pytest.fixture
def ops_settings(settings: Settings) -> Settings:
    return settings.replace(dashboard_password=PASSWORD)


@pytest.fixture
def ops_app(ops_settings: Settings, redis_conn: redis.Redis) -> Any:
    return build_app(ops_settings, redis_conn)


@pytest.fixture
def ops_client(ops_app: Any) -> Any:
    return ops_app.test_client()


@pytest.fixture
def off_client(settings: Settings, redis_conn: redis.Redis) -> Any:
    """The receiver with no OFFLOAD_DASHBOARD_PASSWORD."""
    return build_app(settings.replace(dashboard_password=""), redis_conn).test_client()


@pytest.fixture
def enqueue(redis_conn: redis.Redis) -> Callable[..., Job]:
    """Enqueue one envelope like the receiver does (no retries unless asked); returns the job."""
    counter = iter(range(1_000_000))

    def make(env: dict[str, Any] | None = None, *, retries: int = 0, queue: str = QUEUE) -> Job:
        delivery = Delivery(queue=queue, dedupe_key=f"test:{next(counter)}", envelope=env or envelope(),
                            description=f"{(env or {}).get('process', QUEUE)} test", retries=retries)
        [outcome] = admit(redis_conn, [delivery], dedupe_ttl=3600)
        job = fetch_job(redis_conn, outcome.job_id)
        assert job is not None
        return job

    return make


@pytest.fixture
def work(redis_conn: redis.Redis) -> Callable[[], None]:
    """Run every queued job of QUEUE in this process (burst)."""

    def run() -> None:
        worker = InProcessTestWorker([make_queue(QUEUE, redis_conn)], connection=redis_conn, serializer=SERIALIZER)
        worker.work(burst=True, with_scheduler=False)

    return run


@pytest.fixture
def failed_job(enqueue: Callable[..., Job], work: Callable[[], None], redis_conn: redis.Redis) -> Job:
    """A job that failed with UNKNOWN_PROCESS (``workers.runner.execute`` refuses the process)."""
    job = enqueue(envelope(process="no-such-process", sessionRef=SESSION_REF), retries=3)
    job.retries_left = 0  # fail now instead of being scheduled for a retry
    job.save()
    work()
    job = fetch_job(redis_conn, job.id)
    assert job is not None and job.get_status() == "failed"
    return job
