"""``/_emulator/...``: the emulator's own JSON admin API (not a Salesforce path).

Used by tests and by ``offload org`` subcommands to seed data, inspect what workers wrote,
inject faults and expire tokens. No authentication: the emulator listens on 127.0.0.1 only.
Outbound-message routes (``/_emulator/outbound-messages``, ``/_emulator/deliveries``) are
added by the sender module through ``OrgState.admin_blueprints``.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import fields as dc_fields
from typing import Any

from flask import Blueprint, Response, current_app, request

from . import records
from .faults import FaultRule
from .keyprefixes import SObjectCatalog
from .sferrors import RestError, json_response
from .state import OrgState

logger = logging.getLogger(__name__)

bp = Blueprint("devorg_admin", __name__, url_prefix="/_emulator")

#: Config fields the admin API may change at runtime.
MUTABLE_CONFIG = {
    "platform_events",
    "custom_objects",
    "daily_api_limit",
    "token_ttl_seconds",
    "token_ttl_sliding",
    "max_base64_blob_chars",
    "max_json_request_bytes",
    "strict_read_fields",
    "require_existing_references",
    "owner_link",
    "client_credentials_enabled",
    "query_batch_size",
    "bulk_query_polls_in_progress",
    "bulk_query_default_max_records",
}


def _state() -> OrgState:
    return current_app.extensions["devorg_state"]


def _admin_error(message: str, status: int = 400) -> Response:
    return json_response({"error": message}, status)


@bp.errorhandler(RestError)
def _rest_error(exc: RestError) -> Response:
    return json_response({"error": exc.message, "errorCode": exc.code, "fields": exc.fields}, exc.status)


@bp.errorhandler(ValueError)
def _value_error(exc: ValueError) -> Response:
    return _admin_error(str(exc))


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object body")
    return body


@bp.get("")
def summary() -> Response:
    state = _state()
    return json_response(
        {
            "org_id": state.config.org_id,
            "base_url": state.base_url,
            "api_version": state.config.api_version,
            "username": state.config.username,
            "user_id": state.user_id,
            "client_id": state.config.client_id,
            "api_usage": {"used": state.api_calls, "max": state.config.daily_api_limit},
            "events": len(state.events),
            "faults": len(state.faults.rules()),
        }
    )


@bp.post("/records")
def seed_record() -> Response:
    """``{"sobject": "Account", "fields": {...}}``; ``fields.Id`` may pin the Id. Runs listeners."""
    state = _state()
    body = _body()
    sobject = records.resolve_type(state, str(body.get("sobject", "")))
    record = records.create(state, sobject, body.get("fields") or {}, admin=True)
    return json_response({"id": record["Id"], "sobject": sobject, "record": record}, 201)


@bp.get("/records")
def list_records() -> Response:
    state = _state()
    wanted = request.args.get("sobject")
    if wanted:
        sobject = records.resolve_type(state, wanted)
        return json_response([{"sobject": sobject, **r} for r in state.all_records(sobject)])
    out = [{"sobject": n, **r} for n in state.catalog.names() for r in state.all_records(n)]
    return json_response(out)


@bp.get("/records/<record_id>")
def get_record(record_id: str) -> Response:
    found = _state().get_record(record_id)
    if found is None:
        return _admin_error("no such record", 404)
    return json_response({"sobject": found[0], "record": found[1]})


@bp.post("/files")
def upload_file() -> Response:
    """Multipart ``record_id`` + ``file`` (or JSON ``record_id, path_on_client, data_base64``)."""
    state = _state()
    if request.mimetype == "multipart/form-data":
        storage = request.files.get("file")
        if storage is None:
            raise ValueError("multipart upload needs a 'file' part")
        record_id = request.form.get("record_id")
        fields: dict[str, Any] = {
            "PathOnClient": request.form.get("path_on_client") or storage.filename or "file"
        }
        blob: Any = storage
        extra = request.form.get("fields")
    else:
        body = _body()
        record_id = body.get("record_id")
        fields = {"PathOnClient": body.get("path_on_client") or "file"}
        blob = base64.b64decode(body.get("data_base64") or "")
        extra = None
        fields.update(body.get("fields") or {})
    if extra:
        import json

        fields.update(json.loads(extra))
    if record_id:
        fields["FirstPublishLocationId"] = record_id
    # The admin API uploads as the file's owner (a person in the UI), who may publish to their own library.
    uploader = fields.get("OwnerId") or state.user_id
    record = records.create(state, "ContentVersion", fields, blob=blob, acting_user=uploader)
    return json_response(
        {"id": record["Id"], "ContentDocumentId": record["ContentDocumentId"], "record": record}, 201
    )


@bp.get("/files")
def list_files() -> Response:
    state = _state()
    out = []
    for version in state.all_records("ContentVersion"):
        links = state.find("ContentDocumentLink", ContentDocumentId=version["ContentDocumentId"])
        out.append({**version, "LinkedEntityIds": [link["LinkedEntityId"] for link in links]})
    return json_response(out)


@bp.get("/events")
def list_events() -> Response:
    state = _state()
    wanted = (request.args.get("type") or "").lower()
    return json_response([e for e in state.events if not wanted or e["type"].lower() == wanted])


@bp.get("/tokens")
def list_tokens() -> Response:
    state = _state()
    return json_response(
        {
            "tokens": [t.summary() for t in state.tokens.all()],
            "api_usage": {"used": state.api_calls, "max": state.config.daily_api_limit},
        }
    )


@bp.post("/tokens")
def issue_token() -> Response:
    """Mint a session without OAuth (tests, ``session_id=`` clients)."""
    state = _state()
    body = request.get_json(silent=True) or {}
    session = state.tokens.issue(str(body.get("username") or state.config.username), "admin")
    return json_response(
        {"access_token": session.access_token, "instance_url": state.base_url.rstrip("/")}, 201
    )


@bp.post("/tokens/expire")
def expire_tokens() -> Response:
    return json_response({"expired": _state().tokens.expire_all()})


@bp.get("/faults")
def list_faults() -> Response:
    return json_response([r.to_dict() for r in _state().faults.rules()])


@bp.post("/faults")
def add_fault() -> Response:
    """``{"pattern", "error"?, "method"?, "count"?, "probability"?, "delay"?}``."""
    body = _body()
    allowed = {"pattern", "error", "method", "count", "probability", "delay"}
    unknown = set(body) - allowed
    if unknown or "pattern" not in body:
        raise ValueError(f"fault needs 'pattern'; allowed keys {sorted(allowed)}; unknown {sorted(unknown)}")
    rule = _state().faults.add(FaultRule(**body))
    return json_response(rule.to_dict(), 201)


@bp.delete("/faults")
def clear_faults() -> Response:
    _state().faults.clear()
    return json_response({"cleared": True})


@bp.delete("/faults/<int:rule_id>")
def delete_fault(rule_id: int) -> Response:
    return json_response({"deleted": _state().faults.remove(rule_id)})


@bp.post("/locks")
def lock_records() -> Response:
    """``{"ids": [...]}``: writes to these records fail with UNABLE_TO_LOCK_ROW until unlocked."""
    state = _state()
    from services import sfids

    ids = [sfids.to_18(i) for i in _body().get("ids", [])]
    state.locked_ids.update(ids)
    return json_response({"locked": sorted(state.locked_ids)})


@bp.delete("/locks")
def unlock_records() -> Response:
    _state().locked_ids.clear()
    return json_response({"locked": []})


@bp.patch("/config")
def update_config() -> Response:
    """Change a runtime-safe subset of ``OrgConfig`` (e.g. ``platform_events``)."""
    state = _state()
    body = _body()
    bad = set(body) - MUTABLE_CONFIG
    if bad:
        raise ValueError(f"not changeable at runtime: {sorted(bad)}; allowed {sorted(MUTABLE_CONFIG)}")
    with state.lock:
        for key, value in body.items():
            if key in ("platform_events", "custom_objects") and value is not None:
                value = frozenset(value)
            setattr(state.config, key, value)
        state.catalog = SObjectCatalog(state.config)
    names = {f.name for f in dc_fields(state.config)} & MUTABLE_CONFIG
    current = {n: getattr(state.config, n) for n in sorted(names)}
    return json_response({k: sorted(v) if isinstance(v, frozenset) else v for k, v in current.items()})


@bp.post("/reset")
def reset() -> Response:
    _state().reset()
    return json_response({"reset": True})


@bp.post("/seed/files")
def seed_files() -> Response:
    """``{"records", "files_per_record", "sobject", "mix", "rendered_fraction", "created_from", "created_until",
    "owner_id", "seed"}``: thousands of files on records at once (:func:`devkit.org.seed.seed_files`)."""
    from . import seed

    seeded = seed.seed_from_json(_state(), _body())
    return json_response(seeded.to_json(), 201)
