"""What Offload needs from rq that rq has no public API for, in one place.

rq 2.12 itself decides whether a worker's scheduler process is alive by reading the scheduler's
``_process`` (``BaseWorker.run_maintenance_tasks``,
https://github.com/rq/rq/blob/v2.12.0/rq/worker/base.py); there is no public accessor. Offload needs
the same answer to restart a scheduler that was killed (workers/worker.py). If an rq upgrade renames
the attribute, ``tests/workers/test_rqcompat.py`` fails and names the rq version.
"""

from __future__ import annotations

from rq.scheduler import RQScheduler

SCHEDULER_PROCESS_ATTRIBUTE = "_process"


def scheduler_process_alive(scheduler: RQScheduler | None) -> bool:
    """Whether the scheduler's forked process runs (False when there is none, or it has exited)."""
    process = getattr(scheduler, SCHEDULER_PROCESS_ATTRIBUTE, None) if scheduler is not None else None
    return process is not None and process.is_alive()
