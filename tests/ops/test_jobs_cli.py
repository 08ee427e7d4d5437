"""``offload jobs``: list, show, requeue, purge against the test Redis database, through click's CliRunner."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from click.testing import CliRunner, Result
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry
from rq.results import Result as RqResult

from services.ops import jobs as jobs_admin
from services.ops.cli import jobs
from services.queue import SERIALIZER, fetch_job, make_queue
from tests.support.ops import QUEUE, SESSION_REF, envelope


@pytest.fixture
def cli(redis_url: str, redis_conn: redis.Redis) -> Callable[..., Result]:
    """Run ``offload jobs ...`` with REDIS_URL on the (flushed) test database."""

    def run(*args: str, code: int = 0) -> Result:
        result = CliRunner().invoke(jobs, list(args), env={"REDIS_URL": redis_url}, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    return run


def _rows(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.output.splitlines() if line.strip()]


def _fail_with_code(job: Job, code: str) -> None:
    """What the runner will store: the PermanentJobError's code in meta."""
    job.meta["error_code"] = code
    job.save_meta()


def test_list_when_there_is_nothing(cli: Callable[..., Result]) -> None:
    assert cli("list").output.strip() == "No jobs match."


def test_list_shows_queued_and_failed_jobs_with_filters(cli: Callable[..., Result], enqueue: Callable[..., Job],
                                                        failed_job: Job) -> None:
    queued = enqueue(envelope(record_id="068000000000002AAA"))
    rows = _rows(cli("list", "--json"))
    assert {r["jobId"]: r["status"] for r in rows} == {queued.id: "queued", failed_job.id: "failed"}
    failed_row = next(r for r in rows if r["jobId"] == failed_job.id)
    assert failed_row["errorCode"] == "UNKNOWN_PROCESS" and failed_row["process"] == "no-such-process"

    assert [r["jobId"] for r in _rows(cli("list", "--failed", "--json"))] == [failed_job.id]
    assert [r["jobId"] for r in _rows(cli("list", "--error-code", "unknown_process", "--json"))] == [failed_job.id]
    assert _rows(cli("list", "--error-code", "IMAGE_REJECTED", "--json")) == []
    assert [r["jobId"] for r in _rows(cli("list", "--process", "resize-image", "--json"))] == [queued.id]
    assert [r["jobId"] for r in _rows(cli("list", "--process", "no-such-process", "--json"))] == [failed_job.id]
    assert len(_rows(cli("list", "--limit", "1", "--json"))) == 1

    table = cli("list").output.splitlines()
    assert table[0].split() == ["jobId", "status", "process", "recordId", "at", "errorCode"]
    assert any(failed_job.id in line and "UNKNOWN_PROCESS" in line for line in table[1:])


def test_error_code_from_meta_wins_over_parsing(cli: Callable[..., Result], failed_job: Job) -> None:
    _fail_with_code(failed_job, "IMAGE_REJECTED")
    assert [r["jobId"] for r in _rows(cli("list", "--error-code", "IMAGE_REJECTED", "--json"))] == [failed_job.id]
    assert _rows(cli("list", "--error-code", "UNKNOWN_PROCESS", "--json")) == []


def test_show_hides_secret_references(cli: Callable[..., Result], failed_job: Job) -> None:
    output = cli("show", failed_job.id).output
    shown = json.loads(output)
    assert SESSION_REF not in output
    assert shown["envelope"]["sessionRef"] == "[redacted]"
    assert shown["envelope"]["process"] == "no-such-process"
    assert shown["errorCode"] == "UNKNOWN_PROCESS"
    assert shown["status"] == "failed" and shown["queue"] == QUEUE
    assert "UnknownProcess" in shown["exception"] and "Traceback" in shown["exception"]
    assert shown["meta"]["max_retries"] == 3


def test_show_an_unknown_job(cli: Callable[..., Result]) -> None:
    assert "JOB_NOT_FOUND" in cli("show", "no-such-job", code=1).output


def test_requeue_one_job(cli: Callable[..., Result], failed_job: Job, redis_conn: redis.Redis) -> None:
    assert "requeued 1 job(s)" in cli("requeue", failed_job.id).output
    job = fetch_job(redis_conn, failed_job.id)
    assert job.get_status() == "queued" and job.retries_left == 3 and job.meta["requeued"] == 1
    assert job.id in make_queue(QUEUE, redis_conn).get_job_ids()
    assert job.id not in FailedJobRegistry(QUEUE, connection=redis_conn, serializer=SERIALIZER)
    assert "JOB_NOT_FAILED" in cli("requeue", failed_job.id, code=1).output
    assert "JOB_NOT_FOUND" in cli("requeue", "no-such-job", code=1).output


def test_requeue_failed_jobs_by_error_code(cli: Callable[..., Result], enqueue: Callable[..., Job],
                                           work: Callable[[], None], redis_conn: redis.Redis) -> None:
    jobs_ = [enqueue(envelope(process="no-such-process", record_id=f"06800000000000{i}AAA")) for i in range(3)]
    work()
    _fail_with_code(fetch_job(redis_conn, jobs_[2].id), "IMAGE_REJECTED")

    dry = cli("requeue", "--failed", "--error-code", "UNKNOWN_PROCESS", "--dry-run").output
    assert "would requeue 2 job(s)" in dry
    assert all(fetch_job(redis_conn, j.id).get_status() == "failed" for j in jobs_)

    out = cli("requeue", "--failed", "--error-code", "UNKNOWN_PROCESS").output
    assert "requeued 2 job(s)" in out
    statuses = [fetch_job(redis_conn, j.id).get_status() for j in jobs_]
    assert statuses == ["queued", "queued", "failed"]
    assert "requeued 0 job(s)" in cli("requeue", "--failed", "--process", "resize-image").output


@pytest.mark.parametrize("args", [[], ["some-id", "--failed"], ["some-id", "--error-code", "X"],
                                  ["--error-code", "X"]])
def test_requeue_needs_one_id_or_failed(cli: Callable[..., Result], args: list[str]) -> None:
    assert "Usage" in cli("requeue", *args, code=2).output


def _age(redis_conn: redis.Redis, job: Job, days: float) -> None:
    moment = (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    redis_conn.hset(job.key, "ended_at", moment)


def test_purge_removes_old_finished_and_failed_jobs_only(cli: Callable[..., Result], enqueue: Callable[..., Job],
                                                        work: Callable[[], None], redis_conn: redis.Redis) -> None:
    old_failed, new_failed = (enqueue(envelope(process="no-such-process", record_id=f"06800000000000{i}AAA"))
                              for i in range(2))
    finished = make_queue(QUEUE, redis_conn).enqueue("builtins.len", "abc", result_ttl=86400)
    still_queued = enqueue(envelope(record_id="068000000000009AAA"))
    work_queue = make_queue(QUEUE, redis_conn)
    work_queue.remove(still_queued.id)  # keep it out of the worker's way, then put it back
    work()
    work_queue.enqueue_job(still_queued)
    assert fetch_job(redis_conn, finished.id).get_status() == "finished"
    _age(redis_conn, fetch_job(redis_conn, old_failed.id), 10)
    _age(redis_conn, fetch_job(redis_conn, finished.id), 8)
    FailedJobRegistry(QUEUE, connection=redis_conn).add(
        Job.create("builtins.len", args=("x",), connection=redis_conn, serializer=SERIALIZER, id="gone-job"), ttl=60)
    redis_conn.delete(Job.key_for("gone-job"))  # its hash expired, the registry entry did not

    dry = cli("purge", "--older-than", "7d", "--dry-run")
    assert "would remove 2 job(s): finished 1, failed 1, canceled 0, stale 1" in dry.output
    assert fetch_job(redis_conn, old_failed.id) is not None

    out = cli("purge", "--older-than", "7d")
    assert "removed 2 job(s): finished 1, failed 1, canceled 0, stale 1" in out.output
    assert "OFFLOAD_DEDUPE_TTL" not in out.output
    assert fetch_job(redis_conn, old_failed.id) is None and fetch_job(redis_conn, finished.id) is None
    assert not redis_conn.exists(RqResult.get_key(old_failed.id))
    assert fetch_job(redis_conn, new_failed.id).get_status() == "failed"
    assert fetch_job(redis_conn, still_queued.id).get_status() == "queued"
    assert FailedJobRegistry(QUEUE, connection=redis_conn).get_job_ids(cleanup=False) == [new_failed.id]
    assert FinishedJobRegistry(QUEUE, connection=redis_conn).get_job_ids(cleanup=False) == []


def test_purge_warns_inside_the_dedupe_window(cli: Callable[..., Result]) -> None:
    """A purged job's ledger entry no longer protects against a Salesforce redelivery."""
    assert "OFFLOAD_DEDUPE_TTL" in cli("purge", "--older-than", "12h").output


@pytest.mark.parametrize("age", ["", "7", "d", "0d", "7x", "-1d", "7d junk"])
def test_purge_refuses_a_bad_age(cli: Callable[..., Result], age: str) -> None:
    assert "--older-than" in cli("purge", "--older-than", age, code=2).output


def test_a_redis_that_does_not_answer_is_a_clear_error() -> None:
    result = CliRunner().invoke(jobs, ["list"], env={"REDIS_URL": "redis://127.0.0.1:1/0"})
    assert result.exit_code == 1
    assert "Redis did not answer" in result.output


@pytest.mark.parametrize(("text", "expected"), [
    ("7d", timedelta(days=7)), ("12h", timedelta(hours=12)), ("90m", timedelta(minutes=90)),
    ("1d12h", timedelta(days=1, hours=12)), ("2w", timedelta(weeks=2)), ("45S", timedelta(seconds=45)),
])
def test_parse_age(text: str, expected: timedelta) -> None:
    assert jobs_admin.parse_age(text) == expected


@pytest.mark.parametrize(("exc", "code"), [
    ("Traceback...\nservices.errors.UnknownProcess: No process named 'x'", "UNKNOWN_PROCESS"),
    ("Traceback...\nservices.errors.ImageRejected: not an image", "IMAGE_REJECTED"),
    ("Traceback...\nservices.errors.SalesforcePermanentError: NOT_FOUND: entity is deleted", "NOT_FOUND"),
    ("Traceback...\nrq.timeouts.JobTimeoutException: Task exceeded maximum timeout value (600 seconds)",
     "JobTimeoutException"),
    ("Traceback...\nValueError", "ValueError"),
    ("", None), (None, None),
])
def test_parse_error_code(exc: str | None, code: str | None) -> None:
    assert jobs_admin.parse_error_code(exc) == code


def test_redaction_covers_reprs_json_and_query_strings() -> None:
    assert jobs_admin.redact_text("f({'sessionRef': 'abc123', 'process': 'x'})") == \
        "f({'sessionRef': '[redacted]', 'process': 'x'})"
    assert jobs_admin.redact_text('{"client_secret": "s3cr3t", "a": 1}') == '{"client_secret": "[redacted]", "a": 1}'
    assert jobs_admin.redact_text("GET /x?access_token=abc&y=1") == "GET /x?access_token=[redacted]&y=1"
    assert jobs_admin.redact({"nested": [{"Authorization": "Bearer x"}], "ok": 1}) == \
        {"nested": [{"Authorization": "[redacted]"}], "ok": 1}


def test_list_says_when_and_why_workers_are_paused(cli: Callable[..., Result], redis_conn: redis.Redis) -> None:
    from rq.suspension import suspend

    from services.salesforce.client import ApiUsage, record_usage

    assert "paused" not in cli("list").stderr
    record_usage(redis_conn, ApiUsage(used=96_000, limit=100_000))
    suspend(redis_conn, ttl=300)
    said = cli("list").stderr
    assert "Workers are paused for" in said and "96000 of 100000 daily API requests" in said
    suspend(redis_conn)  # an operator's, without a TTL
    record_usage(redis_conn, ApiUsage(used=10, limit=100_000))
    assert "paused until resumed: suspended by an operator" in cli("list").stderr


def test_list_shows_the_active_backfill_run(cli: Callable[..., Result], redis_conn: redis.Redis) -> None:
    from services.backfill import runs
    from services.backfill.selection import Selection

    assert "backfill" not in cli("list").stderr
    run = runs.new_run(Selection.parse("resize-image", "Account"), mode="rest", total=120, rate=None, max_files=None)
    runs.start(redis_conn, run)
    redis_conn.hset(run.key, mapping={"enqueued": 30, "already_rendered": 20})
    for n in range(25):
        runs.note_outcome(redis_conn, run.id, f"job-{n}", "done")
    runs.note_outcome(redis_conn, run.id, "job-0", "failed")  # a job counted once, by its final outcome
    said = cli("list").stderr
    assert f"backfill {run.id} running" in said, said
    assert "done 24 · failed 1 · skipped 20 · left 75" in said, said
    runs.cancel(redis_conn)
    assert "backfill" not in cli("list").stderr


def test_metrics_show_the_backfill_run(redis_conn: redis.Redis) -> None:
    from services.backfill import runs
    from services.backfill.selection import Selection
    from services.ops.collectors import render

    assert b"offload_backfill_files" not in render(redis_conn)
    run = runs.new_run(Selection.parse("resize-image"), mode="rest", total=10, rate=None, max_files=None)
    runs.start(redis_conn, run)
    redis_conn.hset(run.key, mapping={"enqueued": 4, "reason": "API_MARGIN: the org has used ..."})
    runs.note_outcome(redis_conn, run.id, "job-1", "done")
    text = render(redis_conn).decode()
    assert 'offload_backfill_files{state="done"} 1.0' in text
    assert 'offload_backfill_files{state="queued"} 3.0' in text
    assert 'offload_backfill_files{state="left"} 9.0' in text
    assert "offload_backfill_running 1.0" in text and "offload_backfill_held 1.0" in text
