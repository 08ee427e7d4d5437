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

from services import keys
from services.sfids import normalize, to_18

OWN_OUTPUT_PREFIX = keys.OWN_OUTPUT_PREFIX
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
    (:func:`services.queue.admit`), so the loop guard costs no extra round trip.
    """
    normalized = normalize(record_id)
    return None if normalized is None else OWN_OUTPUT_PREFIX + normalized

