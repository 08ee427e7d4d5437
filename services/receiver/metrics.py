"""Prometheus metrics at ``/metrics``, and the timing of every request the receiver answers.

What is counted and where it is kept is :mod:`services.ops.collectors` and
:mod:`services.ops.counters`; this module is only the Flask side.

``/metrics`` is behind the same Basic auth as the dashboard (user ``admin``,
``OFFLOAD_DASHBOARD_PASSWORD``) and off without that password: a Heroku web dyno is public,
and job volumes, failure rates and the org's remaining API allowance are nobody else's
business (Prometheus' ``basic_auth`` scrape option sends the credentials).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST

from services.ops.collectors import render, request_finished

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def scrape() -> Response:
    """Prometheus scrape target (Basic auth with the dashboard password; off without one)."""
    from services.receiver.dashboard import off_response, require_admin

    runtime = current_app.extensions["offload"]
    password = runtime.settings.dashboard_password
    if not password:
        return off_response("/metrics endpoint")
    denied = require_admin(password)
    if denied is not None:
        return denied
    return Response(render(runtime.redis), content_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


def init_app(app: Flask) -> None:
    """Serve ``/metrics`` and count every request.

    Call after the receiver's runtime is set up (``/metrics`` reads its settings and Redis
    client) and before ``dashboard.init_app``, so the dashboard's auth refusals are timed too.
    """
    if "offload" not in app.extensions:
        raise RuntimeError("call services.receiver.runtime.init_app before metrics.init_app")
    if bp.name in app.blueprints:
        return  # already set up (create_app does it; tests may call it again)
    app.register_blueprint(bp)

    app.wsgi_app = _StartStamp(app.wsgi_app)  # type: ignore[method-assign]

    @app.after_request
    def _count(response: Response) -> Response:
        started = request.environ.get(_STARTED)
        seconds = time.perf_counter() - started if started is not None else None
        request_finished(request.endpoint or "unmatched", response.status_code, seconds)
        return response


_STARTED = "offload.request_started"


class _StartStamp:
    """WSGI middleware (Flask's documented ``app.wsgi_app`` wrapping) that stamps when a request arrived.

    The request duration used to start in a ``before_request`` hook; every hook costs Flask a coroutine
    check and a call on every request, and the hook also ran after the request context and URL matching,
    which this stamp now includes (a few microseconds more of the request are timed, nothing is counted
    differently). A request that never reaches ``after_request`` is not observed, as before.
    """

    def __init__(self, wsgi_app: Callable[..., Any]) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        environ[_STARTED] = time.perf_counter()
        return self.wsgi_app(environ, start_response)
