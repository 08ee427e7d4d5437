"""JSON callouts from Apex and Flow: ``POST /callouts/<process>`` and ``GET /jobs/<jobId>``.

A Flow HTTP Callout takes any status >= 300 to its fault path
(https://help.salesforce.com/s/articleView?id=platform.flow_http_callout_considerations.htm), so success is 202
(queued) or 200 (a duplicate, or skipped), and
only refusals are 4xx. Errors are ``{"error": {"code", "message", "fields", "fieldErrors"}}``.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

from flask import Blueprint, Request, g, request
from marshmallow import ValidationError
from werkzeug.sansio.utils import get_current_url

from services.errors import InvalidRequest, JobNotFound, UnknownProcess, UnsupportedMediaType
from services.logs import event, log_context
from services.ops.jobview import describe_job
from services.processes import PROCESSES
from services.processes.base import Process
from services.queue import fetch_job
from services.queue.dedupe import payload_digest
from services.receiver import intake
from services.receiver.auth import authenticate_callout, check_fresh, require_sent_at
from services.receiver.runtime import Runtime, get_runtime

logger = logging.getLogger(__name__)

bp = Blueprint("callouts", __name__)


def process_named(name: str) -> Process:
    """The registered process, or :class:`UnknownProcess` (404) naming the known ones (every JSON door)."""
    process = PROCESSES.get(name)
    if process is None:
        raise UnknownProcess(
            f"No process named {name!r}. Known processes: {', '.join(sorted(PROCESSES))}.",
            fields={"process": ["Unknown."]},
        )
    return process


def json_body(req: Request, body: bytes) -> Any:
    """The body as JSON, refused (415/400) unless it is ``application/json`` and parses."""
    # The exact header Apex and Flow send needs no parsing; anything else goes through werkzeug's parser.
    mimetype = "application/json" if req.environ.get("CONTENT_TYPE") == "application/json" else req.mimetype or ""
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise UnsupportedMediaType(
            f"Send Content-Type: application/json (got {req.content_type or 'none'})."
        )
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"The body is not valid JSON: {exc}", code="MALFORMED_JSON") from None
    except RecursionError:  # json.loads recurses once per nested array or object
        raise InvalidRequest("The body's JSON is nested too deeply; a request is a flat object.",
                             code="MALFORMED_JSON") from None


@bp.post("/callouts/<name>")
def submit_callout(name: str) -> tuple[dict[str, Any], int]:
    """Authenticate, validate, enqueue, answer: 202 queued, 200 duplicate or skipped."""
    req: Request = request._get_current_object()  # type: ignore[attr-defined]  # one context lookup, not one per use
    runtime = get_runtime()
    process = process_named(name)
    body = intake.read_body(req)
    g.request_id = request_id = intake.request_id(req)
    with log_context(process=name, request_id=request_id):
        method = authenticate_callout(req, body, runtime.settings)
        data = json_object(req, body)
        if method == "signature":
            require_sent_at(data)
        check_fresh(data, runtime.settings)
        payload = load_payload(process, data)
        idempotency_key = _idempotency_key(req)
        if idempotency_key is not None:
            intake.bind_idempotency_key(runtime, process, idempotency_key, payload_digest(payload))
        # A signed request is deduped on what was signed (the payload, whatever its sentAt), never on a
        # header a replayer can change; a Bearer caller's Idempotency-Key names its work itself.
        dedupe_key = f"idem:{name}:{idempotency_key}" if idempotency_key and method != "signature" else None
        planned = intake.plan(runtime, process, payload, source="callout", dedupe_key=dedupe_key,
                              request_id=request_id)
        [outcome] = intake.submit(runtime, [planned])
        return answer(runtime, req, outcome, "callout")


def json_object(req: Request, body: bytes) -> dict[str, Any]:
    """The body as a JSON object (:func:`json_body`), refused with 400 when it is another JSON value."""
    data = json_body(req, body)
    if not isinstance(data, dict):
        raise InvalidRequest("The body must be a JSON object.", fields={"_schema": ["Not an object."]})
    return data


def load_payload(process: Process, data: dict[str, Any]) -> dict[str, Any]:
    """Validate a request body against the process's schema (400 VALIDATION_FAILED with ``fields``)."""
    try:
        return intake.schema_for(process.schema).load(data)
    except ValidationError as exc:
        raise InvalidRequest(
            f"The {process.name} request is not valid; see fields.", code="VALIDATION_FAILED",
            fields=exc.messages_dict,
        ) from None


def answer(runtime: Runtime, req: Request, outcome: intake.Outcome, what: str) -> tuple[dict[str, Any], int]:
    """The JSON answer of every JSON door: 202 queued, 200 duplicate (with the original job) or skipped.

    ``what`` names the door in the log lines (``callout``, ``applink invocation``).
    """
    if outcome.skipped:
        event(logger, f"{what} skipped", record_id=outcome.record_id, reason=outcome.skipped)
        return {"status": "skipped", "reason": outcome.skipped}, 200
    assert outcome.job_id is not None
    root = f"{runtime.settings.public_url}/" if runtime.settings.public_url else \
        _root_url(req.scheme, req.host, req.root_path)
    status_url = f"{root}jobs/{outcome.job_id}"
    if outcome.duplicate:
        job = fetch_job(runtime.redis, outcome.job_id)
        status = job.get_status(refresh=False) if job else "unknown"
        with log_context(job_id=outcome.job_id, record_id=outcome.record_id):
            event(logger, f"duplicate {what} answered with the original job")
        return {"jobId": outcome.job_id, "status": str(getattr(status, "value", status)),
                "statusUrl": status_url, "duplicate": True}, 200
    if logger.isEnabledFor(logging.INFO):
        with log_context(job_id=outcome.job_id, record_id=outcome.record_id):
            event(logger, f"{what} enqueued")
    return {"jobId": outcome.job_id, "status": "queued", "statusUrl": status_url}, 202


@functools.lru_cache(maxsize=64)
def _root_url(scheme: str, host: str, root_path: str) -> str:
    """``request.url_root``, computed once per scheme, host and mount point instead of once per request.

    Together with the job id this is ``url_for("callouts.job_status", job_id=..., _external=True)`` without
    the URL map (job ids are URL-safe: ``<queue>-<hex>``); a test checks the two agree. Building it costs
    ~30 us a request (IRI decoding); a dyno answers under one or two host names. The cache is bounded, so a
    client sending many ``Host`` headers only evicts entries.
    """
    return get_current_url(scheme, host, root_path)


def _idempotency_key(req: Request) -> str | None:
    key = (intake.header(req, "Idempotency-Key") or "").strip()
    if not key:
        return None
    if len(key) > 255:
        raise InvalidRequest(
            "Idempotency-Key is longer than 255 characters.", fields={"Idempotency-Key": ["Too long."]}
        )
    return key


@bp.get("/jobs/<job_id>")
def job_status(job_id: str) -> tuple[dict[str, Any], int]:
    """Status, timings, attempts, and result or error of one job (same credentials as callouts)."""
    runtime = get_runtime()
    authenticate_callout(request, b"", runtime.settings)
    job = fetch_job(runtime.redis, job_id) if len(job_id) <= 200 else None
    if job is None:
        raise JobNotFound(f"No job {job_id!r} (finished jobs are kept for a day).")
    return describe_job(job), 200
