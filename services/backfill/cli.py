"""``offload backfill``: plan, start and steer the backfill of files already in the org (operators).

``start`` registers a run and returns at once: the workers feed it (``workers/backfill_feeder.py``), so it
survives the operator's terminal, a ``heroku run`` one-off dyno ending, and deploys. Every verb exits 0 on
success, 1 with a message an operator can act on, and never prompts (it runs the same without a terminal).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

import click
import redis

from services.backfill import cursor, runs
from services.backfill.plan import make_plan
from services.backfill.progress import describe, duration, status_of
from services.backfill.runs import Run
from services.backfill.selection import Selection
from services.clitools import connect, failure
from services.errors import OffloadError, RecordTypeNotAllowed
from services.logs import event
from services.salesforce.client import SalesforceClient, integration_client
from services.settings import Settings

logger = logging.getLogger("offload.backfill")

FOLLOW_INTERVAL_S = 2.0


def _salesforce(settings: Settings, connection: redis.Redis) -> SalesforceClient:
    return integration_client(settings, connection)


def _selection_options(command: Any) -> Any:
    for option in reversed((
        click.option("--process", default="resize-image", show_default=True, help="The process to backfill."),
        click.option("--object", "sobject", metavar="SOBJECT",
                     help="Only files first published to records of this object (e.g. Listing__c)."),
        click.option("--since", metavar="DATE", help="Only files created on or after this day (YYYY-MM-DD, UTC)."),
        click.option("--until", metavar="DATE", help="Only files created on or before this day (YYYY-MM-DD, UTC)."),
    )):
        command = option(command)
    return command


@click.group()
def backfill() -> None:
    """Renditions for the files already in the org: plan, start, status, pause, resume, cancel."""


@backfill.command("plan")
@_selection_options
@click.option("--rate", type=click.IntRange(min=1), metavar="N", help="Files per minute the run would take.")
@click.option("--max-files", type=click.IntRange(min=1), metavar="N", help="Stop after queueing N files.")
@click.pass_context
def plan_command(ctx: click.Context, process: str, sobject: str | None, since: str | None, until: str | None,
                 rate: int | None, max_files: int | None) -> None:
    """Count the candidate files and estimate API calls, new files against the org's daily cap, and time."""
    settings, connection = connect(ctx)
    try:
        selection = Selection.parse(process, sobject, since, until)
        plan = make_plan(connection, settings, _salesforce(settings, connection), selection,
                         max_files=max_files, rate=rate)
    except (OffloadError, redis.RedisError) as exc:
        raise failure(exc) from None
    how = "every candidate checked" if plan.exact else "estimated from a sample of 2,000"
    lines = [
        f"Backfill plan: {selection.describe()}",
        f"  candidate files           {plan.candidates:>10,}",
        f"  already have renditions   {plan.already_rendered:>10,}  ({how})",
        f"  to process                {plan.to_process:>10,}",
        f"  cursor                    {_mode_text(plan.mode)}",
        f"  Salesforce API calls      {plan.api_calls:>10,}  (about {selection.declaration.calls_per_file} a file)",
    ]
    if plan.api_usage is not None:
        lines.append(f"    the org has used         {plan.api_usage.used:,} of {plan.api_usage.limit:,} today")
    lines.append(f"  new files (ContentVersion) up to {plan.new_files:,}")
    if plan.files_left_today is not None:
        lines.append(f"    the org can publish       {max(0, plan.files_left_today.remaining):,} more today "
                     f"(ContentPublicationLimit {plan.files_left_today.limit:,}; a backfill holds at the last 25 %)")
    if plan.minutes is not None:
        lines.append(f"  time                      about {duration(plan.minutes * 60)} at "
                     f"{plan.files_per_minute:,.0f} files/min ({plan.workers} work processes"
                     f"{', --rate' if plan.rate else ''})")
    else:
        lines.append("  time                      unknown: no worker is taking the backfill queue, or no job of "
                     f"{selection.process} has been timed yet")
    lines.append("Nothing was queued. `offload backfill start` with the same filters starts it.")
    click.echo("\n".join(lines))


@backfill.command("start")
@_selection_options
@click.option("--rate", type=click.IntRange(min=1), metavar="N", help="At most N files a minute (default: as fast "
              "as the workers take them, live uploads first).")
@click.option("--max-files", type=click.IntRange(min=1), metavar="N", help="Stop after queueing N files.")
@click.pass_context
def start_command(ctx: click.Context, process: str, sobject: str | None, since: str | None, until: str | None,
                  rate: int | None, max_files: int | None) -> None:
    """Register a run and return; the workers feed it at the rate, and it survives this terminal."""
    settings, connection = connect(ctx)
    try:
        selection = Selection.parse(process, sobject, since, until)
        if not settings.record_types.allows("ContentVersion", None):
            raise RecordTypeNotAllowed(f"OFFLOAD_RECORD_TYPES allows {settings.record_types.describe()}, not "
                                       "ContentVersion, so no file can be backfilled.")
        total = _salesforce(settings, connection).count(selection.count_soql())
        run = runs.new_run(selection, mode=cursor.choose_mode(total), total=total, rate=rate, max_files=max_files)
        runs.start(connection, run)
    except (OffloadError, redis.RedisError) as exc:
        raise failure(exc) from None
    event(logger, "backfill started", run=run.id, selection=selection.describe(), total=total, mode=run.mode,
          rate=rate, max_files=max_files)
    click.echo(f"Backfill {run.id} started: {total:,} candidate files ({selection.describe()}), "
               f"{_mode_text(run.mode)}.")
    click.echo("The workers feed it; `offload backfill status --follow` shows its progress.")


@backfill.command("status")
@click.option("--follow", is_flag=True, help="Keep showing progress until the run ends.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
@click.pass_context
def status_command(ctx: click.Context, follow: bool, as_json: bool) -> None:
    """The active run, or the last one: done, failed, skipped, left, rate, ETA."""
    _, connection = connect(ctx)
    try:
        run = runs.latest(connection)
        if run is None:
            click.echo("No backfill has run yet; `offload backfill plan` shows what one would do.")
            return
        if not follow:
            click.echo(json.dumps(status_of(run)) if as_json else describe(run))
            return
        _follow(connection, run, as_json)
    except (OffloadError, redis.RedisError) as exc:
        raise failure(exc) from None


@backfill.command("pause")
@click.pass_context
def pause_command(ctx: click.Context) -> None:
    """Stop feeding files (queued jobs finish); `resume` carries on where it stopped."""
    _steer(ctx, runs.pause, "backfill paused")


@backfill.command("resume")
@click.pass_context
def resume_command(ctx: click.Context) -> None:
    """Carry on a paused run from its cursor."""
    _steer(ctx, runs.resume, "backfill resumed")


@backfill.command("cancel")
@click.pass_context
def cancel_command(ctx: click.Context) -> None:
    """End the run; its queued jobs skip themselves, and another run can start."""
    _steer(ctx, runs.cancel, "backfill cancelled")


def _steer(ctx: click.Context, action: Any, what: str) -> None:
    _, connection = connect(ctx)
    try:
        run = action(connection)
    except (OffloadError, redis.RedisError) as exc:
        raise failure(exc) from None
    event(logger, what, run=run.id, state=run.state)
    click.echo(describe(run))


def _follow(connection: redis.Redis, run: Run, as_json: bool) -> None:
    """A progress bar on a terminal; elsewhere (logs, CI, ``heroku run --no-tty``) a line per 5 %."""
    tty = sys.stdout.isatty() and not as_json
    next_mark = 0.0
    while True:
        s = status_of(run)
        if tty:
            width = 30
            filled = int(width * s["percent"] / 100)
            click.echo("\r[" + "#" * filled + "-" * (width - filled) + "] " + describe(run).split("\n")[0], nl=False)
        elif s["percent"] >= next_mark or not run.active:
            click.echo(json.dumps(s) if as_json else describe(run))
            next_mark = (s["percent"] // 5 + 1) * 5
        if not run.active:
            if tty:
                click.echo("\n" + describe(run))
            return
        time.sleep(FOLLOW_INTERVAL_S)
        found = runs.load(connection, run.id)
        if found is None:
            return
        run = found


def _mode_text(mode: str) -> str:
    return ("read with a Bulk API 2.0 query job (10,000 candidates or more)" if mode == "bulk"
            else "read with REST query pages (under 10,000 candidates)")
