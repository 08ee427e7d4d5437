"""``python -m workers``: an RQ worker with Heroku semantics.

Heroku restarts every dyno at least daily and on each deploy: it sends
SIGTERM, waits 30 seconds, then SIGKILL. On SIGTERM the worker stops taking
jobs and the job in hand finishes, or, if it is still running near the
deadline, fails with ``ShutDownImminentException`` and its retry puts it back
on the queue (see :mod:`workers.worker` for the two worker classes: a fork per
job by default, or ``--in-process``). Jobs are idempotent, so a retried job whose
first run got halfway through leaves no duplicates (see ``workers/resize_job.py``).

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

from services.errors import ConfigError
from services.logs import configure_logging, event
from services.queueing import SERIALIZER, make_queue, redis_from_url
from services.settings import Settings
from workers import PROCESSES
from workers.worker import ForkingWorker, InProcessWorker, recovery_options

logger = logging.getLogger("workers")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__.splitlines()[0])
    parser.add_argument("queues", nargs="*", help="queues to listen on (default: every process)")
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    parser.add_argument("--in-process", action="store_true",
                        help="run jobs in this process instead of a fork per job: ~20%% faster on photos, "
                             "no crash isolation")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        settings.require("worker")
    except ConfigError as exc:
        print(f"offload worker: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    connection = redis_from_url(settings.redis_url)
    names = args.queues or [p.queue for p in PROCESSES.values()]
    unknown = sorted(set(names) - {p.queue for p in PROCESSES.values()})
    if unknown:
        print(f"offload worker: no process queue named {', '.join(unknown)}", file=sys.stderr)
        return 2
    for process in PROCESSES.values():
        # Import every handler (Pillow, simple-salesforce) once, before forking: each job runs
        # in a fresh fork of this process, which would otherwise import them again per job.
        process.load_handler()
    worker_class = InProcessWorker if args.in_process else ForkingWorker
    while True:
        worker = worker_class(
            [make_queue(name, connection) for name in names], connection=connection, serializer=SERIALIZER,
            **recovery_options(),
        )
        event(logger, "worker starting", queues=",".join(names), worker_class=worker_class.__name__)
        try:
            worker.work(burst=args.burst, with_scheduler=True, logging_level=settings.log_level.upper())
        except redis.ConnectionError:
            pass  # Redis unreachable while starting or stopping: wait for it below
        if args.burst or worker._shutdown_requested_date is not None:  # noqa: SLF001 - set by rq on SIGTERM
            return 0
        # rq's work loop quits on an error it cannot handle, such as Redis going away. Exiting
        # would make Heroku restart the dyno, and repeated crashes put it into a cool-off of up
        # to 20 minutes; waiting here resumes work as soon as Redis is back. Jobs abandoned
        # meanwhile are recovered by the next maintenance (workers/worker.py).
        if not _wait_for_redis(connection):
            print("offload worker: Redis stayed unreachable; giving up (check REDIS_URL and the add-on)",
                  file=sys.stderr)
            return 1


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
