"""What ``/metrics`` answers, without Flask: the shared counters from Redis plus this process's requests.

Two kinds of numbers, kept in two places on purpose:

* **Work counters live in Redis** (written by :mod:`services.ops.counters` and the enqueue script),
  and gauges (queue depth per queue and registry, workers, the org's daily API usage) are read from
  Redis at scrape time, so every web dyno answers the same numbers.
* **HTTP request metrics live in the web process** (prometheus-client), because a Redis write per
  request would tax the hot path to measure it. Set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
  directory (and wire gunicorn's ``child_exit``; see ``docs/operations.md``) so all gunicorn workers
  of a dyno are summed; without it each scrape sees the one gunicorn worker that answered. They are
  per web dyno either way: Heroku's router sends each scrape to any dyno, so with several web dynos
  read them as samples (Heroku's router metrics are the cross-dyno view) and alert on the
  Redis-backed numbers.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from typing import Any

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from services import keys
from services.backfill import runs as backfill_runs
from services.logs import event
from services.ops.counters import JOB_DURATION_BUCKETS, QUEUE_WAIT_BUCKETS
from services.salesforce import allowance

logger = logging.getLogger(__name__)

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
REGISTRY_STATES = ("started", "scheduled", "deferred", "failed", "finished", "canceled")

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
        from rq.suspension import WORKERS_SUSPENDED
        from rq.worker_registration import REDIS_WORKER_KEYS

        from services.ops.jobs import REGISTRIES, queue_names

        queues = queue_names(self.connection)
        pipe = self.connection.pipeline(transaction=False)
        for key in (keys.INTAKE_COUNTERS, keys.JOB_ATTEMPTS, keys.JOB_DURATION, keys.QUEUE_WAIT):
            pipe.hgetall(key)
        pipe.get(keys.SALESFORCE_CALLS)
        pipe.get(keys.SALESFORCE_API_USAGE)
        pipe.scard(REDIS_WORKER_KEYS)
        pipe.exists(WORKERS_SUSPENDED)
        for name in queues:
            pipe.llen(Queue(name, connection=self.connection).key)
            for state in REGISTRY_STATES:
                pipe.zcard(REGISTRIES[state](name, connection=self.connection).key)
        intake_raw, attempts_raw, duration_raw, wait_raw, sf_calls, usage_raw, workers, paused, *depths = (
            pipe.execute())

        by_kind = {kind: CounterMetricFamily(f"offload_deliveries_{kind}", doc, labels=["process"])
                   for kind, doc in (
                       ("enqueued", "Deliveries enqueued as new jobs, by process."),
                       ("duplicates", "Deliveries answered with an existing job (dedupe), by process."),
                       ("skipped", "Deliveries skipped on purpose (loop guard), by process."),
                       ("refused", "Outbound Message notifications acknowledged but refused (they can never "
                        "start the process: no valid Id, a deleted record), by process."))}
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
        publications = allowance.estimate(self.connection)
        if publications is not None:
            yield GaugeMetricFamily("offload_salesforce_content_publication_limit", "New files and versions the "
                                    "org may publish in 24 h (ContentPublicationLimit).", value=publications.limit)
            yield GaugeMetricFamily("offload_salesforce_content_publications_remaining", "Files and versions the "
                                    "org can still publish (last /limits reading less what workers published "
                                    "since); workers pause at the reserve.", value=max(0, publications.remaining))
        yield from _backfill(self.connection)

        yield GaugeMetricFamily("offload_workers", "RQ workers registered in Redis.", value=float(workers))
        yield GaugeMetricFamily("offload_workers_paused", "1 while workers are suspended (at the org's API "
                                "ceiling or its daily file cap, or by an operator's `rq suspend`).",
                                value=float(paused))
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


def _backfill(connection: redis.Redis) -> Iterator[Metric]:
    """The active backfill run (or the last one): its files by where they are, and whether it runs or holds."""
    run = backfill_runs.latest(connection)
    if run is None:
        return
    c = run.counts
    files = GaugeMetricFamily("offload_backfill_files", "Files of the active (else the last) backfill run: done, "
                              "failed, skipped (had renditions, queued by a live upload, or skipped by the job), "
                              "queued (jobs not ended yet), left.", labels=["state"])
    for state, value in (("done", c.done), ("failed", c.failed),
                         ("skipped", c.skipped + c.already_rendered + c.already_queued), ("queued", c.in_flight),
                         ("left", run.left)):
        files.add_metric([state], float(value))
    yield files
    yield GaugeMetricFamily("offload_backfill_running", "1 while a backfill run is running (not paused or ended).",
                            value=1.0 if run.state == backfill_runs.RUNNING else 0.0)
    yield GaugeMetricFamily("offload_backfill_held", "1 while a running backfill holds at a safety margin of the "
                            "org's allowances (or Salesforce does not answer); `offload backfill status` says why.",
                            value=1.0 if run.state == backfill_runs.RUNNING and run.reason else 0.0)


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
