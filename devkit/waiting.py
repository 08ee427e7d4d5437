"""Waiting for something to happen in another process, with a deadline (demo, tests, benchmarks)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """What was awaited did not happen in time; the message says what."""


def wait_until(predicate: Callable[[], T | None], timeout: float, what: str, *, interval: float = 0.1) -> T:
    """Poll ``predicate`` until it returns something truthy and return it; raise :class:`WaitTimeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"Timed out after {timeout:.0f} s waiting for {what}.")
        time.sleep(interval)
