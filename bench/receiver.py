"""Benchmark: the receiver under gunicorn (Procfile ``web``), against a no-op Flask app in the same run.

    .venv/bin/python bench/receiver.py                 # full run (~3 min)
    .venv/bin/python bench/receiver.py --quick         # smoke run (~40 s), numbers are rough
    .venv/bin/python bench/receiver.py --load python   # force the Python load generator (no wrk)

What runs (everything on 127.0.0.1, on the same cores):

* a fresh ``redis-server`` on a free port with ``--appendonly yes --appendfsync everysec`` (production
  durability: an ACK means the job is in the AOF within a second), in a temp dir;
* the receiver, started exactly from the Procfile's ``web`` line by ``devkit.procfile.spawn`` with
  ``WEB_CONCURRENCY=3`` (sync workers, ``services/receiver/gunicorn_conf.py``), ``OFFLOAD_LOG_LEVEL=WARNING`` and the
  access log **on, as configured** (one logfmt line per request to stdout, which goes to a file here);
  ``GUNICORN_CMD_ARGS=--bind 127.0.0.1:<port>`` keeps it off other interfaces (gunicorn lets that
  variable override the config file's ``0.0.0.0``);
* the no-op app (``bench/_noop_app.py``: parse and check a small JSON body, answer 202), served by the
  same command line and config with only the app path swapped.

What it measures:

(a) signed ``POST /callouts/resize-image`` with a distinct, valid 18-character contentVersionId per
    request (and a fresh ``sentAt``), so every request really enqueues one job;
(b) Outbound Messages of 100 notifications (distinct notification and record ids per message), sent one
    at a time: time from connect until the ACK has been read;
(c) the no-op app with the same body shape.

* Saturation: ``wrk -t1 -c16`` (or the Python closed-loop generator) for ``--duration`` s after a
  ``--warmup`` s warm-up, (c) and (a) interleaved ``--reps`` times; the ratio (a)/(c) is taken per pair
  and the median reported.
* Latency at a fixed rate: an open-loop Python generator at ``--rate`` req/s for ``--rate-duration`` s,
  ``--reps`` times, new connection per request, latency from the scheduled send time (includes ~1-2 ms
  of Python client overhead, like the reference's sync3 numbers).
* No lost jobs: jobs in Redis (LLEN of the queue) must equal the 202s counted by a generator that
  awaits every response (open loop, Python closed loop, OM). wrk drops requests still in flight at its
  cut-off, so for wrk runs the check is 0 <= jobs - 202s <= connections and every response 2xx.

Goals: (a) >= 0.6x (c) at saturation; p99 <= 10 ms at 100 req/s; 100-notification message ACKed in
<= 100 ms median. Results go to stdout (and ``--json``); ``docs/benchmarks.md`` records a run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import redis  # noqa: E402
from _load import LoadResult, closed_loop, one_request, open_loop, percentile, request_bytes  # noqa: E402

from devkit.procfile import process_env, procfile_commands, spawn, stop  # noqa: E402
from services.clock import utc_iso  # noqa: E402
from services.sfids import checksum  # noqa: E402
from services.signing import sign  # noqa: E402

SECRET = "bench-secret-0123456789abcdef"
ORG_ID = "00D5g000000Xk2PEAS"
QUEUE_KEY = "rq:queue:resize-image"
CALLOUT_PATH = "/callouts/resize-image"
OUTBOUND_TOKEN = "bench-outbound-token-0123456789"
OM_PATH = f"/outbound/resize-image?token={OUTBOUND_TOKEN}"
FIXTURE = ROOT / "tests" / "fixtures" / "salesforce" / "outbound-account-batch.xml"
GOAL_RATIO, GOAL_P99_MS, GOAL_ACK_MS = 0.6, 10.0, 100.0
APP_PATH = "services.receiver.wsgi:app"
NOOP_PATH = "bench._noop_app:app"


# --- ids and bodies ------------------------------------------------------------------------------------

_serial = itertools.count(1)


def sf_id(prefix: str, n: int) -> str:
    """A valid 18-character Salesforce id: 3-char prefix, '5g', a 10-digit serial, checksum."""
    id15 = f"{prefix}5g{n:010d}"
    return id15 + checksum(id15)


def now_iso() -> str:
    return utc_iso()


def callout_body() -> bytes:
    """A distinct signed-callout body (new contentVersionId each time)."""
    return json.dumps({"contentVersionId": sf_id("068", next(_serial)), "sentAt": now_iso()},
                      separators=(",", ":")).encode()


def callout_request(port: int, body: bytes, signed: bool = True) -> bytes:
    headers = {"Content-Type": "application/json"}
    if signed:
        headers["X-Offload-Signature"] = sign(body, SECRET)
    return request_bytes("POST", CALLOUT_PATH, port, headers, body)


def om_body(notifications: int = 100) -> bytes:
    """An Outbound Message of ``notifications`` Account notifications, all ids new, from the fixture."""
    text = FIXTURE.read_text()
    head, rest = text.split("<Notification>", 1)
    first = "<Notification>" + rest.split("</Notification>", 1)[0] + "</Notification>"
    tail = text.rsplit("</Notification>", 1)[1]
    note_id = re.search(r"<Id>(\w+)</Id>", first).group(1)  # type: ignore[union-attr]
    record_id = re.search(r"<sf:Id>(\w+)</sf:Id>", first).group(1)  # type: ignore[union-attr]
    notes = []
    for _ in range(notifications):
        n = next(_serial)
        notes.append(first.replace(note_id, sf_id("04l", n)).replace(record_id, sf_id("001", n)))
    return (head + "\n   ".join(notes) + tail).encode()


def om_request(port: int, body: bytes) -> bytes:
    return request_bytes("POST", OM_PATH, port, {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'},
                         body)


# --- processes -----------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    server = shutil.which("redis-server")
    if server is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "yes",
         "--appendfsync", "everysec", "--dir", str(workdir), "--logfile", str(workdir / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            return proc, port
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("redis-server did not start")


def web_env(redis_port: int, port: int) -> dict[str, str]:
    return {
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "OFFLOAD_CALLOUT_SECRETS": SECRET,
        "OFFLOAD_ORG_IDS": ORG_ID,
        "OFFLOAD_OUTBOUND_TOKENS": OUTBOUND_TOKEN,
        "WEB_CONCURRENCY": "3",
        "OFFLOAD_LOG_LEVEL": "WARNING",
        "PORT": str(port),
        "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{port}",
    }


def start_web(app_path: str, env: dict[str, str], log: Path, tree: Path | None = None) -> subprocess.Popen[bytes]:
    """The Procfile's web command; for the no-op app the same command with only the app path swapped.

    ``tree``: run the same command from another checkout (``--baseline``), whose code then comes first
    on ``sys.path`` (gunicorn puts its working directory there).
    """
    out = log.open("wb")
    if app_path == APP_PATH and tree is None:
        return spawn("web", env, stdout=out, stderr=subprocess.STDOUT)
    command = procfile_commands()["web"]
    assert APP_PATH in command, command
    return subprocess.Popen(["/bin/sh", "-c", "exec " + command.replace(APP_PATH, app_path)], cwd=tree or ROOT,
                            env=process_env(env), start_new_session=True, stdout=out, stderr=subprocess.STDOUT)


def wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    request = request_bytes("GET", "/healthz", port, {}, b"")
    for _ in range(200):
        if proc.poll() is not None:
            sys.exit(f"gunicorn exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if one_request(("127.0.0.1", port), request, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"gunicorn on {port} did not answer /healthz:\n{log.read_text()[-3000:]}")


# --- load ----------------------------------------------------------------------------------------------

WRK_SCRIPT = r"""
counts = {}
local lines, i = {}, 0
local path = os.getenv("BENCH_REQUESTS")
for line in io.lines(path) do lines[#lines + 1] = line end
local url_path = os.getenv("BENCH_PATH")
function request()
  i = i + 1
  if i > #lines then i = 1 end
  local sig, body = lines[i]:match("^(%S+) (.*)$")
  local headers = {["Content-Type"] = "application/json"}
  if sig ~= "-" then headers["X-Offload-Signature"] = sig end
  return wrk.format("POST", url_path, headers, body)
end
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end
local threads = {}
function setup(thread) threads[#threads + 1] = thread end
function done(summary, latency, requests)
  local out = {}
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    for k, v in pairs(c) do out[#out + 1] = string.format("%d=%d", k, v) end
  end
  io.write("STATUS " .. table.concat(out, ",") .. "\n")
  io.write(string.format("LATENCY p50=%.3f p99=%.3f\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def run_wrk(port: int, workdir: Path, n_requests: int, duration: float, connections: int, signed: bool,
            ) -> LoadResult:
    """wrk -t1 -c<connections> -d<duration>s over a file of ``n_requests`` distinct pre-signed bodies."""
    lines = []
    for _ in range(n_requests):
        body = callout_body()
        lines.append(f"{sign(body, SECRET) if signed else '-'} {body.decode()}")
    requests_file = workdir / "wrk-requests.txt"
    requests_file.write_text("\n".join(lines) + "\n")
    script = workdir / "bench.lua"
    script.write_text(WRK_SCRIPT)
    env = {**os.environ, "BENCH_REQUESTS": str(requests_file), "BENCH_PATH": CALLOUT_PATH}
    proc = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--timeout", "10s", "-s", str(script),
         f"http://127.0.0.1:{port}{CALLOUT_PATH}"],
        capture_output=True, text=True, env=env, timeout=duration + 60, check=False,
    )
    out = proc.stdout
    if proc.returncode != 0 or "Requests/sec" not in out:
        sys.exit(f"wrk failed ({proc.returncode}):\n{out}\n{proc.stderr}")
    result = LoadResult()
    match = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    assert match, out
    seconds = float(match.group(2)) / (1000 if match.group(3) == "ms" else 1)
    result.elapsed = seconds
    status_line = re.search(r"STATUS (.*)", out)
    for pair in (status_line.group(1).split(",") if status_line and status_line.group(1) else []):
        status, count = pair.split("=")
        result.statuses[int(status)] += int(count)
    for kind in ("connect", "read", "write", "timeout"):
        m = re.search(rf"{kind} (\d+)", out.split("Socket errors:", 1)[1]) if "Socket errors:" in out else None
        if m and int(m.group(1)):
            result.errors[kind] += int(m.group(1))
    lat = re.search(r"LATENCY p50=([\d.]+) p99=([\d.]+)", out)
    if lat:
        result.latencies = [float(lat.group(1)) / 1000, float(lat.group(2)) / 1000]  # p50, p99 only
    return result


def tree_cpu(root_pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its children (gunicorn's workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total, pids, stats = 0.0, {root_pid}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))  # ppid, utime+stime
    for pid, (ppid, _) in stats.items():
        if ppid == root_pid:
            pids.add(pid)
    for pid in pids:
        if pid in stats:
            total += stats[pid][1] / ticks
    return total


def queue_len(client: redis.Redis) -> int:
    return int(client.llen(QUEUE_KEY))


def settle(client: redis.Redis, quiet: float = 0.3, limit: float = 10.0) -> int:
    """Wait until the queue length stops changing (requests still being handled), then return it."""
    last, since, deadline = -1, time.monotonic(), time.monotonic() + limit
    while time.monotonic() < deadline:
        n = queue_len(client)
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
        time.sleep(0.05)
    return last


def saturate(port: int, workdir: Path, args: argparse.Namespace, client: redis.Redis, pids: dict[str, int],
             ) -> tuple[LoadResult, int, dict[str, float]]:
    """Warm up, then saturate; return the result, how many jobs appeared in Redis, and CPU seconds used."""
    use_wrk = args.load == "wrk"
    expected = int(args.expect_rate * (args.duration + 1))
    if use_wrk:
        run_wrk(port, workdir, int(args.expect_rate * (args.warmup + 1)), args.warmup, args.connections, True)
    else:
        closed_loop(("127.0.0.1", port), (callout_request(port, callout_body()) for _ in itertools.count()),
                    concurrency=args.connections, duration=args.warmup)
    before = settle(client)
    cpu0 = {name: tree_cpu(pid) for name, pid in pids.items()}
    if use_wrk:
        result = run_wrk(port, workdir, expected, args.duration, args.connections, True)
    else:
        result = closed_loop(("127.0.0.1", port), _presigned(port, expected),
                             concurrency=args.connections, duration=args.duration)
    cpu = {name: tree_cpu(pid) - cpu0[name] for name, pid in pids.items()}
    jobs = settle(client) - before
    return result, jobs, cpu


def _presigned(port: int, n: int) -> Iterator[bytes]:
    """Bodies signed before the clock starts, then (if the run outlasts them) signed on the fly."""
    ready = [callout_request(port, callout_body()) for _ in range(n)]
    yield from ready
    while True:
        yield callout_request(port, callout_body())


# --- phases --------------------------------------------------------------------------------------------

def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def phase_saturation(ports: dict[str, int], pids: dict[str, int], workdir: Path, args: argparse.Namespace,
                     client: redis.Redis, report: dict) -> None:
    rows = []
    kinds = [k for k in ("noop", "app", "baseline") if k in ports]
    for rep in range(args.reps):
        order = kinds[rep % len(kinds):] + kinds[:rep % len(kinds)]  # rotate, so no kind always goes first
        row: dict = {"rep": rep + 1, "order": "/".join(order)}
        for kind in order:
            result, jobs, cpu = saturate(ports[kind], workdir, args, client,
                                         {"web": pids[kind], "redis": pids["redis"]})
            n = max(1, result.completed)
            row[kind] = {
                "web_cpu_us_per_req": round(cpu["web"] / n * 1e6),
                "redis_cpu_us_per_req": round(cpu["redis"] / n * 1e6),
                "rps": round(result.rate, 1), "responses": result.completed, "statuses": dict(result.statuses),
                "errors": dict(result.errors), "jobs_in_redis": jobs,
                "p50_ms": ms(result.latencies[0] if args.load == "wrk" else percentile(result.latencies, 50)),
                "p99_ms": ms(result.latencies[1] if args.load == "wrk" else percentile(result.latencies, 99)),
            }
            if kind == "noop" and jobs:
                sys.exit("the no-op app wrote to Redis?")
        row["ratio"] = round(row["app"]["rps"] / row["noop"]["rps"], 3)
        rows.append(row)
        print(f"  rep {rep + 1} ({row['order']}): no-op {row['noop']['rps']:.0f} req/s, "
              f"receiver {row['app']['rps']:.0f} req/s -> {row['ratio']:.3f}x; CPU us/req web+redis: no-op "
              f"{row['noop']['web_cpu_us_per_req']}+{row['noop']['redis_cpu_us_per_req']}, receiver "
              f"{row['app']['web_cpu_us_per_req']}+{row['app']['redis_cpu_us_per_req']}; receiver statuses "
              f"{row['app']['statuses']}, jobs {row['app']['jobs_in_redis']}, errors {row['app']['errors']}",
              flush=True)
        if "baseline" in row:
            row["baseline_ratio"] = round(row["baseline"]["rps"] / row["noop"]["rps"], 3)
            print(f"  rep {rep + 1}: baseline ({args.baseline}) {row['baseline']['rps']:.0f} req/s -> "
                  f"{row['baseline_ratio']:.3f}x; CPU us/req web+redis {row['baseline']['web_cpu_us_per_req']}+"
                  f"{row['baseline']['redis_cpu_us_per_req']}", flush=True)
    ratios = [r["ratio"] for r in rows]
    app_rps = [r["app"]["rps"] for r in rows]
    noop_rps = [r["noop"]["rps"] for r in rows]
    report["saturation"] = {
        "rows": rows, "ratio_median": statistics.median(ratios),
        "ratio_of_medians": round(statistics.median(app_rps) / statistics.median(noop_rps), 3),
        "app_rps_median": statistics.median(app_rps), "noop_rps_median": statistics.median(noop_rps),
        "cpu_ratio_median": statistics.median(
            (r["noop"]["web_cpu_us_per_req"] + r["noop"]["redis_cpu_us_per_req"])
            / max(1, r["app"]["web_cpu_us_per_req"] + r["app"]["redis_cpu_us_per_req"]) for r in rows),
    }
    if "baseline" in ports:
        report["saturation"]["baseline_ratio_median"] = statistics.median(r["baseline_ratio"] for r in rows)


def phase_fixed_rate(port: int, args: argparse.Namespace, client: redis.Redis, report: dict) -> None:
    rows = []
    for rep in range(args.reps):
        before = settle(client)
        requests = [callout_request(port, callout_body()) for _ in range(int(args.rate * args.rate_duration))]
        result = open_loop(("127.0.0.1", port), lambda i, r=requests: r[i], rate=args.rate,
                           duration=args.rate_duration)
        jobs = settle(client) - before
        row = {"rep": rep + 1, "achieved_rps": round(result.rate, 1), "statuses": dict(result.statuses),
               "errors": dict(result.errors), "jobs_in_redis": jobs,
               "p50_ms": ms(percentile(result.latencies, 50)), "p99_ms": ms(percentile(result.latencies, 99)),
               "max_ms": ms(max(result.latencies, default=0.0))}
        row["lost_jobs"] = result.statuses.get(202, 0) - jobs
        rows.append(row)
        print(f"  rep {rep + 1}: {row['achieved_rps']} req/s, p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, "
              f"max {row['max_ms']} ms; statuses {row['statuses']}, jobs {jobs}", flush=True)
    report["fixed_rate"] = {
        "rate": args.rate, "rows": rows,
        "p50_ms_median": statistics.median(r["p50_ms"] for r in rows),
        "p99_ms_median": statistics.median(r["p99_ms"] for r in rows),
        "p99_ms_max": max(r["p99_ms"] for r in rows),
    }


def phase_outbound(port: int, args: argparse.Namespace, client: redis.Redis, report: dict) -> None:
    bodies = [om_body(100) for _ in range(args.om_messages + 2)]
    times, acked, faults = [], 0, []
    before = settle(client)
    for i, body in enumerate(bodies):
        status, data, elapsed = one_request(("127.0.0.1", port), om_request(port, body))
        ok = status == 200 and b"<Ack>true</Ack>" in data
        if i >= 2:  # the first two warm the workers' code paths
            times.append(elapsed)
        if ok:
            acked += 1
        else:
            faults.append(data[-300:].decode(errors="replace"))
        time.sleep(0.02)
    jobs = settle(client) - before
    report["outbound"] = {
        "messages": len(bodies), "notifications_each": 100, "body_bytes": len(bodies[0]), "acked": acked,
        "jobs_in_redis": jobs, "lost_jobs": acked * 100 - jobs, "faults": faults[:3],
        "ack_ms_median": ms(statistics.median(times)), "ack_ms_p90": ms(percentile(times, 90)),
        "ack_ms_min": ms(min(times)), "ack_ms_max": ms(max(times)),
    }
    o = report["outbound"]
    print(f"  {o['messages']} messages x 100 notifications ({o['body_bytes']} bytes): ACK median "
          f"{o['ack_ms_median']} ms (min {o['ack_ms_min']}, p90 {o['ack_ms_p90']}, max {o['ack_ms_max']}); "
          f"acked {acked}, jobs {jobs}", flush=True)


def phase_exact(port: int, args: argparse.Namespace, client: redis.Redis, report: dict) -> None:
    """Closed loop with every response awaited: jobs in Redis must equal the 202s exactly."""
    before = settle(client)
    result = closed_loop(("127.0.0.1", port), _presigned(port, args.exact_count), concurrency=args.connections,
                         count=args.exact_count)
    jobs = settle(client) - before
    report["exact"] = {"requests": args.exact_count, "statuses": dict(result.statuses),
                       "errors": dict(result.errors), "jobs_in_redis": jobs,
                       "lost_jobs": result.statuses.get(202, 0) - jobs, "rps": round(result.rate, 1)}
    print(f"  {args.exact_count} requests at concurrency {args.connections}: statuses {dict(result.statuses)}, "
          f"jobs {jobs}", flush=True)


# --- main ----------------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--load", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per saturation run")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--rate-duration", type=float, default=15.0)
    parser.add_argument("--om-messages", type=int, default=30)
    parser.add_argument("--exact-count", type=int, default=3000)
    parser.add_argument("--expect-rate", type=float, default=4000.0,
                        help="upper bound of req/s, sizes the pre-signed request pool (distinct ids)")
    parser.add_argument("--quick", action="store_true", help="1 rep, short runs: a smoke test")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--baseline", type=Path, help="another checkout (e.g. a git worktree of an older commit) "
                        "whose receiver joins the saturation runs, for a before/after in the same run")
    args = parser.parse_args()
    if args.quick:
        args.reps, args.duration, args.warmup, args.rate_duration = 1, 4.0, 1.0, 5.0
        args.om_messages, args.exact_count = 10, 1000
    if args.load == "auto":
        args.load = "wrk" if shutil.which("wrk") else "python"

    report: dict = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"), "python": platform.python_version(),
        "cpus": os.cpu_count(), "load_generator": args.load,
        "command": " ".join([".venv/bin/python", "bench/receiver.py", *sys.argv[1:]]),
        "procfile_web": procfile_commands()["web"],
    }
    generator = f"wrk -t1 -c{args.connections}" if args.load == "wrk" else "python (bench/_load.py)"
    print(f"load generator: {generator}; {os.cpu_count()} CPUs; web: {report['procfile_web']}", flush=True)
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="offload-bench-") as tmp:
        workdir = Path(tmp)
        redis_proc, redis_port = start_redis(workdir)
        client = redis.Redis(port=redis_port)
        try:
            servers = [("app", APP_PATH, None), ("noop", NOOP_PATH, None)]
            if args.baseline:
                servers.append(("baseline", APP_PATH, args.baseline.resolve()))
            ports = {kind: free_port() for kind, _, _ in servers}
            logs = {kind: workdir / f"{kind}.log" for kind in ports}
            for kind, path, tree in servers:
                procs.append(start_web(path, web_env(redis_port, ports[kind]), logs[kind], tree))
                wait_ready(ports[kind], procs[-1], logs[kind])
            report["versions"] = {"redis": client.info("server")["redis_version"]}

            print("(a) vs (c) saturation, interleaved:", flush=True)
            pids = {kind: proc.pid for (kind, _, _), proc in zip(servers, procs, strict=True)}
            pids["redis"] = redis_proc.pid
            phase_saturation(ports, pids, workdir, args, client, report)
            print(f"(a) open loop at {args.rate:g} req/s:", flush=True)
            phase_fixed_rate(ports["app"], args, client, report)
            print("(b) Outbound Messages, 100 notifications each, one at a time:", flush=True)
            phase_outbound(ports["app"], args, client, report)
            print("no lost jobs, exact count:", flush=True)
            phase_exact(ports["app"], args, client, report)

            access_lines = sum(1 for line in logs["app"].read_text(errors="replace").splitlines()
                               if line.startswith("at=info method="))
            report["access_log_lines_app"] = access_lines
            errors_logged = [line for line in logs["app"].read_text(errors="replace").splitlines()
                             if "level=error" in line or "Traceback" in line]
            report["errors_logged_app"] = errors_logged[:5]
            report["aof"] = client.info("persistence").get("aof_enabled")
        finally:
            for proc in procs:
                stop(proc, timeout=10)
            try:
                client.shutdown(nosave=True)
            except redis.RedisError:
                pass
            try:
                redis_proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(redis_proc.pid, signal.SIGKILL)

    return verdict(report, args)


def verdict(report: dict, args: argparse.Namespace) -> int:
    sat, rate, om = report["saturation"], report["fixed_rate"], report["outbound"]
    wrk_slack_ok = all(
        0 <= r["app"]["jobs_in_redis"] - r["app"]["statuses"].get(202, 0) <= (args.connections
                                                                              if args.load == "wrk" else 0)
        and set(r["app"]["statuses"]) <= {202} and not r["app"]["errors"]
        for r in sat["rows"])
    lost = ([r["lost_jobs"] for r in rate["rows"]] + [om["lost_jobs"], report["exact"]["lost_jobs"]])
    non2xx = (sum(n for r in rate["rows"] for s, n in r["statuses"].items() if s != 202)
              + sum(n for s, n in report["exact"]["statuses"].items() if s != 202)
              + (om["messages"] - om["acked"]))
    checks = [
        (f"saturation (a)/(c) >= {GOAL_RATIO}x (median of {len(sat['rows'])} interleaved pairs)",
         sat["ratio_median"] >= GOAL_RATIO, f"{sat['ratio_median']:.3f}x (receiver {sat['app_rps_median']:.0f} "
         f"req/s, no-op {sat['noop_rps_median']:.0f} req/s; ratio of medians {sat['ratio_of_medians']:.3f}; "
         f"CPU-per-request ratio {sat['cpu_ratio_median']:.3f}"
         + (f"; baseline {sat['baseline_ratio_median']:.3f}x" if "baseline_ratio_median" in sat else "") + ")"),
        (f"p99 <= {GOAL_P99_MS:g} ms at {args.rate:g} req/s open loop (median of reps)",
         rate["p99_ms_median"] <= GOAL_P99_MS,
         f"p50 {rate['p50_ms_median']} ms, p99 {rate['p99_ms_median']} ms (worst rep {rate['p99_ms_max']} ms)"),
        (f"100-notification message ACKed in <= {GOAL_ACK_MS:g} ms median", om["ack_ms_median"] <= GOAL_ACK_MS,
         f"{om['ack_ms_median']} ms median over {om['messages'] - 2} messages"),
        ("no lost jobs: jobs in Redis == 202s / 100 x ACKs, every response 2xx",
         all(n == 0 for n in lost) and non2xx == 0 and wrk_slack_ok,
         f"lost {lost}, non-2xx {non2xx}, saturation accounting ok: {wrk_slack_ok}"),
    ]
    report["checks"] = [{"goal": g, "pass": ok, "measured": m} for g, ok, m in checks]
    aof = "on" if report.get("aof") else "off"
    print(f"\nRESULTS (load generator: {report['load_generator']}; access log on, as configured; AOF {aof})")
    for goal, ok, measured in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {goal}: {measured}")
    print(f"  access-log lines written by the receiver: {report['access_log_lines_app']}; "
          f"errors logged: {len(report['errors_logged_app'])}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
