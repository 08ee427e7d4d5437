"""Redis and RQ in one place: the connection, the queues, and durable enqueueing.

Rules this module enforces for the whole suite:

* **One client per process.** :func:`redis_from_url` is called once by each
  entry point and the client (a connection pool) is reused; a new connection
  per request measured 3.3x slower (reference performance anchors, section 2).
* **JSON, never pickle.** Jobs are enqueued by dotted path
  (``workers.runner.execute``) with RQ's ``JSONSerializer``: nothing that
  reaches Redis can execute code when it is read back, and the receiver never
  imports Pillow.
* **ACK only after a durable enqueue.** :func:`enqueue_deliveries` writes all
  jobs of one Salesforce message in one ``MULTI/EXEC`` transaction, and raises
  :class:`~services.errors.EnqueueFailed` if Redis did not take them, so the
  caller answers with an error and Salesforce retries.
* **A delivery is taken once.** A ledger key per delivery (the Outbound Message
  notification id, an ``Idempotency-Key`` or a payload hash) remembers the job
  for ``OFFLOAD_DEDUPE_TTL`` seconds, longer than Salesforce's 24-hour retry
  window; a duplicate gets the original job back.
"""

from __future__ import annotations

import hashlib
import logging
import random
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from rq import Queue, Retry
from rq.job import Job
from rq.serializers import JSONSerializer

from services.errors import EnqueueFailed

logger = logging.getLogger(__name__)

JOB_FUNCTION = "workers.runner.execute"
"""Every job runs through this one function, which looks the process up in the registry."""

LEDGER_PREFIX = "offload:ledger:"

SERIALIZER = JSONSerializer


def redis_from_url(url: str, **kwargs: Any) -> redis.Redis:
    """Build the process's Redis client from ``REDIS_URL``.

    Heroku Key-Value Store hands out ``rediss://`` URLs whose server certificate
    is self-signed, so verification must be off for it to connect at all
    (Heroku Dev Center, "Connecting to Heroku Key-Value Store": "set
    ssl_cert_reqs to None"). The traffic is still encrypted. This is done only
    for ``rediss://``; ``rq worker --url`` cannot do it, which is why the worker
    is started by ``python -m workers`` instead.
    """
    options: dict[str, Any] = {
        "socket_connect_timeout": 5,
        "socket_timeout": 10,
        "health_check_interval": 30,
    }
    if url.startswith("rediss://"):
        options["ssl_cert_reqs"] = ssl.CERT_NONE
        options["ssl_check_hostname"] = False
    options.update(kwargs)
    return redis.Redis.from_url(url, **options)


def make_queue(name: str, connection: redis.Redis) -> Queue:
    """An RQ queue that stores jobs as JSON."""
    return Queue(name, connection=connection, serializer=SERIALIZER)


def backoff_intervals(retries: int, *, base: float = 15.0, cap: float = 3600.0) -> list[int]:
    """Seconds before each retry: exponential from ``base``, capped, with +/-20 % jitter.

    Jitter spreads the retries of jobs that failed together (an org-wide
    ``REQUEST_LIMIT_EXCEEDED``) so they don't all come back at the same second.
    """
    return [max(1, round(min(cap, base * 2**i) * random.uniform(0.8, 1.2))) for i in range(retries)]


@dataclass(frozen=True)
class Delivery:
    """One unit of work to enqueue: a notification or a callout, already validated."""

    queue: str
    dedupe_key: str
    envelope: dict[str, Any]
    description: str
    timeout: int = 600
    retries: int = 5
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def job_id(self) -> str:
        """Derived from the dedupe key, so a redelivery maps to the same job."""
        digest = hashlib.sha256(self.dedupe_key.encode("utf-8")).hexdigest()[:32]
        return f"{self.queue}-{digest}"


@dataclass(frozen=True)
class Enqueued:
    """What happened to one delivery."""

    job_id: str
    duplicate: bool


def _ledger_key(dedupe_key: str) -> str:
    return LEDGER_PREFIX + hashlib.sha256(dedupe_key.encode("utf-8")).hexdigest()


def enqueue_deliveries(
    connection: redis.Redis, deliveries: Sequence[Delivery], *, dedupe_ttl: int
) -> list[Enqueued]:
    """Enqueue every delivery that is new, in one transaction; report duplicates.

    Returns one :class:`Enqueued` per delivery, in order. Raises
    :class:`EnqueueFailed` when Redis refused or is unreachable; then nothing
    new was enqueued (the transaction is all or nothing) and the ledger
    entries this call created are removed again, so Salesforce's retry is
    taken as new.
    """
    claims: list[tuple[bool, str]] = []
    try:
        claims = _claim(connection, deliveries, dedupe_ttl)
        fresh = [d for d, (claimed, _) in zip(deliveries, claims, strict=True) if claimed]
        if fresh:
            _enqueue_in_transaction(connection, fresh)
    except redis.RedisError as exc:
        _release(connection, [d for d, (claimed, _) in zip(deliveries, claims, strict=False) if claimed])
        raise EnqueueFailed(
            "The job queue (Redis) did not accept the work, so it was not acknowledged; "
            f"Salesforce will retry. ({type(exc).__name__})"
        ) from exc
    return [Enqueued(job_id=existing, duplicate=not claimed) for claimed, existing in claims]


def _claim(
    connection: redis.Redis, deliveries: Sequence[Delivery], dedupe_ttl: int
) -> list[tuple[bool, str]]:
    """Set each ledger key if absent (``SET NX``) and read what it holds, in one round trip.

    A ledger entry whose job no longer exists (its enqueue failed after the
    claim, or the process died in between) is claimed again.
    """
    pipe = connection.pipeline(transaction=False)
    for d in deliveries:
        key = _ledger_key(d.dedupe_key)
        pipe.set(key, d.job_id, nx=True, ex=dedupe_ttl)
        pipe.get(key)
    replies = pipe.execute()
    claims: list[tuple[bool, str]] = []
    for i, d in enumerate(deliveries):
        was_set, held = replies[2 * i], replies[2 * i + 1]
        held_id = held.decode() if isinstance(held, bytes) else str(held)
        if not was_set and not Job.exists(held_id, connection=connection):
            connection.set(_ledger_key(d.dedupe_key), d.job_id, ex=dedupe_ttl)
            claims.append((True, d.job_id))
        else:
            claims.append((bool(was_set), held_id))
    return claims


def _enqueue_in_transaction(connection: redis.Redis, deliveries: Sequence[Delivery]) -> None:
    pipe = connection.pipeline(transaction=True)
    by_queue: dict[str, list[Delivery]] = {}
    for d in deliveries:
        by_queue.setdefault(d.queue, []).append(d)
    for name, items in by_queue.items():
        queue = make_queue(name, connection)
        queue.enqueue_many(
            [
                Queue.prepare_data(
                    JOB_FUNCTION,
                    args=(d.envelope,),
                    job_id=d.job_id,
                    description=d.description,
                    timeout=d.timeout,
                    result_ttl=d.meta.get("result_ttl", 86400),
                    failure_ttl=d.meta.get("failure_ttl", 7 * 86400),
                    meta={**{k: v for k, v in d.meta.items() if not k.endswith("_ttl")}, "max_retries": d.retries},
                    retry=Retry(max=d.retries, interval=backoff_intervals(d.retries)) if d.retries else None,
                )
                for d in items
            ],
            pipeline=pipe,
        )
    pipe.execute()


def _release(connection: redis.Redis, deliveries: Sequence[Delivery]) -> None:
    """Best effort: forget ledger claims of an enqueue that failed (their jobs don't exist anyway)."""
    if not deliveries:
        return
    try:
        connection.delete(*[_ledger_key(d.dedupe_key) for d in deliveries])
    except redis.RedisError:
        logger.warning("could not release ledger claims; they are re-claimed on redelivery")


def fetch_job(connection: redis.Redis, job_id: str) -> Job | None:
    """The job with that id, or None."""
    try:
        return Job.fetch(job_id, connection=connection, serializer=SERIALIZER)
    except Exception:  # rq raises NoSuchJobError, or a decode error for a foreign key
        return None
