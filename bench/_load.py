"""HTTP load generators for bench/receiver.py, in pure Python (no dependency, 127.0.0.1 only).

Both open a new TCP connection per request, as gunicorn's sync workers close every connection anyway,
and read each response to EOF. One thread and ``selectors``, so the generator costs one core share at
most; wrk (C) is preferred for saturation when it is installed, and this is its fallback.

* :func:`closed_loop`: ``concurrency`` requests always in flight, for ``duration`` seconds or ``count``
  requests. In-flight requests are awaited at the end, so every request sent is counted (exact
  jobs-vs-2xx accounting, unlike wrk, which drops the ones in flight at its cut-off).
* :func:`open_loop`: requests *scheduled* at a fixed rate, independent of responses; each latency is
  measured from its scheduled send time, so a slow server or a lagging client shows up (no coordinated
  omission).
"""

from __future__ import annotations

import errno
import selectors
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

Address = tuple[str, int]


@dataclass
class LoadResult:
    """Counts and per-request latencies (seconds) of one load run."""

    elapsed: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)  # only when keep_bodies

    @property
    def completed(self) -> int:
        return sum(self.statuses.values())

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    @property
    def rate(self) -> float:
        return self.completed / self.elapsed if self.elapsed else 0.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


class _Conn:
    __slots__ = ("sock", "request", "sent", "chunks", "t0")

    def __init__(self, sock: socket.socket, request: bytes, t0: float) -> None:
        self.sock, self.request, self.sent, self.chunks, self.t0 = sock, request, 0, [], t0


class _Engine:
    """A tiny event loop: start requests, push bytes, collect responses."""

    def __init__(self, address: Address, result: LoadResult, keep_bodies: bool, timeout: float) -> None:
        self.address, self.result, self.keep_bodies, self.timeout = address, result, keep_bodies, timeout
        self.selector = selectors.DefaultSelector()
        self.open: set[_Conn] = set()

    def start(self, request: bytes, t0: float) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        code = sock.connect_ex(self.address)
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            self.result.errors[errno.errorcode.get(code, str(code))] += 1
            return
        conn = _Conn(sock, request, t0)
        self.open.add(conn)
        self.selector.register(sock, selectors.EVENT_WRITE, conn)

    def _finish(self, conn: _Conn, error: str | None = None) -> None:
        self.selector.unregister(conn.sock)
        conn.sock.close()
        self.open.discard(conn)
        if error:
            self.result.errors[error] += 1
            return
        data = b"".join(conn.chunks)
        try:
            status = int(data[9:12])
        except ValueError:
            self.result.errors["bad-response"] += 1
            return
        self.result.statuses[status] += 1
        self.result.latencies.append(time.perf_counter() - conn.t0)
        if self.keep_bodies:
            self.result.bodies.append(data)

    def poll(self, wait: float) -> int:
        """Handle ready sockets for at most ``wait`` seconds; return how many requests finished."""
        done = 0
        for key, mask in self.selector.select(max(0.0, wait)):
            conn: _Conn = key.data
            try:
                if mask & selectors.EVENT_WRITE:
                    conn.sent += conn.sock.send(conn.request[conn.sent:])
                    if conn.sent == len(conn.request):
                        self.selector.modify(conn.sock, selectors.EVENT_READ, conn)
                else:
                    chunk = conn.sock.recv(65536)
                    if chunk:
                        conn.chunks.append(chunk)
                    else:
                        self._finish(conn)
                        done += 1
            except (ConnectionError, OSError) as exc:
                self._finish(conn, type(exc).__name__)
                done += 1
        now = time.perf_counter()
        for conn in [c for c in self.open if now - c.t0 > self.timeout]:
            self._finish(conn, "timeout")
            done += 1
        return done

    def close(self) -> None:
        for conn in list(self.open):
            self._finish(conn, "abandoned")
        self.selector.close()


def closed_loop(
    address: Address,
    requests: Iterator[bytes],
    *,
    concurrency: int = 16,
    duration: float | None = None,
    count: int | None = None,
    keep_bodies: bool = False,
    timeout: float = 30.0,
) -> LoadResult:
    """Keep ``concurrency`` requests in flight until ``duration`` passed or ``count`` were sent."""
    if (duration is None) == (count is None):
        raise ValueError("give exactly one of duration or count")
    result = LoadResult()
    engine = _Engine(address, result, keep_bodies, timeout)
    started = time.perf_counter()
    deadline = started + duration if duration is not None else float("inf")
    sent = 0

    def more() -> bool:
        return time.perf_counter() < deadline and (count is None or sent < count)

    try:
        while len(engine.open) < concurrency and more():
            engine.start(next(requests), time.perf_counter())
            sent += 1
        while engine.open:
            engine.poll(0.05)
            while len(engine.open) < concurrency and more():
                engine.start(next(requests), time.perf_counter())
                sent += 1
    finally:
        engine.close()
    result.elapsed = time.perf_counter() - started
    return result


def open_loop(
    address: Address,
    make_request: Callable[[int], bytes],
    *,
    rate: float,
    duration: float,
    timeout: float = 10.0,
) -> LoadResult:
    """Send ``rate`` requests per second for ``duration`` seconds on schedule; latency from the schedule."""
    result = LoadResult()
    engine = _Engine(address, result, False, timeout)
    total = int(rate * duration)
    requests = [make_request(i) for i in range(total)]  # built up front: no client work on the clock
    interval = 1.0 / rate
    started = time.perf_counter() + 0.05
    try:
        for i, request in enumerate(requests):
            due = started + i * interval
            while True:
                wait = due - time.perf_counter()
                if wait <= 0:
                    break
                engine.poll(wait)
            engine.start(request, due)
        while engine.open:
            engine.poll(0.05)
    finally:
        engine.close()
    result.elapsed = time.perf_counter() - started
    return result


def request_bytes(method: str, path: str, port: int, headers: dict[str, str], body: bytes) -> bytes:
    """One HTTP/1.1 request, ``Connection: close``."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close",
             f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def one_request(address: Address, request: bytes, timeout: float = 30.0) -> tuple[int, bytes, float]:
    """Send one request on its own connection; (status, raw response, seconds from connect to EOF)."""
    t0 = time.perf_counter()
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    elapsed = time.perf_counter() - t0
    data = b"".join(chunks)
    return int(data[9:12]), data, elapsed
