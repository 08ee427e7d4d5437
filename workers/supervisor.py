"""``python -m workers``' default: long-lived work processes, each watched and replaced by their parent.

rq's forking worker isolates every job in a fresh ``fork()``. On a photo job that isolation costs
~15 % of the job's time (``bench/rq_overhead.py``): the new process faults in every page of the ~100 MB
that decoding and resizing allocate, where a long-lived process reuses them, and rq adds ~20 ms of
bookkeeping per fork. The supervisor keeps the isolation where it matters and pays for the fork once
per *work process*, not once per job:

* the **work process** is an :class:`~workers.worker.InProcessWorker` forked from this one (which has
  imported Pillow and every handler already), and runs jobs one after another;
* when it **crashes** (a segfault in an image library, an out-of-memory kill, ``kill -9``), the
  supervisor hands the job it held to rq's own abandoned-job handling at once (a retry while the job
  has retries left, else the ``FailedJobRegistry`` with ``AbandonedJobError``), instead of waiting for
  the job's heartbeat to lapse, and starts a new work process, backing off when crashes repeat;
* after ``OFFLOAD_WORKER_MAX_JOBS`` jobs the work process **retires** and a fresh one takes over, so
  memory a long-lived Pillow process fragments is given back (gunicorn's ``max_requests`` idea). A
  retirement costs about a second (mostly rq's scheduler finishing its 1 s sleep before it stops), so
  the default of 1000 jobs keeps it near 1 ms per job;
* on **SIGTERM** (Heroku stops a dyno by sending it to every process, then SIGKILL 30 s later) the
  supervisor passes the signal on, stops replacing, and exits with the work process. The work process
  keeps rq's Heroku contract: the job in hand finishes, or fails with its retries after
  ``imminent_shutdown_delay`` seconds.

* when a job runs **past its timeout stuck in C** (libjpeg decoding a hostile file does not return to
  Python, so rq's SIGALRM ``JobTimeoutException`` waits until it does), the supervisor kills the work
  process at :data:`HARD_DEADLINE_GRACE_S` past the job timeout and the job fails as a timeout (error
  code ``JobTimeoutException``, retried like any timeout), so a later job runs in a fresh work process
  instead of waiting behind it. See :class:`JobDeadline`.

**Several per dyno** (``OFFLOAD_WORKER_CONCURRENCY``, default one per CPU as the memory holds,
:func:`services.dyno.default_worker_concurrency`): each work process is an rq worker of its own (its own
name, registration, heartbeat and deadline page), so everything above holds for each one alone, and a crash
of one leaves the others' jobs running. rq's ``WorkerPool`` (rq 2.x, ``rq/worker_pool.py``) also keeps N
forked workers alive, but it would lose what the supervisor adds: it respawns a dead worker without handing
its job to rq's retry at once (the job waits for its heartbeat to lapse and a later maintenance), without
back-off when crashes repeat, without ``max_jobs`` retirement or our Redis reconnect loop (its ``run_worker``
calls ``work()`` itself), and without the hard job deadline or the orphaned-scheduler clean-up. So the
supervisor keeps its own loop, generalised to N slots, and uses rq's parts below it (the worker class,
``register_death``, ``StartedJobRegistry.cleanup``).

The work process's rq scheduler is its own child. So that a crash cannot orphan it (holding the
scheduler lock), the supervisor makes itself the *child subreaper* (Linux ``prctl``): orphans come to
it, and it stops them with SIGTERM, on which rq's scheduler releases its lock.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import os
import signal
import struct
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

import redis
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.worker import Worker

from services.logs import event
from services.queue import SERIALIZER
from workers.completion import publish_for_abandoned

__all__ = ["EXIT_GAVE_UP", "EXIT_RETIRED", "HARD_DEADLINE_GRACE_S", "TIMEOUT_ERROR_CODE", "JobDeadline", "Supervisor",
           "job_deadline", "recover_abandoned_job"]

logger = logging.getLogger("workers.supervisor")

COMPANION_RESTART_S = 5.0
"""A companion process that ended is started again no sooner than this after its last start."""
COMPANION_STOP_S = 10.0

EXIT_RETIRED = 75
"""A work process's exit status after running its share of jobs: replace it at once."""

EXIT_GAVE_UP = 3
"""A work process's exit status when it gave up (Redis unreachable for minutes): the supervisor gives up too."""

CRASH_BACKOFF_S = (0.0, 1.0, 2.0, 5.0, 10.0, 30.0)
"""Pause before replacing a work process that crashed, by how many crashed in a row (each within a minute)."""

STABLE_AFTER_S = 60.0
"""A work process that lived this long before crashing resets the back-off."""

_PR_SET_CHILD_SUBREAPER = 36

HARD_DEADLINE_GRACE_S = 5.0
"""Seconds past a job's timeout before the supervisor kills a work process still running it.

rq's own timeout (SIGALRM at the job timeout) ends a job whose Python code runs; this grace is for a
job that cannot take that signal because it is inside one C call. rq's forking worker does the same
from its parent, but only 60 s past the timeout (``monitor_work_horse``,
https://github.com/rq/rq/blob/v2.12.0/rq/worker/worker_classes.py).
"""

TIMEOUT_ERROR_CODE = "JobTimeoutException"
"""The error code a timed-out job gets (``job.meta["error_code"]``), whichever way it was stopped: the
runner names an exception without a ``code`` by its class, and docs/operations.md lists this one."""

WATCH_INTERVAL_S = 0.2
"""How often the supervisor looks at the work process's deadline while waiting for it."""


class JobDeadline:
    """The monotonic-clock moment by which the work process's current job must be over (0: no job).

    Why shared memory: the work process cannot be asked anything while it is stuck in C, and Redis may be
    what it is waiting for; an anonymous ``MAP_SHARED`` page made before the fork is seen by both
    processes with no round trip. The work process writes it (:meth:`watch`, around each job's handler,
    from :mod:`workers.runner`), the supervisor reads it (:meth:`passed`) between ``waitpid`` polls.
    ``time.monotonic`` is the system-wide ``CLOCK_MONOTONIC`` on Linux, the same in both processes.
    Only the handler is watched: the job's bookkeeping after it (result, completion event) is not killed.
    """

    _FORMAT = "d"

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, struct.calcsize(self._FORMAT))  # anonymous and shared: survives fork()

    def _set(self, value: float) -> None:
        self._map[:] = struct.pack(self._FORMAT, value)

    def get(self) -> float:
        return float(struct.unpack(self._FORMAT, self._map[:])[0])

    @contextmanager
    def watch(self, timeout: float) -> Iterator[None]:
        """Arm the deadline at ``timeout`` + :data:`HARD_DEADLINE_GRACE_S` from now for the ``with`` body."""
        self._set(time.monotonic() + timeout + HARD_DEADLINE_GRACE_S)
        try:
            yield
        finally:
            self._set(0.0)

    def passed(self) -> bool:
        deadline = self.get()
        return deadline > 0 and time.monotonic() > deadline

    def clear(self) -> None:
        self._set(0.0)


_deadline: JobDeadline | None = None
"""Set in a work process the supervisor forked (the supervisor's own :class:`JobDeadline`)."""


def job_deadline() -> JobDeadline | None:
    """The deadline the supervisor watches in this process, or None when no supervisor runs it."""
    return _deadline


@dataclass
class _Slot:
    """One work process the supervisor keeps running, and what it knows about it."""

    deadline: JobDeadline
    pid: int | None = None
    name: str = ""
    started: float = 0.0
    crashes: int = 0
    """Crashes in a row, each within :data:`STABLE_AFTER_S` of its start (the back-off step)."""
    respawn_at: float | None = None
    """Set while waiting out a crash back-off: when to start the next work process."""


class Supervisor:
    """Keep ``concurrency`` work processes running ``work(name)`` (each forked from this process) until told to stop.

    ``work`` runs in the child and returns its exit status (0: done, :data:`EXIT_RETIRED`: replace me,
    :data:`EXIT_GAVE_UP` or 2: stop everything). Anything else, or death by a signal, is a crash. Each work
    process is watched on its own: its crash, back-off, retirement and deadline touch no other one.
    """

    def __init__(self, work: Callable[[str], int], connection: redis.Redis, queue_names: Iterable[str],
                 concurrency: int = 1, companion: Callable[[], int] | None = None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._work = work
        self._companion = companion
        """A helper process that runs no jobs (the backfill feeder): kept alive beside the work processes."""
        self._companion_pid: int | None = None
        self._companion_at = 0.0
        self._connection = connection
        self._queue_names = tuple(queue_names)
        self._stopping = False
        # Every deadline page is mapped here, before any fork, so each work process shares its own with us.
        self._slots = [_Slot(JobDeadline()) for _ in range(concurrency)]

    def run(self) -> int:
        """Supervise until every work process has ended for good; return the status to exit with.

        The status is the first non-zero one a work process ended with (so a work process that gave up on
        Redis makes the dyno exit and Heroku restart it), else 0.
        """
        _become_subreaper()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._forward_and_stop)
        status = 0
        for slot in self._slots:
            self._start(slot)
        while any(slot.pid is not None or slot.respawn_at is not None for slot in self._slots):
            self._keep_companion()
            for slot in self._slots:
                if slot.pid is not None:
                    ended = self._poll(slot)
                    if ended is not None:
                        final = self._after_exit(slot, *ended)
                        if final is not None:
                            status = status or final
                            if final in (EXIT_GAVE_UP, 2):
                                self._stop_all(signal.SIGTERM)  # Redis is gone for all, or the config is wrong
                elif slot.respawn_at is not None:
                    if self._stopping:
                        slot.respawn_at = None  # asked to stop while waiting to replace it: nothing in flight
                    elif time.monotonic() >= slot.respawn_at:
                        self._start(slot)
            time.sleep(WATCH_INTERVAL_S)
        self._stop_companion()
        return status

    def _keep_companion(self) -> None:
        """Start the companion, and start it again (at most every :data:`COMPANION_RESTART_S`) when it ended."""
        if self._companion is None:
            return
        if self._companion_pid is not None:
            try:
                done, status = os.waitpid(self._companion_pid, os.WNOHANG)
            except ChildProcessError:
                done, status = self._companion_pid, 0
            if done != self._companion_pid:
                return
            self._companion_pid = None
            if not self._stopping:
                event(logger, "companion process ended; starting it again", logging.WARNING,
                      code=os.waitstatus_to_exitcode(status))
        if self._stopping or time.monotonic() < self._companion_at:
            return
        self._companion_at = time.monotonic() + COMPANION_RESTART_S
        self._companion_pid = self._fork(self._companion)

    def _stop_companion(self) -> None:
        """SIGTERM, then SIGKILL if it has not ended within :data:`COMPANION_STOP_S` (a Salesforce call in hand)."""
        pid, self._companion_pid = self._companion_pid, None
        if pid is None:
            return
        _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + COMPANION_STOP_S
        while not _reaped(pid):
            if time.monotonic() >= deadline:
                _signal(pid, signal.SIGKILL)
                _wait(pid)
                return
            time.sleep(0.05)

    def _start(self, slot: _Slot) -> None:
        slot.name = uuid.uuid4().hex
        slot.started = time.monotonic()
        slot.respawn_at = None
        slot.deadline.clear()
        slot.pid = self._spawn(slot)

    def _poll(self, slot: _Slot) -> tuple[int, bool] | None:
        """The work process's (wait status, killed for its deadline) once it has ended; None while it runs."""
        assert slot.pid is not None
        try:
            done, status = os.waitpid(slot.pid, os.WNOHANG)
        except ChildProcessError:
            return 0, False
        if done == slot.pid:
            return status, False
        if slot.deadline.passed():
            event(logger, "job still running past its timeout (stuck outside Python); killing the work process",
                  logging.ERROR, pid=slot.pid, grace_s=HARD_DEADLINE_GRACE_S)
            _signal(slot.pid, signal.SIGKILL)
            return _wait(slot.pid), True
        return None

    def _after_exit(self, slot: _Slot, status: int, timed_out: bool) -> int | None:
        """Deal with a work process that ended: replace it (None) or let it rest (its final status)."""
        slot.pid = None
        self._reap_orphans()
        code = os.waitstatus_to_exitcode(status)
        if timed_out:
            self._report_timeout(slot.name)
            if self._stopping:
                return 1
            self._start(slot)  # a deliberate kill, not a crash: replace it at once
            return None
        if code == EXIT_RETIRED and not self._stopping:
            event(logger, "work process retired after its share of jobs; starting a fresh one", worker=slot.name)
            slot.crashes = 0
            self._start(slot)
            return None
        if code in (0, EXIT_RETIRED, EXIT_GAVE_UP, 2):
            return 0 if code == EXIT_RETIRED else code
        if self._stopping and code in (-signal.SIGTERM, -signal.SIGINT):
            return 0  # stopped before rq installed its handlers: it had not taken a job yet
        self._report_crash(slot.name, code)
        if self._stopping:
            return 1
        slot.crashes = 1 if time.monotonic() - slot.started > STABLE_AFTER_S else slot.crashes + 1
        slot.respawn_at = time.monotonic() + CRASH_BACKOFF_S[min(slot.crashes, len(CRASH_BACKOFF_S)) - 1]
        return None

    def _report_timeout(self, name: str) -> None:
        try:
            job_id = recover_abandoned_job(self._connection, name, self._queue_names, error_code=TIMEOUT_ERROR_CODE)
        except redis.RedisError as exc:
            event(logger, "work process killed for a timed-out job; Redis unreachable, its job is left to rq's "
                  "maintenance", logging.ERROR, worker=name, error=str(exc))
            return
        event(logger, "work process killed for a timed-out job; the job goes to rq's retry handling",
              logging.ERROR, worker=name, job_id=job_id, code=TIMEOUT_ERROR_CODE)
        if job_id is not None:
            publish_for_abandoned(self._connection, job_id,
                                  f"{TIMEOUT_ERROR_CODE}: the job ran past its timeout (OFFLOAD_JOB_TIMEOUT) and "
                                  "was stopped.")

    def _report_crash(self, name: str, code: int) -> None:
        how = f"signal {-code}" if code < 0 else f"exit status {code}"
        try:
            job_id = recover_abandoned_job(self._connection, name, self._queue_names)
        except redis.RedisError as exc:  # the next worker's maintenance recovers it once Redis is back
            event(logger, "work process died; Redis unreachable, its job is left to rq's maintenance",
                  logging.ERROR, worker=name, cause=how, error=str(exc))
            return
        if job_id is None:
            event(logger, "work process died between jobs", logging.ERROR, worker=name, cause=how)
        else:
            event(logger, "work process died while running a job; the job goes to rq's retry handling",
                  logging.ERROR, worker=name, cause=how, job_id=job_id)
            publish_for_abandoned(self._connection, job_id,
                                  f"WORK_PROCESS_DIED: the process running the job died ({how}), e.g. out of memory.")

    def _spawn(self, slot: _Slot) -> int:
        def work() -> int:
            global _deadline
            _deadline = slot.deadline
            return self._work(slot.name)

        return self._fork(work)

    def _fork(self, run: Callable[[], int]) -> int:
        pid = os.fork()
        if pid:
            return pid
        # The child: default signal dispositions (rq installs its own), then work, then exit
        # without running the supervisor's atexit handlers or flushing its buffers twice.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_DFL)
        code = 1
        try:
            code = run()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # report anything, then die with a crash status
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def _forward_and_stop(self, signum: int, frame: FrameType | None) -> None:
        """Stop replacing work processes; make sure the current ones got the signal too.

        Heroku signals every process itself; a signal sent only to this process (``kill <pid>``) must
        still reach the work processes. rq ignores a second SIGTERM within a second of the first.
        """
        self._stop_all(signum)

    def _stop_all(self, signum: int) -> None:
        self._stopping = True
        for pid in [slot.pid for slot in self._slots] + [self._companion_pid]:
            if pid is not None:
                _signal(pid, signum)

    def _reap_orphans(self) -> None:
        """Stop what a dead work process left behind (its rq scheduler): SIGTERM, then SIGKILL.

        Orphans are re-parented to us (the subreaper), so they are our children that are not work processes.
        """
        working = {slot.pid for slot in self._slots if slot.pid is not None} | {self._companion_pid}
        orphans = [pid for pid in _children(os.getpid()) if pid not in working]
        for pid in orphans:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while orphans and time.monotonic() < deadline:
            orphans = [pid for pid in orphans if not _reaped(pid)]
            if orphans:
                time.sleep(0.05)
        for pid in orphans:
            _signal(pid, signal.SIGKILL)
            _wait(pid)


def recover_abandoned_job(connection: redis.Redis, worker_name: str, queue_names: Iterable[str],
                          error_code: str | None = None) -> str | None:
    """Fail the job a dead work process held through rq's abandoned-job path; return its id.

    rq does this itself, but only once the job's heartbeat has lapsed and a worker runs maintenance;
    marking the execution expired now and running the same cleanup gets the retry scheduled at once.
    The dead worker's registration is removed as well. ``error_code`` (a timeout's) is written to the
    job's meta first, as the runner would have, so ``offload jobs list --error-code`` finds it.
    """
    key = Worker.redis_worker_namespace_prefix + worker_name
    job_id = connection.hget(key, "current_job")
    dead = Worker.find_by_key(key, connection=connection, serializer=SERIALIZER)
    if dead is not None:
        dead.register_death()
    if job_id is None:
        return None
    job_id = job_id.decode() if isinstance(job_id, bytes) else job_id
    if error_code is not None:
        try:
            job = Job.fetch(job_id, connection=connection, serializer=SERIALIZER)
        except NoSuchJobError:
            pass
        else:
            job.meta["error_code"] = error_code
            job.save_meta()
    for queue_name in queue_names:
        registry = StartedJobRegistry(queue_name, connection=connection, serializer=SERIALIZER)
        members = [m for m in connection.zrange(registry.key, 0, -1)
                   if isinstance(m, bytes) and m.decode().split(":", 1)[0] == job_id]
        if members:
            connection.zadd(registry.key, dict.fromkeys(members, 0), xx=True)
            registry.cleanup()
    return job_id


def _wait(pid: int) -> int:
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except ChildProcessError:
            return 0
        except InterruptedError:  # pragma: no cover - PEP 475 retries waitpid itself
            continue


def _reaped(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == pid


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _children(parent: int) -> list[int]:
    """Pids whose parent is ``parent`` (orphans land here once we are the subreaper); Linux only."""
    if not os.path.isdir("/proc"):
        return []
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(entry))
    return found


def _become_subreaper() -> None:
    """Ask Linux to re-parent our descendants' orphans to us (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        event(logger, "could not become child subreaper; a crashed work process may leave its scheduler behind",
              logging.WARNING, errno=ctypes.get_errno())
