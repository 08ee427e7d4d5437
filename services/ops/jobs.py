"""What an operator does with jobs, without click or Flask: find, show, requeue, purge.

``offload jobs`` (:mod:`services.ops.cli`) and the dashboard (:mod:`services.receiver.dashboard`)
both call this module, so a requeue means the same thing wherever it is done:

* **JSON everywhere.** Jobs are read and re-saved with :data:`services.queue.SERIALIZER`.
  rq's own ``requeue_job(id, connection)`` (what rq-dashboard 0.9 calls) reads a job with the
  pickle serializer, fails to decode its JSON ``meta`` and saves it back pickled, so the worker
  then loses ``max_retries``; going through :func:`requeue` avoids that.
* **A requeued job gets its retry budget back.** The operator fixed the cause; if a transient
  error comes back the job should back off again rather than fail on its first attempt.
* **Nothing secret is shown.** Envelopes hold no secrets by design (an Outbound Message's
  session id is stored encrypted and the job carries only ``sessionRef``), but the reference is
  still a bearer handle on that ciphertext, so :func:`redact` hides every value whose key looks
  secret, with the same markers the log formatter uses.
* **The error code comes from ``job.meta["error_code"]``** (written by the runner) and, for jobs
  that failed before that existed, is parsed from the exception line (:func:`parse_error_code`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from rq import Queue
from rq.job import Job
from rq.registry import (
    BaseRegistry,
    CanceledJobRegistry,
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)
from rq.results import Result
from rq.suspension import WORKERS_SUSPENDED

from services import errors, keys
from services.clock import utc_iso
from services.envelope import Envelope
from services.errors import JobNotFound, OffloadError
from services.ops.jobview import describe_job
from services.queue import SERIALIZER, fetch_job
from services.redaction import REDACTED, looks_secret, redact, redact_text  # noqa: F401 - part of this API
from services.salesforce.client import API_USAGE_CEILING, latest_usage

REGISTRIES: dict[str, type[BaseRegistry]] = {
    "started": StartedJobRegistry,
    "scheduled": ScheduledJobRegistry,
    "deferred": DeferredJobRegistry,
    "failed": FailedJobRegistry,
    "finished": FinishedJobRegistry,
    "canceled": CanceledJobRegistry,
}
"""Where RQ keeps jobs that are not waiting in a queue, by the name the CLI and metrics use."""

PURGEABLE = ("finished", "failed", "canceled")
"""Registries :func:`purge` empties: jobs that will not run again unless an operator acts."""

_PAGE = 200


class JobNotRequeueable(OffloadError):
    """Only a failed job can be requeued; a queued or running one would run twice."""

    status_code = 409
    code = "JOB_NOT_FAILED"


# --- reading jobs -------------------------------------------------------------------------


@dataclass(frozen=True)
class Pause:
    """Workers are suspended (rq's suspension): for how much longer (None: until resumed), and why if we know."""

    seconds_left: int | None
    reason: str


def pause_status(connection: redis.Redis) -> Pause | None:
    """Whether workers are paused now; an API-ceiling pause names the org's figures."""
    ttl = int(connection.ttl(WORKERS_SUSPENDED))
    if ttl == -2:
        return None
    usage = latest_usage(connection)
    paused_for = connection.get(keys.PAUSE_REASON)
    if usage is not None and usage.fraction >= API_USAGE_CEILING:
        reason = (f"the org has used {usage.used} of {usage.limit} daily API requests "
                  f"(workers pause at {API_USAGE_CEILING:.0%}); they look again when the pause ends")
    elif paused_for:
        reason = paused_for.decode() if isinstance(paused_for, bytes) else str(paused_for)
    else:
        reason = "suspended by an operator (rq suspend); `rq resume` resumes"
    return Pause(ttl if ttl >= 0 else None, reason)


def queue_names(connection: redis.Redis) -> list[str]:
    """Every queue RQ knows of, plus every registered process's queue (so an idle one shows)."""
    from services.backfill import QUEUE as BACKFILL_QUEUE
    from services.processes import PROCESSES

    known = {q.name for q in Queue.all(connection=connection, serializer=SERIALIZER)}
    return sorted(known | {p.queue for p in PROCESSES.values()} | {BACKFILL_QUEUE})


def envelope_of(job: Job) -> dict[str, Any]:
    """The job's envelope (its one argument), or ``{}`` when the job is not one of ours."""
    try:
        args = job.args
    except Exception:  # a foreign job (pickled, or a function we don't know): nothing to show
        return {}
    return args[0] if args and isinstance(args[0], dict) else {}


def exception_text(job: Job) -> str | None:
    """The traceback RQ stored for the job's latest failure."""
    latest = job.latest_result()  # rq 2 keeps a failure's traceback in its Result, not on the job
    return latest.exc_string if latest is not None and latest.exc_string else None


_EXC_HEAD = re.compile(r"^(?:[A-Za-z_][\w]*\.)*(?P<cls>[A-Za-z_]\w*)$")
_CODE_PREFIX = re.compile(r"^(?P<code>[A-Z][A-Z0-9_]{2,}):\s")


def parse_error_code(exc_string: str | None) -> str | None:
    """The error code in a stored traceback, for jobs without ``meta["error_code"]``.

    The last line of a traceback is ``module.ClassName: message``. A message starting with a
    code (``NOT_FOUND: ...``, how the runner words completion events) gives that code; an
    Offload error class gives its ``code`` (``UnknownProcess`` -> ``UNKNOWN_PROCESS``; a
    subclass instance's own code is only in ``meta``); anything else gives the class name
    (``JobTimeoutException``), still good to group by.
    """
    if not exc_string:
        return None
    lines = [line.strip() for line in exc_string.strip().splitlines() if line.strip()]
    if not lines:
        return None
    head, _, message = lines[-1].partition(":")
    match = _EXC_HEAD.match(head.strip())
    if match is None:
        return None
    cls_name = match.group("cls")
    prefixed = _CODE_PREFIX.match(message.strip() + " ")
    if prefixed:
        return prefixed.group("code")
    cls = getattr(errors, cls_name, None)
    if isinstance(cls, type) and issubclass(cls, OffloadError):
        return cls.code
    return cls_name


def error_code(job: Job) -> str | None:
    """The failed job's error code: the runner's ``meta["error_code"]`` first, else parsed."""
    code = job.meta.get("error_code") if isinstance(job.meta, dict) else None
    if code:
        return str(code)
    if job.get_status(refresh=False) != "failed":
        return None
    return parse_error_code(exception_text(job))


def when(job: Job) -> datetime | None:
    """The job's latest moment (ended, started, enqueued or created), for sorting and purging."""
    moment = job.ended_at or job.started_at or job.enqueued_at or job.created_at
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


@dataclass(frozen=True)
class JobFilter:
    """Which jobs ``list`` and bulk ``requeue`` act on."""

    failed_only: bool = False
    process: str | None = None
    error_code: str | None = None

    def sources(self) -> tuple[str, ...]:
        """Registry names to scan (``queued`` is the queue itself); an error code implies failed."""
        if self.failed_only or self.error_code:
            return ("failed",)
        return ("queued", *REGISTRIES)

    def queues(self, connection: redis.Redis) -> list[str]:
        from services.processes import PROCESSES

        if self.process and self.process in PROCESSES:
            return [PROCESSES[self.process].queue]
        return queue_names(connection)

    def matches(self, job: Job) -> bool:
        envelope = Envelope.of_job_args([envelope_of(job)])
        if self.process and (envelope is None or envelope.process != self.process):
            return False
        if self.error_code and (error_code(job) or "").upper() != self.error_code.upper():
            return False
        return True


def _ids_newest_first(connection: redis.Redis, queue: str, source: str) -> Iterator[list[str]]:
    """Pages of job ids in one queue or registry, newest first."""
    if source == "queued":
        ids = Queue(queue, connection=connection, serializer=SERIALIZER).get_job_ids()
        ids.reverse()
        for start in range(0, len(ids), _PAGE):
            yield ids[start:start + _PAGE]
        return
    registry = REGISTRIES[source](queue, connection=connection, serializer=SERIALIZER)
    start = 0
    while True:
        page = registry.get_job_ids(start, start + _PAGE - 1, desc=True, cleanup=False)
        if not page:
            return
        yield page
        start += _PAGE


def iter_jobs(connection: redis.Redis, flt: JobFilter) -> Iterator[Job]:
    """Every job the filter matches, queue by queue and registry by registry (newest first in each)."""
    for queue in flt.queues(connection):
        for source in flt.sources():
            for page in _ids_newest_first(connection, queue, source):
                for job in Job.fetch_many(page, connection=connection, serializer=SERIALIZER):
                    if job is not None and flt.matches(job):
                        yield job


def find_jobs(connection: redis.Redis, flt: JobFilter, limit: int = 50) -> list[Job]:
    """Up to ``limit`` matching jobs, most recent first."""
    found = list(iter_jobs(connection, flt))
    epoch = datetime.min.replace(tzinfo=UTC)
    found.sort(key=lambda job: when(job) or epoch, reverse=True)
    return found[:limit]


def summary(job: Job) -> dict[str, Any]:
    """One row of ``offload jobs list``."""
    described = describe_job(job)
    moment = when(job)
    return {
        "jobId": job.id,
        "status": described["status"],
        "process": described["process"],
        "recordId": described["recordId"],
        "at": utc_iso(moment) if moment else None,
        "errorCode": error_code(job),
    }


def show(job: Job) -> dict[str, Any]:
    """Everything an operator needs about one job, minus secrets (``offload jobs show``)."""
    return {
        **describe_job(job),
        "queue": job.origin,
        "description": job.description,
        "errorCode": error_code(job),
        "envelope": redact(envelope_of(job)),
        "meta": redact(job.meta if isinstance(job.meta, dict) else {}),
        "exception": redact_text(exception_text(job) or "") or None,
    }


# --- changing jobs -------------------------------------------------------------------------


def requeue(connection: redis.Redis, job_or_id: Job | str) -> Job:
    """Put one failed job back on its queue, with its retry budget restored.

    Raises :class:`~services.errors.JobNotFound` or :class:`JobNotRequeueable`.
    """
    job = job_or_id if isinstance(job_or_id, Job) else fetch_job(connection, job_or_id)
    if job is None:
        raise JobNotFound(f"No job {job_or_id!r}; finished and failed jobs are kept for a limited time.")
    registry = FailedJobRegistry(job.origin, connection=connection, serializer=SERIALIZER)
    if job.id not in registry:
        status = job.get_status(refresh=True)
        raise JobNotRequeueable(f"Job {job.id} is {getattr(status, 'value', status)}; only failed jobs are requeued.")
    job.retries_left = int(job.meta.get("max_retries", 0))
    job.meta.pop("error_code", None)
    job.meta["requeued"] = int(job.meta.get("requeued", 0)) + 1
    return registry.requeue(job)


def requeue_matching(connection: redis.Redis, flt: JobFilter, *, dry_run: bool = False) -> list[str]:
    """Requeue every failed job the filter matches; returns their ids."""
    matched = list(iter_jobs(connection, JobFilter(failed_only=True, process=flt.process,
                                                   error_code=flt.error_code)))
    if not dry_run:
        for job in matched:
            requeue(connection, job)
    return [job.id for job in matched]


_AGE_PART = re.compile(r"(\d+)\s*([smhdw])", re.IGNORECASE)
_AGE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_age(text: str) -> timedelta:
    """``7d``, ``12h``, ``1d12h``, ``90m``, ``2w`` -> timedelta; ValueError for anything else."""
    cleaned = text.strip().replace(" ", "")
    parts = _AGE_PART.findall(cleaned)
    if not parts or "".join(n + u for n, u in parts).lower() != cleaned.lower():
        raise ValueError(f"{text!r} is not an age such as 7d, 12h, 90m or 1d12h")
    age = timedelta()
    for number, unit in parts:
        age += timedelta(**{_AGE_UNITS[unit.lower()]: int(number)})
    if age <= timedelta():
        raise ValueError(f"{text!r} must be longer than zero")
    return age


@dataclass
class PurgeReport:
    """What :func:`purge` removed (or would remove, in a dry run), by registry."""

    removed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PURGEABLE, 0))
    stale_ids: int = 0
    """Registry entries whose job hash had already expired (removed too)."""

    @property
    def total(self) -> int:
        return sum(self.removed.values())


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def purge(connection: redis.Redis, older_than: timedelta, *, dry_run: bool = False,
          now: datetime | None = None) -> PurgeReport:
    """Delete finished, failed and canceled jobs whose last moment is older than ``older_than``.

    Removes the job hash, its results stream and its registry entry, in pipelines of
    ``_PAGE`` jobs. Queued, running and scheduled jobs are never touched.
    """
    cutoff = (now or datetime.now(UTC)) - older_than
    report = PurgeReport()
    for queue in queue_names(connection):
        for name in PURGEABLE:
            registry = REGISTRIES[name](queue, connection=connection, serializer=SERIALIZER)
            ids = registry.get_job_ids(cleanup=False)
            for chunk in _chunks(ids, _PAGE):
                pipe = connection.pipeline(transaction=False)
                for job_id, job in zip(chunk, Job.fetch_many(chunk, connection=connection, serializer=SERIALIZER),
                                       strict=True):
                    if job is None:
                        registry.remove(job_id, pipeline=pipe)
                        report.stale_ids += 1
                        continue
                    moment = when(job)
                    if moment is not None and moment > cutoff:
                        continue
                    job.delete(pipeline=pipe, remove_from_queue=False)
                    registry.remove(job.id, pipeline=pipe)
                    pipe.delete(Result.get_key(job.id))
                    report.removed[name] += 1
                if dry_run:
                    pipe.reset()
                else:
                    pipe.execute()
    return report
