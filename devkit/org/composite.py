"""``/composite`` and ``/composite/sobjects``.

REST API guide, "Composite Resources":
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite.htm

Composite: up to 25 subrequests run in order; ``@{refId.path}`` in a URL or body is replaced
by a value from an earlier subrequest's body (``@{cv.id}``, ``@{q.records[0].Id}``). The
top-level answer is always 200 with ``compositeResponse`` items ``{body, httpHeaders,
httpStatusCode, referenceId}`` (fixture composite-response.json). With ``allOrNone`` the first
failure rolls everything back and every other subrequest reports 400 PROCESSING_HALTED.
Subrequests are dispatched through the app itself, so they behave exactly like direct calls.

sObject collections: up to 200 records, SaveResults in request order, per-record errors with
``statusCode`` (fixture composite-sobjects-response.json); ``allOrNone`` rolls back and marks
the valid records ALL_OR_NONE_OPERATION_ROLLED_BACK.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Blueprint, Response, current_app, request

from . import records, sferrors
from .app import INTERNAL_FLAG
from .rest import V, check_version
from .sferrors import RestError, json_response
from .sobjects import read_json
from .state import OrgState

bp = Blueprint("devorg_composite", __name__)

MAX_SUBREQUESTS = 25
MAX_COLLECTION = 200
_REF = re.compile(r"@\{([A-Za-z0-9_]+)\.([^}]+)\}")
_FORBIDDEN_HEADERS = {"accept", "authorization", "content-type"}
ROLLED_BACK = "The transaction was rolled back since another operation in the same transaction failed."


class _Rollback(Exception):
    """Raised inside a transaction to undo it."""


def _state() -> OrgState:
    return current_app.extensions["devorg_state"]


def _lookup(results: dict[str, Any], ref: str, path: str) -> Any:
    if ref not in results:
        raise KeyError(ref)
    value = results[ref]
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        value = value[int(part[1:-1])] if part.startswith("[") else value[part]
    return value


def _substitute(value: Any, results: dict[str, Any]) -> Any:
    """Replace ``@{ref.path}``: a whole-string reference keeps the value's JSON type."""
    if isinstance(value, str):
        whole = _REF.fullmatch(value)
        if whole:
            return _lookup(results, whole.group(1), whole.group(2))
        return _REF.sub(lambda m: str(_lookup(results, m.group(1), m.group(2))), value)
    if isinstance(value, dict):
        return {k: _substitute(v, results) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, results) for v in value]
    return value


def _dispatch(method: str, url: str, body: Any) -> tuple[int, Any, dict[str, str]]:
    client = current_app.test_client()
    kwargs: dict[str, Any] = {"method": method, "environ_base": {INTERNAL_FLAG: True}}
    if body is not None:
        kwargs["data"] = json.dumps(body)
        kwargs["content_type"] = "application/json"
    response = client.open(url, **kwargs)
    payload = response.get_data()
    parsed = json.loads(payload) if payload else None
    return response.status_code, parsed, {}


@bp.post(f"{V}/composite")
def composite(version: str) -> Response:
    check_version(version)
    state = _state()
    payload = read_json(state)
    subs = payload.get("compositeRequest") if isinstance(payload, dict) else None
    if not isinstance(subs, list) or not subs:
        raise sferrors.json_parser_error("compositeRequest is required")
    if len(subs) > MAX_SUBREQUESTS:
        # errorCode/message for too many subrequests: not confirmed by Salesforce's documentation.
        raise RestError(400, "INVALID_BATCH_REQUEST", f"Limit of {MAX_SUBREQUESTS} subrequests exceeded")
    for sub in subs:
        headers = {k.lower() for k in (sub.get("httpHeaders") or {})}
        if headers & _FORBIDDEN_HEADERS:
            raise RestError(
                400,
                "INVALID_BATCH_REQUEST",
                "Subrequests can't set the Accept, Authorization or Content-Type headers",
            )
    all_or_none = bool(payload.get("allOrNone"))
    out: list[dict[str, Any]] = []
    failed: int | None = None
    if not all_or_none:
        _run(subs, out, stop_on_error=False)
        return json_response({"compositeResponse": out})
    try:
        with state.transaction():
            failed = _run(subs, out, stop_on_error=True)
            if failed is not None:
                raise _Rollback
    except _Rollback:
        halted = [{"errorCode": "PROCESSING_HALTED", "message": ROLLED_BACK}]
        for index, sub in enumerate(subs):
            if index != failed:
                item = {
                    "body": halted,
                    "httpHeaders": {},
                    "httpStatusCode": 400,
                    "referenceId": sub.get("referenceId"),
                }
                if index < len(out):
                    out[index] = item
                else:
                    out.append(item)
    return json_response({"compositeResponse": out})


def _run(subs: list[dict], out: list[dict], *, stop_on_error: bool) -> int | None:
    """Execute subrequests into ``out``; returns the index of the first failure, if any."""
    results: dict[str, Any] = {}
    first_failure = None
    for index, sub in enumerate(subs):
        ref = sub.get("referenceId")
        try:
            url = _substitute(sub.get("url", ""), results)
            body = _substitute(sub.get("body"), results)
        except (KeyError, IndexError, TypeError) as exc:
            status, parsed = (
                400,
                [
                    {
                        "errorCode": "PROCESSING_HALTED",
                        "message": f"Invalid reference specified. No value for {exc} found.",
                    }
                ],
            )
            headers: dict[str, str] = {}
        else:
            status, parsed, headers = _dispatch(str(sub.get("method", "GET")).upper(), url, body)
        if status == 201 and isinstance(parsed, dict) and "id" in parsed:
            headers = {"Location": f"{url.split('?')[0].rstrip('/')}/{parsed['id']}"}
        out.append({"body": parsed, "httpHeaders": headers, "httpStatusCode": status, "referenceId": ref})
        if status < 300 and ref:
            results[ref] = parsed
        elif status >= 300:
            first_failure = index if first_failure is None else first_failure
            if stop_on_error:
                return index
    return first_failure if stop_on_error else None


def _save_result(record: dict[str, Any]) -> dict[str, Any]:
    return {"id": record["Id"], "success": True, "errors": []}


def _multipart_collection() -> tuple[Any, dict[str, Any]]:
    """A collections insert with blobs: the ``entity_content`` JSON part first, then one binary part per
    record, named by the record's ``attributes.binaryPartName``; ``binaryPartNameAlias`` names the blob
    field (VersionData for ContentVersion). Up to 500 MB of files in one request
    (https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_sobject_insert_update_blob.htm)."""
    from .sobjects import part_names

    limit = _state().config.max_collections_multipart_bytes
    if (request.content_length or 0) > limit:
        raise sferrors.too_large(limit)
    boundary = request.mimetype_params.get("boundary") or ""
    names = part_names(request.get_data(cache=True), boundary) if boundary else []
    if not names or names[0] != "entity_content":
        raise RestError(400, "INVALID_MULTIPART_REQUEST",
                        "The first part of a multipart collections request must be entity_content")
    raw = request.form.get("entity_content")
    if raw is None and "entity_content" in request.files:
        raw = request.files["entity_content"].read().decode("utf-8")
    try:
        payload = json.loads(raw or "null")
    except json.JSONDecodeError as exc:
        raise sferrors.json_parser_error(f"Unexpected character in entity part: {exc.msg}") from exc
    blobs = {name: storage for name, storage in request.files.items() if name != "entity_content"}
    return payload, blobs


def _one(state: OrgState, method: str, item: Any, blobs: dict[str, Any] | None = None) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise sferrors.json_parser_error("Each record must be an object")
    attributes = item.get("attributes") or {}
    sobject = attributes.get("type")
    if not sobject:
        raise RestError(400, "INVALID_TYPE", "Must specify a type in the attributes of each record")
    canonical = records.resolve_type(state, sobject)
    part = attributes.get("binaryPartName")
    if part is not None:
        if method != "POST" or canonical != "ContentVersion" or attributes.get("binaryPartNameAlias") != "VersionData":
            raise RestError(400, "INVALID_MULTIPART_REQUEST",
                            "binaryPartName needs a ContentVersion insert with binaryPartNameAlias VersionData")
        if part not in (blobs or {}):
            raise RestError(400, "INVALID_MULTIPART_REQUEST", f"No binary part named {part}")
        return records.create(state, canonical, item, blob=(blobs or {})[part])
    if method == "POST":
        return records.create(state, canonical, item)
    record_id = item.get("Id") or item.get("id")
    if not record_id:
        raise sferrors.required_missing(["Id"])
    return records.update(state, canonical, record_id, {k: v for k, v in item.items() if k.lower() != "id"})


@bp.route(f"{V}/composite/sobjects", methods=["POST", "PATCH", "DELETE"])
def collections(version: str) -> Response:
    check_version(version)
    state = _state()
    if request.method == "DELETE":
        ids = [i for i in request.args.get("ids", "").split(",") if i]
        all_or_none = request.args.get("allOrNone", "false").lower() == "true"
        items: list[Any] = ids
    else:
        blobs: dict[str, Any] = {}
        if request.mimetype == "multipart/form-data":
            payload, blobs = _multipart_collection()
        else:
            payload = read_json(state)
        items = payload.get("records") if isinstance(payload, dict) else None
        all_or_none = bool(payload.get("allOrNone")) if isinstance(payload, dict) else False
        if not isinstance(items, list):
            raise sferrors.json_parser_error("records is required")
    if len(items) > MAX_COLLECTION:
        raise RestError(
            400,
            "EXCEEDED_ID_LIMIT",
            f"record limit reached. cannot submit more than {MAX_COLLECTION} records into this call",
        )
    results: list[dict[str, Any]] = []
    try:
        with state.transaction():
            for item in items:
                try:
                    if request.method == "DELETE":
                        found = state.get_record(item)
                        if found is None:
                            raise RestError(
                                404,
                                "ENTITY_IS_DELETED" if state.is_deleted(item) else "INVALID_ID_FIELD",
                                "entity is deleted" if state.is_deleted(item) else "invalid record id",
                            )
                        records.delete(state, found[0], item)
                        results.append({"id": found[1]["Id"], "success": True, "errors": []})
                    else:
                        results.append(_save_result(_one(state, request.method, item, blobs)))
                except RestError as exc:
                    state.refusals.append((request.method, request.path, exc.code))
                    results.append({"success": False, "errors": [exc.save_error()]})
            if all_or_none and any(not r["success"] for r in results):
                raise _Rollback
    except _Rollback:
        rolled = {
            "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "fields": [],
            "message": "Record rolled back because not all records were valid and the request was using "
            "AllOrNone header",
        }
        results = [r if not r["success"] else {"success": False, "errors": [rolled]} for r in results]
    return json_response(results)
