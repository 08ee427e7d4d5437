"""``offload backfill plan``: how many files, what it costs the org, and how long it takes; nothing is queued.

The count is Salesforce's (``SELECT COUNT()``, one call). Which candidates already have renditions is checked
on every candidate when there are at most :data:`EXACT_UP_TO` (a few calls), else on the first
:data:`EXACT_UP_TO` as a sample, and said so. Time is at the workers' current capacity: the rq workers that
take the backfill queue, and this process's mean job time from the workers' own histogram (``/metrics``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import redis
from rq import Worker

from services import keys
from services.backfill import QUEUE, cursor
from services.backfill.selection import Selection
from services.queue import make_queue
from services.salesforce import allowance
from services.salesforce.client import ApiUsage, SalesforceClient, latest_usage
from services.settings import Settings

EXACT_UP_TO = 2_000
"""Candidates checked one by one for renditions in a plan; more are estimated from this many."""


@dataclass(frozen=True)
class Plan:
    selection: Selection
    candidates: int
    already_rendered: int
    exact: bool
    mode: str
    to_process: int
    api_calls: int
    new_files: int
    api_usage: ApiUsage | None
    files_left_today: allowance.ContentPublications | None
    workers: int
    mean_job_seconds: float | None
    rate: int | None

    @property
    def files_per_minute(self) -> float | None:
        """At the current capacity (or ``--rate``, if lower); None when no job of the process was measured yet."""
        capacity = self.workers * 60.0 / self.mean_job_seconds if self.mean_job_seconds and self.workers else None
        if self.rate is not None:
            return min(self.rate, capacity) if capacity is not None else float(self.rate)
        return capacity

    @property
    def minutes(self) -> float | None:
        per_minute = self.files_per_minute
        return self.to_process / per_minute if per_minute else None


def make_plan(connection: redis.Redis, settings: Settings, sf: SalesforceClient, selection: Selection, *,
              max_files: int | None = None, rate: int | None = None) -> Plan:
    process = selection.declaration
    candidates = sf.count(selection.count_soql())
    sample = sf.query_page(selection.soql()).records[:EXACT_UP_TO] if candidates else []
    wanted = process.rendition_names(settings) if process.rendition_names is not None else None
    _, rendered = cursor.without_renditions(sf, [str(r["Id"]) for r in sample], wanted)
    exact = candidates <= len(sample)
    already = rendered if exact else round(candidates * rendered / max(1, len(sample)))
    to_process = max(0, candidates - already)
    if max_files is not None:
        to_process = min(to_process, max_files)
    mode = cursor.choose_mode(candidates)
    if mode == "bulk":
        reads = 3 + math.ceil(candidates / cursor.BULK_PAGE)  # create, a poll or two, the results pages
    else:
        reads = math.ceil(candidates / 2000)
    checks = math.ceil(candidates / cursor.RENDITION_CHECK_CHUNK)
    sf.refresh_usage()
    return Plan(
        selection=selection, candidates=candidates, already_rendered=already, exact=exact, mode=mode,
        to_process=to_process, api_calls=reads + checks + to_process * process.calls_per_file,
        new_files=to_process * process.renditions_per_file(settings),
        api_usage=latest_usage(connection), files_left_today=allowance.estimate(connection),
        workers=len(Worker.all(queue=make_queue(QUEUE, connection))),
        mean_job_seconds=_mean_job_seconds(connection, process.name), rate=rate,
    )


def _mean_job_seconds(connection: redis.Redis, process: str) -> float | None:
    """From the workers' job-duration histogram (``keys.JOB_DURATION``: ``<process>|sum`` and ``<process>|count``)."""
    total, count = connection.hmget(keys.JOB_DURATION, [f"{process}|sum", f"{process}|count"])
    return float(total) / float(count) if total and count and float(count) else None
