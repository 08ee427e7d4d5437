"""The emulated org as a Flask app: OAuth, REST, composite, files, events, faults, admin.

Request pipeline for ``/services/data/vNN.N/...`` (REST API guide: status codes and error
bodies, https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm;
the ``Sforce-Limit-Info`` header,
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_api_usage.htm):

1. fault injection (any path outside ``/_emulator``): delay and/or a canned error;
2. ``Authorization: Bearer <token>`` (or ``OAuth <token>``) must name a live token, else 401
   ``INVALID_SESSION_ID`` (a JSON *list*, which simple-salesforce requires);
3. the call is counted; past the daily limit the answer is 403 ``REQUEST_LIMIT_EXCEEDED``;
4. every response carries ``Sforce-Limit-Info: api-usage=N/MAX``.

``GET /services/data/`` needs no auth and is not counted (Limit Info docs). Trailing slashes
are tolerated everywhere (simple-salesforce posts to ``sobjects/ContentVersion/``).
Composite subrequests are replayed through the same routes in-process; they carry a WSGI
environ flag (not an HTTP header, so it cannot be forged) that skips auth and counting.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from flask import Flask, Response, g, request

from . import sferrors
from .sferrors import RestError, json_response
from .state import OrgState

logger = logging.getLogger(__name__)

INTERNAL_FLAG = "devorg.internal"
_VERSIONED = re.compile(r"^/services/data/v\d+\.\d+(/|$)")
_ID_IN_PATH = re.compile(r"/([a-zA-Z0-9]{18}|[a-zA-Z0-9]{15})(?:/|$)")


class _TrailingSlash:
    """WSGI middleware: ``/services/.../`` and ``/_emulator/.../`` route like their slashless form."""

    def __init__(self, wsgi_app: Any):
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict, start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if len(path) > 1 and path.endswith("/") and path.startswith(("/services/", "/_emulator/")):
            environ["PATH_INFO"] = path.rstrip("/")
        return self.wsgi_app(environ, start_response)


def create_org_app(state: OrgState) -> Flask:
    """Build the Flask app serving one ``OrgState``.

    Blueprints in ``state.admin_blueprints`` (e.g. outbound-message admin routes) are
    registered too; add them before calling this (Flask refuses blueprints after serving).
    """
    from . import admin, bulk, composite, oauth, outbound_admin, rest, sobjects

    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=None, MAX_FORM_MEMORY_SIZE=None, JSON_SORT_KEYS=False)
    app.extensions["devorg_state"] = state
    app.wsgi_app = _TrailingSlash(app.wsgi_app)  # type: ignore[method-assign]
    for module in (oauth, rest, sobjects, composite, bulk, admin, outbound_admin):
        app.register_blueprint(module.bp)
    register_admin_blueprints(app, state)

    @app.before_request
    def _pipeline() -> Response | None:
        return _before(state)

    @app.after_request
    def _limit_header(response: Response) -> Response:
        if _VERSIONED.match(request.path) and not request.environ.get(INTERNAL_FLAG):
            response.headers["Sforce-Limit-Info"] = (
                f"api-usage={state.api_calls}/{state.config.daily_api_limit}"
            )
        return response

    @app.errorhandler(RestError)
    def _rest_error(exc: RestError) -> Response:
        # One line per refusal, so a developer reading `offload dev` (and a test) sees what the org refused,
        # also when the client that sent the request is gone.
        code = str(exc.body()[0]["errorCode"])
        logger.info("refused %s %s: %s %s", request.method, request.path, exc.status, code)
        state.refusals.append((request.method, request.path, code))
        return json_response(exc.body(), exc.status)

    @app.errorhandler(404)
    def _not_found(exc: Exception) -> Response:
        return json_response(sferrors.not_found().body(), 404)

    @app.errorhandler(405)
    def _bad_method(exc: Any) -> Response:
        allowed = ",".join(sorted(getattr(exc, "valid_methods", None) or []))
        body = [
            {
                "errorCode": "METHOD_NOT_ALLOWED",
                "message": f"HTTP Method '{request.method}' not allowed. Allowed are {allowed}",
            }
        ]
        return json_response(body, 405)

    return app


def register_admin_blueprints(app: Flask, state: OrgState) -> None:
    """Mount the extra admin blueprints collected on ``state.admin_blueprints``."""
    for blueprint in state.admin_blueprints:
        if blueprint.name not in app.blueprints:
            app.register_blueprint(blueprint)


def _before(state: OrgState) -> Response | None:
    path = request.path
    state.client_connections.add((request.environ.get("REMOTE_ADDR", ""), request.environ.get("REMOTE_PORT", "")))
    if path.startswith("/_emulator"):
        return None
    rule = state.faults.pick(request.method, path)
    if rule is not None:
        logger.info("fault #%s on %s %s: %s delay=%s", rule.id, request.method, path, rule.error, rule.delay)
        if rule.delay:
            time.sleep(rule.delay)
        if rule.error:
            match = _ID_IN_PATH.search(path)
            error = sferrors.FAULT_ERRORS[rule.error](match.group(1) if match else None)
            if (
                _VERSIONED.match(path)
                and not request.environ.get(INTERNAL_FLAG)
                and rule.error != "INVALID_SESSION_ID"
            ):
                state.count_api_call()
            return json_response(error.body(), error.status)
    if not _VERSIONED.match(path) or request.environ.get(INTERNAL_FLAG):
        return None
    token = bearer_token(request.headers.get("Authorization", ""))
    session = state.tokens.check(token) if token else None
    if session is None:
        raise sferrors.invalid_session()
    g.session = session
    if state.count_api_call() > state.config.daily_api_limit:
        raise sferrors.request_limit()
    return None


def bearer_token(header: str) -> str | None:
    """The token from ``Bearer <t>`` or ``OAuth <t>`` (both accepted by Salesforce)."""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() in ("bearer", "oauth") and value.strip():
        return value.strip()
    return None
