"""Prometheus metrics at ``/metrics``: right with many gunicorn workers, worker dynos and web dynos.

Two kinds of numbers, kept in two places on purpose:

* **Work counters live in Redis** (``offload:metrics:*`` hashes, ``HINCRBY``): jobs enqueued,
  duplicates, skips, job attempts by outcome, job duration and queue-wait histograms and
  Salesforce API calls. On Heroku the worker dynos and the web dynos are different machines
  with no shared disk, so prometheus-client's multiprocess files could never add a worker's
  counts to the web's ``/metrics``; Redis is the one thing every process already shares.
  Each observation is one pipelined round trip, and a Redis error only logs a warning: a
  metric never fails a request or a job. Gauges (queue depth per queue and registry, workers,
  the org's daily API usage the workers store in ``offload:sf-api-usage``) are read from
  Redis at scrape time, so every web dyno answers the same numbers.
* **HTTP request metrics live in the web process** (prometheus-client), because a Redis
  write per request would tax the hot path to measure it. Set ``PROMETHEUS_MULTIPROC_DIR``
  to an empty directory (and wire gunicorn's ``child_exit``; see ``docs/operations.md``) so
  all gunicorn workers of a dyno are summed; without it each scrape sees the one gunicorn
  worker that answered. They are per web dyno either way: Heroku's router sends each scrape
  to any dyno, so with several web dynos read them as samples (Heroku's router metrics are
  the cross-dyno view) and alert on the Redis-backed numbers.

``/metrics`` is behind the same Basic auth as the dashboard (user ``admin``,
``OFFLOAD_DASHBOARD_PASSWORD``) and off without that password: a Heroku web dyno is public,
and job volumes, failure rates and the org's remaining API allowance are nobody else's
business (Prometheus' ``basic_auth`` scrape option sends the credentials).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC
from typing import Any

import redis
from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from services.logs import event
from services.queueing import INTAKE_COUNTERS_KEY

logger = logging.getLogger(__name__)

KEY_PREFIX = "offload:metrics:"
SF_USAGE_KEY = "offload:sf-api-usage"
"""Written by ``services.salesforce.record_usage`` (a test checks the two stay equal)."""

OUTCOMES = ("succeeded", "failed", "retried")
INTAKE_KINDS = ("enqueued", "duplicates", "skipped")
JOB_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
QUEUE_WAIT_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
REGISTRY_STATES = ("started", "scheduled", "deferred", "failed", "finished", "canceled")

INTAKE_HASH = INTAKE_COUNTERS_KEY
"""Hash of intake counters; fields from :func:`intake_field` (public so the enqueue script can count too)."""
_ATTEMPTS_HASH = KEY_PREFIX + "attempts"  # field "<process>|<outcome>"
_DURATION_HASH = KEY_PREFIX + "job_duration"  # fields "<process>|<le>", "<process>|sum", "<process>|count"
_WAIT_HASH = KEY_PREFIX + "queue_wait"
_SF_CALLS_KEY = KEY_PREFIX + "salesforce_calls"

# --- per-process (web) metrics -------------------------------------------------------------

_LOCAL = CollectorRegistry(auto_describe=True)
HTTP_REQUESTS = Counter("offload_http_requests", "HTTP requests answered, by Flask endpoint and status.",
                        ["endpoint", "status"], registry=_LOCAL)
HTTP_SECONDS = Histogram("offload_http_request_duration_seconds", "Time to answer, by Flask endpoint.",
                         ["endpoint"], buckets=HTTP_BUCKETS, registry=_LOCAL)


def multiprocess_dir() -> str | None:
    """``PROMETHEUS_MULTIPROC_DIR`` when set (prometheus-client reads it when first imported)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


_REQUEST_CHILDREN: dict[tuple[str, int], tuple[Any, Any]] = {}
"""``(endpoint, status) -> (counter child, histogram child)``: what ``.labels(...)`` returns, looked up once.

``labels()`` validates and joins the label values under a lock on every call; the children it hands out
are the same objects each time (and fork-safe in multiprocess mode), so keeping them changes nothing but
the cost. Bounded by the app's endpoints times the statuses it answers."""


def request_finished(endpoint: str, status: int, seconds: float | None) -> None:
    """Count one answered request (called by the hooks :func:`init_app` installs)."""
    children = _REQUEST_CHILDREN.get((endpoint, status))
    if children is None:
        children = (HTTP_REQUESTS.labels(endpoint=endpoint, status=str(status)), HTTP_SECONDS.labels(endpoint=endpoint))
        _REQUEST_CHILDREN[(endpoint, status)] = children
    children[0].inc()
    if seconds is not None:
        children[1].observe(seconds)


# --- shared (Redis) counters ----------------------------------------------------------------


def _write(connection: redis.Redis, what: str, ops: Callable[[Any], None]) -> None:
    """Run ``ops`` on a non-transactional pipeline; a Redis error only logs a warning."""
    try:
        pipe = connection.pipeline(transaction=False)
        ops(pipe)
        pipe.execute()
    except redis.RedisError as exc:
        event(logger, "metric not recorded", logging.WARNING, metric=what, error=type(exc).__name__)


def _bucket_field(value: float, buckets: tuple[float, ...]) -> str:
    """The one bucket a value falls in (stored non-cumulative: one HINCRBY per observation)."""
    for bound in buckets:
        if value <= bound:
            return floatToGoString(bound)
    return "+Inf"


def _observe(pipe: Any, key: str, process: str, value: float, buckets: tuple[float, ...]) -> None:
    value = max(0.0, float(value))
    pipe.hincrby(key, f"{process}|{_bucket_field(value, buckets)}", 1)
    pipe.hincrbyfloat(key, f"{process}|sum", value)
    pipe.hincrby(key, f"{process}|count", 1)


def intake(connection: redis.Redis, process: str, *, enqueued: int = 0, duplicates: int = 0,
           skipped: int = 0) -> None:
    """Count what one receiver request did with its deliveries, in one round trip."""
    counts = {"enqueued": enqueued, "duplicates": duplicates, "skipped": skipped}
    if not any(counts.values()):
        return

    def ops(pipe: Any) -> None:
        for kind, n in counts.items():
            if n:
                pipe.hincrby(INTAKE_HASH, intake_field(kind, process), n)

    _write(connection, "intake", ops)


def intake_field(kind: str, process: str) -> str:
    """Field of :data:`INTAKE_HASH` for ``kind`` (``enqueued``, ``duplicates``, ``skipped``) and a process."""
    if kind not in INTAKE_KINDS:
        raise ValueError(f"kind must be one of {', '.join(INTAKE_KINDS)} (got {kind!r})")
    return f"{kind}|{process}"


def intake_outcomes(connection: redis.Redis, process: str, outcomes: Iterable[Any]) -> None:
    """Count a request's :class:`services.receiver.intake.Outcome` list (``.skipped``, ``.duplicate``)."""
    done = list(outcomes)
    skipped_n = sum(1 for o in done if getattr(o, "skipped", None))
    duplicates_n = sum(1 for o in done if not getattr(o, "skipped", None) and getattr(o, "duplicate", False))
    intake(connection, process, enqueued=len(done) - skipped_n - duplicates_n, duplicates=duplicates_n,
           skipped=skipped_n)


def enqueued(connection: redis.Redis, process: str, n: int = 1) -> None:
    """Jobs newly enqueued for ``process``."""
    intake(connection, process, enqueued=n)


def duplicate(connection: redis.Redis, process: str, n: int = 1) -> None:
    """Deliveries answered with an existing job (the dedupe ledger caught them)."""
    intake(connection, process, duplicates=n)


def skipped(connection: redis.Redis, process: str, n: int = 1) -> None:
    """Deliveries not enqueued on purpose (the loop guard: a record Offload wrote itself)."""
    intake(connection, process, skipped=n)


def job_finished(connection: redis.Redis, process: str, outcome: str, duration_s: float,
                 queue_wait_s: float | None = None) -> None:
    """One job attempt ended: ``succeeded``, ``failed`` (no retry follows) or ``retried``."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)} (got {outcome!r})")

    def ops(pipe: Any) -> None:
        pipe.hincrby(_ATTEMPTS_HASH, f"{process}|{outcome}", 1)
        _observe(pipe, _DURATION_HASH, process, duration_s, JOB_DURATION_BUCKETS)
        if queue_wait_s is not None:
            _observe(pipe, _WAIT_HASH, process, queue_wait_s, QUEUE_WAIT_BUCKETS)

    _write(connection, "job_finished", ops)


def queue_wait_seconds(job: Any) -> float | None:
    """Seconds between the job's (latest) enqueue and its start, if RQ recorded both."""
    enqueued_at, started_at = getattr(job, "enqueued_at", None), getattr(job, "started_at", None)
    if enqueued_at is None or started_at is None:
        return None
    if enqueued_at.tzinfo is None:
        enqueued_at = enqueued_at.replace(tzinfo=UTC)
    if started_at.tzinfo is None:
        started_at = started_at.replace(tzinfo=UTC)
    return max(0.0, (started_at - enqueued_at).total_seconds())


def salesforce_calls(connection: redis.Redis, n: int = 1) -> None:
    """Salesforce API calls made by the workers."""
    _write(connection, "salesforce_calls", lambda pipe: pipe.incrby(_SF_CALLS_KEY, n))


# --- scraping -------------------------------------------------------------------------------


def _text(raw: Any) -> str:
    return raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)


def _histogram(name: str, doc: str, raw: dict[Any, Any], buckets: tuple[float, ...]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=["process"])
    per_process: dict[str, dict[str, float]] = {}
    for key, value in raw.items():
        process, _, part = _text(key).rpartition("|")
        per_process.setdefault(process, {})[part] = float(value)
    for process in sorted(per_process):
        values = per_process[process]
        cumulative, rows = 0.0, []
        for bound in buckets:
            cumulative += values.get(floatToGoString(bound), 0.0)
            rows.append((floatToGoString(bound), cumulative))
        rows.append(("+Inf", cumulative + values.get("+Inf", 0.0)))
        family.add_metric([process], rows, values.get("sum", 0.0))
    return family


class RedisCollector:
    """Reads the shared counters and the queue gauges from Redis at scrape time (two round trips)."""

    def __init__(self, connection: redis.Redis) -> None:
        self.connection = connection

    def collect(self) -> Iterator[Metric]:
        try:
            families = list(self._families())
        except redis.RedisError as exc:
            event(logger, "metrics scrape could not read Redis", logging.WARNING, error=type(exc).__name__)
            yield GaugeMetricFamily("offload_redis_up", "1 when /metrics could read Redis.", value=0)
            return
        yield GaugeMetricFamily("offload_redis_up", "1 when /metrics could read Redis.", value=1)
        yield from families

    def _families(self) -> Iterable[Metric]:
        from rq import Queue
        from rq.worker_registration import REDIS_WORKER_KEYS

        from services.jobs_admin import REGISTRIES, queue_names

        queues = queue_names(self.connection)
        pipe = self.connection.pipeline(transaction=False)
        for key in (INTAKE_HASH, _ATTEMPTS_HASH, _DURATION_HASH, _WAIT_HASH):
            pipe.hgetall(key)
        pipe.get(_SF_CALLS_KEY)
        pipe.get(SF_USAGE_KEY)
        pipe.scard(REDIS_WORKER_KEYS)
        for name in queues:
            pipe.llen(Queue(name, connection=self.connection).key)
            for state in REGISTRY_STATES:
                pipe.zcard(REGISTRIES[state](name, connection=self.connection).key)
        intake_raw, attempts_raw, duration_raw, wait_raw, sf_calls, usage_raw, workers, *depths = pipe.execute()

        by_kind = {kind: CounterMetricFamily(f"offload_deliveries_{kind}", doc, labels=["process"])
                   for kind, doc in (
                       ("enqueued", "Deliveries enqueued as new jobs, by process."),
                       ("duplicates", "Deliveries answered with an existing job (dedupe), by process."),
                       ("skipped", "Deliveries skipped on purpose (loop guard), by process."))}
        for key, value in sorted(intake_raw.items()):
            kind, _, process = _text(key).partition("|")
            if kind in by_kind:
                by_kind[kind].add_metric([process], float(value))
        yield from by_kind.values()

        attempts = CounterMetricFamily("offload_job_attempts", "Job attempts by process and outcome "
                                       "(succeeded, failed = no retry follows, retried).",
                                       labels=["process", "outcome"])
        for key, value in sorted(attempts_raw.items()):
            process, _, outcome = _text(key).rpartition("|")
            attempts.add_metric([process, outcome], float(value))
        yield attempts
        yield _histogram("offload_job_duration_seconds", "Time a job attempt ran, by process.",
                         duration_raw, JOB_DURATION_BUCKETS)
        yield _histogram("offload_job_queue_wait_seconds", "Time a job waited in its queue before it "
                         "started, by process.", wait_raw, QUEUE_WAIT_BUCKETS)

        yield CounterMetricFamily("offload_salesforce_api_calls", "Salesforce API calls made by the workers.",
                                  value=float(sf_calls or 0))
        if usage_raw:
            usage = json.loads(usage_raw)
            used, limit = float(usage["used"]), float(usage["limit"])
            yield GaugeMetricFamily("offload_salesforce_daily_api_used", "The org's API requests used in "
                                    "the last 24 h (latest Sforce-Limit-Info).", value=used)
            yield GaugeMetricFamily("offload_salesforce_daily_api_limit", "The org's daily API request "
                                    "allowance.", value=limit)
            yield GaugeMetricFamily("offload_salesforce_daily_api_remaining", "API requests the org has "
                                    "left today.", value=max(0.0, limit - used))

        yield GaugeMetricFamily("offload_workers", "RQ workers registered in Redis.", value=float(workers))
        depth = GaugeMetricFamily("offload_queue_depth", "Jobs waiting in each queue.", labels=["queue"])
        registry = GaugeMetricFamily("offload_queue_registry_jobs", "Jobs in each queue's RQ registries "
                                     "(started, scheduled, deferred, failed, finished, canceled).",
                                     labels=["queue", "registry"])
        per_queue = 1 + len(REGISTRY_STATES)
        for i, name in enumerate(queues):
            row = depths[i * per_queue:(i + 1) * per_queue]
            depth.add_metric([name], float(row[0]))
            for state, count in zip(REGISTRY_STATES, row[1:], strict=True):
                registry.add_metric([name, state], float(count))
        yield depth
        yield registry


class _LocalCollector:
    """This process's request metrics (used when multiprocess mode is off)."""

    def collect(self) -> Iterator[Metric]:
        yield from _LOCAL.collect()


def render(connection: redis.Redis) -> bytes:
    """The Prometheus text exposition: shared counters from Redis plus this dyno's request metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(connection))
    directory = multiprocess_dir()
    if directory:
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry, path=directory)
    else:
        registry.register(_LocalCollector())
    return generate_latest(registry)


# --- Flask ----------------------------------------------------------------------------------

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def scrape() -> Response:
    """Prometheus scrape target (Basic auth with the dashboard password; off without one)."""
    from services.dashboard import off_response, require_admin

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
