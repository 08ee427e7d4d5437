"""Timestamps as Salesforce and our APIs write them: ISO 8601 in UTC with a trailing ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_iso(moment: datetime | None = None, *, timespec: str = "seconds") -> str:
    """``2026-11-26T10:00:00Z`` for ``moment`` (default: now); ``timespec`` as in ``datetime.isoformat``.

    A naive ``moment`` is taken to be UTC already (rq's timestamps are), never local time.
    """
    if moment is None:
        moment = datetime.now(UTC)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    else:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")
