"""UTC timestamps with a trailing Z, whatever the machine's time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from services.clock import utc_iso


def test_aware_and_naive_moments() -> None:
    assert utc_iso(datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC)) == "2026-11-26T10:00:00Z"
    assert utc_iso(datetime(2026, 11, 26, 10, 0, 0), timespec="milliseconds") == "2026-11-26T10:00:00.000Z"
    paris = datetime(2026, 11, 26, 11, 0, 0, tzinfo=timezone(timedelta(hours=1)))
    assert utc_iso(paris) == "2026-11-26T10:00:00Z"


def test_now_ends_in_z() -> None:
    assert utc_iso().endswith("Z") and len(utc_iso()) == len("2026-11-26T10:00:00Z")
