"""Salesforce Outbound Messages: ``POST /outbound/<process>`` (SOAP 1.1).

Salesforce retries a message until it gets HTTP 200 with ``<Ack>true</Ack>``,
for up to 24 hours
(https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_om_outboundmessaging_notifications.htm). So
this view first checks the Endpoint URL's ``token`` (see :mod:`services.receiver.auth`), and
answers ``Ack`` true
only after every notification of the message is durably in Redis, in one
transaction; any failure answers a SOAP Fault (HTTP 500) and Salesforce
retries later. A refused message (wrong org, malformed) is also a Fault, with
a reason the admin sees in Setup > Outbound Messages; nothing is enqueued.
"""

from __future__ import annotations

import logging

import redis
from flask import Blueprint, Response, g, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from services import keys
from services.errors import EnqueueFailed, OffloadError, RecordTypeNotAllowed, UnknownProcess, UnsupportedMediaType
from services.logs import event, log_context
from services.processes import PROCESSES
from services.processes.base import Process
from services.receiver import intake
from services.receiver.auth import check_org, check_outbound_token
from services.receiver.runtime import Runtime, get_runtime
from services.receiver.soap import (
    SOAP_CONTENT_TYPE,
    OutboundMessage,
    ack_response,
    fault_response,
    parse_outbound_message,
)
from services.salesforce.sessions import store_session
from services.sfids import to_18

logger = logging.getLogger(__name__)

bp = Blueprint("outbound", __name__)

_SOAP_MIMETYPES = {"text/xml", "application/xml"}


def _soap(body: bytes, status: int) -> Response:
    return Response(body, status=status, content_type=SOAP_CONTENT_TYPE)


@bp.errorhandler(OffloadError)
def _refused(exc: OffloadError) -> Response:
    server_side = exc.status_code >= 500
    event(logger, "outbound message refused", logging.ERROR if server_side else logging.WARNING,
          code=exc.code, reason=exc.message)
    return _soap(fault_response(f"{exc.code}: {exc.message}", server_side=server_side), 500)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    reason = "PAYLOAD_TOO_LARGE: the message is larger than OFFLOAD_MAX_BODY_BYTES" if exc.code == 413 \
        else f"{exc.code}: {exc.description}"
    return _soap(fault_response(reason, server_side=False), 500)


@bp.post("/outbound/<name>")
def receive(name: str) -> Response:
    """Check the token, parse, check the org, enqueue every notification in one transaction, then ACK."""
    runtime = get_runtime()
    g.request_id = request_id = intake.request_id(request)
    with log_context(process=name, request_id=request_id):
        check_outbound_token(request, runtime.settings)
        process = PROCESSES.get(name)
        if process is None:
            raise UnknownProcess(f"No process named {name!r}; check the Outbound Message's Endpoint URL.")
        if request.mimetype not in _SOAP_MIMETYPES:
            raise UnsupportedMediaType(
                f"Outbound Messages are SOAP 1.1 (Content-Type text/xml), got {request.content_type or 'none'}."
            )
        message = parse_outbound_message(intake.read_body(request), max_bytes=runtime.settings.max_body_bytes)
        org_id = check_org(message.organization_id, runtime.settings)
        with log_context(org_id=org_id):
            outcomes = intake.submit(runtime, _plan_all(runtime, process, message, org_id, request_id))
            _record_refusals(runtime, process, outcomes)
            if logger.isEnabledFor(logging.INFO):
                for outcome in outcomes:
                    with log_context(record_id=outcome.record_id, job_id=outcome.job_id):
                        if outcome.refused:
                            pass  # logged by _record_refusals, whatever the log level
                        elif outcome.skipped:
                            event(logger, "notification skipped", reason=outcome.skipped)
                        else:
                            event(logger, "notification duplicate" if outcome.duplicate else "notification enqueued")
            event(logger, "outbound message acknowledged", notifications=len(outcomes))
    return _soap(ack_response(True), 200)


def _plan_all(runtime: Runtime, process: Process, message: OutboundMessage, org_id: str,
              request_id: str | None) -> list[intake.Planned]:
    session = _session_extra(runtime, message)
    schema = intake.schema_for(process.schema)
    planned = []
    for notification in message.notifications:
        try:
            payload = schema.load(process.from_notification(notification.sobject_type, notification.fields))
        except (ValueError, ValidationError) as exc:
            # Refuse this notification alone: a Fault would make Salesforce retry all of up to 100 for 24 h
            # and then drop them, good ones included. It is acknowledged, logged and counted instead.
            detail = exc.messages if isinstance(exc, ValidationError) else str(exc)
            planned.append(intake.Planned(record_id=notification.fields.get("Id"), refused=True, skipped=(
                f"notification {notification.id} ({notification.sobject_type}) cannot start {process.name}: "
                f"{detail}")))
            continue
        try:
            planned.append(intake.plan(
                runtime, process, payload, source="outbound",
                dedupe_key=f"om:{org_id}:{to_18(notification.id)}",
                org_id=org_id, sobject=notification.sobject_type, fields=dict(notification.fields),
                notification_id=notification.id, request_id=request_id, **session,
            ))
        except RecordTypeNotAllowed as exc:
            planned.append(intake.Planned(record_id=notification.fields.get("Id"), refused=True, skipped=(
                f"notification {notification.id} ({notification.sobject_type}): {exc.message}")))
    return planned


def _record_refusals(runtime: Runtime, process: Process, outcomes: list[intake.Outcome]) -> None:
    """Log every refused notification with its reason and count them for ``/metrics`` (one HINCRBY)."""
    refused = [o for o in outcomes if o.refused]
    if not refused:
        return
    for outcome in refused:
        event(logger, "notification refused", logging.WARNING, record_id=outcome.record_id, reason=outcome.skipped)
    try:
        runtime.redis.hincrby(keys.INTAKE_COUNTERS, f"refused|{process.name}", len(refused))
    except redis.RedisError as exc:  # the jobs are enqueued: a lost count must not cost the ACK
        event(logger, "metric not recorded", logging.WARNING, metric="refused", error=type(exc).__name__)


def _session_extra(runtime: Runtime, message: OutboundMessage) -> dict[str, str]:
    """Keep the message's session (encrypted, by reference) only when it is the only way back in."""
    settings = runtime.settings
    if not message.session_id or settings.salesforce_auth_mode is not None or not settings.secret_key:
        return {}
    try:
        ref = store_session(runtime.redis, settings.secret_key, message.session_id)
    except redis.RedisError as exc:
        raise EnqueueFailed("The job queue (Redis) is unavailable; Salesforce will retry.") from exc
    return {"session_ref": ref, "instance_url": message.partner_url or message.enterprise_url or ""}
