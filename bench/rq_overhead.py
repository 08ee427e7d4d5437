"""What RQ itself costs on a real job: a 24 MP photo through the three default variants.

Each mode runs in its own process pinned to CPU 0, modes interleaved in rotating order:

* **direct**: ``render_variants`` called N times in a loop (the job's own cost), in a process with the
  same malloc settings as a work process (``workers/heap.py``);
* N jobs enqueued (JSON serializer, by dotted path, as the receiver does), then run in burst mode:
  * **supervised**: what ``python -m workers`` runs by default: the supervisor
    (``workers/supervisor.py``) forks a work process, an ``InProcessWorker``, that runs the jobs;
  * **ForkingWorker**: rq's HerokuWorker, one fork per job (``python -m workers --fork-per-job``).
  N + 1 jobs run; per-job time is the busy span from the end of the first (warm-up) job to the
  end of the last, divided by N. Worker start-up and the first job's one-time costs are not
  counted (the direct loop also has a warm-up call), but forking, Redis bookkeeping and result
  storage are. (The reference measured from the first ``started_at``, with no warm-up.)
* **retiring**: the supervised mode with ``max_jobs`` = 1 + N/2, so one work process retires
  mid-run and a fresh one takes over, first-job costs included; the script prints what one
  retirement costs (retiring minus supervised, same round) and what that adds per job at the
  default ``OFFLOAD_WORKER_MAX_JOBS``.

Overhead = the median over rounds of (rq per-job / direct per-job of the same round) - 1.
Goal: <= 5 %. The photo rounds swing by +-15 % on shared cores, so RQ's fixed cost per job is also read
on 200 no-op jobs per mode (``supervised-noop``, ``ForkingWorker-noop``), which barely moves.

    .venv/bin/python bench/rq_overhead.py            # 7 rounds x 6 jobs, 3 x 200 no-op jobs per mode
    .venv/bin/python bench/rq_overhead.py --quick    # 1 round x 4 jobs
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def render_job(path: str) -> int:
    """The job RQ runs: the same call the direct loop makes; returns bytes written."""
    from workers.imaging import DEFAULT_VARIANTS_SPEC, parse_variants, render_variants

    _, renditions = render_variants(path, parse_variants(DEFAULT_VARIANTS_SPEC))
    return sum(len(r.data) for r in renditions)


def noop_job() -> None:
    """A job that does nothing: what RQ costs around a job, with nothing else in the way."""


NOOP_JOBS = 200
"""No-op jobs per bookkeeping reading: enough for a per-job figure that the machine's noise barely moves."""


def _direct(path: str, n: int) -> float:
    from workers.heap import keep_heap_between_jobs

    keep_heap_between_jobs()  # as the supervised work process does: the job's own cost in the same setup
    render_job(path)  # warm-up: imports, codec tables
    began = time.perf_counter()
    for _ in range(n):
        render_job(path)
    return (time.perf_counter() - began) / n


def _rq(path: str, n: int, redis_url: str, mode: str) -> float:
    """Per-job seconds through RQ over N jobs, after one warm-up job (as the direct loop has)."""
    from services.queue import SERIALIZER, make_queue, redis_from_url
    from workers.__main__ import run_worker
    from workers.supervisor import Supervisor
    from workers.worker import ForkingWorker, InProcessWorker, recovery_options

    connection = redis_from_url(redis_url)
    connection.flushdb()
    queue = make_queue("bench", connection)
    # Like `python -m workers`, this process imports the job code before any fork, but never runs
    # a job itself: jobs run in the work process (supervised) or a fresh fork per job (HerokuWorker).
    import workers.imaging  # noqa: F401

    if mode.endswith("-noop"):
        mode, n = mode.removesuffix("-noop"), NOOP_JOBS
        jobs = [queue.enqueue("rq_overhead.noop_job") for _ in range(n + 1)]
    else:
        jobs = [queue.enqueue("rq_overhead.render_job", path) for _ in range(n + 1)]
    if mode == "ForkingWorker":
        worker = ForkingWorker([queue], connection=connection, serializer=SERIALIZER, **recovery_options())
        worker.work(burst=True, logging_level="WARNING")
    else:
        from workers.heap import keep_heap_between_jobs

        keep_heap_between_jobs()  # what `python -m workers` does before starting the supervisor
        # "retiring": the first work process runs the warm-up job and half the measured ones.
        max_jobs = 1 + n // 2 if mode == "retiring" else None
        supervisor = Supervisor(
            lambda name: run_worker(InProcessWorker, connection, ["bench"], burst=True, log_level="WARNING",
                                    name=name, max_jobs=max_jobs),
            connection, ["bench"],
        )
        assert supervisor.run() == 0
    for job in jobs:
        job.refresh()
        assert job.get_status() == "finished", job.latest_result()
    if mode == "retiring":
        assert len({job.worker_name for job in jobs}) == 2, "exactly one work process should have retired"
    # The busy span from the end of the warm-up job to the end of the last one: N jobs, and everything
    # RQ does between and around them (dequeue, bookkeeping, result, a fork per job or a retirement).
    span = max(j.ended_at for j in jobs) - min(j.ended_at for j in jobs)
    return span.total_seconds() / n


def _child(mode: str, path: str, n: int, redis_url: str) -> None:
    os.sched_setaffinity(0, {0})
    print(_direct(path, n) if mode == "direct" else _rq(path, n, redis_url, mode))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, help="rounds of the photo job (default 7; --quick: 1)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], args.child[1], int(args.child[2]), args.child[3])
        return 0
    from images import make_photo

    from devkit.embedded_redis import EmbeddedRedis

    rounds, n = (1, 4) if args.quick else (7, 6)
    rounds = args.rounds or rounds
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(appendonly=True) as redis_server:
        path = str(Path(tmp) / "photo24_o6.jpg")
        image = make_photo(6000, 4000)
        exif = image.getexif()
        exif[0x0112] = 6
        image.save(path, "JPEG", quality=90, exif=exif.tobytes())
        modes = ["direct", "supervised", "ForkingWorker", "retiring"]
        results: dict[str, list[float]] = {mode: [] for mode in modes}
        for round_no in range(rounds):
            for mode in modes[round_no % len(modes):] + modes[: round_no % len(modes)]:
                out = subprocess.run([sys.executable, __file__, "--child", mode, path, str(n), redis_server.url],
                                     check=True, capture_output=True, text=True, cwd=ROOT).stdout
                results[mode].append(float(out.strip().splitlines()[-1]))
        # RQ's fixed cost per job, read on no-op jobs: hundreds of jobs make it precise where the photo
        # rounds' ratios swing by +-15 %. It leaves out what a real job adds: a fork's page faults.
        bookkeeping: dict[str, list[float]] = {"supervised-noop": [], "ForkingWorker-noop": []}
        for _ in range(1 if args.quick else 3):
            for mode, values in bookkeeping.items():
                out = subprocess.run([sys.executable, __file__, "--child", mode, path, "0", redis_server.url],
                                     check=True, capture_output=True, text=True, cwd=ROOT).stdout
                values.append(float(out.strip().splitlines()[-1]))
    print(f"24 MP JPEG (orientation 6), 3 default variants, one core, {rounds} round(s) x {n} jobs")
    for mode in modes:
        per_job = statistics.median(results[mode])
        runs = [round(x * 1000) for x in results[mode]]
        line = f"  {mode:<15}: {per_job * 1000:7.1f} ms/job  runs {runs}"
        if mode != "direct":
            # Each round's ratio against the direct run of the same round, then the median: the
            # machine's slow and fast phases hit both sides of a ratio alike.
            ratios = [rq / direct for rq, direct in zip(results[mode], results["direct"], strict=True)]
            overhead = statistics.median(ratios) - 1
            line += f"  RQ overhead {overhead * 100:+.1f} % (per round: {[f'{(r - 1) * 100:+.0f}%' for r in ratios]})"
            if mode != "retiring":  # a diagnostic: one retirement per N/2 jobs instead of per 200
                line += f"  goal <= 5 %: {'PASS' if overhead <= 0.05 else 'FAIL'}"
        print(line)
    direct_median = statistics.median(results["direct"])
    for mode, values in bookkeeping.items():
        cost = statistics.median(values)
        print(f"  {mode:<19}: {cost * 1000:5.2f} ms/job over {NOOP_JOBS} no-op jobs (runs "
              f"{[round(v * 1000, 2) for v in values]}) = {cost / direct_median * 100:+.1f} % of a direct 24 MP job")
    from services.settings import Settings

    # What one retirement costs: the retiring run's N jobs minus the supervised run's N jobs, same round
    # (the old process's teardown, the fork, rq's start-up, the new process's first-job page faults).
    costs = [(r - s) * n for r, s in zip(results["retiring"], results["supervised"], strict=True)]
    cost, direct, max_jobs = statistics.median(costs), statistics.median(results["direct"]), \
        Settings.from_env({}).worker_max_jobs
    print(f"  one retirement costs {cost * 1000:.0f} ms (median, runs {[round(c * 1000) for c in costs]}); at "
          f"OFFLOAD_WORKER_MAX_JOBS={max_jobs} that adds {cost / max_jobs * 1000:.2f} ms/job = "
          f"{cost / max_jobs / direct * 100:+.2f} % of a direct job")
    return 0


if __name__ == "__main__":
    sys.exit(main())
