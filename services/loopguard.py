"""Recognize Offload's own output, so writing a rendition never triggers another job.

A worker that creates records in Salesforce (renditions) marks their ids
here; the receiver refuses to enqueue work for a marked id and answers it as
*skipped*. This complements the marker field on the record itself
(``Offload_Rendition_Of__c``), which only an Outbound Message carries: an
Apex callout or Flow sends just the id.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis

from services.sfids import is_valid_id, normalize, to_18

OWN_OUTPUT_PREFIX = "offload:own:"
OWN_OUTPUT_TTL = 7 * 86400


def mark_own_output(connection: redis.Redis, record_ids: Iterable[str], ttl: int = OWN_OUTPUT_TTL) -> None:
    """Remember ids of records Offload created (one round trip)."""
    pipe = connection.pipeline(transaction=False)
    for record_id in record_ids:
        pipe.set(OWN_OUTPUT_PREFIX + to_18(record_id), 1, ex=ttl)
    pipe.execute()


def own_output_key(record_id: object) -> str | None:
    """The key that marks ``record_id`` as Offload's own output; None if it is not a valid Id.

    The receiver checks this key inside its enqueue transaction
    (:func:`services.queueing.admit`), so the loop guard costs no extra round trip.
    """
    normalized = normalize(record_id)
    return None if normalized is None else OWN_OUTPUT_PREFIX + normalized


def own_outputs(connection: redis.Redis, record_ids: list[str]) -> set[str]:
    """Which of these ids are Offload's own output (one round trip)."""
    ids = [to_18(r) for r in record_ids if isinstance(r, str) and is_valid_id(r)]
    if not ids:
        return set()
    flags = connection.mget([OWN_OUTPUT_PREFIX + r for r in ids])
    return {r for r, flag in zip(ids, flags, strict=True) if flag is not None}
