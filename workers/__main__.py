"""``python -m workers``: an RQ worker with Heroku semantics.

Heroku restarts every dyno at least daily and on each deploy: it sends
SIGTERM, waits 30 seconds, then SIGKILL. On SIGTERM the worker stops taking
jobs and the job in hand finishes, or, if it is still running near the
deadline, fails with ``ShutDownImminentException`` and its retry puts it back
on the queue. Jobs are idempotent, so a retried job whose first run got halfway
through leaves no duplicates (see ``workers/resize_job.py``).

Three ways to run jobs (``workers/worker.py``, ``workers/supervisor.py``):

* default: ``OFFLOAD_WORKER_CONCURRENCY`` supervised **work processes** (one per CPU
  as the dyno's memory holds) each run jobs one after another and are replaced when
  they crash or after ``OFFLOAD_WORKER_MAX_JOBS`` jobs;
* ``--fork-per-job``: rq's ``HerokuWorker``, a fresh fork for every job (the most
  isolation, ~15 % slower on photos);
* ``--in-process``: the work process alone, unsupervised (for debugging).

The worker is started here rather than with ``rq worker --url``, because the
CLI passes the URL straight to ``Redis.from_url`` and cannot turn off
certificate checks for Heroku Key-Value Store's self-signed ``rediss://``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time

import redis
from rq.worker import BaseWorker

from services.backfill import QUEUE as BACKFILL_QUEUE
from services.errors import ConfigError
from services.logs import configure_logging, event
from services.processes import PROCESSES
from services.queue import SERIALIZER, make_queue, redis_from_url
from services.settings import Settings
from workers.backfill_feeder import run_feeder
from workers.heap import keep_heap_between_jobs
from workers.supervisor import EXIT_GAVE_UP, EXIT_RETIRED, Supervisor
from workers.worker import ForkingWorker, InProcessWorker, recovery_options

logger = logging.getLogger("workers")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__.splitlines()[0])
    parser.add_argument("queues", nargs="*", help="queues to listen on (default: every process)")
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--fork-per-job", action="store_true",
                      help="rq's HerokuWorker: a fresh fork for every job (~15%% slower on photos)")
    mode.add_argument("--in-process", action="store_true",
                      help="run jobs in this process, unsupervised: a crash ends it (for debugging)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        settings.require("worker")
    except ConfigError as exc:
        print(f"offload worker: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    connection = redis_from_url(settings.redis_url)
    # Every process's queue, then the backfill's: rq takes the first non-empty queue in this order, so a live
    # upload is never behind a backfill job.
    known = [p.queue for p in PROCESSES.values()] + [BACKFILL_QUEUE]
    names = args.queues or known
    unknown = sorted(set(names) - set(known))
    if unknown:
        print(f"offload worker: no process queue named {', '.join(unknown)}", file=sys.stderr)
        return 2
    for process in PROCESSES.values():
        # Import every handler (Pillow, simple-salesforce) once, before any fork: work processes
        # and work horses are forks of this process and share those pages.
        process.load_handler()

    def work(worker_class: type[BaseWorker], name: str | None = None, max_jobs: int | None = None) -> int:
        return run_worker(worker_class, connection, names, burst=args.burst, log_level=settings.log_level,
                          name=name, max_jobs=max_jobs)

    if args.fork_per_job:
        return work(ForkingWorker)
    keep_heap_between_jobs()  # one process runs many jobs: keep its buffers mapped (workers/heap.py)
    if args.in_process:
        return work(InProcessWorker)
    feeder = (lambda: run_feeder(connection, settings)) if BACKFILL_QUEUE in names and not args.burst else None
    supervisor = Supervisor(lambda name: work(InProcessWorker, name, settings.worker_max_jobs), connection, names,
                            concurrency=settings.worker_concurrency, companion=feeder)
    event(logger, "supervising work processes", concurrency=settings.worker_concurrency)
    return supervisor.run()


def run_worker(  # each is one of the worker's settings
    worker_class: type[BaseWorker], connection: redis.Redis, names: list[str], *, burst: bool, log_level: str,
    name: str | None = None, max_jobs: int | None = None,
) -> int:
    """Run rq's work loop, starting it again whenever Redis went away and came back.

    Returns 0 when done (burst, or a shutdown was requested), ``EXIT_RETIRED`` after ``max_jobs`` jobs,
    ``EXIT_GAVE_UP`` when Redis stayed unreachable.
    """
    while True:
        worker = worker_class(
            [make_queue(queue, connection) for queue in names], connection=connection, serializer=SERIALIZER,
            name=name, **recovery_options(),
        )
        event(logger, "worker starting", queues=",".join(names), worker_class=worker_class.__name__)
        try:
            worker.work(burst=burst, with_scheduler=True, logging_level=log_level.upper(), max_jobs=max_jobs)
        except redis.ConnectionError:
            pass  # Redis unreachable while starting or stopping: wait for it below
        if getattr(worker, "stop_requested", False):  # set by our request_stop on SIGTERM
            return 0
        if max_jobs is not None and getattr(worker, "executed_jobs", 0) >= max_jobs:
            return EXIT_RETIRED
        if burst:
            return 0
        # rq's work loop quits on an error it cannot handle, such as Redis going away. Exiting
        # would make Heroku restart the dyno, and repeated crashes put it into a cool-off of up
        # to 20 minutes; waiting here resumes work as soon as Redis is back. Jobs abandoned
        # meanwhile are recovered by the next maintenance (workers/worker.py).
        if not _wait_for_redis(connection):
            print("offload worker: Redis stayed unreachable; giving up (check REDIS_URL and the add-on)",
                  file=sys.stderr)
            return EXIT_GAVE_UP


RECONNECT_DELAYS = (1, 2, 4, 8, 15, 30, 30, 30)
"""Seconds between attempts to reach Redis again after losing it (about 2 minutes in all)."""


def _wait_for_redis(connection: redis.Redis) -> bool:
    """Ping Redis with backoff for about two minutes; True once it answers. SIGTERM ends the wait."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # nothing is in flight: stop at once if asked
    for delay in (0, *RECONNECT_DELAYS):
        time.sleep(delay)
        try:
            connection.ping()
        except redis.RedisError:
            event(logger, "Redis is unreachable; waiting to reconnect", logging.WARNING, retry_in_s=delay)
            continue
        event(logger, "Redis is reachable again; restarting the worker")
        return True
    return False


if __name__ == "__main__":
    sys.exit(main())
