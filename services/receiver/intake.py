"""From a validated request to queued work, the same way for every door.

Both the SOAP door (one delivery per notification) and the JSON door (one per
callout) go through :func:`plan` (loop guard, envelope, dedupe key) and
:func:`submit` (one Redis transaction, duplicates answered with the original
job). Neither door builds envelopes or talks to RQ on its own.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from flask import g, request

from services.errors import EnqueueFailed
from services.loopguard import own_outputs
from services.queueing import Delivery, Enqueued, enqueue_deliveries
from services.receiver.runtime import Runtime
from workers.registry import Process


@dataclass(frozen=True)
class Planned:
    """One unit of intake: either a delivery to enqueue or a reason to skip it."""

    record_id: str | None
    delivery: Delivery | None = None
    skipped: str | None = None


def _payload_digest(payload: dict[str, Any]) -> str:
    """Stable hash of a payload minus its ``sentAt`` (a re-send of the same request is a duplicate)."""
    canonical = {k: v for k, v in payload.items() if k != "sentAt"}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def plan(
    runtime: Runtime,
    process: Process,
    payload: dict[str, Any],
    *,
    source: str,
    dedupe_key: str | None,
    org_id: str | None = None,
    sobject: str | None = None,
    fields: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Planned:
    """Decide what to do with one validated payload (no Redis writes here)."""
    record_id = payload.get("contentVersionId") or payload.get("recordId")
    reason = process.skip_reason(sobject, fields if fields is not None else payload)
    if reason:
        return Planned(record_id=record_id, skipped=reason)
    key = dedupe_key or f"payload:{org_id or '-'}:{process.name}:{_payload_digest(payload)}"
    envelope = {
        "process": process.name,
        "payload": payload,
        "source": source,
        "orgId": org_id,
        "deliveryKey": key,
        "requestId": g.get("request_id"),
        "receivedAt": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        **(extra or {}),
    }
    delivery = Delivery(
        queue=process.queue,
        dedupe_key=key,
        envelope={k: v for k, v in envelope.items() if v is not None},
        description=f"{process.name} {record_id or ''}".strip(),
        timeout=min(process.timeout, runtime.settings.job_timeout),
        retries=runtime.settings.job_retries,
    )
    return Planned(record_id=record_id, delivery=delivery)


def apply_loop_guard(runtime: Runtime, planned: list[Planned]) -> list[Planned]:
    """Skip deliveries whose record is one Offload wrote itself (one Redis round trip)."""
    ids = [p.record_id for p in planned if p.delivery is not None and p.record_id]
    try:
        own = own_outputs(runtime.redis, ids) if ids else set()
    except redis.RedisError as exc:
        raise EnqueueFailed("The job queue (Redis) is unavailable, so nothing was accepted; retry later.") from exc
    if not own:
        return planned
    return [
        Planned(record_id=p.record_id, skipped="this record is a rendition Offload wrote")
        if p.delivery is not None and p.record_id in own
        else p
        for p in planned
    ]


def submit(runtime: Runtime, planned: list[Planned]) -> list[Enqueued | None]:
    """Enqueue every planned delivery in one transaction; ``None`` where it was skipped."""
    deliveries = [p.delivery for p in planned if p.delivery is not None]
    results = iter(enqueue_deliveries(runtime.redis, deliveries, dedupe_ttl=runtime.settings.dedupe_ttl))
    return [next(results) if p.delivery is not None else None for p in planned]


def request_id() -> str | None:
    """Heroku's router sets X-Request-Id; carry it into the job for log correlation."""
    return request.headers.get("X-Request-Id")
