"""sObject REST routes: describe, create (JSON or multipart), read, update, delete, upsert, blobs.

Status codes and bodies follow the REST API guide: create answers 201
``{"id", "success": true, "errors": []}``; update and delete answer 204 with no body; an unknown
type or record 404 NOT_FOUND; an Id of the wrong type 400 MALFORMED_ID (fixtures
rest-error-*.json). Platform events (``X__e``) answer 201 with an ``OPERATION_ENQUEUED`` entry
in ``errors`` (https://developer.salesforce.com/docs/atlas.en-us.platform_events.meta/platform_events/platform_events_publish_api.htm;
tests/fixtures/salesforce/platform-event-publish-response.json; layout not confirmed by the docs).

Multipart creates (https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_sobject_insert_update_blob.htm,
tests/fixtures/salesforce/contentversion-multipart-request.http) take the
fields from the first non-binary part (``entity_content``; any ``entity_*`` name is accepted,
the docs' Document example uses ``entity_document``) and the bytes from the ``VersionData``
part.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from flask import Blueprint, Response, current_app, request
from werkzeug.wsgi import wrap_file

from services import sfids

from . import files, records, schema, sferrors
from .keyprefixes import is_custom_object, is_platform_event
from .rest import V, check_version
from .sferrors import RestError, json_response
from .state import OrgState

logger = logging.getLogger(__name__)

bp = Blueprint("devorg_sobjects", __name__)


DOWNLOAD_CHUNK = 1 << 20


def _state() -> OrgState:
    return current_app.extensions["devorg_state"]


def read_json(state: OrgState) -> Any:
    """The JSON body, with Salesforce's size cap and parser error."""
    if (request.content_length or 0) > state.config.max_json_request_bytes:
        raise sferrors.too_large(state.config.max_json_request_bytes)
    raw = request.get_data(cache=True)
    if len(raw) > state.config.max_json_request_bytes:
        raise sferrors.too_large(state.config.max_json_request_bytes)
    try:
        return json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise sferrors.json_parser_error(
            f"Unexpected character: {exc.msg if hasattr(exc, 'msg') else exc} "
            f"at [line:{getattr(exc, 'lineno', 1)}, column:{getattr(exc, 'colno', 1)}]"
        ) from exc


def _describe(state: OrgState, sobject: str, version: str) -> dict[str, Any]:
    base = f"/services/data/v{version}/sobjects/{sobject}"
    event = is_platform_event(sobject)
    described = schema.deployed().object(sobject)
    return {
        "name": sobject,
        "label": (described.label if described else "") or sobject,
        "keyPrefix": state.catalog.prefix(sobject),
        "custom": is_custom_object(sobject) or event,
        "createable": described.createable if described else True,
        "queryable": not event,
        "updateable": (described.updateable if described else True) and not event,
        "deletable": not event,
        "retrieveable": not event,
        "urls": {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"},
    }


@bp.get(f"{V}/sobjects")
def global_describe(version: str) -> Response:
    check_version(version)
    state = _state()
    return json_response(
        {
            "encoding": "UTF-8",
            "maxBatchSize": 200,
            "sobjects": [_describe(state, n, version) for n in state.catalog.names()],
        }
    )


@bp.get(f"{V}/sobjects/<sobject>")
def basic_info(version: str, sobject: str) -> Response:
    check_version(version)
    state = _state()
    canonical = records.resolve_type(state, sobject)
    recent = [records.shape(state, canonical, r, version, ["Id"]) for r in state.all_records(canonical)[-10:]]
    return json_response({"objectDescribe": _describe(state, canonical, version), "recentItems": recent})


@bp.get(f"{V}/sobjects/<sobject>/describe")
def describe(version: str, sobject: str) -> Response:
    check_version(version)
    state = _state()
    canonical = records.resolve_type(state, sobject)
    body = _describe(state, canonical, version)
    described = schema.deployed().object(canonical)
    if described is None:
        body["fields"] = [
            {"name": f, "label": f, "custom": f.endswith("__c")} for f in state.field_names(canonical)
        ]
    else:  # the schema's fields, as much of a describe field as the emulator knows
        body["fields"] = [
            {"name": f.name, "label": f.shown, "type": f.type, "length": f.length or 0, "custom": f.custom,
             "createable": f.createable, "updateable": f.updateable, "referenceTo": list(f.reference_to),
             "picklistValues": [{"value": v, "active": True} for v in f.restricted_values],
             "restrictedPicklist": bool(f.restricted_values), "unique": f.unique, "externalId": f.external_id}
            for f in described.fields.values()
        ]
    return json_response(body)


@bp.post(f"{V}/sobjects/<sobject>")
def create(version: str, sobject: str) -> Response:
    check_version(version)
    state = _state()
    canonical = records.resolve_type(state, sobject)
    if request.mimetype == "multipart/form-data":
        body, blob = _multipart(canonical)
        record = records.create(state, canonical, body, blob=blob)
    else:
        record = records.create(state, canonical, read_json(state))
    if is_platform_event(canonical):
        errors = [{"statusCode": "OPERATION_ENQUEUED", "message": record["EventUuid"], "fields": []}]
        return json_response({"id": record["Id"], "success": True, "errors": errors}, 201)
    return json_response({"id": record["Id"], "success": True, "errors": []}, 201)


def part_names(raw: bytes, boundary: str) -> list[str]:
    """The ``name`` of each part, in the order sent (werkzeug's form and files lose the order between them)."""
    names = []
    for chunk in raw.split(b"--" + boundary.encode("latin-1"))[1:]:
        head = chunk.split(b"\r\n\r\n", 1)[0]
        match = re.search(rb'name="([^"]*)"', head)
        if match:
            names.append(match.group(1).decode("utf-8", "replace"))
    return names


def _check_part_order(sobject: str) -> None:
    """"The first part of the request body contains non-binary field data ... The second part contains the
    binary data" (https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_sobject_insert_update_blob.htm);
    for ContentVersion the binary part is named after its blob field, VersionData. The errorCode for a
    wrong order is not documented; the emulator answers INVALID_MULTIPART_REQUEST."""
    boundary = request.mimetype_params.get("boundary")
    if not boundary:
        raise RestError(400, "INVALID_MULTIPART_REQUEST", "Multipart message has no boundary")
    names = part_names(request.get_data(cache=True), boundary)
    if not names or not names[0].startswith("entity_"):
        raise RestError(400, "INVALID_MULTIPART_REQUEST",
                        "The first part of a multipart message must be the non-binary entity_* JSON part")
    if sobject == "ContentVersion" and names[1:2] != ["VersionData"]:
        raise RestError(400, "INVALID_MULTIPART_REQUEST",
                        "The second part of a ContentVersion multipart message must be its VersionData")


def _multipart(sobject: str) -> tuple[Any, Any]:
    _check_part_order(sobject)
    entity: str | None = None
    for name, value in request.form.items():
        if name.startswith("entity_"):
            entity = value
            break
    for name, storage in request.files.items():
        if entity is None and name.startswith("entity_"):
            entity = storage.read().decode("utf-8")
    if entity is None:
        raise RestError(400, "INVALID_MULTIPART_REQUEST", "Multipart message must include a non-binary part")
    try:
        body = json.loads(entity)
    except json.JSONDecodeError as exc:
        raise sferrors.json_parser_error(f"Unexpected character in entity part: {exc.msg}") from exc
    blob = next((s for n, s in request.files.items() if not n.startswith("entity_")), None)
    if sobject != "ContentVersion" and blob is not None:
        raise RestError(
            400,
            "INVALID_MULTIPART_REQUEST",
            f"The emulator stores binary parts for ContentVersion only, not {sobject}",
        )
    return body, blob


@bp.get(f"{V}/sobjects/<sobject>/<record_id>")
def read(version: str, sobject: str, record_id: str) -> Response:
    check_version(version)
    state = _state()
    canonical = records.resolve_type(state, sobject)
    record = records.fetch(state, canonical, record_id)
    wanted = request.args.get("fields")
    fields = [f.strip() for f in wanted.split(",") if f.strip()] if wanted else None
    return json_response(records.shape(state, canonical, record, version, fields))


@bp.patch(f"{V}/sobjects/<sobject>/<record_id>")
def update(version: str, sobject: str, record_id: str) -> Response:
    check_version(version)
    state = _state()
    canonical = records.resolve_type(state, sobject)
    records.update(state, canonical, record_id, read_json(state))
    return Response(status=204)


@bp.delete(f"{V}/sobjects/<sobject>/<record_id>")
def delete(version: str, sobject: str, record_id: str) -> Response:
    check_version(version)
    state = _state()
    records.delete(state, records.resolve_type(state, sobject), record_id)
    return Response(status=204)


@bp.get(f"{V}/sobjects/<sobject>/<first>/<second>")
def blob_or_external(version: str, sobject: str, first: str, second: str) -> Response:
    """``ContentVersion/<id>/VersionData`` streams bytes; ``<T>/<ExtField>/<value>`` reads by external id."""
    check_version(version)
    state = _state()
    canonical = records.resolve_type(state, sobject)
    if sfids.is_valid_id(first):
        if canonical != "ContentVersion" or second.lower() != "versiondata":
            raise sferrors.not_found()
        path = files.version_data_path(state, first)
        # 1 MiB per write, not werkzeug's 8 KiB: a photo's bytes in a few writes instead of hundreds, each of
        # which costs this (Python) server a trip through its stream and TLS layers.
        response = Response(wrap_file(request.environ, path.open("rb"), buffer_size=DOWNLOAD_CHUNK),
                            mimetype="application/octet-stream", direct_passthrough=True)
        response.content_length = path.stat().st_size
        return response
    matches = state.find(canonical, **{first: second})
    if not matches:
        raise sferrors.not_found()
    if len(matches) > 1:
        return json_response(
            [records.shape(state, canonical, m, version, ["Id"])["attributes"]["url"] for m in matches], 300
        )
    return json_response(records.shape(state, canonical, matches[0], version))


@bp.patch(f"{V}/sobjects/<sobject>/<field>/<value>")
def upsert(version: str, sobject: str, field: str, value: str) -> Response:
    """Upsert by external id: 201 created, 200 updated (API 46.0+ body), 300 if ambiguous."""
    check_version(version)
    state = _state()
    canonical = records.resolve_type(state, sobject)
    body = read_json(state)
    with state.lock:
        matches = state.find(canonical, **{field: value})
        if len(matches) > 1:
            return json_response(
                [f"/services/data/v{version}/sobjects/{canonical}/{m['Id']}" for m in matches], 300
            )
        if matches:
            records.update(state, canonical, matches[0]["Id"], body)
            return json_response(
                {"id": matches[0]["Id"], "success": True, "errors": [], "created": False}, 200
            )
        if isinstance(body, dict):
            body = {**body, field: value}
        record = records.create(state, canonical, body)
    return json_response({"id": record["Id"], "success": True, "errors": [], "created": True}, 201)
