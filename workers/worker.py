"""The RQ worker classes Offload runs, with Heroku's shutdown semantics.

Heroku stops a dyno (on every deploy, and at least once a day) by sending
SIGTERM to all its processes, then SIGKILL 30 seconds later (Heroku Dev Center,
"Dynos and the Dyno Manager: Graceful shutdown with SIGTERM"). The job in hand
must then either finish or go back to the queue.

:class:`InProcessHerokuWorker` (the default) runs each job in the worker
process itself. rq's ``HerokuWorker`` forks a fresh "work horse" per job,
which isolates crashes but costs a 24 MP photo job about 20 % more than the
job itself: a new process faults in ~100 MB of fresh pages for every image
that a long-lived process reuses (``bench/rq_overhead.py``; the job alone
takes ~0.4 s). So we keep HerokuWorker's contract without the fork: on
SIGTERM the worker stops taking jobs; the job in hand gets
``imminent_shutdown_delay`` seconds to finish, after which
``ShutDownImminentException`` is raised inside it, RQ records the failure and
the job's retry puts it back on the queue, before the SIGKILL. The exactly-once
write-back (``workers/resize_job.py``) makes that retry safe.

``python -m workers --fork`` uses rq's ``HerokuWorker`` instead, for jobs
whose libraries might crash or leak.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

from rq.exceptions import ShutDownImminentException
from rq.worker import HerokuWorker, SimpleWorker, WorkerStatus

__all__ = ["HerokuWorker", "InProcessHerokuWorker"]


class InProcessHerokuWorker(SimpleWorker):
    """SimpleWorker (no fork per job) that honours Heroku's SIGTERM-then-SIGKILL window."""

    imminent_shutdown_delay = 20
    """Seconds a job may still run after SIGTERM; Heroku's SIGKILL comes at 30."""

    _imminent_signal = signal.SIGRTMIN

    def _install_signal_handlers(self) -> None:
        super()._install_signal_handlers()
        signal.signal(self._imminent_signal, self._raise_imminent_shutdown)

    def handle_warm_shutdown_request(self) -> None:
        super().handle_warm_shutdown_request()
        if self.get_state() == WorkerStatus.BUSY:
            self.log.warning(
                "Worker %s: shutting down; the job in hand has %d s to finish before it is put back on the queue",
                self.name, self.imminent_shutdown_delay,
            )
            main_thread = threading.main_thread().ident
            timer = threading.Timer(self.imminent_shutdown_delay, self._interrupt_if_busy, args=(main_thread,))
            timer.daemon = True
            timer.start()

    def _interrupt_if_busy(self, thread_id: int | None) -> None:
        if thread_id is not None and self.get_state() == WorkerStatus.BUSY:
            signal.pthread_kill(thread_id, self._imminent_signal)

    def _raise_imminent_shutdown(self, signum: int, frame: FrameType | None) -> None:
        if self.get_state() == WorkerStatus.BUSY:
            raise ShutDownImminentException("the dyno is shutting down", {"signal": signum})
