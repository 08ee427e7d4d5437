"""What RQ itself costs on a real job: a 24 MP photo through the three default variants.

Two ways, interleaved, each in its own process pinned to CPU 0:

* **direct**: ``render_variants`` called N times in a loop (the job's own cost);
* **rq**: N jobs enqueued (JSON serializer, by dotted path, as the receiver does), then
  run in burst mode by Offload's two worker classes (``workers/worker.py``):
  ``ForkingWorker`` (rq's HerokuWorker, one fork per job: ``python -m workers``) and
  ``InProcessWorker`` (no fork: ``python -m workers --in-process``).
  Per-job time is the busy span from the first job's ``started_at`` to the last one's
  ``ended_at`` divided by N, as in the reference measurements, so worker start-up is not
  counted, but forking, Redis bookkeeping and result storage are.

Overhead = the median over rounds of (rq per-job / direct per-job of the same round) - 1.
Goal: <= 5 %.

    .venv/bin/python bench/rq_overhead.py            # 5 rounds x 6 jobs
    .venv/bin/python bench/rq_overhead.py --quick    # 1 round x 3 jobs
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


def _direct(path: str, n: int) -> float:
    render_job(path)  # warm-up: imports, codec tables
    began = time.perf_counter()
    for _ in range(n):
        render_job(path)
    return (time.perf_counter() - began) / n


def _rq(path: str, n: int, redis_url: str, worker_class_name: str) -> float:
    from services.queueing import SERIALIZER, make_queue, redis_from_url
    from workers.worker import ForkingWorker, InProcessWorker, recovery_options

    connection = redis_from_url(redis_url)
    connection.flushdb()
    queue = make_queue("bench", connection)
    # Like `python -m workers`, the parent imports the job code but never runs a job itself:
    # every job runs in a fresh fork (HerokuWorker), so the parent's heap stays small.
    import workers.imaging  # noqa: F401

    jobs = [queue.enqueue("rq_overhead.render_job", path) for _ in range(n)]
    worker_class = {"ForkingWorker": ForkingWorker, "InProcessWorker": InProcessWorker}[worker_class_name]
    worker = worker_class([queue], connection=connection, serializer=SERIALIZER, **recovery_options())
    worker.work(burst=True, logging_level="WARNING")
    for job in jobs:
        job.refresh()
        assert job.get_status() == "finished", job.latest_result()
    span = max(j.ended_at for j in jobs) - min(j.started_at for j in jobs)
    return span.total_seconds() / n


def _child(mode: str, path: str, n: int, redis_url: str) -> None:
    os.sched_setaffinity(0, {0})
    per_job = _direct(path, n) if mode == "direct" else _rq(path, n, redis_url, mode)
    print(per_job)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], args.child[1], int(args.child[2]), args.child[3])
        return 0
    from images import make_photo

    from services.embedded_redis import EmbeddedRedis

    rounds, n = (1, 3) if args.quick else (5, 6)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(appendonly=True) as redis_server:
        path = str(Path(tmp) / "photo24_o6.jpg")
        image = make_photo(6000, 4000)
        exif = image.getexif()
        exif[0x0112] = 6
        image.save(path, "JPEG", quality=90, exif=exif.tobytes())
        modes = ["direct", "ForkingWorker", "InProcessWorker"]
        results: dict[str, list[float]] = {mode: [] for mode in modes}
        for round_no in range(rounds):
            for mode in modes[round_no % 3:] + modes[: round_no % 3]:
                out = subprocess.run([sys.executable, __file__, "--child", mode, path, str(n), redis_server.url],
                                     check=True, capture_output=True, text=True, cwd=ROOT).stdout
                results[mode].append(float(out.strip().splitlines()[-1]))
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
            line += (f"  RQ overhead {overhead * 100:+.1f} % (per round: {[f'{(r - 1) * 100:+.0f}%' for r in ratios]})"
                     f"  goal <= 5 %: {'PASS' if overhead <= 0.05 else 'FAIL'}")
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
