"""A stand-in for the heroku-applink add-on's API, backed by the org emulator (HTTP on 127.0.0.1).

Two resources, the two Offload depends on:

* ``GET /authorizations/<developer_name>``: an Authorized User's current session, in the shape the
  official package reads (``heroku_applink/authorization.py``: ``id``, ``status``, ``org.id``,
  ``org.developer_name``, ``org.instance_url``, ``org.type``, ``org.api_version``,
  ``org.user_auth{username, user_id, access_token}``, ``created_at``, ``created_by``,
  ``last_modified_at``) and documented on https://devcenter.heroku.com/articles/heroku-applink-api. Each
  answer carries a freshly issued emulator token, as the add-on refreshes the user's session.
* ``POST /invocations/authentication``: what the mesh asks before it forwards an invocation (the path
  is the mesh's, ``HerokuApplinkSalesforceAuthPath`` in heroku-applink-service-mesh's ``conf.go``). Its
  request and answer are not documented (the add-on and the mesh are Heroku's on both ends), so here the
  stand-in's own: ``{"token": <the caller's bearer token>}`` in, ``{"clientContext": {...}}`` out, with
  the fields of ``x-client-context`` and a new emulator access token for the invoking user.

Both need ``Authorization: Bearer <HEROKU_APPLINK_TOKEN>``, as the real API does.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.serving import BaseWSGIServer, make_server

AUTHORIZATION_NAME = "offload-integration"
"""The Authorized User the dev stack configures (``OFFLOAD_APPLINK_AUTHORIZATION``): the org's integration user."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class AppLinkApi:
    """The API stand-in for one emulated org. Use as a context manager, or ``start()``/``stop()``.

    Attributes:
        token: ``HEROKU_APPLINK_TOKEN``; ``url`` is ``HEROKU_APPLINK_API_URL``.
        authorizations: developer name -> username of the Authorized User.
        authorized: False makes every authorization answer ``status: "disconnected"``.
    """

    org: Any
    token: str = field(default_factory=lambda: secrets.token_hex(24))
    authorizations: dict[str, str] = field(default_factory=dict)
    authorized: bool = True
    port: int = 0
    invocations: int = 0
    _server: BaseWSGIServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/addons/{uuid.UUID(int=self.port)}"

    def env(self) -> dict[str, str]:
        """The add-on's config vars, pointing at this stand-in."""
        return {"HEROKU_APPLINK_API_URL": self.url, "HEROKU_APPLINK_TOKEN": self.token}

    def _authorized(self) -> bool:
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(), self.token.encode())

    def _user_id(self, username: str) -> str:
        users = self.org.state.find("User", Username=username)
        return users[0]["Id"] if users else "005" + "0" * 15

    def app(self) -> Flask:
        app = Flask(__name__)
        org = self.org
        prefix = f"/addons/{uuid.UUID(int=self.port)}"

        @app.get(f"{prefix}/authorizations/<developer_name>")
        def authorization(developer_name: str) -> Response | tuple[Response, int]:
            if not self._authorized():
                return jsonify({"id": "unauthorized", "message": "Invalid credentials provided."}), 401
            username = self.authorizations.get(developer_name)
            if username is None:
                return jsonify({"id": "not_found", "message": "Couldn't find that authorization."}), 404
            session = org.state.tokens.issue(username, "applink-authorization")
            return jsonify({
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, developer_name)),
                "status": "authorized" if self.authorized else "disconnected",
                "org": {"id": org.org_id, "developer_name": developer_name, "instance_url": org.base_url,
                        "type": "SalesforceOrg", "api_version": org.state.config.api_version,
                        "user_auth": {"username": username, "user_id": self._user_id(username),
                                      "access_token": session.access_token}},
                "created_at": _now(), "created_by": "dev@offload.local", "created_via_app": None,
                "last_modified_at": _now(), "last_modified_by": None, "redirect_uri": None,
            })

        @app.post(f"{prefix}/invocations/authentication")
        def authenticate() -> Response | tuple[Response, int]:
            if not self._authorized():
                return jsonify({"id": "unauthorized", "message": "Invalid credentials provided."}), 401
            body = request.get_json(silent=True) or {}
            caller = org.state.tokens.check(str(body.get("token") or ""))
            if caller is None:
                return jsonify({"id": "unauthorized", "message": "The invocation's credentials are invalid."}), 401
            self.invocations += 1
            session = org.state.tokens.issue(caller.username, "applink-invocation")
            return jsonify({"clientContext": {
                "requestId": str(body.get("requestId") or f"{org.org_id}-{uuid.uuid4().hex}"),
                "accessToken": session.access_token,
                "apiVersion": org.state.config.api_version,
                "namespace": "",
                "orgId": org.org_id,
                "orgDomainUrl": org.base_url,
                "userContext": {"userId": self._user_id(caller.username), "username": caller.username},
            }})

        return app

    def start(self) -> AppLinkApi:
        if self._server is None:
            self._server = make_server("127.0.0.1", self.port, None, threaded=True)  # type: ignore[arg-type]
            self.port = self._server.server_port
            self._server.app = self.app()
            self.authorizations.setdefault(AUTHORIZATION_NAME, self.org.username)
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="applink-api", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> AppLinkApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
