"""The RQ worker classes Offload runs: Heroku's shutdown semantics, and quick recovery from crashes.

**Shutdown.** Heroku stops a dyno (on every deploy, and at least once a day) by
sending SIGTERM to all its processes, then SIGKILL 30 seconds later (Heroku Dev
Center, "Dynos and the Dyno Manager: Graceful shutdown with SIGTERM"). The job in
hand must then finish or go back to the queue.

* :class:`ForkingWorker` (``python -m workers --fork-per-job``) is rq's ``HerokuWorker``:
  each job runs in a forked work horse that ignores SIGTERM and gets
  ``ShutDownImminentException`` 6 s later, so a job still running fails *with its
  retries* and goes back to the queue. A crash in an image library takes down only
  the horse, and the worker records it at once.
* :class:`InProcessWorker` (the default, run by the supervisor in
  ``workers/supervisor.py``; alone with ``--in-process``) runs jobs in the worker
  process itself, keeping the same contract with a timer: on SIGTERM it stops
  taking jobs and the job in hand has ``imminent_shutdown_delay`` seconds before
  ``ShutDownImminentException`` is raised in it. It skips the fork, which costs a
  24 MP photo job about 15 % (a fresh process faults in ~100 MB of new pages per
  image that a long-lived one reuses; ``bench/rq_overhead.py``). The supervisor
  gives back the crash isolation: it replaces a work process that died and
  retries its job at once.

**Recovery.** When a whole worker dies (kill -9, an out-of-memory kill, a dyno
crash), rq notices its job only when the job's heartbeat expires, and looks only
at maintenance time. rq's defaults (a heartbeat every 30 s that lives 90 s;
maintenance every 600 s) leave such a job stuck for up to 11 minutes. Both
classes heartbeat every ``HEARTBEAT_SECONDS`` with a short time-to-live, and
clean the registries every ``MAINTENANCE_SECONDS``, so an abandoned job goes back
through rq's own retry handling within about a minute. The exactly-once
write-back (``workers/resize_job.py``) makes that retry safe.

Two rq details make that interval a wish unless the worker also:

* **wakes up while idle.** rq checks for maintenance only between dequeues, and an
  idle worker blocks in one ``BLMOVE`` for ``worker_ttl - 15`` = 405 s. Every worker
  of a quiet dyno therefore skipped maintenance for ~7 minutes, so a job abandoned
  by a dead worker, or by a worker that quit when Redis went away ("found an
  unhandled exception, quitting"), sat expired in the ``StartedJobRegistry`` that
  long. Here the blocking dequeue returns every ``HEARTBEAT_SECONDS``.
* **takes over a dead scheduler's lock.** Scheduled retries are enqueued by the one
  scheduler holding ``rq:scheduler-lock:<queue>`` (61 s time-to-live, refreshed every
  second). A scheduler killed with its worker, or one that died when Redis went away,
  keeps that lock for up to a minute after its last refresh, and rq starts a new
  scheduler only from maintenance. A lock not refreshed for ``STALE_SCHEDULER_SECONDS``
  belongs to a dead scheduler: maintenance releases it (compare-and-delete on the
  owner) and starts this worker's scheduler. Should the old one be merely slow, rq's
  scheduler notices at its next heartbeat that its lock was taken over and stops
  scheduling that queue.

**Exit.** rq listens for commands (``rq suspend``, stop-job) on a pub/sub thread that waits up to
60 s per poll (``BaseWorker.subscribe``, https://github.com/rq/rq/blob/v2.12.0/rq/worker/base.py),
and redis-py 8 made ``PubSubWorkerThread.stop()`` wait for that thread to end
(https://github.com/redis/redis-py/blob/master/redis/client.py). When the reply to rq's
UNSUBSCRIBE woke the thread before ``stop()`` cleared its flag, the thread went back to a 60 s
poll and the worker hung that long on its way out (a burst worker, every dyno restart: Heroku
kills it after 30 s). Both classes poll every ``PUBSUB_POLL_SECONDS`` instead.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType
from typing import Any

import redis
from rq.exceptions import ShutDownImminentException
from rq.job import Job
from rq.queue import Queue
from rq.scheduler import RQScheduler
from rq.scripts import release_lock
from rq.worker import BaseWorker, HerokuWorker, SimpleWorker, WorkerStatus

from workers.rqcompat import scheduler_process_alive

__all__ = ["HEARTBEAT_SECONDS", "MAINTENANCE_SECONDS", "PUBSUB_POLL_SECONDS", "STALE_SCHEDULER_SECONDS",
           "ForkingWorker", "InProcessWorker"]

HEARTBEAT_SECONDS = 10
"""How often a running job's heartbeat is renewed."""

HEARTBEAT_TTL = 3 * HEARTBEAT_SECONDS
"""How long a heartbeat lives: a job whose worker died is abandoned after this."""

MAINTENANCE_SECONDS = 30
"""How often a worker cleans the registries (finds abandoned jobs, starts a scheduler if none runs)."""


STALE_SCHEDULER_SECONDS = 15
"""A scheduler lock not refreshed for this long (a live scheduler refreshes it every second) is a dead one's."""


PUBSUB_POLL_SECONDS = 1.0
"""How long the command-listening thread waits per poll: the most a worker's exit waits for it."""


def recovery_options() -> dict[str, Any]:
    """Keyword arguments for either worker class."""
    return {"job_monitoring_interval": HEARTBEAT_SECONDS, "maintenance_interval": MAINTENANCE_SECONDS}


class _Recovery(BaseWorker):
    """What both classes add to rq for quick recovery (see the module docstring)."""

    @property
    def dequeue_timeout(self) -> int:
        # rq's is worker_ttl - 15 = 405 s, and maintenance is only looked at between dequeues.
        return min(super().dequeue_timeout, HEARTBEAT_SECONDS)

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()
        if self.scheduler is not None and not self._scheduler_alive() and self._release_dead_scheduler_locks():
            self.scheduler.acquire_locks(auto_start=True)

    stop_requested = False
    """Set when rq's warm-shutdown handler ran (SIGTERM or SIGINT): the work loop then ends for good."""

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested = True
        super().request_stop(signum, frame)

    def subscribe(self) -> None:
        """rq's subscription to its command channel, polled every PUBSUB_POLL_SECONDS (see **Exit**)."""
        self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        # rq initialises the attribute to None without a wider annotation, hence the ignore.
        self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment]
            sleep_time=PUBSUB_POLL_SECONDS, daemon=True, exception_handler=self._on_pubsub_error)

    def _on_pubsub_error(self, exc: BaseException, pubsub: Any, thread: Any) -> None:
        """As rq does: keep listening through a Redis outage (redis-py resubscribes), end on anything else."""
        if isinstance(exc, redis.exceptions.ConnectionError):
            self.log.error("Worker %s: could not connect to Redis for commands: %s; retrying in 2 s", self.name, exc)
            time.sleep(2.0)
            return
        raise exc

    def _scheduler_alive(self) -> bool:
        return scheduler_process_alive(self.scheduler)

    def _release_dead_scheduler_locks(self) -> bool:
        """Delete scheduler locks whose owner stopped refreshing them; True if any is free now."""
        free = False
        lock_ttl = self.scheduler.interval + 60 if self.scheduler is not None else 61  # rq's own lock TTL
        for queue in self.queues:
            key = RQScheduler.get_locking_key(queue.name)
            try:
                with self.connection.pipeline(transaction=False) as pipe:
                    pipe.get(key)  # queued one by one: redis-py types a pipeline's get() as a client's
                    pipe.pttl(key)
                    owner, ttl_ms = pipe.execute()
                if owner is None:
                    free = True
                elif 0 <= ttl_ms < (lock_ttl - STALE_SCHEDULER_SECONDS) * 1000:
                    if release_lock(self.connection, key, owner.decode()):
                        self.log.warning("Worker %s: released the scheduler lock of %s, not refreshed for %d s",
                                         self.name, queue.name, STALE_SCHEDULER_SECONDS)
                    free = True
            except redis.exceptions.RedisError:
                self.log.warning("Worker %s: could not check the scheduler lock of %s", self.name, queue.name)
        return free


class ForkingWorker(_Recovery, HerokuWorker):
    """rq's HerokuWorker (a fork per job) with short heartbeats."""

    def get_heartbeat_ttl(self, job: Job) -> int:
        # The parent renews the heartbeat every HEARTBEAT_SECONDS while the horse works,
        # so a heartbeat that lives three intervals only lapses when this process is gone.
        return HEARTBEAT_TTL


class InProcessWorker(_Recovery, SimpleWorker):
    """Runs each job in this process, with Heroku's SIGTERM window and heartbeats from a thread."""

    imminent_shutdown_delay = HerokuWorker.imminent_shutdown_delay
    """Seconds a job may still run after SIGTERM (rq's 6 s for Heroku, whose SIGKILL comes at 30)."""

    executed_jobs = 0
    """Jobs this worker has run (to retire it after ``OFFLOAD_WORKER_MAX_JOBS``)."""

    _imminent_signal = signal.SIGRTMIN

    def get_heartbeat_ttl(self, job: Job) -> int:
        return HEARTBEAT_TTL

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Run the job here while a thread keeps its heartbeat alive (the forking parent's role)."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.job_monitoring_interval):
                try:
                    self.maintain_heartbeats(job)
                except Exception:  # a missed beat must never break the job
                    self.log.warning("Worker %s: heartbeat for job %s failed", self.name, job.id)

        self.executed_jobs += 1
        self.prepare_execution(job)
        heart = threading.Thread(target=beat, name="rq-heartbeat", daemon=True)
        heart.start()
        try:
            self.perform_job(job, queue)
        finally:
            done.set()
            heart.join(timeout=5)
        self.set_state(WorkerStatus.IDLE)

    def handle_warm_shutdown_request(self) -> None:
        super().handle_warm_shutdown_request()
        if self.get_state() == WorkerStatus.BUSY:
            # Runs in rq's SIGTERM handler, so in the main thread, where signal handlers are installed.
            signal.signal(self._imminent_signal, self._raise_imminent_shutdown)
            self.log.warning(
                "Worker %s: shutting down; the job in hand has %d s to finish before it goes back on the queue",
                self.name, self.imminent_shutdown_delay,
            )
            timer = threading.Timer(self.imminent_shutdown_delay, self._interrupt_if_busy,
                                    args=(threading.main_thread().ident,))
            timer.daemon = True
            timer.start()

    def _interrupt_if_busy(self, thread_id: int | None) -> None:
        if thread_id is not None and self.get_state() == WorkerStatus.BUSY:
            signal.pthread_kill(thread_id, self._imminent_signal)

    def _raise_imminent_shutdown(self, signum: int, frame: FrameType | None) -> None:
        if self.get_state() == WorkerStatus.BUSY:
            raise ShutDownImminentException("the dyno is shutting down", {"signal": signum})
