"""The org's daily cap of new files and versions, and how the workers stay under it.

Salesforce caps the ContentVersions an org can publish in a rolling 24 hours (the ContentVersion object
reference: 200,000; ContentDocument reference: 2,500 on Developer Edition and trials), and every rendition is
one. ``/limits`` reports it as ``ContentPublicationLimit`` (Max, Remaining;
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_limits.htm); no response
header does, unlike the API allowance. So the workers keep one shared estimate in Redis: the org's figure from
the last ``/limits`` reading minus what they published since. It is read again at most once an hour (by one
process: one API call), and every :data:`PAUSED_RECHECK_SECONDS` while paused, since the window rolls.

Below :data:`RESERVE_SHARE` of the cap, jobs pause (``ContentPublicationLimitNear``, no retry spent, workers
suspended) instead of taking what the org's own users need for their uploads. If the org refuses an insert for
the cap anyway (its users uploaded faster than we estimated), the job pauses the same way.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from services import keys
from services.errors import ContentPublicationLimitNear

RESERVE_SHARE = 0.05
"""Jobs pause when publishing would leave less than this share of the org's daily file cap."""
RECHECK_SECONDS = 3600
"""A figure older than this is read again from ``/limits`` before the next upload (one call an hour)."""
PAUSED_RECHECK_SECONDS = 900
"""While the estimate is under the reserve, a figure older than this is read again (the window rolls)."""
PAUSE_SECONDS = 900
"""How long workers pause at the reserve before one of them looks again."""
_KEEP_SECONDS = 25 * 3600

CAP_MESSAGE_MARK = "contentpublication"
"""How Salesforce's refusal at the cap reads ("ContentPublication Limit exceeded.", as users report it:
https://github.com/douglascayers/sfdc-convert-attachments-to-chatter-files/issues/53); its error code is not
documented, so the message is what we match."""


@dataclass(frozen=True)
class ContentPublications:
    """The org's ``ContentPublicationLimit``: new files and versions allowed in 24 h, and how many are left."""

    limit: int
    remaining: int
    read_at: float = 0.0

    @classmethod
    def from_limits(cls, limits: dict[str, Any], read_at: float) -> ContentPublications | None:
        """From a ``/limits`` body; None when the org does not report the figure."""
        entry = limits.get("ContentPublicationLimit")
        if not isinstance(entry, dict) or "Max" not in entry or "Remaining" not in entry:
            return None
        return cls(int(entry["Max"]), int(entry["Remaining"]), read_at)

    @property
    def reserve(self) -> int:
        return max(1, math.ceil(self.limit * RESERVE_SHARE))


def record(connection: Any, figure: ContentPublications) -> None:
    """Keep a fresh ``/limits`` reading for every worker; what was published before it is counted in it."""
    pipe = connection.pipeline()
    pipe.hset(keys.CONTENT_PUBLICATIONS, mapping={"limit": figure.limit, "remaining": figure.remaining,
                                                  "at": figure.read_at or time.time(), "published": 0})
    pipe.expire(keys.CONTENT_PUBLICATIONS, _KEEP_SECONDS)
    pipe.execute()


def note_published(connection: Any, count: int) -> None:
    """Count ContentVersions the workers just created against the last reading."""
    if count > 0 and connection.exists(keys.CONTENT_PUBLICATIONS):
        connection.hincrby(keys.CONTENT_PUBLICATIONS, "published", count)


def note_cap_reached(connection: Any) -> None:
    """The org refused an insert for the cap: nothing is left, whatever the estimate said."""
    current = estimate(connection)
    limit = current.limit if current is not None else 0
    record(connection, ContentPublications(limit, 0, time.time()))


def estimate(connection: Any) -> ContentPublications | None:
    """The org's figure from the last reading, less what the workers published since (None: never read)."""
    raw = connection.hgetall(keys.CONTENT_PUBLICATIONS)
    if not raw:
        return None
    data = {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in raw.items()}
    return ContentPublications(int(data["limit"]), int(data["remaining"] - data.get("published", 0)), data["at"])


def ensure_headroom(connection: Any, read_limits: Any, needed: int) -> None:
    """Pause (``ContentPublicationLimitNear``) when publishing ``needed`` more would eat into the reserve.

    ``read_limits`` reads ``/limits`` and records it (one API call); it is called when the figure is missing
    or old, by one process at a time. Without any figure (never read, or another process is reading it), the
    upload goes ahead: the org itself refuses at the cap, and that refusal pauses the job too.
    """
    current = estimate(connection)
    age = time.time() - current.read_at if current is not None else math.inf
    low = current is not None and current.remaining - needed < current.reserve
    if age >= (PAUSED_RECHECK_SECONDS if low else RECHECK_SECONDS) and connection.set(
            keys.CONTENT_PUBLICATIONS_RECHECK, "1", nx=True, ex=60):
        try:
            read_limits()
        finally:
            connection.delete(keys.CONTENT_PUBLICATIONS_RECHECK)  # the fresh figure now serves everyone
        current = estimate(connection)
    if current is None or not current.limit or current.remaining - needed >= current.reserve:
        return
    raise ContentPublicationLimitNear(
        f"The org can publish about {max(0, current.remaining)} more files and versions in the next 24 hours "
        f"(ContentPublicationLimit {current.limit}); Offload keeps the last {current.reserve} "
        f"({RESERVE_SHARE:.0%}) for the org's users and pauses {PAUSE_SECONDS} s, then looks again. The job is "
        "not failed. Ask Salesforce Support to raise the limit if this happens every day.",
        defer_seconds=PAUSE_SECONDS)


def is_cap_refusal(message: str) -> bool:
    """Whether an error message is Salesforce refusing a file for the daily cap."""
    return CAP_MESSAGE_MARK in message.replace(" ", "").lower()
