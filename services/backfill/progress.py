"""A backfill run's progress for people: ``offload backfill status``, ``offload jobs list`` and the logs."""

from __future__ import annotations

import time
from typing import Any

from services.backfill.runs import Run


def status_of(run: Run, now: float | None = None) -> dict[str, Any]:
    """The run's progress as JSON (``status --json``, and what :func:`describe` prints)."""
    now = now or time.time()
    c = run.counts
    elapsed = max(1.0, (run.ended_at or now) - run.created_at)
    per_minute = c.finished_jobs * 60.0 / elapsed
    return {
        "run": run.id, "state": run.state, "reason": run.reason, "process": run.selection.process,
        "selection": run.selection.describe(), "mode": run.mode, "total": run.total, "goal": run.goal,
        "done": c.done, "failed": c.failed, "skipped": c.skipped + c.already_rendered + c.already_queued,
        "alreadyRendered": c.already_rendered, "alreadyQueued": c.already_queued, "queued": c.in_flight,
        "left": run.left, "filesPerMinute": round(per_minute, 1),
        "etaSeconds": round(run.left / per_minute * 60) if per_minute and run.active else None,
        "percent": round(100.0 * c.settled / run.goal, 1) if run.goal else 100.0,
    }


def describe(run: Run) -> str:
    s = status_of(run)
    eta = f", ETA {duration(s['etaSeconds'])}" if s["etaSeconds"] else ""
    line = (f"backfill {s['run']} {s['state']}: {s['percent']:.1f} %  done {s['done']:,} · failed {s['failed']:,} · "
            f"skipped {s['skipped']:,} · left {s['left']:,}  ({s['filesPerMinute']:,.1f} files/min{eta})")
    return line + (f"\n  {s['reason']}" if s["reason"] else "")


def duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds} s"
    minutes = seconds // 60
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60:02d} min"
