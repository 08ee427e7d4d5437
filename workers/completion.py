"""Tell Salesforce a job ended: the ``OFFLOAD_COMPLETION_EVENT`` Platform Event.

Fields (the ``apex/`` metadata defines them on ``Offload_Job_Event__e``):
``Job_Id__c``, ``Process__c``, ``Record_Id__c``, ``Status__c`` (Succeeded |
Failed | Skipped), ``Result__c`` (JSON) and ``Error__c``.

Delivery is at least once. A busy org (503, a timeout) is asked again
``PUBLISH_ATTEMPTS`` times; if it still refuses and the job has retries left,
the job fails with ``COMPLETION_NOT_PUBLISHED`` and is retried: its renditions
are found made, and the retry publishes. A kill during a publish that Salesforce
did commit therefore means a second event with the same ``Job_Id__c``:
subscribers dedupe on it (``apex/``'s handler does). An org without the event
type (``NOT_FOUND``/``INVALID_TYPE``), a refusal that retrying won't fix, or a
failure on the job's last attempt is a warning in the log: the job's own outcome
stands.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from services.errors import CompletionNotPublished, OffloadError, TransientJobError
from services.logs import event

logger = logging.getLogger(__name__)

PUBLISH_ATTEMPTS = 3
"""Tries within one job attempt, 0.5 s then 1 s apart: a blip should not cost a whole job retry."""

LONG_TEXT_LIMIT = 131_072
"""Characters in a Long Text Area field; longer results are cut (with a note) rather than refused."""


def event_fields(job_id: str, process: str, record_id: str | None, status: str,
                 result: dict[str, Any] | None, error: str | None) -> dict[str, Any]:
    """The Platform Event's field values."""
    result_json = json.dumps(result, separators=(",", ":")) if result is not None else None
    if result_json and len(result_json) > LONG_TEXT_LIMIT:
        result_json = json.dumps({"truncated": True, "renditionCount": (result or {}).get("renditionCount")})
    return {
        "Job_Id__c": job_id,
        "Process__c": process,
        "Record_Id__c": record_id,
        "Status__c": status,
        "Result__c": result_json,
        "Error__c": (error or "")[:LONG_TEXT_LIMIT] or None,
    }


def publish_completion(ctx: Any, *, status: str, result: dict[str, Any] | None, error: str | None) -> None:
    """Publish the completion event for the job in ``ctx``.

    Raises :class:`CompletionNotPublished` only when Salesforce stayed busy and the job can still be retried.
    """
    fields = event_fields(ctx.job_id, ctx.process, ctx.envelope.record_id, status, result, error)
    for attempt in range(1, PUBLISH_ATTEMPTS + 1):
        try:
            ctx.salesforce().publish_event(ctx.settings.completion_event, fields)
        except TransientJobError as exc:
            if attempt < PUBLISH_ATTEMPTS:
                time.sleep(0.5 * attempt)
                continue
            if status == "Succeeded" and not ctx.final_attempt:
                raise CompletionNotPublished(
                    f"The job's work is done, but Salesforce did not take its completion event "
                    f"({ctx.settings.completion_event}): {exc.message} The job runs again to publish it.") from exc
            event(logger, "completion event not published", logging.ERROR, event_type=ctx.settings.completion_event,
                  code=exc.code, error=exc.message)
        except OffloadError as exc:
            missing = exc.code in {"NOT_FOUND", "INVALID_TYPE"}
            event(logger, "completion event not published", logging.WARNING,
                  event_type=ctx.settings.completion_event, code=exc.code,
                  hint="deploy apex/ (it defines the event)" if missing else exc.message)
        except Exception as exc:  # an unexpected failure to publish must never fail a finished job
            event(logger, "completion event not published", logging.WARNING, error=f"{type(exc).__name__}: {exc}")
        else:
            event(logger, "completion event published", event_type=ctx.settings.completion_event, status=status)
        return


def publish_for_abandoned(connection: Any, job_id: str, error: str) -> None:
    """The ``Failed`` event of a job whose last attempt died with its work process (kill -9, OOM, a hard
    timeout): the runner never got to publish it, so the supervisor does. Nothing for a job that still has
    a retry coming, or when no completion event is configured; never raises."""
    from rq.job import JobStatus

    from services.envelope import Envelope
    from services.logs import log_context
    from services.queue import fetch_job
    from workers.context import JobContext, worker_settings

    try:
        job = fetch_job(connection, job_id)
        envelope = Envelope.of_job_args(job.args) if job is not None else None
        settings = worker_settings()
        if job is None or envelope is None or not settings.completion_event:
            return
        if job.get_status() != JobStatus.FAILED:
            return
        ctx = JobContext(job_id=job_id, process=envelope.process, envelope=envelope, settings=settings,
                         connection=connection, final_attempt=True)
        with log_context(job_id=job_id, process=envelope.process, record_id=envelope.record_id):
            publish_completion(ctx, status="Failed", result=None, error=error)
    except Exception as exc:  # the supervisor must go on supervising
        event(logger, "completion event of an abandoned job not published", logging.WARNING, job_id=job_id,
              error=f"{type(exc).__name__}: {exc}")
