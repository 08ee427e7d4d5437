"""Benchmark: does the receiver keep answering while slow clients hold connections open?

    .venv/bin/python bench/slow_clients.py                      # 50 slow connections, 20 s per phase
    .venv/bin/python bench/slow_clients.py --baseline /tmp/old  # also the same run against another checkout

What runs (everything on 127.0.0.1, on the same cores): a fresh ``redis-server`` and the receiver started
from the Procfile's ``web`` line with the product config (``services/receiver/gunicorn_conf.py``,
``WEB_CONCURRENCY=3``), as ``bench/receiver.py`` starts it.

Per server, two phases of ``--duration`` seconds each, in this order, in the same run:

1. **quiet**: probes only;
2. **slow**: the same probes while ``--slow`` connections are held open (half "slowloris": a request
   line, then one more header line every ``--trickle`` seconds, never the blank line that ends the
   headers; half "short body": complete headers promising ``Content-Length: 1000``, then one body byte
   every ``--trickle`` seconds). A slow connection the server closes (or answers) is replaced at once, so
   ``--slow`` stay open the whole phase, as a patient attacker would keep them.

Probes: ``GET /healthz`` and a signed ``POST /callouts/resize-image`` (a new contentVersionId each), each
at ``--rate`` per second, open loop (``bench/_load.py``: latency from the scheduled send, a new
connection each), given up after ``--probe-timeout`` seconds. Printed per phase: answered fraction,
fraction answered within 1 s, p50/p99 of the answered ones; then the ratios slow/quiet. For the short
bodies it also prints how the server ended them (status line and seconds held), which shows the body
deadline (``OFFLOAD_BODY_TIMEOUT``).

Goal (Offload issue 15): with 50 slow connections open, /healthz and a callout still answered within 1 s.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import redis
from _load import LoadResult, open_loop, percentile, request_bytes
from receiver import (
    APP_PATH,
    CALLOUT_PATH,
    callout_body,
    callout_request,
    free_port,
    start_redis,
    start_web,
    wait_ready,
    web_env,
)

from devkit.procfile import procfile_commands, stop

BODY_PROMISE = 1000


class SlowClients:
    """Keeps ``count`` slow connections open against ``port`` until :meth:`stop`, replacing closed ones."""

    def __init__(self, port: int, count: int, trickle: float) -> None:
        self.port, self.count, self.trickle = port, count, trickle
        self.ended: Counter[str] = Counter()  # how the server ended a slow connection: "<kind> <status line>"
        self.held: dict[str, list[float]] = {"headers": [], "body": []}  # seconds until the server ended one
        self.opened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _open(self, kind: str) -> tuple[socket.socket, str, float]:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.setblocking(False)
        if kind == "headers":
            head = f"POST {CALLOUT_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
        else:
            head = (f"POST {CALLOUT_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nConnection: close\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {BODY_PROMISE}\r\n\r\n{{")
        sock.send(head.encode())
        self.opened += 1
        return sock, kind, time.monotonic()

    def start(self) -> None:
        self.conns = [self._open("headers" if i % 2 == 0 else "body") for i in range(self.count)]
        self._thread.start()

    def _run(self) -> None:
        n = 0
        while not self._stop.wait(self.trickle):
            n += 1
            for i, (sock, kind, since) in enumerate(self.conns):
                ended = None
                try:
                    readable, _, _ = select.select([sock], [], [], 0)
                    if readable:
                        data = sock.recv(4096)
                        ended = data.split(b"\r\n", 1)[0].decode("latin-1") if data else "closed"
                    else:
                        sock.send(f"X-Slow-{n}: {n}\r\n".encode() if kind == "headers" else b" ")
                except OSError as exc:
                    ended = type(exc).__name__
                if ended is not None:
                    self.ended[f"{kind}: {ended}"] += 1
                    self.held[kind].append(time.monotonic() - since)
                    sock.close()
                    try:
                        self.conns[i] = self._open(kind)
                    except OSError:
                        self.ended[f"{kind}: reconnect failed"] += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        for sock, _, _ in self.conns:
            sock.close()


def probe(port: int, args: argparse.Namespace) -> dict[str, LoadResult]:
    """/healthz and signed callouts at ``--rate`` each, concurrently, for ``--duration`` s."""
    health = request_bytes("GET", "/healthz", port, {}, b"")
    callouts = [callout_request(port, callout_body()) for _ in range(int(args.rate * args.duration))]
    results: dict[str, LoadResult] = {}

    def run(name: str, make) -> None:  # type: ignore[no-untyped-def]
        results[name] = open_loop(("127.0.0.1", port), make, rate=args.rate, duration=args.duration,
                                  timeout=args.probe_timeout)

    threads = [threading.Thread(target=run, args=("healthz", lambda i: health)),
               threading.Thread(target=run, args=("callout", lambda i: callouts[i]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def summary(result: LoadResult, sent: int) -> dict:
    answered = list(result.latencies)
    ok = sum(n for s, n in result.statuses.items() if s in (200, 202))
    return {
        "sent": sent, "answered": len(answered), "answered_2xx": ok,
        "answered_fraction": round(len(answered) / sent, 3) if sent else 0.0,
        "within_1s_fraction": round(sum(1 for lat in answered if lat <= 1.0) / sent, 3) if sent else 0.0,
        "p50_ms": round(percentile(answered, 50) * 1000, 2) if answered else None,
        "p99_ms": round(percentile(answered, 99) * 1000, 2) if answered else None,
        "statuses": dict(result.statuses), "errors": dict(result.errors),
    }


def measure(kind: str, tree: Path | None, redis_port: int, workdir: Path, args: argparse.Namespace) -> dict:
    port = free_port()
    log = workdir / f"{kind}.log"
    proc = start_web(APP_PATH, web_env(redis_port, port), log, tree)
    try:
        wait_ready(port, proc, log)
        out: dict = {}
        sent = int(args.rate * args.duration)
        quiet = probe(port, args)
        out["quiet"] = {name: summary(r, sent) for name, r in quiet.items()}
        slow = SlowClients(port, args.slow, args.trickle)
        slow.start()
        try:
            time.sleep(1.0)  # let every slow connection reach a worker before the probes start
            loaded = probe(port, args)
        finally:
            slow.stop()
        out["slow"] = {name: summary(r, sent) for name, r in loaded.items()}
        out["slow_connections"] = {
            "opened": slow.opened, "ended_by_server": dict(slow.ended),
            "body_held_s_median": round(statistics.median(slow.held["body"]), 1) if slow.held["body"] else None,
            "headers_held_s_median": (round(statistics.median(slow.held["headers"]), 1)
                                      if slow.held["headers"] else None),
        }
        return out
    finally:
        stop(proc, timeout=10)


def report(kind: str, out: dict) -> None:
    print(f"\n[{kind}]")
    for phase in ("quiet", "slow"):
        for name in ("healthz", "callout"):
            s = out[phase][name]
            print(f"  {phase:5} {name:7}: answered {s['answered']}/{s['sent']} ({s['answered_fraction']:.0%}), "
                  f"within 1 s {s['within_1s_fraction']:.0%}, p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms; "
                  f"statuses {s['statuses']}, errors {s['errors']}")
    for name in ("healthz", "callout"):
        q, s = out["quiet"][name], out["slow"][name]
        ratio = (f"{s['p99_ms'] / q['p99_ms']:.2f}x" if s["p99_ms"] and q["p99_ms"] else "n/a (none answered)")
        print(f"  ratio slow/quiet {name}: answered {s['answered_fraction'] / max(q['answered_fraction'], 1e-9):.2f}x, "
              f"p99 {ratio}")
    sc = out["slow_connections"]
    print(f"  slow connections opened {sc['opened']}; ended by the server: {sc['ended_by_server']}; "
          f"median seconds a short body was held: {sc['body_held_s_median']}, slow headers: "
          f"{sc['headers_held_s_median']}")
    goal = all(out["slow"][n]["within_1s_fraction"] >= 0.99 for n in ("healthz", "callout"))
    print(f"  {'PASS' if goal else 'FAIL'}  /healthz and callouts answered within 1 s (>= 99 %) with "
          f"{out['slow_count']} slow connections open")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slow", type=int, default=50, help="slow connections held open in the slow phase")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase")
    parser.add_argument("--rate", type=float, default=5.0, help="probes per second, each kind")
    parser.add_argument("--trickle", type=float, default=1.0, help="seconds between a slow client's bytes")
    parser.add_argument("--probe-timeout", type=float, default=5.0, help="seconds before a probe is given up")
    parser.add_argument("--baseline", type=Path, help="another checkout measured the same way in the same run")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    print(f"web: {procfile_commands()['web']} (WEB_CONCURRENCY=3); {args.slow} slow connections, "
          f"{args.duration:g} s per phase, probes {args.rate:g}/s each", flush=True)
    results: dict = {"command": " ".join([".venv/bin/python", "bench/slow_clients.py", *sys.argv[1:]])}
    with tempfile.TemporaryDirectory(prefix="offload-slow-") as tmp:
        workdir = Path(tmp)
        redis_proc, redis_port = start_redis(workdir)
        try:
            servers: list[tuple[str, Path | None]] = [("this checkout", None)]
            if args.baseline:
                servers.append((f"baseline {args.baseline}", args.baseline.resolve()))
            for kind, tree in servers:
                results[kind] = measure(kind, tree, redis_port, workdir, args)
                results[kind]["slow_count"] = args.slow
                report(kind, results[kind])
        finally:
            try:
                redis.Redis(port=redis_port).shutdown(nosave=True)
            except redis.RedisError:
                pass
            try:
                redis_proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                redis_proc.kill()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    ours = results["this checkout"]
    return 0 if all(ours["slow"][n]["within_1s_fraction"] >= 0.99 for n in ("healthz", "callout")) else 1


if __name__ == "__main__":
    sys.exit(main())
