"""From a validated request to queued work, the same way for every door.

Both the SOAP door (one delivery per notification) and the JSON door (one per
callout) go through :func:`plan` (the process's own skip rule, envelope, dedupe
key) and :func:`submit` (loop guard on Offload's own outputs, dedupe and enqueue
in one Redis transaction, one round trip; duplicates answered with the original
job). Neither door builds envelopes or talks to RQ on its own. Payload schemas
are instantiated once per process (:func:`schema_for`), not per request.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from flask import g, request
from marshmallow import Schema

from services.clock import utc_iso
from services.loopguard import own_output_key
from services.queueing import Delivery, admit
from services.receiver.runtime import Runtime
from workers.registry import Process


@dataclass(frozen=True)
class Planned:
    """One unit of intake: either a delivery to enqueue or a reason to skip it."""

    record_id: str | None
    delivery: Delivery | None = None
    skipped: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What :func:`submit` did with one :class:`Planned`: skipped (with why), duplicate, or queued."""

    record_id: str | None
    job_id: str | None = None
    duplicate: bool = False
    skipped: str | None = None


OWN_OUTPUT_REASON = "this record is a rendition Offload wrote"


@functools.cache
def schema_for(schema: type[Schema]) -> Schema:
    """One instance per payload schema class and process (marshmallow schemas are reusable for ``load``)."""
    return schema()


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
        "receivedAt": utc_iso(timespec="milliseconds"),
        **(extra or {}),
    }
    delivery = Delivery(
        queue=process.queue,
        dedupe_key=key,
        envelope={k: v for k, v in envelope.items() if v is not None},
        description=f"{process.name} {record_id or ''}".strip(),
        timeout=min(process.timeout, runtime.settings.job_timeout),
        retries=runtime.settings.job_retries,
        retry_base=runtime.settings.retry_base_seconds,
    )
    return Planned(record_id=record_id, delivery=delivery)


def submit(runtime: Runtime, planned: list[Planned]) -> list[Outcome]:
    """Loop guard, dedupe and enqueue every planned delivery in one transaction (one round trip).

    Returns one :class:`Outcome` per item, in order: skipped (by the process's rule
    in :func:`plan`, or because the record is one Offload wrote itself), a duplicate
    of an earlier job, or newly queued. Raises :class:`~services.errors.EnqueueFailed` if Redis did
    not take the work; then nothing may be acknowledged.
    """
    todo = [p for p in planned if p.delivery is not None]
    results = iter(admit(
        runtime.redis,
        [p.delivery for p in todo],  # type: ignore[misc]
        dedupe_ttl=runtime.settings.dedupe_ttl,
        guard_keys=[own_output_key(p.record_id) for p in todo],
    ) if todo else [])
    outcomes = []
    for p in planned:
        if p.delivery is None:
            outcomes.append(Outcome(record_id=p.record_id, skipped=p.skipped))
            continue
        result = next(results)
        if result is None:
            outcomes.append(Outcome(record_id=p.record_id, skipped=OWN_OUTPUT_REASON))
        else:
            outcomes.append(Outcome(record_id=p.record_id, job_id=result.job_id, duplicate=result.duplicate))
    return outcomes


def request_id() -> str | None:
    """Heroku's router sets X-Request-Id; carry it into the job for log correlation."""
    return request.headers.get("X-Request-Id")
