"""Heroku AppLink invocations: ``POST /applink/<process>``, the fourth door.

AppLink turns the spec ``heroku salesforce:publish`` sends (``applink-openapi.yaml``,
:func:`services.receiver.openapi.build_applink_spec`) into an External Service with Apex classes, Flow
actions and Agentforce actions (https://devcenter.heroku.com/articles/getting-started-heroku-applink).
Salesforce's call reaches the dyno's service mesh (``heroku-applink-service-mesh``, on ``$PORT``), which
authenticates it with the add-on and forwards it to the app on ``127.0.0.1:$APP_PORT`` with the caller's
``x-client-context`` (:mod:`services.salesforce.applink`).

Who may call. The header is plain base64 JSON, so the app may believe it only when nobody but the mesh
can reach the app. With ``APP_PORT`` set, gunicorn binds 127.0.0.1 (``gunicorn_conf.py``), and this door
additionally refuses a request whose peer is not the loopback interface (``NOT_THROUGH_MESH``). Without
``APP_PORT`` the app is on the public ``$PORT`` with no mesh in front, and the door refuses everything
(``APPLINK_NOT_ENABLED``): a header anyone can write proves nothing. The other doors (``/callouts/*``,
``/outbound/*``, ``/jobs/*``, ``/healthz``) bypass the mesh (``heroku-applink-service-mesh.yaml``) and
keep their own credentials.

Then the same steps as the other doors (:mod:`services.receiver.intake`): the org must be one of
``OFFLOAD_ORG_IDS``, the body is validated against the process's schema, one job per invocation is
enqueued, deduplicated on the context's ``requestId`` (``applink:<org>:<requestId>``; whether Salesforce
keeps ``requestId`` across its own retries is not documented, so a retry with a new id is new work, which
the worker's rendition check still writes once), and the answers are the JSON door's: 202 queued, 200
duplicate or skipped, 4xx ``{"error": ...}``. The invoking user's access token goes into Redis encrypted,
by reference (:mod:`services.salesforce.sessions`), never into the job.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

import redis
from flask import Blueprint, Request, g, request

from services.errors import CallerRejected, ConfigError, EnqueueFailed
from services.logs import log_context
from services.receiver import intake
from services.receiver.auth import check_fresh
from services.receiver.callouts import answer, json_object, load_payload, process_named
from services.receiver.runtime import get_runtime
from services.salesforce.applink import CLIENT_CONTEXT_HEADER, parse_client_context
from services.salesforce.sessions import store_session
from services.settings import Settings

logger = logging.getLogger(__name__)

bp = Blueprint("applink", __name__)

SOURCE = "applink"


def check_through_mesh(req: Request, settings: Settings) -> None:
    """Refuse an invocation that cannot have come through the AppLink service mesh.

    Raises:
        CallerRejected: 403, code APPLINK_NOT_ENABLED (no ``APP_PORT``: no mesh in front of the app) or
            NOT_THROUGH_MESH (the peer is not this dyno's loopback interface, where the mesh connects from).
    """
    if settings.app_port is None:
        raise _forbidden(
            "AppLink is not enabled on this app: with the heroku-applink add-on, run the web process behind "
            "heroku-applink-service-mesh and set APP_PORT (docs/applink.md). Without the mesh in front, an "
            "x-client-context header proves nothing, so /applink/* is refused.", "APPLINK_NOT_ENABLED")
    try:
        peer = ipaddress.ip_address((req.remote_addr or "").split("%", 1)[0])
    except ValueError:
        peer = None
    if peer is None or not peer.is_loopback:
        raise _forbidden(
            "This request did not come through the AppLink service mesh (only the mesh, inside the dyno, "
            "may call /applink/*): invoke the process from Salesforce through its External Service.",
            "NOT_THROUGH_MESH")


def _forbidden(message: str, code: str) -> CallerRejected:
    error = CallerRejected(message, code=code)
    error.status_code = 403
    return error


@bp.post("/applink/<name>")
def invoke(name: str) -> tuple[dict[str, Any], int]:
    """Through the mesh, from a known org, valid: enqueue once per ``requestId`` and answer like a callout."""
    req: Request = request._get_current_object()  # type: ignore[attr-defined]
    runtime = get_runtime()
    settings = runtime.settings
    g.request_id = request_id = intake.request_id(req)
    with log_context(process=name, request_id=request_id):
        check_through_mesh(req, settings)
        context = parse_client_context(intake.header(req, CLIENT_CONTEXT_HEADER), settings)
        process = process_named(name)
        with log_context(org_id=context.org_id, user_id=context.user_id):
            data = json_object(req, intake.read_body(req))
            check_fresh(data, settings)
            payload = load_payload(process, data)
            if not settings.secret_key:
                raise ConfigError(
                    "Set OFFLOAD_SECRET_KEY on the Offload app: it encrypts the AppLink access token the job "
                    "writes back with, and without it the token would have to be stored in clear.",
                    code="SECRET_KEY_NOT_SET")
            try:
                ref = store_session(runtime.redis, settings.secret_key, context.access_token)
            except redis.RedisError as exc:
                raise EnqueueFailed("The job queue (Redis) is unavailable; retry the request.") from exc
            planned = intake.plan(
                runtime, process, payload, source=SOURCE,
                dedupe_key=f"{SOURCE}:{context.org_id}:{context.request_id}", org_id=context.org_id,
                request_id=request_id or context.request_id, instance_url=context.org_domain_url,
                session_ref=ref, user_id=context.user_id,
            )
            [outcome] = intake.submit(runtime, [planned])
            return answer(runtime, req, outcome, "applink invocation")
