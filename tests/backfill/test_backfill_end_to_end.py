"""A backfill of thousands of files through real processes: the CLI, a worker dyno (supervisor, work processes,
the feeder), real Redis and the org emulator over HTTPS.

One story, in the order an operator lives it: plan, start, pause, a kill of the whole worker dyno, a fresh dyno,
resume, a live upload overtaking the backlog, the end (exactly one rendition per variant for every eligible
file, none for what was not eligible), and a second run that queues nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from devkit.devstack import LocalStack
from devkit.org.seed import seed_files
from services.backfill import runs
from tests.support.images import photo_jpeg
from tests.support.orgtools import renditions_of, upload_file
from tests.support.stacktools import callout, wait_for

pytestmark = pytest.mark.integration

LISTINGS = 20
FILES_PER_LISTING = 60
"""1,200 files: 1,080 photos (about 108 with renditions already) and 120 PDFs. ``bench/backfill.py`` runs 3,000 and
more; the suite's budget sets this size."""
VARIANTS = {"large", "medium", "thumb"}


@pytest.fixture
def stack(redis_url: str, redis_conn: Any) -> Iterator[LocalStack]:
    with LocalStack(redis_url=redis_url, workers=1, env={"OFFLOAD_WORKER_CONCURRENCY": "2"}) as running:
        yield running


def offload(stack: LocalStack, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``offload <args>`` as an operator runs it on a one-off dyno: no terminal, stdin closed."""
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env={**os.environ, **stack.process_env},
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


def status(stack: LocalStack) -> dict[str, Any]:
    result = offload(stack, "backfill", "status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def kill_dyno(worker: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker's whole process group (supervisor, work processes, feeder): a dyno that died."""
    os.killpg(os.getpgid(worker.pid), signal.SIGKILL)
    worker.wait(timeout=10)


@pytest.mark.timeout(600)
def test_a_backfill_renders_every_old_photo_once_through_pause_kill_resume_and_live_uploads(
        stack: LocalStack, redis_conn: Any) -> None:
    org = stack.org
    seeded = seed_files(org, records=LISTINGS, files_per_record=FILES_PER_LISTING, mix={"jpg": 6, "png": 3, "pdf": 1},
                        rendered_fraction=0.1)
    listings = seeded.record_ids
    photos = [i for kind in ("jpg", "png") for i in seeded.by_kind[kind]]
    rendered_before = set(seeded.rendered_source_ids)
    user_photo = upload_file(org, org.state.user_id, photo_jpeg(64, 48), "avatar.jpg")  # not on an Account
    plan = offload(stack, "backfill", "plan", "--object", "Account")
    assert plan.returncode == 0, plan.stderr
    assert f"candidate files           {len(photos):>10,}" in plan.stdout, plan.stdout
    assert f"already have renditions   {len(rendered_before):>10,}  (every candidate checked)" in plan.stdout
    assert "Nothing was queued" in plan.stdout
    assert redis_conn.llen("rq:queue:backfill") == 0

    started = offload(stack, "backfill", "start", "--object", "Account")
    assert started.returncode == 0, started.stderr
    assert "read with REST query pages" in started.stdout
    again = offload(stack, "backfill", "start", "--object", "Account")
    assert again.returncode == 1 and "BACKFILL_ALREADY_RUNNING" in again.stderr

    wait_for(lambda: status(stack)["done"] >= 200, 120, "200 files done", stack)
    paused = offload(stack, "backfill", "pause")
    assert paused.returncode == 0 and " paused" in paused.stdout, paused.stdout
    [dyno] = stack.worker_processes
    kill_dyno(dyno)
    before = status(stack)
    assert before["state"] == "paused" and before["left"] > 0, before

    stack.add_worker()
    live_source = upload_file(org, listings[0], photo_jpeg(800, 600, seed=9), "new-listing-photo.jpg")
    assert offload(stack, "backfill", "resume").returncode == 0
    live_status, _ = callout(stack, live_source)
    assert live_status == 202
    wait_for(lambda: len(renditions_of(org, live_source)) == 3, 60, "the live upload's renditions", stack)
    overtaken = status(stack)
    assert overtaken["state"] == "running" and overtaken["left"] > 100, overtaken  # the backlog was still there

    follow = offload(stack, "backfill", "status", "--follow", timeout=600)
    assert follow.returncode == 0, follow.stderr
    lines = follow.stdout.strip().splitlines()
    assert "finished" in lines[-2] or "finished" in lines[-1], follow.stdout
    assert 2 <= len(lines) <= 25, "without a terminal, --follow prints a line per 5 %"

    final = status(stack)
    assert final["state"] == "finished" and final["failed"] == 0 and final["left"] == 0, final
    assert final["alreadyRendered"] == len(rendered_before), final
    assert final["done"] + final["alreadyQueued"] == len(photos) - len(rendered_before), final
    by_source: dict[str, list[str]] = {}
    for record in org.state.all_records("ContentVersion"):
        if record.get("Offload_Rendition_Of__c"):
            by_source.setdefault(record["Offload_Rendition_Of__c"], []).append(record["Offload_Variant__c"])
    for photo in photos:
        variants = by_source.get(photo, [])
        assert sorted(variants) == sorted(VARIANTS), (photo, variants)
    assert user_photo not in by_source, "--object Account leaves a file on a user alone"
    assert not set(by_source) - set(photos) - {live_source}, "no rendition of a rendition, nor of a PDF"

    second = offload(stack, "backfill", "start", "--object", "Account")
    assert second.returncode == 0, second.stderr
    wait_for(lambda: status(stack)["state"] == "finished", 60, "the second run to end", stack)
    rerun = status(stack)
    assert rerun["run"] != final["run"] and rerun["queued"] == 0 and rerun["done"] == 0, rerun
    assert rerun["alreadyRendered"] == len(photos) + 1, rerun  # the live upload's photo too


def test_cancel_ends_a_run_and_its_queued_jobs_skip_themselves(stack: LocalStack, redis_conn: Any) -> None:
    org = stack.org
    photos = seed_files(org, records=1, files_per_record=30, mix={"jpg": 1}).content_version_ids
    started = offload(stack, "backfill", "start", "--rate", "6")
    assert started.returncode == 0, started.stderr
    wait_for(lambda: status(stack)["done"] >= 1, 60, "a first file", stack)
    cancelled = offload(stack, "backfill", "cancel")
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout, cancelled.stdout
    frozen = status(stack)
    assert frozen["state"] == "cancelled" and frozen["left"] == 0
    assert runs.active(redis_conn) is None
    assert offload(stack, "backfill", "pause").returncode == 1  # nothing active any more
    rendered = sum(1 for p in photos if renditions_of(org, p))
    assert rendered < len(photos)
