"""Redis and RQ in one place: the connection, the queues, and durable enqueueing.

Rules this module enforces for the whole suite:

* **One client per process.** :func:`redis_from_url` is called once by each
  entry point and the client (a connection pool) is reused; a new connection
  per request measured 3.3x slower (reference performance anchors, section 2).
* **JSON, never pickle.** Jobs are enqueued by dotted path
  (``workers.runner.execute``) with RQ's ``JSONSerializer``: nothing that
  reaches Redis can execute code when it is read back, and the receiver never
  imports Pillow.
* **ACK only after a durable enqueue.** :func:`enqueue_deliveries` (and
  :func:`admit`, which adds the loop guard) writes all jobs of one Salesforce
  message in one atomic Redis transaction (a Lua script, run with one
  ``EVALSHA``), and raises :class:`~services.errors.EnqueueFailed` if Redis did
  not take them, so the caller answers with an error and Salesforce retries.
* **A delivery is taken once.** A ledger key per delivery (the Outbound Message
  notification id, an ``Idempotency-Key`` or a payload hash) remembers the job
  for ``OFFLOAD_DEDUPE_TTL`` seconds, longer than Salesforce's 24-hour retry
  window; a duplicate gets the original job back.
* **One round trip per request.** The loop-guard check, the ledger claim and
  the job writes happen inside that one script, so a request costs one Redis
  round trip however many notifications it carries, and no other client can
  see a claim whose job is not written yet. The job hash is written in exactly
  the format RQ 2.12's ``Queue.enqueue_many`` writes (``tests/core/test_fast_enqueue.py``
  compares the two field by field and runs the job with a real RQ worker), without
  building RQ ``Job`` objects: that client-side work was half the receiver's
  capacity (reference performance anchors, section 2).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import ssl
import weakref
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from services import keys
from services.errors import EnqueueFailed

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


# --- the job hash, as RQ 2.12 writes it ------------------------------------------------------------------
#
# ``Queue.enqueue_many`` -> ``Job.create`` + ``Job.to_dict`` + ``HSET``, then ``RPUSH rq:queue:<name>`` and
# ``SADD rq:queues``. The hash holds what ``Job.to_dict`` emits for a job with no callbacks, no
# dependencies, no ttl and no result (``Job.restore`` reads each field back): _CONSTANT_FIELDS, then
# created_at and enqueued_at (one stamp), data (_job_data) and _variable_fields.

_QUEUE_PREFIX = Queue.redis_queue_namespace_prefix  # "rq:queue:"
_QUEUES_KEY = Queue.redis_queues_keys  # "rq:queues"
_JOB_PREFIX = Job.redis_job_namespace_prefix  # "rq:job:"
_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # rq.utils.utcformat


def _rq_timestamp(moment: datetime) -> str:
    """``moment.strftime(_TIMESTAMP_FORMAT)`` for an aware UTC time, via ``isoformat`` (twice as fast)."""
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
_DATA_PREFIX = json.dumps(JOB_FUNCTION) + ", null, ["  # serializer.dumps((func_name, instance, args, kwargs))
_CONSTANT_FIELDS: tuple[str, ...] = (
    "success_callback_name", "", "failure_callback_name", "", "stopped_callback_name", "",
    "started_at", "", "ended_at", "", "last_heartbeat", "", "worker_name", "", "group_id", "",
    "status", "queued",
)


def _job_data(d: Delivery) -> bytes:
    """The zlib-compressed JSON call, as ``Job.to_dict`` stores it (``zlib.decompress`` reads it back).

    A 1 KiB window and ``memLevel`` 2 instead of zlib's defaults (32 KiB, 8): as small an output for a
    job-sized input (and any zlib reader takes it), but a compressor state of a few KiB instead of the
    ~256 KiB ``zlib.compress`` allocates and clears on every call (12-16 us against 80-120 us per job here).
    """
    compressor = zlib.compressobj(6, zlib.DEFLATED, 10, 2)
    return compressor.compress(f"[{_DATA_PREFIX}{json.dumps(d.envelope)}], {{}}]".encode()) + compressor.flush()


def _variable_fields(d: Delivery) -> list[str]:
    meta = {k: v for k, v in d.meta.items() if not k.endswith("_ttl")}
    meta["max_retries"] = d.retries
    fields = [
        "origin", d.queue,
        "description", d.description,
        "timeout", str(d.timeout),
        "result_ttl", str(d.meta.get("result_ttl", 86400)),
        "failure_ttl", str(d.meta.get("failure_ttl", 7 * 86400)),
        "meta", json.dumps(meta),
    ]
    if d.retries:
        intervals = backoff_intervals(d.retries, base=d.retry_base)
        fields += ["retries_left", str(d.retries), "retry_intervals", json.dumps(intervals)]
    return fields


def _lua_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# One atomic script per request. KEYS: rq:queues, the intake counters hash (enqueued / duplicates / skipped
# per process, for /metrics), then 4 per delivery (loop-guard key, ledger key, job key, queue key).
# ARGV: dedupe ttl, job key prefix, enqueue time, queue key prefix, then 4 per delivery: job id, "1" if its guard
# key applies, the compressed job data, and the job's other fields as a JSON array (one argument instead
# of a dozen: redis-py packs every argument in Python). The constant fields are written into the script
# from _CONSTANT_FIELDS. Reply: per delivery, status (0 skipped, 1 enqueued, 2 duplicate) and job id. A
# delivery's job is written before its ledger entry, so an error part-way never leaves a claim without its
# job; Redis runs the whole script before any other command.
_ADMIT_LUA = """
local ttl, prefix, stamp, queue_prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local reply = {}
for i = 1, (#KEYS - 2) / 4 do
  local k, a = 3 + (i - 1) * 4, 5 + (i - 1) * 4
  local job_id = ARGV[a]
  local process = string.sub(KEYS[k + 3], #queue_prefix + 1)
  if ARGV[a + 1] == '1' and redis.call('EXISTS', KEYS[k]) == 1 then
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
      redis.call('HSET', KEYS[k + 2], @CONSTANT_FIELDS@,
                 'created_at', stamp, 'enqueued_at', stamp, 'data', ARGV[a + 2], unpack(cjson.decode(ARGV[a + 3])))
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
""".replace("@CONSTANT_FIELDS@", ", ".join(_lua_string(f) for f in _CONSTANT_FIELDS))
_ADMIT_SHA = hashlib.sha1(_ADMIT_LUA.encode()).hexdigest()


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
    keys: list[str] = [_QUEUES_KEY, INTAKE_COUNTERS_KEY]
    args: list[Any] = [dedupe_ttl, _JOB_PREFIX, _rq_timestamp(datetime.now(UTC)), _QUEUE_PREFIX]
    for i, d in enumerate(deliveries):
        guard = guard_keys[i] if guard_keys is not None else None
        job_id = d.job_id
        keys += [guard or "", _ledger_key(d.dedupe_key), _JOB_PREFIX + job_id, _QUEUE_PREFIX + d.queue]
        args += [job_id, "1" if guard else "0", _job_data(d), json.dumps(_variable_fields(d))]
    try:
        reply = _run_script(connection, keys, args)
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


def _pack(*parts: str | bytes | int) -> bytes:
    """One command in RESP, the way ``Connection.pack_command`` writes it, for this module's own arguments.

    redis-py packs through its encoder argument by argument (~20 us for the script's 17 arguments here);
    the script's arguments are only ``str``, ``bytes`` and ``int``, which need none of its other cases.
    """
    chunks = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        chunks.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(chunks)


_SCRIPT_LOAD = [_pack("SCRIPT", "LOAD", _ADMIT_LUA)]


class _ScriptConnections:
    """Connections kept aside, per Redis client and per process, for the enqueue script only.

    Taking a connection from redis-py's pool costs two locks, a fork check, observability hooks and a
    non-blocking read to prove the connection clean (three system calls), around a request whose
    only Redis work is one ``EVALSHA``. These connections are made from the client's own pool settings
    (host, TLS, password, database, timeouts, health checks) and only ever hold a whole exchange: one
    that fails part-way is disconnected, never reused half-read. A list's ``pop`` and ``append`` are
    atomic, so threads each get their own connection; a forked child starts with none (the parent's
    sockets stay the parent's). One more connection per web worker process than the pool alone.
    """

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._idle: weakref.WeakKeyDictionary[redis.Redis, list[Any]] = weakref.WeakKeyDictionary()

    def take(self, client: redis.Redis) -> Any:
        if self._pid != os.getpid():
            self._pid, self._idle = os.getpid(), weakref.WeakKeyDictionary()
        idle = self._idle.get(client)
        if idle:
            try:
                return idle.pop()
            except IndexError:  # another thread took the last one
                pass
        pool = client.connection_pool
        return pool.connection_class(**pool.connection_kwargs)

    def give_back(self, client: redis.Redis, conn: Any) -> None:
        self._idle.setdefault(client, []).append(conn)


_script_connections = _ScriptConnections()


def _run_script(connection: redis.Redis, keys: list[str], args: list[Any]) -> Any:
    """``EVALSHA`` on a connection of its own, loading the script first if Redis lost it (restart, flush).

    This does not go through ``Redis.evalsha``: redis-py 8 wraps every command in retry, event and
    metrics layers that cost ~100 us of CPU per call here, as much as the rest of the enqueue. No retry
    is wanted anyway: a connection error is answered with an error, so Salesforce retries the whole
    message, and a script that did run is then answered as a duplicate.
    """
    command = [_pack("EVALSHA", _ADMIT_SHA, len(keys), *keys, *args)]  # send_packed_command takes a list of chunks
    conn = _script_connections.take(connection)
    try:
        try:
            conn.send_packed_command(command)
            reply = conn.read_response()
        except redis.exceptions.NoScriptError:
            conn.send_packed_command(_SCRIPT_LOAD)
            conn.read_response()
            conn.send_packed_command(command)
            reply = conn.read_response()
    except redis.exceptions.ResponseError:
        _script_connections.give_back(connection, conn)  # an error reply was read whole: the connection is clean
        raise
    except BaseException:
        conn.disconnect()  # a half-read reply must never be read by the next request
        raise
    _script_connections.give_back(connection, conn)
    return reply


def enqueue_deliveries(
    connection: redis.Redis, deliveries: Sequence[Delivery], *, dedupe_ttl: int
) -> list[Enqueued]:
    """Enqueue every delivery that is new, in one transaction; report duplicates.

    Returns one :class:`Enqueued` per delivery, in order (:func:`admit` without
    a loop guard). Raises :class:`EnqueueFailed` when Redis refused or is
    unreachable. The transaction is all or nothing: either nothing was written
    (no job, no ledger entry) and Salesforce's retry is taken as new, or, when
    only the reply was lost, every job was written and the retry is answered
    as their duplicate.
    """
    return admit(connection, deliveries, dedupe_ttl=dedupe_ttl)  # type: ignore[return-value]


def fetch_job(connection: redis.Redis, job_id: str) -> Job | None:
    """The job with that id, or None."""
    try:
        return Job.fetch(job_id, connection=connection, serializer=SERIALIZER)
    except Exception:  # rq raises NoSuchJobError, or a decode error for a foreign key
        return None
