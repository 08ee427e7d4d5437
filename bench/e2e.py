"""End-to-end benchmark: org emulator -> gunicorn (Procfile web) -> Redis (AOF) -> K workers (Procfile worker).

    .venv/bin/python bench/e2e.py            # N=2 Outbound Messages x 100 notifications, M=100 callouts, K=2
    .venv/bin/python bench/e2e.py --quick    # N=1 x 20, M=20 (about 30 s)
    .venv/bin/python bench/e2e.py --scaling  # one worker dyno, OFFLOAD_WORKER_CONCURRENCY 1 and 2 in turn
                                             # (3 rounds), then 3; 12 MP JPEGs

Reports ACK latency (p50/p99) of callouts and Outbound Messages, jobs/s and time to drain, Salesforce
API calls per job, peak RSS (VmHWM) per process, the most Redis connections each process held while the
jobs ran (what a Heroku Key-Value Store plan's connection limit must cover), and, measured in the same
run, the ceiling: the image pipeline alone (``workers.imaging.render_variants``) on the same photo, in this
process, on one core.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import redis  # noqa: E402
from rq.registry import FinishedJobRegistry, StartedJobRegistry  # noqa: E402

from devkit.devstack import LocalStack  # noqa: E402
from devkit.embedded_redis import EmbeddedRedis  # noqa: E402
from devkit.org.callouts import apex_callout  # noqa: E402
from services.clock import utc_iso  # noqa: E402
from services.processes.renditions import RENDITION_MARKER_FIELD  # noqa: E402
from services.queue import fetch_job  # noqa: E402
from tests.support.images import photo_jpeg  # noqa: E402
from tests.support.orgtools import create_record, upload_file  # noqa: E402
from workers.imaging import parse_variants, render_variants  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def vm_hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def redis_connections(pid: int, port: int) -> int:
    """Established TCP connections from ``pid`` to the Redis server on ``port`` (psutil, from /proc)."""
    import psutil

    try:
        conns = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.Error:
        return 0
    return sum(1 for c in conns if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED)


def connections_by_process(stack: LocalStack, port: int) -> dict[str, int]:
    """Redis connections per process: gunicorn's master and workers, and per worker dyno its supervisor, work
    process and that process's children (rq's scheduler)."""
    web = stack._web.pid
    found = {"web master": redis_connections(web, port)}
    for i, child in enumerate(children(web)):
        found[f"web worker {i + 1}"] = redis_connections(child, port)
    for n, w in enumerate(stack.worker_processes, 1):
        found[f"worker {n} supervisor"] = redis_connections(w.pid, port)
        for child in children(w.pid):
            found[f"worker {n} work process"] = redis_connections(child, port)
            found[f"worker {n} scheduler"] = sum(redis_connections(g, port) for g in children(child))
    return found


def ceiling(photo: bytes, seconds: float) -> float:
    variants = parse_variants("large:1600:jpeg,medium:800:webp,thumb:200:jpeg")
    render_variants(photo, variants)  # warm-up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        render_variants(photo, variants)
        done += 1
    return done / (time.perf_counter() - start)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes and all their descendants (psutil, from /proc)."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            for p in [proc, *proc.children(recursive=True)]:
                t = p.cpu_times()
                total += t.user + t.system
        except psutil.Error:
            continue
    return total


def own_cpu_seconds() -> float:
    """This process's CPU time alone (the org emulator's threads and the bench's polling), no children."""
    t = os.times()
    return t.user + t.system


def drain_rate(photo: bytes, concurrency: int, jobs: int) -> tuple[float, float, int, dict[str, float]]:
    """One worker dyno running ``concurrency`` work processes: queue ``jobs`` callouts with no worker running,
    start the dyno, and time from the first job's start to the last job's end. Returns (jobs/s, API calls per
    job, renditions made, CPU seconds per job of each part: the worker dyno, the org emulator, the web dyno, Redis).

    Not rq's suspension: a suspended worker looks again once a second, so the drain's start moved by up to a
    second per work process, a third of a 40-job run (runs fell into a fast or a slow mode by that alone).
    """
    server = EmbeddedRedis(appendonly=True).start()
    conn = redis.Redis.from_url(server.url)
    try:
        env = {"OFFLOAD_LOG_LEVEL": "WARNING", "OFFLOAD_WORKER_CONCURRENCY": str(concurrency)}
        with LocalStack(redis_url=server.url, workers=0, env=env) as stack:
            org = stack.org
            contacts = [create_record(org, "Contact", LastName=f"Scaling {i}") for i in range(jobs)]
            sources = [upload_file(org, c, photo, f"s{i}.jpg") for i, c in enumerate(contacts)]
            for cv in sources:
                r = apex_callout(f"{stack.receiver_url}/callouts/resize-image",
                                 {"contentVersionId": cv, "sentAt": utc_iso()}, secret=stack.callout_secret)
                assert r.status == 202, r.body
            calls_before = org.state.api_calls
            registry = FinishedJobRegistry("resize-image", connection=conn)
            started = StartedJobRegistry("resize-image", connection=conn)
            dyno = stack.add_worker()
            deadline = time.monotonic() + 60
            while not (started.count or registry.count) and time.monotonic() < deadline:
                time.sleep(0.002)
            # CPU from the first job on: the dyno's start-up (imports, forks) is not a job's cost.
            parts = {"worker dyno": [dyno.pid], "web dyno": [stack._web.pid],
                     "redis": [server.pid] if server.pid else []}
            cpu_before = {k: cpu_seconds(v) for k, v in parts.items()}
            emulator_before = own_cpu_seconds()
            deadline = time.monotonic() + 900
            while registry.count < jobs and time.monotonic() < deadline:
                time.sleep(0.02)
            cpu = {k: (cpu_seconds(v) - cpu_before[k]) / jobs for k, v in parts.items()}
            cpu["org emulator (this process)"] = (own_cpu_seconds() - emulator_before) / jobs
            spans = sorted((j.started_at, j.ended_at, j.worker_name)
                           for j in (fetch_job(conn, i) for i in registry.get_job_ids()))
            finished = len(spans)
            assert finished == jobs, f"{finished} of {jobs} jobs finished\n{stack.logs()[-4000:]}"
            drain = (max(e for _, e, _ in spans) - min(b for b, _, _ in spans)).total_seconds()
            firsts = [min(b for b, _, w in spans if w == name) for name in {w for _, _, w in spans}]
            skew = (max(firsts) - min(firsts)).total_seconds() * 1000
            span = statistics.mean((e - b).total_seconds() for b, e, _ in spans) * 1000
            print(f"  work processes that ran jobs: {len(firsts)} (first jobs {skew:.0f} ms apart); "
                  f"mean job span {span:.0f} ms")
            renditions = sum(1 for r in org.state.all_records("ContentVersion") if r.get(RENDITION_MARKER_FIELD))
            return jobs / drain, (org.state.api_calls - calls_before) / jobs, renditions, cpu
    finally:
        server.stop()


def scaling(jobs: int, rounds: int) -> int:
    """Issue 16's goals: concurrency 2 >= 1.7x concurrency 1, and >= 70 % of the ceiling of the cores used.

    These shared vCPUs swing by a fifth between minutes, so concurrency 1 and 2 run in alternation, ``rounds``
    times each, and the goals are read on the medians (and on each round's own pair); concurrency 3 runs once.
    """
    photo = photo_jpeg(4000, 3000, seed=1)  # 12 MP
    one_core = ceiling(photo, 8)
    rates: dict[int, list[float]] = {1: [], 2: []}

    def run(c: int) -> float:
        rate, api_per_job, renditions, cpu = drain_rate(photo, c, jobs)
        print(f"concurrency {c}: {jobs} jobs, {rate:.2f} jobs/s; {rate / (one_core * c):.0%} of the ceiling of "
              f"{c} core(s); API calls per photo {api_per_job:.2f}; renditions {renditions} (expected {3 * jobs})")
        print("  CPU ms per job: " + ", ".join(f"{k} {v * 1000:.0f}" for k, v in cpu.items())
              + f" (the pipeline alone: {1000 / one_core:.0f})", flush=True)
        return rate

    for n in range(rounds):
        for c in ((1, 2) if n % 2 == 0 else (2, 1)):
            rates[c].append(run(c))
    third = run(3)
    after = ceiling(photo, 8)
    both = parallel_ceiling(photo, 2, 8)
    two_cores = one_core + after  # 2 x the mean of the one-core ceiling before and after
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"photo 4000x3000 JPEG ({len(photo) / 1e6:.2f} MB), {os.cpu_count()} CPUs; ceiling (render_variants, "
          f"1 core, in-process) {one_core:.2f} images/s before the runs, {after:.2f} after")
    print(f"pipeline alone in 2 processes at once: {both:.2f} images/s ({both / one_core:.2f}x one core)")
    print("per round, concurrency 2 / 1: " + ", ".join(f"{b / a:.2f}x" for a, b in zip(rates[1], rates[2], strict=True))
          + "; concurrency 2 vs ceiling: " + ", ".join(f"{b / two_cores:.0%}" for b in rates[2]))
    print(f"median jobs/s over {rounds} rounds: concurrency 1 {one:.2f}, concurrency 2 {two:.2f}")
    print(f"concurrency 2 / concurrency 1 (medians): {two / one:.2f}x (goal >= 1.7x)")
    print(f"end to end vs the 2-process pipeline measured above, concurrency 2: {two / both:.0%}")
    print(f"end to end vs ceiling (2 x one core), concurrency 2: {two / two_cores:.0%} (goal >= 70 %); "
          f"concurrency 3 on the same 2 cores (one run): {third / two_cores:.0%}, {third / one:.2f}x concurrency 1")
    return 0


def parallel_ceiling(photo: bytes, processes: int, seconds: float) -> float:
    """The pipeline alone in ``processes`` forked processes at once: what these cores give together (two
    vCPUs that are hyperthreads of one core, or share a memory bus, give less than twice one)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(processes) as pool:
        return sum(pool.map(_ceiling_child, [(photo, seconds)] * processes))


def _ceiling_child(args: tuple[bytes, float]) -> float:
    return ceiling(*args)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--scaling", type=int, nargs="?", const=40, metavar="JOBS",
                        help="only the concurrency comparison (default 40 jobs per run)")
    parser.add_argument("--rounds", type=int, default=3, help="--scaling: runs of concurrency 1 and 2 each")
    parser.add_argument("--outbound", type=int, help="N Outbound Messages of 100 notifications")
    parser.add_argument("--callouts", type=int, help="M signed callouts")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--width", type=int, default=2400)
    parser.add_argument("--height", type=int, default=1600)
    args = parser.parse_args()
    if args.scaling:
        return scaling(args.scaling, args.rounds)
    n_om, per_om = (1, 20) if args.quick else (args.outbound or 2, 100)
    m_callouts = args.callouts or (20 if args.quick else 100)
    photo = photo_jpeg(args.width, args.height, seed=1)
    ceiling_ips = ceiling(photo, 3 if args.quick else 8)

    server = EmbeddedRedis(appendonly=True).start()  # AOF everysec, as production Redis persists
    url = server.url
    conn = redis.Redis.from_url(url)
    try:
        with LocalStack(redis_url=url, workers=args.workers, env={"OFFLOAD_LOG_LEVEL": "WARNING"}) as stack:
            org, sender = stack.org, stack.org.state.outbound
            sender.stop()  # queue nothing automatically while seeding; messages go out with send_now
            accounts = [create_record(org, "Account", Name=f"Bench {i}") for i in range(n_om * per_om)]
            sources = [upload_file(org, a, photo, f"b{i}.jpg") for i, a in enumerate(accounts)]
            contacts = [create_record(org, "Contact", LastName=f"Bench {i}") for i in range(m_callouts)]
            callout_sources = [upload_file(org, c, photo, f"c{i}.jpg") for i, c in enumerate(contacts)]
            calls_before = org.state.api_calls
            sender._deliveries.clear()  # drop the seeding's queued notifications
            sender.start()

            t0 = time.monotonic()
            for i in range(n_om):
                records = [org.state.get_record(a)[1] for a in accounts[i * per_om:(i + 1) * per_om]]
                sender.send_now("Offload_Resize_Photos", records)

            def one(cv: str) -> float:
                sent = utc_iso()
                r = apex_callout(f"{stack.receiver_url}/callouts/resize-image",
                                 {"contentVersionId": cv, "sentAt": sent}, secret=stack.callout_secret)
                assert r.status == 202, r.body
                return r.elapsed_ms

            with ThreadPoolExecutor(4) as pool:
                callout_ms = list(pool.map(one, callout_sources))
            om_ms = []
            om_deadline = time.monotonic() + 120
            while time.monotonic() < om_deadline and len(om_ms) < n_om:
                om_ms = [float("nan")] * sum(1 for d in sender.deliveries() if d["status"] == "delivered")
                time.sleep(0.01)
            om_ms = [(time.monotonic() - t0) * 1000] * len(om_ms)  # send_now -> Ack, upper bound
            jobs = n_om * per_om + m_callouts
            registry = FinishedJobRegistry("resize-image", connection=conn)
            deadline = time.monotonic() + 900
            redis_port = int(url.rsplit(":", 1)[1].split("/")[0])
            peak_conns: dict[str, int] = {}
            while len(registry.get_job_ids()) < jobs and time.monotonic() < deadline:
                for key, n in connections_by_process(stack, redis_port).items():  # sampled while jobs run
                    peak_conns[key] = max(n, peak_conns.get(key, 0))
                time.sleep(0.2)
            drain = time.monotonic() - t0
            finished = len(registry.get_job_ids())
            renditions = sum(1 for r in org.state.all_records("ContentVersion") if r.get(RENDITION_MARKER_FIELD))
            api_per_job = (org.state.api_calls - calls_before) / max(1, finished)
            mem = {"web": vm_hwm_mb(stack._web.pid)}
            for w in stack.worker_processes:
                mem[f"supervisor {w.pid}"] = vm_hwm_mb(w.pid)
                for child in children(w.pid):  # the work process (its rq scheduler is a grandchild)
                    mem[f"work process {child}"] = vm_hwm_mb(child)
            mem["redis-server"] = vm_hwm_mb(server.pid) if server.pid else float("nan")
            for key, n in connections_by_process(stack, redis_port).items():
                peak_conns[key] = max(n, peak_conns.get(key, 0))
    finally:
        server.stop()

    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"photo {args.width}x{args.height} JPEG ({len(photo) / 1e6:.2f} MB), workers K={args.workers}, "
          f"{os.cpu_count()} CPUs, Redis AOF everysec")
    print(f"jobs: {n_om} Outbound Messages x {per_om} + {m_callouts} callouts = {jobs}; finished {finished}; "
          f"renditions {renditions} (expected {3 * sources.__len__() + 3 * len(callout_sources)})")
    print(f"callout ACK ms p50 {statistics.median(callout_ms):.1f} p99 {pct(callout_ms, 0.99):.1f} (4 concurrent)")
    print(f"outbound send_now -> Ack ms ({per_om}-notification message, polled, upper bound) {max(om_ms):.0f}")
    print(f"drain {drain:.1f} s, {finished / drain:.2f} jobs/s end to end; "
          f"ceiling (render_variants, 1 core, in-process) {ceiling_ips:.2f} images/s "
          f"=> x{args.workers} cores ideal {ceiling_ips * min(args.workers, os.cpu_count() or 1):.2f}")
    print(f"Salesforce API calls per job {api_per_job:.2f}")
    print("peak RSS MB (VmHWM; each worker is a supervisor and its work process): "
          + ", ".join(f"{k} {v:.0f}" for k, v in mem.items()))
    print("Redis connections, most seen per process (sampled every 0.2 s while jobs ran, and after): "
          + ", ".join(f"{k} {v}" for k, v in peak_conns.items())
          + f" (web dyno {sum(v for k, v in peak_conns.items() if k.startswith('web'))}, worker dynos "
          + ", ".join(str(sum(v for k, v in peak_conns.items() if k.startswith(f"worker {n} ")))
                      for n in range(1, args.workers + 1)) + ")")
    return 0 if finished == jobs else 1


if __name__ == "__main__":
    sys.exit(main())
