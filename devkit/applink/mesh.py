"""``heroku-applink-service-mesh <app command>``, the dev kit's stand-in for the buildpack's binary.

What the real mesh does for Offload, after its README and ``conf.go``
(https://github.com/heroku/heroku-integration-service-mesh,
https://github.com/heroku/heroku-buildpack-heroku-applink-service-mesh): it is the Procfile's ``web``
command, prefixing the app's own; it refuses to start without ``HEROKU_APPLINK_API_URL`` and
``HEROKU_APPLINK_TOKEN``; it reads ``heroku-applink-service-mesh.yaml`` from the app's root; it listens on
``$PORT`` and forwards to the app at ``http://127.0.0.1:$APP_PORT`` (3000 when unset); a request to a
``mesh.authentication.bypassRoutes`` route is forwarded as it came, any other is authenticated with the
add-on (``/invocations/authentication``) first and refused (401) if that fails.

How a caller authenticates is the stand-in's own (Salesforce's side of the real handshake is not
documented): ``Authorization: Bearer <an emulator access token of the invoking user>``, what a test or
``offload dev`` sends as "Salesforce". The stand-in asks :mod:`devkit.applink.api`, drops the caller's
``Authorization`` and any ``x-client-context`` it sent, and forwards with the context the API returned
(base64 JSON, :func:`services.salesforce.applink.encode_client_context`). A bypass pattern ending in ``*``
matches every path under its prefix; any other matches exactly (the real mesh's matching rule is not
documented; this is what its sample values suggest).
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
import yaml

from services.salesforce.applink import CLIENT_CONTEXT_HEADER, encode_client_context

CONFIG_FILE = "heroku-applink-service-mesh.yaml"

DEFAULT_BYPASS_ROUTES = ("/callouts/*", "/outbound/*", "/jobs/*", "/healthz", "/readyz", "/openapi.json",
                         "/metrics", "/rq/*")
"""The repository's ``heroku-applink-service-mesh.yaml`` routes, for runs outside the repository (an installed
dev kit has no copy of the file); ``tests/devkit/test_applink_mesh.py`` keeps the two equal."""

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
               "transfer-encoding", "upgrade", "content-length"}
"""Not forwarded (RFC 9110 7.6.1; the length is recomputed). ``Host`` is kept, so the app's ``statusUrl`` names
the public address the caller used (whether the real mesh keeps it is not documented: set OFFLOAD_PUBLIC_URL)."""


def bypass_routes(root: Path | None = None) -> tuple[str, ...]:
    """``mesh.authentication.bypassRoutes`` of the app's YAML, or :data:`DEFAULT_BYPASS_ROUTES` without one."""
    path = (root or Path.cwd()) / CONFIG_FILE
    if not path.exists():
        return DEFAULT_BYPASS_ROUTES
    config = yaml.safe_load(path.read_text()) or {}
    return tuple(config.get("mesh", {}).get("authentication", {}).get("bypassRoutes") or ())


def bypassed(path: str, routes: tuple[str, ...]) -> bool:
    path = path.split("?", 1)[0]
    return any(path.startswith(r[:-1]) if r.endswith("*") else path == r for r in routes)


class Mesh:
    """The proxy: authenticate (or bypass), inject the context, forward to the app."""

    def __init__(self, *, port: int, app_port: int, api_url: str, api_token: str, routes: tuple[str, ...]):
        self.app_port, self.api_url, self.api_token, self.routes = app_port, api_url.rstrip("/"), api_token, routes
        self.api = requests.Session()
        self.api.trust_env = False
        mesh = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                sys.stderr.write("mesh: " + (format % args) + "\n")

            def _handle(self) -> None:
                mesh.handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True

    def _authenticate(self, handler: BaseHTTPRequestHandler) -> dict[str, Any] | None:
        header = handler.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        response = self.api.post(f"{self.api_url}/invocations/authentication", timeout=10,
                                 headers={"Authorization": f"Bearer {self.api_token}"},
                                 json={"token": header[7:], "requestId": handler.headers.get("x-request-id")})
        return response.json()["clientContext"] if response.status_code == 200 else None

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP}
        if not bypassed(handler.path, self.routes):
            context = self._authenticate(handler)
            if context is None:
                self._reply(handler, 401, b'{"error":"Unauthorized: AppLink could not authenticate the request"}')
                return
            headers = {k: v for k, v in headers.items() if k.lower() not in {"authorization", CLIENT_CONTEXT_HEADER}}
            headers[CLIENT_CONTEXT_HEADER] = encode_client_context(context)
        connection = http.client.HTTPConnection("127.0.0.1", self.app_port, timeout=60)
        try:
            connection.request(handler.command, handler.path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            out_headers = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
            self._reply(handler, response.status, payload, out_headers)
        except OSError:
            self._reply(handler, 502, b'{"error":"the app is not answering on APP_PORT"}')
        finally:
            connection.close()

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, body: bytes,
               headers: list[tuple[str, str]] | None = None) -> None:
        handler.send_response(status)
        for key, value in headers or [("Content-Type", "application/json")]:
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)


def main(argv: list[str] | None = None) -> int:
    """Start the app command with ``APP_PORT`` and serve the mesh on ``PORT`` until the app exits or SIGTERM."""
    command = sys.argv[1:] if argv is None else argv
    api_url, api_token = os.environ.get("HEROKU_APPLINK_API_URL", ""), os.environ.get("HEROKU_APPLINK_TOKEN", "")
    if not command or not api_url or not api_token:
        sys.stderr.write("Heroku AppLink add-on config vars not set\n" if command else
                         "usage: heroku-applink-service-mesh <app startup command>\n")
        return 1
    app_port = int(os.environ.get("APP_PORT") or 3000)
    mesh = Mesh(port=int(os.environ.get("PORT") or 5000), app_port=app_port, api_url=api_url, api_token=api_token,
                routes=bypass_routes())
    child = subprocess.Popen(command, env={**os.environ, "APP_PORT": str(app_port)})

    def stop(signum: int, frame: object) -> None:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=mesh.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    code = child.wait()
    mesh.server.shutdown()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
