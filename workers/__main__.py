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
import sys

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
    worker = worker_class(
        [make_queue(name, connection) for name in names], connection=connection, serializer=SERIALIZER,
        **recovery_options(),
    )
    event(logger, "worker starting", queues=",".join(names), worker_class=worker_class.__name__)
    worker.work(burst=args.burst, with_scheduler=True, logging_level=settings.log_level.upper())
    return 0


if __name__ == "__main__":
    sys.exit(main())
