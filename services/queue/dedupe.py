"""The delivery key of a payload: what makes two requests for the same work one job.

A signed callout (Apex's ``OffloadClient``, the usual door for uploads) is deduped on its payload, whatever
its ``sentAt``; a backfill job for a file uses the very same key, so a file a live upload has already queued
is found queued (:func:`services.queue.admit` answers "duplicate") instead of being queued twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
"""``json.dumps(..., sort_keys=True, separators=(",", ":"))`` without building an encoder on every call
(``json.dumps`` reuses its cached encoder only when called with no options)."""


def payload_digest(payload: Mapping[str, Any]) -> str:
    """Stable hash of a payload minus its ``sentAt`` (a re-send of the same request is a duplicate)."""
    canonical = {k: v for k, v in payload.items() if k != "sentAt"}
    return hashlib.sha256(_CANONICAL_JSON.encode(canonical).encode()).hexdigest()


def payload_key(org_id: str | None, process: str, payload: Mapping[str, Any]) -> str:
    """The delivery key of a payload that carries no key of its own (a signed callout, a backfill job)."""
    return f"payload:{org_id or '-'}:{process}:{payload_digest(payload)}"
