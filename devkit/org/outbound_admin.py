"""Outbound Messages in the emulated org: the sender attached to an org, and its admin routes.

``ensure_sender(state)`` gives an org its Outbound Message queue (every committed
record change is offered to it, a background thread delivers), the way an org
has one as soon as a workflow rule or flow uses an Outbound Message action.

Admin routes (JSON, under ``/_emulator``):

* ``GET/POST /outbound-messages``: list or define one (``name``, ``sobject``, ``fields``,
  ``endpoint_url``, optional ``include_session_id``); Setup > Outbound Messages.
* ``POST /outbound-messages/<name>/send``: send now for ``record_ids``.
* ``GET /deliveries``: the delivery queue with every attempt (Setup > Monitor Outbound Messages).
* ``POST /deliveries/retry``: the monitor's "Retry" (one ``delivery_id`` or all).
* ``POST /outbound/inject``: ``{"duplicate": N, "out_of_order": true}``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request

from services.sfids import to_18

from .outbound import OutboundMessageDefinition, OutboundSender
from .sferrors import json_response
from .state import OrgState

bp = Blueprint("devorg_outbound", __name__, url_prefix="/_emulator")

ACTION_ID_PREFIX = "04k"


def ensure_sender(state: OrgState, *, time_scale: float = 1.0) -> OutboundSender:
    """The org's sender, created, hooked to record changes and started on first use."""
    if state.outbound is None:
        sender = OutboundSender(
            session_id_provider=lambda: state.tokens.issue(state.config.username, "outbound").access_token,
            time_scale=time_scale,
        )
        state.outbound = sender
        state.add_listener(sender.record_changed)
        sender.start()
    return state.outbound  # type: ignore[no-any-return]


def define(state: OrgState, *, name: str, sobject: str, fields: list[str] | tuple[str, ...], endpoint_url: str,
           include_session_id: bool = False) -> OutboundMessageDefinition:
    """Define an Outbound Message on ``sobject`` that fires on every create and edit."""
    sender = ensure_sender(state)
    number = len(sender.definitions()) + 1
    definition = OutboundMessageDefinition(
        name=name,
        sobject=sobject,
        fields=tuple(fields),
        endpoint_url=endpoint_url,
        org_id=state.config.org_id,
        action_id=to_18(f"{ACTION_ID_PREFIX}5g{number:010d}"),
        user_id=state.user_id,
        include_session_id=include_session_id,
        instance_url=state.base_url,
        api_version=state.config.api_version,
    )
    sender.define(definition)
    return definition


def _state() -> OrgState:
    return current_app.extensions["devorg_state"]  # type: ignore[no-any-return]


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object body")
    return body


@bp.errorhandler(ValueError)
def _value_error(exc: ValueError) -> Response:
    return json_response({"error": str(exc)}, 400)


@bp.get("/outbound-messages")
def list_definitions() -> Response:
    return json_response([d.__dict__ for d in ensure_sender(_state()).definitions()], 200)


@bp.post("/outbound-messages")
def create_definition() -> Response:
    body = _body()
    definition = define(
        _state(), name=str(body["name"]), sobject=str(body["sobject"]),
        fields=list(body.get("fields") or ["Id"]), endpoint_url=str(body["endpoint_url"]),
        include_session_id=bool(body.get("include_session_id", False)),
    )
    return json_response(definition.__dict__, 201)


@bp.post("/outbound-messages/<name>/send")
def send_now(name: str) -> Response:
    state = _state()
    records = []
    for record_id in _body().get("record_ids") or []:
        found = state.get_record(str(record_id))
        if found is None:
            raise ValueError(f"no record {record_id}")
        records.append(found[1])
    return json_response({"delivery_id": ensure_sender(state).send_now(name, records)}, 201)


@bp.get("/deliveries")
def deliveries() -> Response:
    return json_response(ensure_sender(_state()).deliveries(), 200)


@bp.post("/deliveries/retry")
def retry() -> Response:
    body = request.get_json(silent=True) or {}
    ensure_sender(_state()).retry_now(body.get("delivery_id"))
    return json_response({"ok": True}, 200)


@bp.post("/outbound/inject")
def inject() -> Response:
    body = _body()
    ensure_sender(_state()).inject(duplicate=int(body.get("duplicate", 0)),
                                   out_of_order=bool(body.get("out_of_order", False)))
    return json_response({"ok": True}, 200)
