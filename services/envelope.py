"""The job envelope: the one contract between the receiver that enqueues a job and the worker that runs it.

Every job is ``workers.runner.execute(envelope)`` with one JSON argument (RQ's JSON serializer, never
pickle), built by :meth:`Envelope.to_json` at intake and read back by :meth:`Envelope.from_json` in the
worker, the jobs view and the CLI. Nobody else reads or writes the raw dict. On the wire::

    {"process": "resize-image", "payload": {...validated...}, "source": "callout" | "outbound" | "applink",
     "recordId": "068...", "orgId": "00D...", "deliveryKey": "...", "requestId": "...",
     "receivedAt": "2026-12-06T10:00:00.000Z", "notificationId": "04l...",
     "instanceUrl": "https://...", "sessionRef": "...", "userId": "005...", "backfillRun": "..."}

``userId`` is the invoking user of an AppLink job (its ``x-client-context``): the job writes back as that
user with the context's token (by ``sessionRef``), and as the Authorized User once it expired.

``recordId`` is the Salesforce record the job is about, as the process declared it at intake
(:attr:`services.processes.base.Process.record_id`), so generic code (logs, the completion event,
``/jobs/<id>``) never has to know a process's payload shape. Absent values are left out of the JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from services.errors import MalformedEnvelope

_WIRE_NAMES = {
    "process": "process",
    "payload": "payload",
    "source": "source",
    "record_id": "recordId",
    "org_id": "orgId",
    "delivery_key": "deliveryKey",
    "request_id": "requestId",
    "received_at": "receivedAt",
    "notification_id": "notificationId",
    "instance_url": "instanceUrl",
    "session_ref": "sessionRef",
    "backfill_run": "backfillRun",
    "user_id": "userId",
}
"""Attribute -> JSON key. The JSON keys are what jobs already in Redis hold: renaming one strands them."""


@dataclass(frozen=True)
class Envelope:
    """One job's instructions: which process, its validated payload, and where the work came from."""

    process: str
    payload: Mapping[str, Any]
    source: str
    delivery_key: str | None = None
    received_at: str | None = None
    record_id: str | None = None
    org_id: str | None = None
    request_id: str | None = None
    notification_id: str | None = None
    instance_url: str | None = None
    session_ref: str | None = field(default=None, repr=False)
    """A reference to the Outbound Message's session id, stored encrypted (never the session id itself)."""
    backfill_run: str | None = None
    """The backfill run that queued the job (``source`` is ``backfill``); its outcome counts towards that run."""
    """A reference to the caller's session (an Outbound Message's session id, an AppLink access token), stored
    encrypted (never the session itself)."""
    user_id: str | None = None
    """The Salesforce user who invoked an AppLink job (``userContext.userId``)."""

    def to_json(self) -> dict[str, Any]:
        """The JSON form RQ stores; ``None`` values are left out."""
        out: dict[str, Any] = {}
        for attr, key in _WIRE_NAMES.items():
            value = getattr(self, attr)
            if value is not None:
                out[key] = dict(value) if attr == "payload" else value
        return out

    @classmethod
    def from_json(cls, data: object) -> Envelope:
        """Read an envelope back; :class:`MalformedEnvelope` (permanent) if it is not one of ours."""
        if not isinstance(data, Mapping):
            raise MalformedEnvelope(f"The job's argument is a {type(data).__name__}, not an Offload job envelope.")
        process, payload, source = data.get("process"), data.get("payload"), data.get("source")
        if not isinstance(process, str) or not process:
            raise MalformedEnvelope("The job envelope names no process.")
        if not isinstance(payload, Mapping):
            raise MalformedEnvelope(f"The job envelope for {process!r} has no payload object.")
        values: dict[str, Any] = {"process": process, "payload": payload, "source": str(source or "unknown")}
        for attr, key in _WIRE_NAMES.items():
            if attr in values:
                continue
            value = data.get(key)
            if value is not None and not isinstance(value, str):
                raise MalformedEnvelope(f"The job envelope's {key} is not a string.")
            values[attr] = value
        return cls(**values)

    @classmethod
    def of_job_args(cls, args: tuple[Any, ...] | list[Any] | None) -> Envelope | None:
        """The envelope of a job's arguments, or None when the job is not one of ours (operator views)."""
        if not args:
            return None
        try:
            return cls.from_json(args[0])
        except MalformedEnvelope:
            return None


