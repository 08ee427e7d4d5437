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

What Flow reads is typed. External Services turns a schema without a type into "any type (as Apex
Object)" and ``additionalProperties`` into a map ("Schema Definitions", above), and a Flow Apex-defined
type holds only Boolean, Integer, Long, Decimal, Double, Date, DateTime, String, lists of those, and other
such classes ("Considerations for the Apex-Defined Data Type",
https://help.salesforce.com/apex/HTViewHelpDoc?id=platform.flow_considerations_apex_data_type.htm). So a
job's ``result`` is ``JobResult``: the properties of every process's ``result_schema`` (one job view
serves every process; a name two processes declare differently is an error here, at build time). The
error's messages per request field are sent twice: ``ErrorDetail.fieldErrors``, a list of ``FieldError``
(``field``, ``message``) that Flow reads, and ``ErrorDetail.fields``, the map of field name to messages the
receiver always sent (kept for API clients: its keys are field names, so it can only be a map, which
External Services hands a flow as an untyped Object). A flow branches on ``error.code`` and loops over
``error.fieldErrors``.

``getJob`` is a GET and declares no ``requestBody``: "A GET method with an empty request body results in
a validation error" (same page). Import it with the ``Offload_ApiKey`` Named Credential: the signing
credential's formula signs the body, and a GET has none (apex/README.md, "getJob").
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


class FieldError(Schema):
    """One message about one request field."""

    field = fields.String(metadata={"description": "The request field, e.g. contentVersionId (nested: a.b)."})
    message = fields.String(metadata={"description": "What is wrong with it."})


class ErrorDetail(Schema):
    code = fields.String(metadata={"description": "Stable error code, e.g. VALIDATION_FAILED."})
    message = fields.String(metadata={"description": "What went wrong and what to change."})
    fieldErrors = fields.List(
        fields.Nested(FieldError),
        metadata={"description": "One entry per message about a request field, for validation errors. "
                                 "Flows read this list."},
    )
    fields_ = fields.Dict(
        data_key="fields", keys=fields.String(), values=fields.List(fields.String()),
        metadata={"description": "The same messages as a map of field name to messages, for API clients "
                                 "(External Services makes a map an untyped Object: flows read fieldErrors)."},
    )


class ErrorBody(Schema):
    """Every 4xx/5xx answer."""

    error = fields.Nested(ErrorDetail)


class Skip(Schema):
    """Why a job finished without doing anything (not a failure); JobStatus.skipped, absent otherwise."""

    code = fields.String(metadata={"description": "For example PERSONAL_FILE or FILE_NOT_VISIBLE."})
    reason = fields.String()


class JobStatus(Schema):
    """A job's state."""

    jobId = fields.String()
    process = fields.String()
    status = fields.String(metadata={"description": "queued, started, deferred, scheduled, finished or failed."})
    source = fields.String(metadata={"description": "callout, outbound or applink."})
    recordId = fields.String()
    enqueuedAt = fields.String(metadata={"format": "date-time"})
    startedAt = fields.String(metadata={"format": "date-time"})
    endedAt = fields.String(metadata={"format": "date-time"})
    attempts = fields.Integer()
    result = fields.Dict(metadata={"description": "Replaced by a $ref to JobResult in build_spec."})
    skipped = fields.Nested(Skip)  # set when the job finished with nothing to do (a plain $ref: Flow reads it)
    error = fields.String()


RESULT_NAME = "JobResult"
"""The schema of ``JobStatus.result``: the union of the processes' result schemas."""


def _schema_name(schema: type[Schema] | Schema) -> str:
    """Components are named after their class (apispec passes a nested schema as an instance)."""
    return (schema if isinstance(schema, type) else type(schema)).__name__


def _errors() -> dict[str, Any]:
    return {
        str(status): {"description": text, "content": {"application/json": {"schema": "ErrorBody"}}}
        for status, text in (
            (400, "Invalid JSON or fields (see error.fieldErrors)."),
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
                             "carry sentAt) or a Bearer key. getJob has no body to sign: call it with the "
                             "Bearer key (Named Credential Offload_ApiKey)."},
        servers=[{"url": server_url}],
    )
    for schema in (JobAccepted, FieldError, ErrorDetail, ErrorBody, JobStatus):
        spec.components.schema(schema.__name__, schema=schema)
    results = sorted({p.result_schema for p in PROCESSES.values() if p.result_schema}, key=lambda s: s.__name__)
    for result_schema in results:
        spec.components.schema(result_schema.__name__, schema=result_schema)
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
            "summary": "Status, timings and outcome of a job (authenticate with the Bearer key).",
            "parameters": [{"name": "jobId", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": {"description": "The job.", "content": {"application/json": {"schema": "JobStatus"}}},
                **{k: v for k, v in _errors().items() if k in {"401", "404"}},
            },
        }},
    )
    document = spec.to_dict()
    schemas = document["components"]["schemas"]
    schemas[RESULT_NAME] = _union(schemas, [schema.__name__ for schema in results])
    schemas["JobStatus"]["properties"]["result"] = {"$ref": f"#/components/schemas/{RESULT_NAME}"}
    for name in _response_schemas(document):
        # Answers may gain fields; a closed response schema would break clients that validate.
        schemas[name].pop("additionalProperties", None)
    for process in PROCESSES.values():
        request_schema = schemas[_request_name(process.operation_id)]
        request_schema["description"] = " ".join((process.schema.__doc__ or "").split())
    return document


def _union(schemas: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """One flat object with the properties of the named result schemas (taken out of ``schemas``).

    Raises:
        ValueError: two processes declare one result property with different schemas.
    """
    properties: dict[str, Any] = {}
    owners: dict[str, str] = {}
    for name in names:
        for key, prop in schemas.pop(name)["properties"].items():
            if key in properties and properties[key] != prop:
                raise ValueError(f"result property {key!r} has one schema in {owners[key]} and another in {name}: "
                                 "a job's result is one type for Flow, so give it another name")
            properties[key], owners[key] = prop, owners.get(key, name)
    return {"type": "object", "properties": properties,
            "description": "What a finished job reported; each process fills the properties of its own result."}


def _response_schemas(document: dict[str, Any]) -> list[str]:
    """Names of every component schema reachable from a response (through ``$ref``), in a stable order."""
    schemas = document["components"]["schemas"]
    seen: list[str] = []
    stack: list[Any] = [op["responses"] for item in document["paths"].values() for op in item.values()]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                name = ref.rsplit("/", 1)[1]
                if name not in seen:
                    seen.append(name)
                    stack.append(schemas[name])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return seen


def _request_name(operation_id: str) -> str:
    return operation_id[0].upper() + operation_id[1:] + "Request"


@bp.get("/openapi.json")
def openapi_json() -> dict[str, Any]:
    """Public on purpose: it holds no secrets and External Services fetches it when you register."""
    public_url = get_runtime().settings.public_url
    return build_spec(public_url or request.url_root.rstrip("/"))


# --- the spec Heroku AppLink publishes ---------------------------------------------------------------------

APPLINK_CLIENT_NAME = "OffloadAppLink"
"""The External Client App AppLink creates for the publication (``heroku salesforce:publish --client-name``)."""

APPLINK_PERMISSION_SET = "Offload_AppLink_User_Plus"
"""The session-based permission set of ``user-plus`` mode (apex/README.md, "Heroku AppLink")."""

APPLINK_TOPIC = {
    "name": "offload_renditions",
    "classificationDescription": "Makes web-ready renditions of the photos and documents attached to a "
                                 "Salesforce record, in the background.",
    "scope": "Only starting Offload's rendition jobs for records and files the user can see; it never edits or "
             "deletes the originals.",
    "instructions": [
        "Ask for the record (or file) whose photos should get web renditions if the user has not named one.",
        "Say that the renditions appear on the record a few seconds later; do not wait for them.",
        "A duplicate answer means the same work was already started: tell the user it is on its way.",
    ],
}
"""The Agentforce topic of the actions (``x-sfdc.agent.topic``: name, classificationDescription, scope and
instructions are required, https://devcenter.heroku.com/articles/openapi-spec-heroku-applink)."""


def build_applink_spec() -> dict[str, Any]:
    """The OpenAPI 3.0 document for ``heroku salesforce:publish``: one ``/applink/<process>`` per process.

    Built from :func:`build_spec` (the same registry, schemas and answers as ``/openapi.json``), with what
    AppLink reads (https://devcenter.heroku.com/articles/openapi-spec-heroku-applink):

    * ``x-sfdc.heroku.authorization`` on every operation: the External Client App and the session-based
      permission set of ``user-plus`` mode (the shape of Heroku's template,
      https://github.com/heroku-reference-apps/applink-getting-started-python/blob/main/api-spec.yaml).
    * for a process declaring ``agent_action``: ``x-sfdc.agent.action.publishAsAgentAction`` on the
      operation, ``isUserInput`` on its request properties and ``isDisplayable`` on the answer's
      properties (both required with ``publishAsAgentAction``), and the document's ``x-sfdc.agent.topic``.

    The server is ``/`` (AppLink calls the app it is attached to, as in Heroku's template). ``getJob`` is
    left out: ``/jobs/*`` bypasses the mesh and keeps the Bearer key, which an AppLink caller has not.
    """
    base = build_spec("/")
    document: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": "Offload", "version": base["info"]["version"],
                 "description": "Hand work from Salesforce to Offload's workers through Heroku AppLink. Each "
                                "call runs as the invoking user (user-plus: with the Offload_AppLink_User_Plus "
                                "permission set); a job that outlives the user's session writes back as the "
                                "Authorized User OFFLOAD_APPLINK_AUTHORIZATION."},
        "servers": [{"url": "/"}],
        "paths": {},
        "components": {"schemas": {}},
    }
    schemas = base["components"]["schemas"]
    agent = False
    for process in sorted(PROCESSES.values(), key=lambda p: p.name):
        operation = dict(base["paths"][f"/callouts/{process.name}"]["post"])
        operation["responses"] = {k: v for k, v in operation["responses"].items() if k != "401"}
        operation["responses"]["403"] = {
            "description": "Not through the AppLink service mesh, or an org not in OFFLOAD_ORG_IDS.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
        sfdc: dict[str, Any] = {"heroku": {"authorization": {"externalClientApp": APPLINK_CLIENT_NAME,
                                                            "permissionSet": APPLINK_PERMISSION_SET}}}
        if process.agent_action:
            agent = True
            sfdc["agent"] = {"action": {"publishAsAgentAction": True}}
        operation["x-sfdc"] = sfdc
        document["paths"][f"/applink/{process.name}"] = {"post": operation}
    document["components"]["schemas"] = _reachable(document, schemas)
    for process in PROCESSES.values():
        if not process.agent_action:
            continue
        for prop in document["components"]["schemas"][_request_name(process.operation_id)]["properties"].values():
            prop["x-sfdc"] = {"agent": {"action": {"isUserInput": True}}}
        for prop in document["components"]["schemas"]["JobAccepted"]["properties"].values():
            prop["x-sfdc"] = {"agent": {"action": {"isDisplayable": True}}}
    if agent:
        document["x-sfdc"] = {"agent": {"topic": APPLINK_TOPIC}}
    return document


def _reachable(document: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """Deep copies of the component schemas the document's paths reach through ``$ref``."""
    import copy

    out: dict[str, Any] = {}
    stack: list[Any] = list(document["paths"].values())
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                name = ref.rsplit("/", 1)[1]
                if name not in out:
                    out[name] = copy.deepcopy(schemas[name])
                    stack.append(out[name])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return dict(sorted(out.items()))
