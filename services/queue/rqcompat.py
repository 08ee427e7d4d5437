"""The one thing about rq that no public API gives: what an enqueue writes, to do it inside our own script.

rq's public way to enqueue (``Queue.enqueue_call`` / ``enqueue_many`` / ``enqueue_job``) runs its own
pipeline, so it cannot share one atomic Lua script with the ledger claim and the loop guard. What it
writes for a job with no dependencies, no ``ttl`` and no ``at_front`` is, in rq 2.12
(``Queue._enqueue_async_job`` -> ``_prepare_for_queue`` + ``_persist_job`` + ``push_job_id``, and the
``SADD`` in ``enqueue_many``):

* ``HSET <job.key>`` with ``job.to_dict()`` (``Job.save``), the job in status ``queued`` with its
  ``enqueued_at`` set;
* ``RPUSH <queue.key> <job.id>``;
* ``SADD <Queue.redis_queues_keys> <queue.key>``;
* no ``EXPIRE`` (``Job.cleanup`` does nothing without a ``ttl``).

Every name used here is public rq API; only that sequence is knowledge of rq's internals, and it lives
here alone. ``tests/core/test_fast_enqueue.py`` compares the result with what rq's own
``Queue.enqueue_many`` writes, field by field, and runs the job with a real ``SimpleWorker``; it fails
naming the installed rq version if an upgrade changes any of it. rq docs:
https://python-rq.org/docs/jobs/ and https://python-rq.org/docs/#enqueueing-jobs
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rq import Queue
from rq.job import Job, JobStatus

TESTED_RQ = "2.12"
"""The rq release line this module was read against (the test names it when rq drifts)."""

QUEUES_KEY: str = Queue.redis_queues_keys
"""The set of every queue's key (``rq:queues``): rq's workers and dashboard find queues through it."""

JOB_KEY_PREFIX: str = Job.redis_job_namespace_prefix
"""``rq:job:``: the enqueue script checks that the job a ledger entry names still exists."""


def queue_key(name: str) -> str:
    """``Queue(name).key``, without building a ``Queue`` (which needs a connection and ~10 us) per job."""
    return Queue.redis_queue_namespace_prefix + name


@dataclass(frozen=True)
class EnqueueWrites:
    """One enqueue: ``HSET job_key mapping``, ``RPUSH queue_key job_id``, ``SADD QUEUES_KEY queue_key``."""

    job_id: str
    job_key: str
    mapping: dict[str, Any]
    queue_key: str


def enqueue_writes(job: Job) -> EnqueueWrites:
    """What rq 2.12 writes to enqueue ``job`` (made by ``Job.create`` with its ``origin`` set) on its origin queue.

    Sets ``enqueued_at`` on ``job`` as ``Queue._prepare_for_queue`` does (to ``created_at``: the job is made
    in the same request that enqueues it) and returns ``job.to_dict()``, which is what ``Job.save`` passes
    to ``HSET`` (its values are ``str``, ``bytes`` and ``int``).
    """
    if not job.origin or job.get_status(refresh=False) != JobStatus.QUEUED:
        raise ValueError("Job.create(..., origin=<queue name>, status=JobStatus.QUEUED) makes an enqueueable job")
    job.enqueued_at = job.created_at
    return EnqueueWrites(job_id=job.id, job_key=job.key, mapping=job.to_dict(), queue_key=queue_key(job.origin))
