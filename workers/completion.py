"""Tell Salesforce a job ended: the ``OFFLOAD_COMPLETION_EVENT`` Platform Event.

Fields (the ``apex/`` metadata defines them on ``Offload_Job_Event__e``):
``Job_Id__c``, ``Process__c``, ``Record_Id__c``, ``Status__c`` (Succeeded |
Failed), ``Result__c`` (JSON) and ``Error__c``. Publishing is best effort: an
org without the event type (``NOT_FOUND``/``INVALID_TYPE``) or a failed publish
is a warning in the log, never a job failure; the job's own outcome stands.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from services.errors import OffloadError
from services.logs import event

logger = logging.getLogger(__name__)

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
    """Publish the completion event for the job in ``ctx``; log, never raise."""
    fields = event_fields(ctx.job_id, ctx.process, ctx.envelope.record_id, status, result, error)
    try:
        ctx.salesforce().publish_event(ctx.settings.completion_event, fields)
    except OffloadError as exc:
        missing = exc.code in {"NOT_FOUND", "INVALID_TYPE"}
        event(logger, "completion event not published", logging.WARNING, event_type=ctx.settings.completion_event,
              code=exc.code, hint="deploy apex/ (it defines the event)" if missing else exc.message)
    except Exception as exc:  # publishing must never fail a finished job
        event(logger, "completion event not published", logging.WARNING, error=f"{type(exc).__name__}: {exc}")
    else:
        event(logger, "completion event published", event_type=ctx.settings.completion_event, status=status)
