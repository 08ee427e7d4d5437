"""Redis and RQ in one place: the connection, the queues, and durable enqueueing.

Rules this module enforces for the whole suite:

* **One client per process.** :func:`redis_from_url` is called once by each
  entry point and the client (with redis-py's connection pool) is reused for
  every request, instead of a connection per request.
* **JSON, never pickle.** Jobs are enqueued by dotted path
  (``workers.runner.execute``) with RQ's ``JSONSerializer``: nothing that
  reaches Redis can execute code when it is read back, and the receiver never
  imports Pillow.
* **ACK only after a durable enqueue.** :func:`admit` writes all jobs of one
  Salesforce message in one atomic Lua script, and raises
  :class:`~services.errors.EnqueueFailed` if Redis did not take them, so the
  caller answers with an error and Salesforce retries.
* **A delivery is taken once.** A ledger key per delivery (the Outbound Message
  notification id, an ``Idempotency-Key`` or a payload hash) remembers the job
  for ``OFFLOAD_DEDUPE_TTL`` seconds, longer than Salesforce's 24-hour retry
  window; a duplicate gets the original job back.
* **One round trip per request.** The loop-guard check, the ledger claim and
  the job writes happen inside that one script, so a request costs one Redis
  round trip however many notifications it carries, and no other client can
  see a claim whose job is not written yet.
* **Public library APIs only.** Each job is built by RQ's ``Job.create`` and
  written as its ``Job.to_dict()``, exactly what ``Job.save`` writes; the script
  is run by redis-py's ``register_script`` on the normal client and its pool
  (https://redis.readthedocs.io/en/stable/commands.html#redis.commands.core.CoreCommands.register_script,
  https://python-rq.org/docs/jobs/). The one piece of RQ knowledge no public
  API offers, which writes make up an enqueue, is in :mod:`services.queue.rqcompat`;
  ``tests/core/test_fast_enqueue.py`` compares the result with RQ's own
  ``Queue.enqueue_many`` field by field and runs the job with a real RQ worker.
"""

from __future__ import annotations

import hashlib
import logging
import random
import ssl
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.commands.core import Script
from redis.retry import Retry as RedisRetry
from rq import Queue, Retry
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from services import keys
from services.errors import EnqueueFailed
from services.queue import rqcompat

logger = logging.getLogger(__name__)

JOB_FUNCTION = "workers.runner.execute"
"""Every job runs through this one function, which looks the process up in the registry."""

LEDGER_PREFIX = keys.LEDGER_PREFIX

INTAKE_COUNTERS_KEY = keys.INTAKE_COUNTERS
"""Hash the enqueue script counts into (``enqueued|<process>``, ``duplicates|...``, ``skipped|...``);
``services.ops.collectors`` renders it. Counting inside the script costs no extra round trip."""

SERIALIZER = JSONSerializer


def redis_from_url(url: str, **kwargs: Any) -> redis.Redis:
    """Build the process's Redis client from ``REDIS_URL``.

    Heroku Key-Value Store hands out ``rediss://`` URLs whose server certificate
    is self-signed, so verification must be off for it to connect at all
    (Heroku Dev Center, "Connecting to Heroku Key-Value Store": "set
    ssl_cert_reqs to None"). The traffic is still encrypted. This is done only
    for ``rediss://``; ``rq worker --url`` cannot do it, which is why the worker
    is started by ``python -m workers`` instead.

    A connection error or timeout is retried by redis-py itself (up to 3 times,
    0.05 s, 0.1 s, 0.2 s apart, each on a fresh connection), so a pooled
    connection left stale by a Redis restart or failover is replaced within the
    request instead of failing it; ``health_check_interval`` pings a connection
    idle that long before reusing it. Retrying is safe for the intake: the
    :func:`admit` script run twice (its first reply lost) writes nothing new the
    second time and answers "duplicate", which the receiver acknowledges the
    same way. The cost of a Redis that stays down is the retries: up to four
    connect timeouts before :class:`EnqueueFailed`.
    """
    options: dict[str, Any] = {
        "socket_connect_timeout": 5,
        "socket_timeout": 10,
        "health_check_interval": 30,
        "retry": RedisRetry(ExponentialBackoff(cap=0.5, base=0.025), 3),
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError],
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
    retry_base: float = 15.0
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


# One atomic script per request. KEYS: rq:queues, the intake counters hash (enqueued / duplicates / skipped
# per process, for /metrics), then 4 per delivery (loop-guard key, ledger key, job key, queue key). ARGV:
# dedupe ttl, job key prefix, then per delivery: job id, process (queue name), "1" if its guard key applies,
# the number n of job hash fields, and n field/value pairs (``Job.to_dict()``). Reply: per delivery, status
# (0 skipped, 1 enqueued, 2 duplicate) and job id. A delivery's job is written before its ledger entry, so an
# error part-way never leaves a claim without its job; Redis runs the whole script before any other command.
# Run again with the same deliveries (a retry after a lost reply), it writes nothing new and answers
# "duplicate" for each: that is what makes redis-py's retry on a connection error safe here.
_ADMIT_LUA = """
local ttl, prefix = ARGV[1], ARGV[2]
local reply = {}
local a = 3
for i = 1, (#KEYS - 2) / 4 do
  local k = 3 + (i - 1) * 4
  local job_id, process, guarded, n = ARGV[a], ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
  local first, last = a + 4, a + 3 + 2 * n
  a = last + 1
  if guarded == '1' and redis.call('EXISTS', KEYS[k]) == 1 then
    redis.call('HINCRBY', KEYS[2], 'skipped|' .. process, 1)
    reply[#reply + 1] = 0
    reply[#reply + 1] = ''
  else
    local held = redis.call('GET', KEYS[k + 1])
    if held and redis.call('EXISTS', prefix .. held) == 1 then
      redis.call('HINCRBY', KEYS[2], 'duplicates|' .. process, 1)
      reply[#reply + 1] = 2
      reply[#reply + 1] = held
    else
      redis.call('HSET', KEYS[k + 2], unpack(ARGV, first, last))
      redis.call('RPUSH', KEYS[k + 3], job_id)
      redis.call('SADD', KEYS[1], KEYS[k + 3])
      redis.call('SET', KEYS[k + 1], job_id, 'EX', ttl)
      redis.call('HINCRBY', KEYS[2], 'enqueued|' .. process, 1)
      reply[#reply + 1] = 1
      reply[#reply + 1] = job_id
    end
  end
end
return reply
"""

_scripts: weakref.WeakKeyDictionary[redis.Redis, Script] = weakref.WeakKeyDictionary()


def _admit_script(connection: redis.Redis) -> Script:
    """The script registered on this client (redis-py loads it into Redis on first use, and again after a flush)."""
    script = _scripts.get(connection)
    if script is None:
        script = _scripts[connection] = connection.register_script(_ADMIT_LUA)
    return script


def _job(d: Delivery, connection: redis.Redis) -> Job:
    """The delivery's RQ job, made as ``Queue.enqueue_call`` makes it (``Queue.create_job`` -> ``Job.create``)."""
    meta = {k: v for k, v in d.meta.items() if not k.endswith("_ttl")}
    meta["max_retries"] = d.retries
    return Job.create(
        JOB_FUNCTION,
        args=[d.envelope],
        id=d.job_id,
        connection=connection,
        serializer=SERIALIZER,
        timeout=d.timeout,
        result_ttl=d.meta.get("result_ttl", 86400),
        failure_ttl=d.meta.get("failure_ttl", 7 * 86400),
        description=d.description,
        meta=meta,
        origin=d.queue,
        status=JobStatus.QUEUED,
        retry=Retry(max=d.retries, interval=backoff_intervals(d.retries, base=d.retry_base)) if d.retries else None,
    )


def admit(
    connection: redis.Redis,
    deliveries: Sequence[Delivery],
    *,
    dedupe_ttl: int,
    guard_keys: Sequence[str | None] | None = None,
) -> list[Enqueued | None]:
    """Loop guard, dedupe and enqueue for every delivery, in one atomic script (one round trip).

    ``guard_keys[i]``, when not None, is a key whose existence means delivery ``i``
    must not run (it is Offload's own output, see :mod:`services.queue.loopguard`): it
    gets ``None`` and nothing is written for it. Every other delivery gets an
    :class:`Enqueued`: a new job, or, when its ledger entry names a job that still
    exists, that job as a duplicate. A ledger entry whose job no longer exists
    (deleted, or expired) is claimed again.

    Raises :class:`EnqueueFailed` when Redis refused or is unreachable; the script
    then either ran whole (and a retry is answered as a duplicate) or not at all.
    Needs a single Redis, not Redis Cluster (Heroku Key-Value Store is one): the
    script also reads the job key a ledger entry names, which it cannot declare
    up front.
    """
    if not deliveries:
        return []
    keys: list[str] = [rqcompat.QUEUES_KEY, INTAKE_COUNTERS_KEY]
    args: list[Any] = [dedupe_ttl, rqcompat.JOB_KEY_PREFIX]
    for i, d in enumerate(deliveries):
        guard = guard_keys[i] if guard_keys is not None else None
        writes = rqcompat.enqueue_writes(_job(d, connection))
        keys += [guard or "", _ledger_key(d.dedupe_key), writes.job_key, writes.queue_key]
        args += [writes.job_id, d.queue, "1" if guard else "0", len(writes.mapping)]
        for name, value in writes.mapping.items():
            args += [name, value]
    try:
        reply = _admit_script(connection)(keys=keys, args=args)
    except redis.RedisError as exc:
        raise EnqueueFailed(
            "The job queue (Redis) did not accept the work, so it was not acknowledged; "
            f"Salesforce will retry. ({type(exc).__name__})"
        ) from exc
    outcomes: list[Enqueued | None] = []
    for i in range(len(deliveries)):
        status, job_id = reply[2 * i], reply[2 * i + 1]
        if status == 0:
            outcomes.append(None)
        else:
            outcomes.append(Enqueued(job_id=job_id.decode() if isinstance(job_id, bytes) else str(job_id),
                                     duplicate=status == 2))
    return outcomes


def fetch_job(connection: redis.Redis, job_id: str) -> Job | None:
    """The job with that id, or None."""
    try:
        return Job.fetch(job_id, connection=connection, serializer=SERIALIZER)
    except Exception:  # rq raises NoSuchJobError, or a decode error for a foreign key
        return None
