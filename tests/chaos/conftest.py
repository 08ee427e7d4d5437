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

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from services.devstack import LocalStack
from services.embedded_redis import free_port


class RestartableRedis:
    """``redis-server`` on 127.0.0.1:<free port> with AOF in ``directory``; ``kill()`` and ``start()`` again."""

    def __init__(self, directory: Path, fsync: str = "always") -> None:
        self.directory = directory
        self.port = free_port()
        self.fsync = fsync
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not on PATH")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", self.fsync, "--dir", str(self.directory),
             "--logfile", str(self.directory / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        for _ in range(int(timeout / 0.05)):
            try:
                client.ping()
                client.close()
                return
            except redis.ConnectionError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited: {(self.directory / 'redis.log').read_text()}") from None
                import time

                time.sleep(0.05)
        raise RuntimeError("redis-server did not answer")

    def kill(self) -> None:
        """SIGKILL: no shutdown save, no goodbye; what survives is what the AOF holds."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RestartableRedis]:
    server = RestartableRedis(tmp_path / "redis")
    server.directory.mkdir()
    server.start()
    try:
        yield server
    finally:
        server.stop()


FAST_RETRY_ENV = {"OFFLOAD_JOB_RETRIES": "5", "OFFLOAD_RETRY_BASE_SECONDS": "1"}
"""Retries start after ~1 s instead of 15 s, so outages and kills recover within a test's time."""


@pytest.fixture
def chaos_stack(own_redis: RestartableRedis) -> Iterator[LocalStack]:
    """Org + gunicorn + two workers on this test's own restartable Redis, with fast retries."""
    with LocalStack(redis_url=own_redis.url, workers=2, env=FAST_RETRY_ENV) as running:
        yield running
