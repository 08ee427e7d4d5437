"""Backfill benchmark: files/min and Salesforce API calls per file, against per-file callouts in the same run.

    .venv/bin/python bench/backfill.py            # 3,000 photos on 100 records, one worker dyno, concurrency 2
    .venv/bin/python bench/backfill.py --quick    # 300 photos (about a minute)

Two identical orgs (``devkit.org.seed.seed_files``, the same seed: tiny real JPEGs, so the numbers are the
backfill's and Salesforce's overhead, not Pillow's) on two fresh stacks (gunicorn, one worker dyno, embedded
Redis, the org emulator over HTTPS):

* **backfill**: ``offload backfill start``, then wait until the run has finished;
* **baseline**: what teams do today without it, a signed ``resize-image`` callout per file (8 in flight), then
  wait until every file has its renditions.

Both publish what a deployed Offload publishes: a live job its completion event, a backfill job none (it would
notify every uploader of years of photos). API calls are the emulator's own count (``/limits``
``DailyApiRequests``: every call the workers and the CLI made). Printed: files/min and calls per file of each,
and their ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import redis  # noqa: E402

from devkit.devstack import LocalStack  # noqa: E402
from devkit.org.seed import seed_files  # noqa: E402
from services.backfill import runs  # noqa: E402
from tests.support.stacktools import callout  # noqa: E402


def offload(stack: LocalStack, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "services.cli", *args], env={**os.environ, **stack.process_env},
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, check=True)
    return result.stdout


def rendered(org: Any) -> set[str]:
    return {r["Offload_Rendition_Of__c"] for r in org.state.all_records("ContentVersion")
            if r.get("Offload_Rendition_Of__c")}


def seed(stack: LocalStack, files: int) -> list[str]:
    return seed_files(stack.org, records=max(1, files // 30), files_per_record=30, mix={"jpg": 1}).content_version_ids


def backfill(files: int, concurrency: int) -> dict[str, float]:
    with LocalStack(workers=1, env={"OFFLOAD_WORKER_CONCURRENCY": str(concurrency)}) as stack:
        photos = seed(stack, files)
        calls_before = stack.org.state.api_calls  # type: ignore[attr-defined]
        started = time.monotonic()
        offload(stack, "backfill", "start")
        connection = redis.Redis.from_url(stack.process_env["REDIS_URL"])
        while (run := runs.latest(connection)) is not None and run.active:
            time.sleep(0.2)  # read from Redis: a CLI process per poll would take the workers' CPU
        elapsed = time.monotonic() - started
        status = json.loads(offload(stack, "backfill", "status", "--json"))
        calls = stack.org.state.api_calls - calls_before  # type: ignore[attr-defined]
        assert status["state"] == "finished" and set(photos) <= rendered(stack.org), status
        return {"files": len(photos), "seconds": elapsed, "calls": calls}


def callouts(files: int, concurrency: int) -> dict[str, float]:
    with LocalStack(workers=1, env={"OFFLOAD_WORKER_CONCURRENCY": str(concurrency)}) as stack:
        photos = seed(stack, files)
        calls_before = stack.org.state.api_calls  # type: ignore[attr-defined]
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda p: callout(stack, p)[0], photos))
        assert all(a == 202 for a in answers), answers[:5]
        while not set(photos) <= rendered(stack.org):
            time.sleep(1.0)  # each look scans the org: rarely, so the bench does not take the workers' CPU
        elapsed = time.monotonic() - started
        calls = stack.org.state.api_calls - calls_before  # type: ignore[attr-defined]
        return {"files": len(photos), "seconds": elapsed, "calls": calls}


def report(name: str, m: dict[str, float]) -> None:
    print(f"{name:30s} {m['files']:>6.0f} files  {m['seconds']:7.1f} s  "
          f"{m['files'] * 60 / m['seconds']:8.0f} files/min  {m['calls'] / m['files']:5.2f} API calls/file", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    files = 300 if args.quick else args.files
    base = callouts(files, args.concurrency)
    report("per-file callouts (baseline)", base)
    run = backfill(files, args.concurrency)
    report("backfill", run)
    speed = (run["files"] / run["seconds"]) / (base["files"] / base["seconds"])
    economy = (run["calls"] / run["files"]) / (base["calls"] / base["files"])
    print(f"backfill / baseline: {speed:.2f}x files/min, {economy:.2f}x API calls per file")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
