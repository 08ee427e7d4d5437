"""The work counters the workers keep in Redis: job attempts, durations, queue waits, API calls.

On Heroku the worker dynos and the web dynos are different machines with no shared disk, so
prometheus-client's multiprocess files could never add a worker's counts to the web's ``/metrics``;
Redis is the one thing every process already shares. Each observation is one pipelined round trip,
and a Redis error only logs a warning: a metric never fails a job. Histograms are stored one bucket
per observation (non-cumulative) and summed at scrape time by :mod:`services.ops.collectors`.
The intake counters (enqueued, duplicates, skipped) are counted by the enqueue script itself
(:mod:`services.queue`), in the same round trip as the enqueue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC
from typing import Any

import redis
from prometheus_client.utils import floatToGoString

from services import keys
from services.logs import event

logger = logging.getLogger(__name__)

OUTCOMES = ("succeeded", "failed", "retried", "deferred", "skipped")
JOB_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
QUEUE_WAIT_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


def _write(connection: redis.Redis, what: str, ops: Callable[[Any], None]) -> None:
    """Run ``ops`` on a non-transactional pipeline; a Redis error only logs a warning."""
    try:
        pipe = connection.pipeline(transaction=False)
        ops(pipe)
        pipe.execute()
    except redis.RedisError as exc:
        event(logger, "metric not recorded", logging.WARNING, metric=what, error=type(exc).__name__)


def _bucket_field(value: float, buckets: tuple[float, ...]) -> str:
    """The one bucket a value falls in (stored non-cumulative: one HINCRBY per observation)."""
    for bound in buckets:
        if value <= bound:
            return floatToGoString(bound)
    return "+Inf"


def _observe(pipe: Any, key: str, process: str, value: float, buckets: tuple[float, ...]) -> None:
    value = max(0.0, float(value))
    pipe.hincrby(key, f"{process}|{_bucket_field(value, buckets)}", 1)
    pipe.hincrbyfloat(key, f"{process}|sum", value)
    pipe.hincrby(key, f"{process}|count", 1)


def job_finished(connection: redis.Redis, process: str, outcome: str, duration_s: float,
                 queue_wait_s: float | None = None) -> None:
    """One job attempt ended: ``succeeded``, ``failed`` (no retry follows) or ``retried``."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)} (got {outcome!r})")

    def ops(pipe: Any) -> None:
        pipe.hincrby(keys.JOB_ATTEMPTS, f"{process}|{outcome}", 1)
        _observe(pipe, keys.JOB_DURATION, process, duration_s, JOB_DURATION_BUCKETS)
        if queue_wait_s is not None:
            _observe(pipe, keys.QUEUE_WAIT, process, queue_wait_s, QUEUE_WAIT_BUCKETS)

    _write(connection, "job_finished", ops)


def queue_wait_seconds(job: Any) -> float | None:
    """Seconds between the job's (latest) enqueue and its start, if RQ recorded both."""
    enqueued_at, started_at = getattr(job, "enqueued_at", None), getattr(job, "started_at", None)
    if enqueued_at is None or started_at is None:
        return None
    if enqueued_at.tzinfo is None:
        enqueued_at = enqueued_at.replace(tzinfo=UTC)
    if started_at.tzinfo is None:
        started_at = started_at.replace(tzinfo=UTC)
    return max(0.0, (started_at - enqueued_at).total_seconds())


def salesforce_calls(connection: redis.Redis, n: int = 1) -> None:
    """Salesforce API calls made by the workers."""
    _write(connection, "salesforce_calls", lambda pipe: pipe.incrby(keys.SALESFORCE_CALLS, n))
