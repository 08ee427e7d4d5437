"""The backfill feeder: the workers' side of ``offload backfill``, one process beside each dyno's work processes.

The supervisor (``workers/supervisor.py``) keeps it running. Every :data:`STEP_INTERVAL_S` it takes one
feeder step of the org's active run (:func:`services.backfill.feeder.feed`); the step's lock in Redis makes
one feeder step at a time across every worker dyno, so scaling workers never doubles a run's rate. It runs no
job itself: feeding never waits behind a photo, and a photo never waits behind a Salesforce query.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import sys
import time
from types import FrameType

import redis

from services.backfill.feeder import feed
from services.logs import event
from services.salesforce.client import integration_client
from services.settings import Settings

logger = logging.getLogger("workers.backfill")

PROCESS_NAME = "offload-feeder"
"""What ``ps`` and ``/proc/<pid>/comm`` call the feeder, so operators (and tests) tell it from a work process."""

STEP_INTERVAL_S = 1.0
"""Between two steps of an active run (its rate is a per-minute budget, so this only sets the granularity)."""
IDLE_INTERVAL_S = 2.0
"""Between two looks for an active run when there is none (one Redis GET)."""


def run_feeder(connection: redis.Redis, settings: Settings) -> int:
    """Step the active backfill run until SIGTERM; returns 0."""
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    _name_process(PROCESS_NAME)
    while not stopping:
        step = None
        try:
            step = feed(connection, settings, lambda: integration_client(settings, connection))
        except redis.RedisError as exc:
            event(logger, "backfill feeder cannot reach Redis; trying again", logging.WARNING, error=str(exc))
        except Exception:  # a bug must not end feeding for good: log it, try the next step
            logger.exception("backfill feeder step failed")
        if step is not None and step.queued:
            event(logger, "backfill step", run=step.run_id, queued=step.queued)
        pause_until = time.monotonic() + (STEP_INTERVAL_S if step is not None else IDLE_INTERVAL_S)
        while not stopping and time.monotonic() < pause_until:
            time.sleep(0.1)
    return 0


_PR_SET_NAME = 15  # linux/prctl.h


def _name_process(name: str) -> None:
    """Set this process's name (Linux ``prctl(PR_SET_NAME)``, at most 15 bytes); elsewhere nothing."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)
