"""``offload jobs``: list, show, requeue and purge jobs from a terminal (``heroku run offload jobs ...``).

A thin click layer over :mod:`services.ops.jobs`, which the dashboard shares. It
connects to ``REDIS_URL`` the way every entry point does (``Settings.from_env`` and
``redis_from_url``, so Heroku's self-signed ``rediss://`` works) and reads jobs as JSON.
Every change it makes is also logged as an event, so ``heroku logs`` keeps an audit trail.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import click
import redis

from services.backfill import runs as backfill_runs
from services.backfill.progress import describe as describe_backfill
from services.clitools import connect, failure
from services.errors import OffloadError
from services.logs import event
from services.ops import jobs as jobs_admin
from services.queue import fetch_job
from services.settings import Settings

logger = logging.getLogger("offload.jobs")


def _connection(ctx: click.Context) -> redis.Redis:
    return connect(ctx)[1]


@click.group()
def jobs() -> None:
    """List, show, requeue and purge jobs (operators). Uses REDIS_URL."""


@jobs.command("list")
@click.option("--failed", is_flag=True, help="Only failed jobs.")
@click.option("--process", "process", metavar="P", help="Only jobs of this process (e.g. resize-image).")
@click.option("--error-code", metavar="C", help="Only failed jobs with this error code (implies --failed).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1), help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of a table.")
@click.pass_context
def list_jobs(ctx: click.Context, failed: bool, process: str | None, error_code: str | None, limit: int,
              as_json: bool) -> None:
    """Jobs, most recent first: id, status, process, record, when, error code."""
    flt = jobs_admin.JobFilter(failed_only=failed, process=process, error_code=error_code)
    try:
        connection = _connection(ctx)
        rows = [jobs_admin.summary(job) for job in jobs_admin.find_jobs(connection, flt, limit)]
        pause = jobs_admin.pause_status(connection)
        backfill = backfill_runs.active(connection)
    except redis.RedisError as exc:
        raise failure(exc) from None
    if pause is not None:
        left = f"for {pause.seconds_left} s more" if pause.seconds_left is not None else "until resumed"
        click.echo(f"Workers are paused {left}: {pause.reason}.", err=True)
    if backfill is not None:
        click.echo(describe_backfill(backfill), err=True)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    if not rows:
        click.echo("No jobs match.")
        return
    columns = ("jobId", "status", "process", "recordId", "at", "errorCode")
    widths = {c: max(len(c), *(len(str(r[c] or "-")) for r in rows)) for c in columns}
    click.echo("  ".join(c.ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        click.echo("  ".join(str(row[c] or "-").ljust(widths[c]) for c in columns).rstrip())


@jobs.command("show")
@click.argument("job_id")
@click.pass_context
def show_job(ctx: click.Context, job_id: str) -> None:
    """One job as JSON: status, timings, attempts, error code, envelope (secrets hidden), meta, exception."""
    try:
        job = fetch_job(_connection(ctx), job_id)
        if job is None:
            raise click.ClickException(f"JOB_NOT_FOUND: no job {job_id!r} (finished jobs are kept for a day).")
        click.echo(json.dumps(jobs_admin.show(job), indent=2, default=str))
    except redis.RedisError as exc:
        raise failure(exc) from None


@jobs.command("requeue")
@click.argument("job_id", required=False)
@click.option("--failed", is_flag=True, help="Requeue every failed job matching the filters below.")
@click.option("--error-code", metavar="C", help="With --failed: only jobs with this error code.")
@click.option("--process", "process", metavar="P", help="With --failed: only jobs of this process.")
@click.option("--dry-run", is_flag=True, help="Say what would be requeued, change nothing.")
@click.pass_context
def requeue_jobs(ctx: click.Context, job_id: str | None, failed: bool, error_code: str | None,
                 process: str | None, dry_run: bool) -> None:
    """Put failed jobs back on their queue: one by ID, or --failed [--error-code C] [--process P].

    A requeued job gets its full retry budget again.
    """
    if bool(job_id) == failed:
        raise click.UsageError("Give a JOB_ID or --failed (with optional --error-code/--process), not both.")
    if job_id and (error_code or process):
        raise click.UsageError("--error-code and --process filter --failed; they don't apply to one JOB_ID.")
    connection = _connection(ctx)
    try:
        if job_id:
            if dry_run:
                click.echo(f"would requeue {job_id}")
                return
            jobs_admin.requeue(connection, job_id)
            ids = [job_id]
        else:
            flt = jobs_admin.JobFilter(failed_only=True, process=process, error_code=error_code)
            ids = jobs_admin.requeue_matching(connection, flt, dry_run=dry_run)
    except (OffloadError, redis.RedisError) as exc:
        raise failure(exc) from None
    verb = "would requeue" if dry_run else "requeued"
    for requeued in ids:
        click.echo(f"{verb} {requeued}")
    click.echo(f"{verb} {len(ids)} job(s)")
    if not dry_run and ids:
        event(logger, "jobs requeued by operator", count=len(ids), error_code=error_code, process=process)


@jobs.command("purge")
@click.option("--older-than", "older_than", required=True, metavar="AGE",
              help="Age such as 7d, 12h, 90m or 1d12h; finished/failed/canceled jobs older than it go.")
@click.option("--dry-run", is_flag=True, help="Count what would be removed, change nothing.")
@click.pass_context
def purge_jobs(ctx: click.Context, older_than: str, dry_run: bool) -> None:
    """Delete finished, failed and canceled jobs older than AGE (hash, results, registry entry)."""
    try:
        age = jobs_admin.parse_age(older_than)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None
    connection = _connection(ctx)
    settings: Settings = ctx.obj["settings"]
    if age.total_seconds() < settings.dedupe_ttl:
        click.echo(
            f"note: {older_than} is shorter than OFFLOAD_DEDUPE_TTL ({settings.dedupe_ttl} s); a Salesforce "
            "redelivery of a purged job inside that window is taken as new work.", err=True)
    try:
        report = jobs_admin.purge(connection, age, dry_run=dry_run)
    except redis.RedisError as exc:
        raise failure(exc) from None
    verb = "would remove" if dry_run else "removed"
    details: dict[str, Any] = {**report.removed, "stale": report.stale_ids}
    click.echo(f"{verb} {report.total} job(s): " + ", ".join(f"{k} {v}" for k, v in details.items()))
    if not dry_run and (report.total or report.stale_ids):
        event(logger, "jobs purged by operator", older_than=older_than, **details)
