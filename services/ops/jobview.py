"""How a job looks from outside: the ``GET /jobs/<jobId>`` body (also used by the CLI)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rq.job import Job

from services.clock import utc_iso
from services.envelope import Envelope


def _iso(moment: datetime | None) -> str | None:
    return utc_iso(moment, timespec="milliseconds") if moment else None


def _attempts(job: Job, max_retries: int, left: int) -> int:
    """Attempts that ran. The runner records it; a permanent failure spends every retry at once, so the
    retries left cannot tell (a job that ran once would read as ``max_retries + 1``)."""
    recorded = job.meta.get("attempts")
    if isinstance(recorded, int):
        return recorded
    return max_retries - left + (1 if job.started_at else 0)


def describe_job(job: Job) -> dict[str, Any]:
    """Public view of a job: no session references or other internals; unknown values are left out."""
    envelope = Envelope.of_job_args(job.args)
    status = job.get_status(refresh=False)
    max_retries = int(job.meta.get("max_retries", 0))
    left = job.retries_left if job.retries_left is not None else max_retries
    latest = job.latest_result()
    result = latest.return_value if latest is not None and latest.type == latest.Type.SUCCESSFUL else None
    error = None
    if latest is not None and latest.exc_string:
        lines = [line for line in latest.exc_string.strip().splitlines() if line.strip()]
        error = lines[-1] if lines else None
    view = {
        "jobId": job.id,
        "process": envelope.process if envelope else None,
        "status": str(getattr(status, "value", status)),
        "source": envelope.source if envelope else None,
        "recordId": envelope.record_id if envelope else None,
        "enqueuedAt": _iso(job.enqueued_at),
        "startedAt": _iso(job.started_at),
        "endedAt": _iso(job.ended_at),
        "attempts": _attempts(job, max_retries, left),
        "result": result,
        "skipped": job.meta.get("skipped"),
        "error": error,
    }
    # Absent rather than null: OpenAPI 3.0 without `nullable` (which External Services handles
    # badly) documents a string, and null is not one.
    return {key: value for key, value in view.items() if value is not None}
