"""The one function every job runs through: ``workers.runner.execute(envelope)``.

The receiver enqueues a JSON job envelope (never pickle; the contract is
:class:`services.envelope.Envelope`). ``execute`` reads it back, looks the
process up in the registry, binds the log context (job id, process, org id,
record id, attempt) so every line the job logs carries them, calls the
process's handler and sorts failures:

* :class:`~services.errors.PermanentJobError` fails the job at once (RQ's
  remaining retries are cancelled): a corrupt image or ``NOT_FOUND`` will not
  get better by waiting.
* Anything else is left to RQ's ``Retry`` (jittered exponential backoff set
  at enqueue time); the worker never sleeps on it. That includes rq's
  ``JobTimeoutException`` (error code ``JobTimeoutException``): a timeout is
  not the input's fault.

Under the supervisor (``workers/supervisor.py``) the handler runs inside the
work process's :class:`~workers.supervisor.JobDeadline`, so a handler stuck in
C code past the job timeout (where rq's SIGALRM cannot reach it) is ended by
the supervisor and fails as a timeout too.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import redis
from rq import get_current_job
from rq.job import Job
from rq.suspension import is_suspended, suspend

from services import keys
from services.backfill import SOURCE as BACKFILL_SOURCE
from services.backfill import runs as backfill_runs
from services.envelope import Envelope
from services.errors import JobDeferred, JobSkipped, MalformedEnvelope, PermanentJobError, UnknownProcess
from services.logs import event, log_context
from services.ops import counters as metrics
from services.processes import PROCESSES
from workers.context import JobContext, worker_settings
from workers.supervisor import job_deadline

logger = logging.getLogger(__name__)


def _attempt(job: Job | None) -> tuple[int, bool]:
    """(attempt number, whether no retry follows a failure of this attempt)."""
    if job is None:
        return 1, True
    max_retries = int(job.meta.get("max_retries", 0))
    left = job.retries_left if job.retries_left is not None else 0
    return max_retries - left + 1, left <= 0


def execute(raw_envelope: dict[str, Any]) -> dict[str, Any]:
    """Run one job envelope; return the handler's result (stored by RQ as JSON)."""
    job = get_current_job()
    try:
        envelope = Envelope.from_json(raw_envelope)
    except MalformedEnvelope:
        _fail_now(job, MalformedEnvelope.code)
        raise
    name = envelope.process
    process = PROCESSES.get(name)
    if process is None:
        _fail_now(job, UnknownProcess.code)
        raise UnknownProcess(f"No process named {name!r} is registered in this worker.")
    payload = dict(envelope.payload)
    attempt, final = _attempt(job)
    ctx = JobContext(
        job_id=job.id if job else "inline",
        process=name,
        envelope=envelope,
        settings=worker_settings(),
        connection=job.connection if job else redis.Redis(),
        attempt=attempt,
        final_attempt=final,
    )
    with log_context(job_id=ctx.job_id, process=name, org_id=ctx.org_id, record_id=envelope.record_id,
                     attempt=attempt, request_id=envelope.request_id):
        started = time.monotonic()
        queue_wait = metrics.queue_wait_seconds(job)
        event(logger, "job started", source=envelope.source)

        def finished(outcome: str, error_code: str | None = None) -> None:
            if job is None:
                return
            job.meta["attempts"] = attempt  # what /jobs/<id> reports: attempts that ran, not retries spent
            if error_code:
                job.meta["error_code"] = error_code  # `offload jobs list --error-code` reads it
            job.save_meta()
            metrics.job_finished(ctx.connection, name, outcome, time.monotonic() - started, queue_wait)
            if ctx._salesforce is not None:
                metrics.salesforce_calls(ctx.connection, ctx._salesforce.calls)
            if envelope.backfill_run and outcome in _FINAL_OUTCOMES:
                backfill_runs.note_outcome(ctx.connection, envelope.backfill_run, ctx.job_id, _FINAL_OUTCOMES[outcome])

        try:
            if envelope.backfill_run and backfill_runs.is_cancelled(ctx.connection, envelope.backfill_run):
                raise JobSkipped(f"Backfill run {envelope.backfill_run} was cancelled.", code="BACKFILL_CANCELLED")
            with _deadline(job):
                result = process.load_handler()(payload, ctx)
            # Inside the try: a completion event Salesforce would not take makes this attempt a retry.
            _complete(ctx, "Succeeded", result, None)
        except JobSkipped as exc:
            event(logger, "job skipped", code=exc.code, reason=exc.message)
            if job is not None:
                job.meta["skipped"] = {"code": exc.code, "reason": exc.message}
            finished("skipped", exc.code)
            _complete(ctx, "Skipped", None, f"{exc.code}: {exc.message}")
            return {}
        except JobDeferred as exc:
            if job is not None and job.retries_left is not None:
                # rq spends a retry on the reschedule that follows; a pause is not a failed attempt.
                job.retries_left += 1
            pause_workers(ctx.connection, exc.defer_seconds, f"{exc.code}: {exc.message}")
            event(logger, "job deferred; workers pause", logging.WARNING, code=exc.code, reason=exc.message,
                  pause_s=exc.defer_seconds)
            finished("deferred", exc.code)
            raise
        except PermanentJobError as exc:
            if job is not None:
                job.retries_left = 0  # RQ reads this right after we raise: no retry for a permanent error
            event(logger, "job failed permanently", logging.WARNING, code=exc.code, error=exc.message)
            finished("failed", exc.code)
            _complete(ctx, "Failed", None, f"{exc.code}: {exc.message}")
            raise
        except Exception as exc:
            code = getattr(exc, "code", None) or type(exc).__name__
            level = logging.ERROR if final else logging.WARNING
            event(logger, "job attempt failed", level, error=f"{type(exc).__name__}: {exc}", will_retry=not final)
            finished("failed" if final else "retried", code)
            if final:
                _complete(ctx, "Failed", None, f"{code}: {exc}")
            raise
        event(logger, "job succeeded", duration_ms=round((time.monotonic() - started) * 1000, 1))
        finished("succeeded")
        return result


_FINAL_OUTCOMES = {"succeeded": "done", "failed": "failed", "skipped": "skipped"}
"""A job attempt's outcome -> the backfill run's count it settles (retried and deferred attempts settle nothing)."""


def pause_workers(connection: redis.Redis, seconds: int, reason: str = "") -> None:
    """Suspend every worker for ``seconds`` with rq's own suspension (``rq suspend --duration``), so queued jobs
    stay queued instead of each one calling Salesforce to be told the same; an operator's suspension is left
    alone (https://python-rq.org/docs/workers/#suspending-and-resuming). ``reason`` is kept as long as the
    pause, for ``offload jobs``."""
    if not is_suspended(connection):
        suspend(connection, ttl=seconds)
        if reason:
            connection.set(keys.PAUSE_REASON, reason, ex=seconds)


def _deadline(job: Job | None) -> contextlib.AbstractContextManager[None]:
    """The supervisor's hard deadline for this job's handler (nothing outside a supervised work process)."""
    deadline = job_deadline()
    if job is None or deadline is None or not job.timeout or job.timeout < 0:
        return contextlib.nullcontext()
    return deadline.watch(float(job.timeout))


def _fail_now(job: Job | None, code: str) -> None:
    """No retry for this job: it can never run (RQ reads ``retries_left`` right after we raise)."""
    if job is not None:
        job.retries_left = 0
        job.meta["error_code"] = code
        job.save_meta()


def _complete(ctx: JobContext, status: str, result: dict[str, Any] | None, error: str | None) -> None:
    """Publish the completion Platform Event when one is configured (see :mod:`workers.completion`)."""
    if not ctx.settings.completion_event or ctx.envelope.source == BACKFILL_SOURCE:
        # A backfill of years of photos must not notify every uploader once per file; its progress is the run's.
        return
    from workers.completion import publish_completion

    publish_completion(ctx, status=status, result=result, error=error)
