"""``GET /openapi.json``: the OpenAPI 3.0.3 document Salesforce External Services imports.

Generated from the process registry, so a new process appears here with no
edits. Shaped for External Services (Salesforce Help: "Schema Definitions",
https://help.salesforce.com/s/articleView?id=platform.external_services_schema_def_definition.htm,
its limits, https://help.salesforce.com/s/articleView?id=platform.external_services_schema_def_limits.htm,
and the HTTP Callout considerations,
https://help.salesforce.com/s/articleView?id=platform.flow_http_callout_considerations.htm): OpenAPI 3.0 (not
3.1), JSON bodies only, one short unique camelCase ``operationId`` per
operation, flat named schemas, integers and strings only (no float/long), no
``oneOf``/``anyOf``/``nullable`` tricks. Success is 2xx because a Flow HTTP
Callout sends any status >= 300 down its fault path.

``getJob`` is a GET without a body; Salesforce's External Services page says "A GET
method with an empty request body results in a validation error" ("Schema Definitions",
above; the wording is unclear). If an org refuses it, delete that operation from the imported
spec: callouts work without it.
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, request
from marshmallow import Schema, fields

from services.processes import PROCESSES
from services.receiver.runtime import get_runtime

bp = Blueprint("openapi", __name__)


class JobAccepted(Schema):
    """Answer to a callout: the job and where to ask about it."""

    jobId = fields.String(metadata={"description": "Id of the job (absent when skipped)."})
    status = fields.String(metadata={"description": "queued, started, finished, failed or skipped."})
    statusUrl = fields.String(metadata={"description": "GET this URL for the job's progress (absent when skipped)."})
    duplicate = fields.Boolean(metadata={"description": "True when this request repeats an earlier one."})
    reason = fields.String(metadata={"description": "Why the request was skipped, if it was."})


class ErrorDetail(Schema):
    code = fields.String(metadata={"description": "Stable error code, e.g. VALIDATION_FAILED."})
    message = fields.String(metadata={"description": "What went wrong and what to change."})
    fields_ = fields.Dict(
        data_key="fields", keys=fields.String(), values=fields.List(fields.String()),
        metadata={"description": "Messages per request field, for validation errors."},
    )


class ErrorBody(Schema):
    """Every 4xx/5xx answer."""

    error = fields.Nested(ErrorDetail)


class JobStatus(Schema):
    """A job's state."""

    jobId = fields.String()
    process = fields.String()
    status = fields.String(metadata={"description": "queued, started, deferred, scheduled, finished or failed."})
    source = fields.String(metadata={"description": "callout or outbound."})
    recordId = fields.String()
    enqueuedAt = fields.String(metadata={"format": "date-time"})
    startedAt = fields.String(metadata={"format": "date-time"})
    endedAt = fields.String(metadata={"format": "date-time"})
    attempts = fields.Integer()
    result = fields.Dict(metadata={"description": "What the job reported (process-specific), once finished."})
    error = fields.String()


def _schema_name(schema: type[Schema]) -> str:
    return schema.__name__


def _errors() -> dict[str, Any]:
    return {
        str(status): {"description": text, "content": {"application/json": {"schema": "ErrorBody"}}}
        for status, text in (
            (400, "Invalid JSON or fields (see error.fields)."),
            (401, "Missing, stale or mismatched signature or key."),
            (404, "Unknown process or job."),
            (413, "Body too large."),
            (415, "Not application/json."),
            (422, "IDEMPOTENCY_KEY_REUSED: the Idempotency-Key was used before with a different body."),
            (503, "The queue is unavailable; try again."),
        )
    }


def build_spec(server_url: str) -> dict[str, Any]:
    """The OpenAPI document for every registered process."""
    spec = APISpec(
        title="Offload",
        version="1.0.0",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin(schema_name_resolver=_schema_name)],
        info={"description": "Hand work from Salesforce to Offload's workers. Authenticate with the "
                             "X-Offload-Signature header (set by the Named Credential; a signed body must "
                             "carry sentAt) or a Bearer key."},
        servers=[{"url": server_url}],
    )
    for schema in (JobAccepted, ErrorDetail, ErrorBody, JobStatus):
        spec.components.schema(schema.__name__, schema=schema)
    for process in sorted(PROCESSES.values(), key=lambda p: p.name):
        request_name = _request_name(process.operation_id)
        spec.components.schema(request_name, schema=process.schema)
        spec.path(
            path=f"/callouts/{process.name}",
            operations={"post": {
                "operationId": process.operation_id,
                "summary": process.summary,
                "requestBody": {"required": True,
                                "content": {"application/json": {"schema": request_name}}},
                "responses": {
                    "202": {"description": "Queued.", "content": {"application/json": {"schema": "JobAccepted"}}},
                    "200": {"description": "Duplicate of an earlier request, or skipped.",
                            "content": {"application/json": {"schema": "JobAccepted"}}},
                    **_errors(),
                },
            }},
        )
    spec.path(
        path="/jobs/{jobId}",
        operations={"get": {
            "operationId": "getJob",
            "summary": "Status, timings and outcome of a job.",
            "parameters": [{"name": "jobId", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": {"description": "The job.", "content": {"application/json": {"schema": "JobStatus"}}},
                **{k: v for k, v in _errors().items() if k in {"401", "404"}},
            },
        }},
    )
    document = spec.to_dict()
    schemas = document["components"]["schemas"]
    for name in ("JobAccepted", "ErrorDetail", "ErrorBody", "JobStatus"):
        # Answers may gain fields; a closed response schema would break clients that validate.
        schemas[name].pop("additionalProperties", None)
    for process in PROCESSES.values():
        request_schema = schemas[_request_name(process.operation_id)]
        request_schema["description"] = " ".join((process.schema.__doc__ or "").split())
    return document


def _request_name(operation_id: str) -> str:
    return operation_id[0].upper() + operation_id[1:] + "Request"


@bp.get("/openapi.json")
def openapi_json() -> dict[str, Any]:
    """Public on purpose: it holds no secrets and External Services fetches it when you register."""
    public_url = get_runtime().settings.public_url
    return build_spec(public_url or request.url_root.rstrip("/"))
