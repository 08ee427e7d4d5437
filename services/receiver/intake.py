"""From a validated request to queued work, the same way for every door.

The SOAP door (one delivery per notification), the JSON door (one per callout) and
the AppLink door (one per invocation) go through :func:`plan` (the process's own skip rule, envelope, dedupe
key) and :func:`submit` (loop guard on Offload's own outputs, dedupe and enqueue
in one Redis transaction, one round trip; duplicates answered with the original
job). Neither door builds envelopes or talks to RQ on its own. Payload schemas
are instantiated once per process (:func:`schema_for`), not per request.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Any

import redis
from flask import Request
from marshmallow import Schema
from werkzeug.exceptions import RequestEntityTooLarge, RequestTimeout

from services import keys
from services.clock import utc_iso
from services.envelope import Envelope
from services.errors import EnqueueFailed, IdempotencyKeyReused, RecordTypeNotAllowed
from services.processes.base import Process
from services.queue import Delivery, admit
from services.queue.dedupe import payload_key
from services.queue.loopguard import own_output_key
from services.receiver.deadline import DEADLINES
from services.receiver.runtime import Runtime, get_runtime
from services.sfids import standard_sobject


@dataclass(frozen=True)
class Planned:
    """One unit of intake: either a delivery to enqueue or a reason to skip it."""

    record_id: str | None
    delivery: Delivery | None = None
    skipped: str | None = None
    refused: bool = False
    """``skipped`` because the notification can never start the process (not on purpose, like the loop guard)."""


@dataclass(frozen=True)
class Outcome:
    """What :func:`submit` did with one :class:`Planned`: skipped (with why), duplicate, or queued."""

    record_id: str | None
    job_id: str | None = None
    duplicate: bool = False
    skipped: str | None = None
    refused: bool = False


OWN_OUTPUT_REASON = "this record is a rendition Offload wrote"


@functools.cache
def schema_for(schema: type[Schema]) -> Schema:
    """One instance per payload schema class and process (marshmallow schemas are reusable for ``load``)."""
    return schema()


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
    request_id: str | None = None,
    notification_id: str | None = None,
    instance_url: str | None = None,
    session_ref: str | None = None,
    user_id: str | None = None,
) -> Planned:
    """Decide what to do with one validated payload (no Redis writes here).

    ``request_id``: the router's ``X-Request-Id`` (:func:`request_id`), carried into the job.
    """
    record_id = process.record_id(payload)
    types = runtime.settings.record_types
    if not types.allows(sobject, record_id):
        kind = sobject or (standard_sobject(record_id) if record_id else None) or "this object's"
        raise RecordTypeNotAllowed(
            f"{process.name} does not work on {kind} records ({record_id}); "
            f"OFFLOAD_RECORD_TYPES allows {types.describe()}."
        )
    reason = process.skip_reason(sobject, fields if fields is not None else payload)
    if reason:
        return Planned(record_id=record_id, skipped=reason)
    key = dedupe_key or payload_key(org_id, process.name, payload)
    envelope = Envelope(
        process=process.name,
        payload=payload,
        source=source,
        record_id=record_id,
        org_id=org_id,
        delivery_key=key,
        request_id=request_id,
        received_at=utc_iso(timespec="milliseconds"),
        notification_id=notification_id,
        instance_url=instance_url,
        session_ref=session_ref,
        user_id=user_id,
    )
    delivery = Delivery(
        queue=process.queue,
        dedupe_key=key,
        envelope=envelope.to_json(),
        description=f"{process.name} {record_id or ''}".strip(),
        timeout=min(process.timeout, runtime.settings.job_timeout),
        retries=runtime.settings.job_retries,
        retry_base=runtime.settings.retry_base_seconds,
    )
    return Planned(record_id=record_id, delivery=delivery)


def bind_idempotency_key(runtime: Runtime, process: Process, key: str, digest: str) -> None:
    """Tie an ``Idempotency-Key`` to the payload that first used it (one ``SET NX``), for ``OFFLOAD_DEDUPE_TTL``.

    The same key with the same payload (a retry, whatever its ``sentAt``) goes on to be a duplicate;
    with another payload it is refused, because answering "duplicate" would silently drop the
    second request's work.

    Raises:
        IdempotencyKeyReused: the key is bound to a different payload.
        EnqueueFailed: Redis did not answer (nothing is accepted then).
    """
    name = keys.IDEMPOTENCY_PREFIX + hashlib.sha256(f"{process.name}\n{key}".encode()).hexdigest()
    try:
        if runtime.redis.set(name, digest, nx=True, ex=runtime.settings.dedupe_ttl):
            return
        bound = runtime.redis.get(name)
    except redis.RedisError as exc:
        raise EnqueueFailed("The job queue (Redis) is unavailable; retry the request.") from exc
    if bound is not None and (bound.decode() if isinstance(bound, bytes) else bound) != digest:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used for a different request body: send a new key for new work, "
            "or the same body to get the original job.",
            fields={"Idempotency-Key": ["Already used with a different body."]},
        )


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
            outcomes.append(Outcome(record_id=p.record_id, skipped=p.skipped, refused=p.refused))
            continue
        result = next(results)
        if result is None:
            outcomes.append(Outcome(record_id=p.record_id, skipped=OWN_OUTPUT_REASON))
        else:
            outcomes.append(Outcome(record_id=p.record_id, job_id=result.job_id, duplicate=result.duplicate))
    return outcomes


def request_id(req: Request) -> str | None:
    """Heroku's router sets X-Request-Id; carry it into the job for log correlation."""
    return header(req, "X-Request-Id")


@functools.cache
def _environ_key(name: str) -> str:
    return "HTTP_" + name.upper().replace("-", "_")


def header(req: Request, name: str) -> str | None:
    """``req.headers.get(name)`` for any header but Content-Type/-Length, read straight from the WSGI environ.

    The same lookup werkzeug's ``EnvironHeaders`` makes, without folding the name on every call.
    """
    return req.environ.get(_environ_key(name))


def read_body(req: Request) -> bytes:
    """The raw body, refused with 413 before reading when ``Content-Length`` is over the app's cap, and with
    408 when it has not all arrived within ``OFFLOAD_BODY_TIMEOUT`` seconds (:mod:`services.receiver.deadline`).

    With a ``Content-Length`` within the cap this reads exactly that many bytes from the server's input
    stream, which is what werkzeug's ``get_data`` ends up doing through a size-limited wrapper stream and
    a read-until-empty loop (two more reads of gunicorn's body). Without one (chunked uploads) the body is
    read up to one byte past the cap; without a cap, werkzeug's own reader applies.

    A client that promises more than it sends would otherwise hold the thread reading its body for as long
    as it trickles bytes: Heroku's router does not buffer request bodies (see the module above).
    """
    length, limit = req.content_length, req.max_content_length
    if limit is None:
        return req.get_data(cache=False)
    if length is not None and length > limit:
        raise RequestEntityTooLarge()
    if length == 0:
        return b""
    seconds = get_runtime().settings.body_timeout
    watch = DEADLINES.arm(req.environ, seconds)
    stream = req.environ["wsgi.input"]
    try:
        body = _read_unsized(stream, limit) if length is None else stream.read(length)
    except Exception:
        if watch is not None and watch.fired:  # gunicorn's chunked reader raises at the cut-off
            raise _timed_out(seconds) from None
        raise
    finally:
        if watch is not None:
            watch.done = True
    if watch is not None and watch.fired and (length is None or len(body) < length):
        raise _timed_out(seconds)
    return body


def _timed_out(seconds: int) -> RequestTimeout:
    return RequestTimeout(
        f"The request body did not arrive within OFFLOAD_BODY_TIMEOUT ({seconds} s); nothing was queued. "
        "Send the request again."
    )


def _read_unsized(stream: Any, limit: int) -> bytes:
    """A body without ``Content-Length`` (``Transfer-Encoding: chunked``, which gunicorn decodes), up to ``limit``.

    werkzeug's reader stops at the limit without saying so, which cut such a body short and then
    failed its signature check with a misleading 401; one byte past the limit is a 413 here.
    """
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = stream.read(min(65536, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    raise RequestEntityTooLarge()
