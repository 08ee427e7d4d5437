"""A backfill run's state in Redis: one hash per run, one active run per org, outcomes counted once.

Everything a run needs to carry on after any restart lives here, not in a process: the selection, the
state, the cursor (:mod:`services.backfill.cursor`), the candidates read and not yet queued (a list), and the
job ids of each outcome (sets, so a job that runs twice, after a kill, is counted once). An Offload app
writes to one org (its integration user's), so "one run per org" is one ``offload:backfill:active`` key,
taken with ``SET NX``: a second ``start`` is refused while a run is active, so two cursors never feed.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import redis

from services import keys
from services.backfill.selection import Selection
from services.errors import BackfillAlreadyRunning, BackfillError, NoBackfillRun

RUNNING, PAUSED, CANCELLED, FINISHED, STOPPED = "running", "paused", "cancelled", "finished", "stopped"
ACTIVE_STATES = frozenset({RUNNING, PAUSED})
KEEP_SECONDS = 30 * 86400
"""An ended run's keys are kept this long, for ``status`` and for the next run's "already queued" check."""
HISTORY = 20

OUTCOMES = ("done", "failed", "skipped")
"""How a backfill job can end: renditions written (or found), failed for good, skipped by the job."""

_RELEASE_LUA = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


@dataclass(frozen=True)
class Counts:
    """Where a run's files are: read from Salesforce, skipped before queueing, queued, and how their jobs ended."""

    read: int = 0
    already_rendered: int = 0
    already_queued: int = 0
    enqueued: int = 0
    pending: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def finished_jobs(self) -> int:
        return self.done + self.failed + self.skipped

    @property
    def in_flight(self) -> int:
        """Jobs queued (or running, or waiting for a retry) whose outcome is not in yet."""
        return max(0, self.enqueued - self.finished_jobs)

    @property
    def settled(self) -> int:
        """Files with nothing left to do: skipped before queueing, or their job ended."""
        return self.already_rendered + self.already_queued + self.finished_jobs


@dataclass
class Run:
    """One planned backfill: what it is for, how fast, where its cursor is, and how far it got."""

    id: str
    selection: Selection
    mode: str
    """``rest`` (a query, ``nextRecordsUrl``) or ``bulk`` (a Bulk API 2.0 query job); see the cursor module."""
    total: int
    """Candidates Salesforce counted at the start (files that turn out to have renditions included)."""
    rate: int | None = None
    """Files per minute at most (None: as fast as the workers take them)."""
    max_files: int | None = None
    state: str = RUNNING
    reason: str = ""
    """Why the run stopped, or why feeding is held (a safety margin reached); empty otherwise."""
    cursor: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    ended_at: float | None = None
    counts: Counts = field(default_factory=Counts)

    @property
    def key(self) -> str:
        return run_key(self.id)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def goal(self) -> int:
        """How many files the run will settle: every candidate, or ``--max-files`` of them."""
        return min(self.total, self.max_files) if self.max_files is not None else self.total

    @property
    def left(self) -> int:
        return max(0, self.goal - self.counts.settled) if self.active else 0


def run_key(run_id: str) -> str:
    return keys.BACKFILL_RUN_PREFIX + run_id


def pending_key(run_id: str) -> str:
    return run_key(run_id) + ":pending"


def outcome_key(run_id: str, outcome: str) -> str:
    return f"{run_key(run_id)}:{outcome}"


def new_run(selection: Selection, *, mode: str, total: int, rate: int | None, max_files: int | None) -> Run:
    now = time.time()
    return Run(id=time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + "-" + uuid.uuid4().hex[:6],
               selection=selection, mode=mode, total=total, rate=rate, max_files=max_files, created_at=now,
               updated_at=now)


def start(connection: redis.Redis, run: Run) -> None:
    """Register ``run`` as the org's active run, or refuse (:class:`BackfillAlreadyRunning`)."""
    _save(connection, run)
    if not connection.set(keys.BACKFILL_ACTIVE, run.id, nx=True):
        connection.delete(run.key)
        other = active(connection)
        what = f"run {other.id} is {other.state}" if other else "another run is starting"
        raise BackfillAlreadyRunning(
            f"A backfill is already active ({what}); one runs at a time. Wait for it, or "
            "`offload backfill cancel` it first.")
    pipe = connection.pipeline()
    pipe.lpush(keys.BACKFILL_RUNS, run.id)
    pipe.ltrim(keys.BACKFILL_RUNS, 0, HISTORY - 1)
    pipe.execute()


def _save(connection: redis.Redis, run: Run) -> None:
    fields: dict[Any, Any] = {
        "id": run.id, "selection": run.selection.to_json(), "mode": run.mode, "total": run.total,
        "rate": run.rate or 0, "max_files": -1 if run.max_files is None else run.max_files, "state": run.state,
        "reason": run.reason, "cursor": json.dumps(run.cursor), "created_at": run.created_at,
        "updated_at": run.updated_at,
    }
    connection.hset(run.key, mapping=fields)


def load(connection: redis.Redis, run_id: str) -> Run | None:
    """The run with that id (its counters read in the same round trip), or None."""
    pipe = connection.pipeline(transaction=False)
    pipe.hgetall(run_key(run_id))
    pipe.llen(pending_key(run_id))
    for outcome in OUTCOMES:
        pipe.scard(outcome_key(run_id, outcome))
    raw, pending, done, failed, skipped = pipe.execute()
    if not raw:
        return None
    data = {_text(k): _text(v) for k, v in raw.items()}
    max_files = int(data.get("max_files", "-1"))
    return Run(
        id=data["id"], selection=Selection.from_json(data["selection"]), mode=data["mode"], total=int(data["total"]),
        rate=int(data.get("rate") or 0) or None, max_files=None if max_files < 0 else max_files,
        state=data["state"], reason=data.get("reason", ""), cursor=json.loads(data.get("cursor") or "{}"),
        created_at=float(data["created_at"]), updated_at=float(data.get("updated_at") or data["created_at"]),
        ended_at=float(data["ended_at"]) if data.get("ended_at") else None,
        counts=Counts(read=int(data.get("read", 0)), already_rendered=int(data.get("already_rendered", 0)),
                      already_queued=int(data.get("already_queued", 0)), enqueued=int(data.get("enqueued", 0)),
                      pending=int(pending), done=int(done), failed=int(failed), skipped=int(skipped)),
    )


def active(connection: redis.Redis) -> Run | None:
    """The org's active (running or paused) run, or None."""
    run_id = connection.get(keys.BACKFILL_ACTIVE)
    return load(connection, _text(run_id)) if run_id else None


def latest(connection: redis.Redis) -> Run | None:
    """The active run, else the one that ended last."""
    current = active(connection)
    if current is not None:
        return current
    for run_id in connection.lrange(keys.BACKFILL_RUNS, 0, HISTORY - 1):
        run = load(connection, _text(run_id))
        if run is not None:
            return run
    return None


def require_active(connection: redis.Redis) -> Run:
    run = active(connection)
    if run is None:
        raise NoBackfillRun("No backfill is active; `offload backfill start` starts one.")
    return run


def pause(connection: redis.Redis) -> Run:
    """Stop feeding the run's files (jobs already queued finish); ``resume`` carries on from the cursor."""
    run = require_active(connection)
    if run.state == RUNNING:
        _update(connection, run.id, state=PAUSED, reason="paused by an operator")
    return require_active(connection)


def resume(connection: redis.Redis) -> Run:
    run = require_active(connection)
    if run.state == PAUSED:
        _update(connection, run.id, state=RUNNING, reason="")
    return require_active(connection)


def cancel(connection: redis.Redis) -> Run:
    """End the run: nothing more is fed, and its jobs still queued skip themselves when a worker takes them."""
    run = require_active(connection)
    end(connection, run.id, CANCELLED, "cancelled by an operator")
    connection.delete(pending_key(run.id))
    found = load(connection, run.id)
    assert found is not None
    return found


def end(connection: redis.Redis, run_id: str, state: str, reason: str) -> None:
    """Close the run (finished, cancelled or stopped) and free the org for another one."""
    if state in ACTIVE_STATES:
        raise BackfillError(f"{state} is not an end state")
    now = time.time()
    _update(connection, run_id, state=state, reason=reason, ended_at=now)
    connection.eval(_RELEASE_LUA, 1, keys.BACKFILL_ACTIVE, run_id)
    for key in (run_key(run_id), pending_key(run_id), *(outcome_key(run_id, o) for o in OUTCOMES)):
        connection.expire(key, KEEP_SECONDS)


def _update(connection: redis.Redis, run_id: str, **fields: str | float | None) -> None:
    mapping: dict[Any, Any] = {k: ("" if v is None else v) for k, v in fields.items()}
    mapping["updated_at"] = time.time()
    connection.hset(run_key(run_id), mapping=mapping)


def set_reason(connection: redis.Redis, run_id: str, reason: str) -> None:
    """Why feeding is held right now (a safety margin, Salesforce unreachable); empty when it is not."""
    connection.hset(run_key(run_id), "reason", reason)


def is_cancelled(connection: redis.Redis, run_id: str) -> bool:
    """Whether a backfill job's run has been cancelled (the job then skips itself)."""
    state = connection.hget(run_key(run_id), "state")
    return state is not None and _text(state) == CANCELLED


def note_outcome(connection: redis.Redis, run_id: str, job_id: str, outcome: str) -> None:
    """Count a backfill job's final outcome once, whatever ran it how many times."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    pipe = connection.pipeline()
    for other in OUTCOMES:
        if other != outcome:
            pipe.srem(outcome_key(run_id, other), job_id)
    pipe.sadd(outcome_key(run_id, outcome), job_id)
    pipe.execute()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
