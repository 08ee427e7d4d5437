"""rq-dashboard at ``/rq`` inside the receiver, behind HTTP Basic auth, reading JSON jobs.

Why inside the receiver: Heroku gives one public web process per app; a second dyno
just for a dashboard would cost money and another URL to protect. rq-dashboard 0.9 is
a Flask blueprint with no authentication of its own ("the responsibility of the wider
hosting app", ``rq_dashboard/web.py``), so this module adds what it lacks:

* **Off unless a password is set.** Without ``OFFLOAD_DASHBOARD_PASSWORD`` every ``/rq``
  URL answers 404 ``DASHBOARD_OFF`` naming the variable. With it, user ``admin`` and that
  password (compared with :func:`hmac.compare_digest`, user and password both, always)
  are required on every ``/rq`` URL, static files included.
* **Our Redis client.** The blueprint's own ``before_request`` opens a new Redis client
  from ``RQ_DASHBOARD_REDIS_URL`` on every request (a leaked pool each time, and certificate
  checks that fail against Heroku Key-Value Store's self-signed ``rediss://``). It is
  replaced, for this app only, by a guard that uses the receiver's one client.
* **JSON, not pickle.** ``rq_dashboard.web.config.serializer`` is set to RQ's JSON
  serializer (what its CLI's ``--json`` does). Three views still read jobs with pickle
  whatever that setting says: requeue one, requeue all (which would save the job's meta
  back pickled, so the worker loses ``max_retries``) and the workers list (which fails on
  a busy worker's job). They are replaced by versions that go through
  :mod:`services.ops.jobs`.
* **State changes by POST only, same origin only.** ``/rq/requeue/<queue>`` accepts GET
  in 0.9; every route that accepts POST is refused for other methods. Browsers resend
  Basic credentials on cross-site form posts, so a POST whose ``Origin`` (or ``Referer``)
  names another host is refused (CSRF).
* **No secret values.** Envelopes hold no secrets by design (``sessionRef`` is a reference
  to an encrypted session id), and the dashboard shows job descriptions, not arguments.
  As a second line, every JSON answer of the blueprint is passed through
  :func:`services.ops.jobs.redact`, so a secret-looking key's value never leaves,
  even with ``RQ_DASHBOARD_SHOW_FULL_ARGS`` turned on.
* **No script from job data.** A job's error names the file that failed, and file names are
  chosen by whoever uploaded them. rq-dashboard 0.9's job and workers pages put the JSON
  they fetch into ``innerHTML`` through underscore's unescaped ``<%= %>``, so a title like
  ``<img src=x onerror=...>`` would run with the operator's credentials. The JSON of those
  views is HTML-escaped here (:data:`_RENDERED_RAW`), and every dashboard page carries a
  Content-Security-Policy (:func:`content_security_policy`) that allows only the scripts
  the page itself was served with, so markup that gets in some other way cannot run either.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import logging
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlparse

from flask import Flask, Response, current_app, jsonify, request
from rq.exceptions import NoSuchJobError
from werkzeug.exceptions import NotFound

from services.errors import CallerRejected, JobNotFound, OffloadError
from services.logs import event
from services.ops import jobs as jobs_admin
from services.queue import SERIALIZER
from services.receiver.errors import error_response, http_error_response
from services.settings import Settings

logger = logging.getLogger(__name__)

PREFIX = "/rq"
ADMIN_USER = "admin"
REALM = "Offload operations"
PASSWORD_VARIABLE = "OFFLOAD_DASHBOARD_PASSWORD"
MIN_PASSWORD_LENGTH = 16

_BLUEPRINT = "rq_dashboard"

# The blueprint's JSON views whose pages render strings with underscore's unescaped ``<%= %>``
# (templates job.html, workers.html, queues.html in rq-dashboard 0.9). jobs.html escapes its own
# (``$('<div/>').text(...).html()``), so list_jobs is not escaped twice.
_RENDERED_RAW = frozenset({f"{_BLUEPRINT}.job_info", f"{_BLUEPRINT}.list_workers", f"{_BLUEPRINT}.list_queues"})

_JAVASCRIPT_TYPES = frozenset({"", "text/javascript", "application/javascript", "module"})


class DashboardOff(OffloadError):
    """The operator pages are off because no password is configured."""

    status_code = 404
    code = "DASHBOARD_OFF"


class OperatorRejected(CallerRejected):
    """Wrong or missing operator credentials, or a cross-site state change."""


def off_response(what: str) -> Response:
    exc = DashboardOff(f"The {what} is off. Set {PASSWORD_VARIABLE} to turn it on (user '{ADMIN_USER}').")
    return error_response(exc.status_code, exc.code, exc.message)


def require_admin(password: str) -> Response | None:
    """None when the request carries ``admin`` and ``password`` by Basic auth, else a 401 challenge.

    Both comparisons always run, on bytes (``compare_digest`` refuses non-ASCII ``str``), so
    the time taken says nothing about which part was wrong or how much of it matched.
    """
    auth = request.authorization
    basic = auth is not None and auth.type == "basic"
    user = (auth.username or "") if basic and auth is not None else ""
    given = (auth.password or "") if basic and auth is not None else ""
    user_ok = hmac.compare_digest(user.encode("utf-8"), ADMIN_USER.encode("utf-8"))
    password_ok = hmac.compare_digest(given.encode("utf-8"), password.encode("utf-8"))
    if user_ok & password_ok:
        return None
    exc = OperatorRejected(f"Operator pages need HTTP Basic auth: user '{ADMIN_USER}' and {PASSWORD_VARIABLE}.")
    # A browser's first request carries no credentials (it waits for the challenge): not worth a warning.
    event(logger, "operator authentication refused", logging.WARNING if auth is not None else logging.INFO,
          path=request.path, credentials_sent=auth is not None)
    response = error_response(exc.status_code, exc.code, exc.message)
    response.headers["WWW-Authenticate"] = f'Basic realm="{REALM}", charset="UTF-8"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _is_dashboard_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def _display_url(url: str) -> str:
    """The Redis URL without credentials (shown in the dashboard's instance picker)."""
    parsed = urlparse(url)
    host = parsed.hostname or ""
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{host}{port}{parsed.path}"


def _same_origin() -> bool:
    """False when the browser says the request comes from a page on another host."""
    for header in ("Origin", "Referer"):
        value = request.headers.get(header)
        if value:
            return urlparse(value).netloc.lower() == request.host.lower()
    return True  # not a browser (curl, scripts): no ambient credentials to abuse


def init_app(app: Flask, settings: Settings) -> None:
    """Mount rq-dashboard at ``/rq`` (or the "off" answer when no password is set). Idempotent."""
    if "offload_dashboard" in app.extensions:
        return
    if not settings.dashboard_password:
        app.extensions["offload_dashboard"] = "off"
        # No route lives under /rq when the dashboard is off, so every /rq URL ends in routing's NotFound:
        # answering there instead of in an app-wide before_request hook gives the same 404 (same endpoint
        # label, "unmatched", in the metrics) without a hook call on every other request.
        app.register_error_handler(NotFound, _not_found_when_off)
        return
    app.extensions["offload_dashboard"] = "on"
    if len(settings.dashboard_password) < MIN_PASSWORD_LENGTH:
        event(logger, "dashboard password is short", logging.WARNING, minimum=MIN_PASSWORD_LENGTH,
              hint="use a random one, e.g. `openssl rand -hex 24`")

    import rq_dashboard
    from rq_dashboard import web as rq_web

    rq_web.config.serializer = SERIALIZER
    app.config["RQ_DASHBOARD_REDIS_URL"] = (_display_url(settings.redis_url),)
    app.config["RQ_DASHBOARD_SHOW_FULL_ARGS"] = False
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=PREFIX)
    app.redis_conn = app.extensions["offload"].redis  # type: ignore[attr-defined]  # what the views read

    mutating = {
        rule.endpoint for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith(_BLUEPRINT + ".") and "POST" in (rule.methods or set())
    }
    password = settings.dashboard_password

    @app.before_request
    def _authenticate() -> Response | None:
        if _is_dashboard_path(request.path):
            return require_admin(password)
        return None

    def _guard() -> Response | None:
        """Replaces rq-dashboard's ``push_rq_connection`` for this app (see the module docstring)."""
        if (request.view_args or {}).get("instance_number") not in (None, 0):
            return error_response(404, "NOT_FOUND", "This dashboard shows one Redis: instance 0.")
        if request.endpoint in mutating and request.method != "POST":
            return error_response(405, "METHOD_NOT_ALLOWED", "This dashboard action changes jobs: POST only.")
        if request.method == "POST" and not _same_origin():
            exc = OperatorRejected("Cross-site request refused: dashboard actions must come from the dashboard.")
            return error_response(403, exc.code, exc.message)
        current_app.redis_conn = current_app.extensions["offload"].redis  # type: ignore[attr-defined]
        return None

    theirs = app.before_request_funcs.get(_BLUEPRINT, [])
    if rq_web.push_rq_connection not in theirs:
        raise RuntimeError("rq-dashboard changed: push_rq_connection is gone; review services/receiver/dashboard.py")
    app.before_request_funcs[_BLUEPRINT] = [f for f in theirs if f is not rq_web.push_rq_connection] + [_guard]
    app.after_request_funcs.setdefault(_BLUEPRINT, []).append(_clean_json)
    # An app-wide hook, not the blueprint's: the 401 challenge and the guard's refusals are pages under
    # /rq too, and static files answer from the blueprint's static endpoint.
    app.after_request(_lock_down)

    replacements: dict[str, Callable[..., Response]] = {
        f"{_BLUEPRINT}.requeue_job_view": _requeue_one,
        f"{_BLUEPRINT}.requeue_all": _requeue_all,
        f"{_BLUEPRINT}.list_workers": _list_workers,
    }
    missing = sorted(set(replacements) - set(app.view_functions))
    if missing:
        raise RuntimeError(f"rq-dashboard changed: no {', '.join(missing)}; review services/receiver/dashboard.py")
    app.view_functions.update(replacements)
    # rq-dashboard's job views let rq's NoSuchJobError escape (a 500) for an id that is gone or never was.
    app.register_error_handler(NoSuchJobError, _job_not_found)


def _job_not_found(exc: NoSuchJobError) -> Response:
    found = JobNotFound("No job with that id (finished jobs are kept for a day, failed ones for a week).")
    return error_response(found.status_code, found.code, found.message)


def _not_found_when_off(exc: NotFound) -> Response:
    """``DASHBOARD_OFF`` for any /rq URL; every other 404 answered as the receiver's JSON errors are."""
    return off_response("rq dashboard") if _is_dashboard_path(request.path) else http_error_response(exc)


def _no_store(payload: dict[str, Any]) -> Response:
    response = jsonify(payload)
    response.headers["Cache-Control"] = "no-store"
    return response


def _requeue_one(job_id: str) -> Response:
    """rq-dashboard's requeue button, through :func:`jobs_admin.requeue` (JSON, retries restored)."""
    try:
        jobs_admin.requeue(current_app.extensions["offload"].redis, job_id)
    except OffloadError as exc:
        return _no_store({"status": "ERROR", "code": exc.code, "message": exc.message})
    event(logger, "job requeued from the dashboard", job_id=job_id)
    return _no_store({"status": "OK"})


def _requeue_all(queue_name: str) -> Response:
    """rq-dashboard's "requeue all" for one queue's failed jobs."""
    connection = current_app.extensions["offload"].redis
    from rq.registry import FailedJobRegistry

    ids = FailedJobRegistry(queue_name, connection=connection, serializer=SERIALIZER).get_job_ids(cleanup=False)
    count = 0
    for job_id in ids:
        try:
            jobs_admin.requeue(connection, job_id)
            count += 1
        except OffloadError:
            continue  # expired or already requeued meanwhile
    event(logger, "failed jobs requeued from the dashboard", queue=queue_name, count=count)
    return _no_store({"status": "OK", "count": count})


def _list_workers(instance_number: int) -> Response:
    """The workers table, reading the busy workers' jobs as JSON and their arguments redacted."""
    from rq import Worker

    workers = []
    for worker in Worker.all(connection=current_app.extensions["offload"].redis, serializer=SERIALIZER):
        try:
            job = worker.get_current_job()
        except Exception:  # expired meanwhile, or not a JSON job
            job = None
        current: Any = "idle"
        if job is not None:
            current = {
                "job_id": job.id,
                "description": job.description,
                "created_at": job.created_at.isoformat() if job.created_at else None,
                "call_string": f"{job.func_name}({jobs_admin.redact(jobs_admin.envelope_of(job))!r})",
            }
        workers.append({
            "name": worker.name,
            "pid": worker.pid,
            "queues": [q.name for q in worker.queues],
            "state": str(worker.get_state()),
            "current_job": current,
            "last_heartbeat": worker.last_heartbeat,
            "birth_date": worker.birth_date,
            "successful_job_count": worker.successful_job_count,
            "failed_job_count": worker.failed_job_count,
            "total_working_time": worker.total_working_time,
            "version": getattr(worker, "version", ""),
            "python_version": getattr(worker, "python_version", ""),
        })
    workers.sort(key=lambda w: (w["state"], w["queues"], w["name"]))
    return _no_store({"workers": workers})


def _escape_strings(value: Any) -> Any:
    """Every string in a JSON value HTML-escaped (quotes too, as they may land in attributes)."""
    if isinstance(value, str):
        return html.escape(value, quote=True)
    if isinstance(value, list):
        return [_escape_strings(item) for item in value]
    if isinstance(value, dict):
        return {key: _escape_strings(item) for key, item in value.items()}
    return value


class _InlineScripts(HTMLParser):
    """Collects the text of a page's inline ``<script>`` elements that a browser would run."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.scripts: list[str] = []
        self._current: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "script":
            return
        attributes = dict(attrs)
        kind = (attributes.get("type") or "").strip().lower()
        self._current = [] if "src" not in attributes and kind in _JAVASCRIPT_TYPES else None

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._current.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._current is not None:
            self.scripts.append("".join(self._current))
            self._current = None


def content_security_policy(page: str) -> str:
    """A CSP for one dashboard page: its own files and exactly the inline scripts it was served with.

    Each inline script is allowed by its SHA-256 (CSP Level 3 hash-source,
    https://www.w3.org/TR/CSP3/#grammardef-hash-source), so no inline event handler (``onerror=``)
    and no script inserted later by ``innerHTML`` or jQuery's ``.html()`` can run: handlers would need
    ``'unsafe-inline'`` or ``'unsafe-hashes'``. ``'unsafe-eval'`` stays because rq-dashboard renders
    with underscore's ``_.template``, which compiles templates with ``new Function``
    (https://underscorejs.org/#template); it runs no markup. Inline styles are allowed because the
    templates use ``style=`` attributes; they cannot run script.
    """
    parser = _InlineScripts()
    parser.feed(page)
    parser.close()
    hashes = sorted({
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii") + "'"
        for script in parser.scripts
    })
    return "; ".join([
        "default-src 'self'",
        " ".join(["script-src 'self' 'unsafe-eval'", *hashes]),
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


def _lock_down(response: Response) -> Response:
    """Security headers on every /rq answer: the CSP, no sniffing, no framing, no cross-site referrer."""
    if not _is_dashboard_path(request.path):
        return response
    page = ""
    if response.mimetype == "text/html" and not response.direct_passthrough:
        page = response.get_data(as_text=True)
    response.headers["Content-Security-Policy"] = content_security_policy(page)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def _clean_json(response: Response) -> Response:
    """Every JSON answer of the blueprint: secret-looking values redacted (a second line of defence),
    and, for the views whose pages insert strings unescaped (:data:`_RENDERED_RAW`), HTML-escaped.

    Redaction comes first: it matches quoted keys inside descriptions, which escaping would change.
    """
    if response.mimetype != "application/json" or response.direct_passthrough:
        return response
    try:
        payload = json.loads(response.get_data(as_text=True))
    except ValueError:
        return response
    cleaned = jobs_admin.redact(payload)
    if request.endpoint in _RENDERED_RAW:
        cleaned = _escape_strings(cleaned)
    if cleaned != payload:
        response.set_data(json.dumps(cleaned))
    return response
