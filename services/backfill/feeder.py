"""Feeding a backfill run: read the cursor, skip what is done or queued, queue the rest at the run's rate.

:func:`feed` is one step. A worker process calls it every few seconds (``workers/backfill_feeder.py``); the
``offload:backfill:feeding`` lock makes one feeder step at a time, whichever dyno it is on, and every step
leaves Redis consistent, so a kill anywhere loses nothing and queues nothing twice:

1. **Done?** When the cursor has nothing more (or ``--max-files`` are queued) and every queued job has ended,
   the run is finished and the org is free for another.
2. **How many** to queue now: what the run's rate allows since the last step (a token bucket, one minute of
   burst), no more than keeps :data:`HIGH_WATER` backfill jobs waiting (enough to keep every work process busy
   between two steps; the rest stay in Salesforce, not in Redis).
3. **Safety margins**: no feeding while the org has used :data:`API_CEILING` of its daily API requests, or
   while queueing would leave less than :data:`FILE_RESERVE` of its daily file cap (live jobs pause only at
   95 % and 5 %: a backfill stops well before it could take what the org's users and live uploads need). The
   run says why in ``reason`` and carries on by itself when the rolling 24-hour window frees up.
4. **Read** one page of the cursor when the pending list runs short, minus the files that already have
   renditions; cursor and pending list are written together.
5. **Queue** through :func:`services.queue.admit`, with the same delivery key a live upload's callout has: a file
   a live upload has queued is found queued ("duplicate") and skipped. A file queued by this run before a kill
   is recognised as the run's own.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import redis

from services import keys
from services.backfill import QUEUE, SOURCE, cursor, runs
from services.backfill.runs import Run
from services.clock import utc_iso
from services.envelope import Envelope
from services.errors import (
    BackfillError,
    SalesforcePermanentError,
    SalesforceTransientError,
)
from services.logs import event
from services.queue import Delivery, admit, fetch_job, make_queue
from services.queue.dedupe import payload_key
from services.queue.loopguard import own_output_key
from services.salesforce import allowance
from services.salesforce.client import SalesforceClient, latest_usage
from services.settings import Settings

logger = logging.getLogger(__name__)

HIGH_WATER = 50
"""Backfill jobs kept waiting at most."""
API_CEILING = 0.80
"""Feeding holds from this share of the org's daily API requests used."""
FILE_RESERVE = 0.25
"""Feeding holds when queueing would leave less than this share of the org's daily file cap."""
LIMITS_MAX_AGE = 600
"""Figures older than this (seconds) are read again from ``/limits`` (one API call) before feeding on them."""
LOCK_MS = 120_000


@dataclass(frozen=True)
class Step:
    """What one feeder step did."""

    run_id: str
    queued: int = 0
    held: str = ""
    ended: str = ""


def feed(connection: redis.Redis, settings: Settings, salesforce: Callable[[], SalesforceClient]) -> Step | None:
    """One feeder step for the active run; None when there is nothing to feed or another feeder is stepping."""
    run = runs.active(connection)
    if run is None or run.state != runs.RUNNING:
        return None
    token = uuid.uuid4().hex
    if not connection.set(keys.BACKFILL_FEEDING, token, nx=True, px=LOCK_MS):
        return None
    try:
        return _step(connection, settings, run, _Lazy(salesforce))
    except SalesforceTransientError as exc:
        reason = f"{exc.code}: Salesforce did not answer ({exc.message}); trying again"
        runs.set_reason(connection, run.id, reason)
        return Step(run.id, held=reason)
    except (SalesforcePermanentError, BackfillError) as exc:
        reason = f"{exc.code}: {exc.message}"
        runs.end(connection, run.id, runs.STOPPED, reason)
        event(logger, "backfill stopped", logging.ERROR, run=run.id, reason=reason)
        return Step(run.id, ended=runs.STOPPED)
    finally:
        connection.eval("if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end", 1,
                        keys.BACKFILL_FEEDING, token)


class _Lazy:
    """The Salesforce client, built only if the step needs one (most steps of a rate-limited run do not)."""

    def __init__(self, build: Callable[[], SalesforceClient]) -> None:
        self._build = build
        self._client: SalesforceClient | None = None

    def __call__(self) -> SalesforceClient:
        if self._client is None:
            self._client = self._build()
        return self._client


def _step(connection: redis.Redis, settings: Settings, run: Run, sf: Callable[[], SalesforceClient]) -> Step:
    counts = run.counts
    reached_max = run.max_files is not None and counts.enqueued >= run.max_files
    if (run.cursor.get("done") and counts.pending == 0) or reached_max:
        if counts.in_flight == 0 or not _jobs_left(connection):
            why = f"--max-files {run.max_files} reached" if reached_max else "every candidate file settled"
            if counts.in_flight:  # e.g. a job abandoned by a dying work process on its last attempt
                why += (f"; {counts.in_flight} jobs ended without reporting an outcome "
                        "(`offload jobs list --failed --process " + run.selection.process + "`)")
            runs.end(connection, run.id, runs.FINISHED, why)
            event(logger, "backfill finished", run=run.id, done=counts.done, failed=counts.failed,
                  skipped=counts.settled - counts.finished_jobs + counts.skipped)
            return Step(run.id, ended=runs.FINISHED)
        return Step(run.id)
    now = time.time()
    tokens = _tokens(connection, run, now)
    budget = HIGH_WATER - make_queue(QUEUE, connection).count
    if tokens is not None:
        budget = min(budget, int(tokens))
    if run.max_files is not None:
        budget = min(budget, run.max_files - counts.enqueued)
    if budget <= 0:
        return Step(run.id)
    _refresh_figures(connection, sf)
    held = _api_margin_reached(connection)
    if not held and counts.pending < budget and not run.cursor.get("done"):
        _read_page(connection, settings, run, sf())
    ids = [_text(i) for i in connection.lrange(runs.pending_key(run.id), 0, budget - 1)] if not held else []
    if ids:
        # Only files to queue need the file cap's room: a run whose files all have renditions still reads to the end.
        held = _file_margin_reached(connection, settings, run, len(ids) + counts.in_flight)
    if held:
        if held != run.reason:
            event(logger, "backfill holds", logging.WARNING, run=run.id, reason=held)
        runs.set_reason(connection, run.id, held)
        return Step(run.id, held=held)
    queued = _queue(connection, settings, run, ids)
    pipe = connection.pipeline()
    pipe.ltrim(runs.pending_key(run.id), len(ids), -1)
    if tokens is not None:
        pipe.hset(run.key, mapping={"tokens": tokens - queued, "tokens_at": now})
    if run.reason:
        pipe.hset(run.key, "reason", "")
    pipe.execute()
    return Step(run.id, queued=queued)


def _jobs_left(connection: redis.Redis) -> bool:
    """Whether any backfill job is still waiting, running or due for a retry (rq's queue and registries)."""
    queue = make_queue(QUEUE, connection)
    return bool(queue.count or queue.started_job_registry.count or queue.scheduled_job_registry.count
                or queue.deferred_job_registry.count)


def _tokens(connection: redis.Redis, run: Run, now: float) -> float | None:
    """Files the run's rate allows now (a bucket of one minute's worth, refilled continuously); None: no rate."""
    if run.rate is None:
        return None
    raw = connection.hmget(run.key, ["tokens", "tokens_at"])
    tokens = float(raw[0]) if raw[0] else float(run.rate)
    at = float(raw[1]) if raw[1] else now
    return min(float(run.rate), tokens + run.rate * max(0.0, now - at) / 60.0)


def _refresh_figures(connection: redis.Redis, sf: Callable[[], SalesforceClient]) -> None:
    """Read ``/limits`` again (one call) when the shared figures are missing or older than :data:`LIMITS_MAX_AGE`."""
    usage, files_left = latest_usage(connection), allowance.estimate(connection)
    now = time.time()
    if (usage is None or now - usage.read_at > LIMITS_MAX_AGE
            or files_left is None or now - files_left.read_at > LIMITS_MAX_AGE):
        sf().refresh_usage()


def _api_margin_reached(connection: redis.Redis) -> str:
    """Why feeding must hold for the org's API allowance (empty: it need not)."""
    usage = latest_usage(connection)
    if usage is not None and usage.fraction >= API_CEILING:
        return (f"API_MARGIN: the org has used {usage.used} of {usage.limit} daily API requests; a backfill holds "
                f"from {API_CEILING:.0%} to leave the rest to live uploads and the org's other integrations")
    return ""


def _file_margin_reached(connection: redis.Redis, settings: Settings, run: Run, files: int) -> str:
    """Why ``files`` more jobs must not be queued for the org's daily file cap (empty: they may)."""
    files_left = allowance.estimate(connection)
    need = files * run.selection.declaration.renditions_per_file(settings)
    if files_left is not None and files_left.limit and files_left.remaining - need < FILE_RESERVE * files_left.limit:
        return (f"FILE_MARGIN: the org can publish about {max(0, files_left.remaining)} more files today "
                f"(ContentPublicationLimit {files_left.limit}); a backfill keeps the last {FILE_RESERVE:.0%} "
                "for the org's users and live uploads")
    return ""


def _read_page(connection: redis.Redis, settings: Settings, run: Run, sf: SalesforceClient) -> None:
    """Advance the cursor one page; the candidates still to render join the pending list, in one transaction."""
    page = cursor.next_page(sf, run.selection, run.mode, run.cursor)
    names = run.selection.declaration.rendition_names
    wanted = names(settings) if names is not None else None
    keep, rendered = cursor.without_renditions(sf, page.ids, wanted) if page.ids else ([], 0)
    pipe = connection.pipeline()
    if keep:
        pipe.rpush(runs.pending_key(run.id), *keep)
    pipe.hincrby(run.key, "read", len(page.ids))
    pipe.hincrby(run.key, "already_rendered", rendered)
    pipe.hset(run.key, "cursor", json.dumps(page.cursor))
    pipe.execute()
    run.cursor = page.cursor


def _queue(connection: redis.Redis, settings: Settings, run: Run, ids: list[str]) -> int:
    """Queue a job per file; count the new ones and the ones a live upload (or an earlier run) holds."""
    if not ids:
        return 0
    process = run.selection.declaration
    assert process.file_payload is not None  # Selection.parse refuses a process that takes no files
    schema = process.schema()
    deliveries = []
    for file_id in ids:
        payload = schema.load(process.file_payload(file_id))
        key = payload_key(None, process.name, payload)
        envelope = Envelope(process=process.name, payload=payload, source=SOURCE, record_id=process.record_id(payload),
                            delivery_key=key, received_at=utc_iso(timespec="milliseconds"), backfill_run=run.id)
        deliveries.append(Delivery(
            queue=QUEUE, dedupe_key=key, envelope=envelope.to_json(),
            description=f"{process.name} {file_id} (backfill)",
            timeout=min(process.timeout, settings.job_timeout), retries=settings.job_retries,
            retry_base=settings.retry_base_seconds))
    outcomes = admit(connection, deliveries, dedupe_ttl=settings.dedupe_ttl,
                     guard_keys=[own_output_key(i) for i in ids])
    new = queued_elsewhere = own_output = 0
    for outcome in outcomes:
        if outcome is None:
            own_output += 1
        elif not outcome.duplicate:
            new += 1
        elif not _ours(connection, run.id, outcome.job_id):
            queued_elsewhere += 1
    pipe = connection.pipeline()
    pipe.hincrby(run.key, "enqueued", new)
    pipe.hincrby(run.key, "already_queued", queued_elsewhere)
    pipe.hincrby(run.key, "already_rendered", own_output)
    pipe.execute()
    if new:
        event(logger, "backfill queued files", run=run.id, queued=new, already_queued=queued_elsewhere)
    return new


def _ours(connection: redis.Redis, run_id: str, job_id: str) -> bool:
    """Whether a duplicate is this run's own job (queued by a step that died before trimming its pending list)."""
    job = fetch_job(connection, job_id)
    envelope = Envelope.of_job_args(job.args) if job is not None else None
    return envelope is not None and envelope.backfill_run == run_id


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

