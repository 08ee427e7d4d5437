"""Exactly-once under kill -9: the process running a resize job dies at each step of the job.

Issue: "Prove exactly-once by killing a real worker process at each step". Nothing of our code is
mocked. The org emulator holds one chosen request (``FaultRule(delay=..., error=...)``): while it is
held the job is provably at that step, the process running the job is killed with SIGKILL, and the
held request is then answered with a 503 to a dead client, so Salesforce never commits it and the
org's state at the kill is exact (N renditions after the N-th upload). Then the real recovery path
runs, for both ways of running jobs (``workers/__main__.py``):

* **supervised** (the Procfile default): the supervisor sees its work process die, hands the job to
  rq's abandoned-job handling (``recover_abandoned_job``: the job's ``Retry`` schedules it), stops the
  dead process's orphaned scheduler and starts a new work process, whose scheduler enqueues the
  retry and runs it. No restart of the dyno is needed.
* **fork-per-job** (``--fork-per-job``, rq's ``HerokuWorker``): rq's worker (the horse's parent) sees
  ``waitpid`` report signal 9 -> ``handle_job_failure`` -> the job's ``Retry`` schedules it; the old
  worker is stopped the way Heroku stops a dyno (SIGTERM, its scheduler releases its lock) and a new
  worker process starts, whose scheduler enqueues the retry and runs it.

The retry asks Salesforce which variants exist and writes only the missing ones: the source ends
with exactly one rendition per variant and the job finishes, with one retry used.

Killing the *whole* worker (supervisor, work process and scheduler at once: a dyno crash) takes rq's
other recovery path, through the ``StartedJobRegistry`` heartbeat expiry; that is exercised in
``tests/chaos/test_chaos_worker_kills.py``.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass

import psutil
import pytest
import redis
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from devkit.devstack import COMPLETION_EVENT, LocalStack
from devkit.org.faults import FaultRule
from devkit.procfile import stop
from services.queue import SERIALIZER
from tests.support.images import photo_jpeg
from tests.support.orgtools import create_record, renditions_of, upload_file
from tests.support.stacktools import submit, wait_for

pytestmark = pytest.mark.integration

VARIANTS = {"large", "medium", "thumb"}
UPLOAD = "*/composite/sobjects"
"""Renditions are uploaded in one sObject Collections call per source."""
EVENT = f"*/sobjects/{COMPLETION_EVENT}"
HOLD_S = 6.0
"""How long the emulator holds the chosen request: ample time to find and kill the process running the job."""

MODES = {"supervised": (), "fork-per-job": ("--fork-per-job",)}
"""Ways to run jobs -> arguments appended to the Procfile ``worker`` line."""

FAST_RETRY_ENV = {"OFFLOAD_JOB_RETRIES": "3", "OFFLOAD_RETRY_BASE_SECONDS": "3"}
"""Short retries, but not too short: rq schedules a retry at a whole second (it truncates the time), and the
supervisor hands a killed job to the retry within milliseconds, so a 1 s backoff could let the retry run
before the org's state at the kill is checked. 3 s +/- 20 % leaves at least ~1.4 s."""


@dataclass(frozen=True)
class Step:
    """Where the job is when its horse dies, and what Salesforce holds at that moment."""

    name: str
    pattern: str
    method: str
    passes_before: int  # matching requests let through before the one that is held
    renditions_at_kill: int


STEPS = [
    Step("download-in-flight", "re:/sobjects/ContentVersion/[^/]+/VersionData$", "GET", 0, 0),
    # The three renditions go in one all-or-none collections call: there is no "after the first upload".
    Step("downloaded-rendered-uploading", UPLOAD, "POST", 0, 0),
    Step("uploaded-not-finished", EVENT, "POST", 0, 3),
]


def job_process_talking_to(worker_pid: int, port: int) -> psutil.Process | None:
    """The worker's descendant with a TCP connection to the org: the one running the job.

    That is the work process under the supervisor, or the horse of a fork-per-job worker; the rq
    scheduler never calls the org.
    """
    try:
        children = psutil.Process(worker_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return None
    for child in children:
        try:
            if any(c.raddr and c.raddr.port == port for c in child.net_connections(kind="tcp")):
                return child
        except psutil.NoSuchProcess:
            continue
    return None


@pytest.fixture(params=list(MODES))
def stack(request: pytest.FixtureRequest, redis_url: str, redis_conn: redis.Redis) -> Iterator[LocalStack]:
    with LocalStack(redis_url=redis_url, workers=1, env=FAST_RETRY_ENV, worker_args=MODES[request.param]) as running:
        yield running


@pytest.mark.parametrize("step", STEPS, ids=[s.name for s in STEPS])
def test_kill_9_of_the_process_running_the_job_leaves_exactly_one_rendition_per_variant(
    step: Step, stack: LocalStack, redis_conn: redis.Redis
) -> None:
    org = stack.org
    org_port = int(org.base_url.rsplit(":", 1)[1])
    # A Contact, not an Account: the stack's Outbound Message on Account would start a second job.
    contact = create_record(org, "Contact", LastName="Kill step")
    source = upload_file(org, contact, photo_jpeg(1000, 750, seed=7), "kill.jpg")
    for _ in range(step.passes_before):  # count=1 rules fire in order: let N requests through untouched
        org.state.faults.add(FaultRule(pattern=step.pattern, method=step.method, delay=0.001, count=1))
    held = org.state.faults.add(FaultRule(pattern=step.pattern, method=step.method, delay=HOLD_S,
                                          error="SERVER_UNAVAILABLE", count=1))

    job_id = submit(stack, source)
    wait_for(lambda: held.fired, 30, f"the job to reach {step.name}", stack)
    [worker] = stack.worker_processes
    victim = wait_for(lambda: job_process_talking_to(worker.pid, org_port), 5, "the process running the job", stack)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)

    # The org's state at the kill is exact: the held request is answered (503) to a dead client.
    assert len(renditions_of(org, source)) == step.renditions_at_kill
    job = Job.fetch(job_id, connection=redis_conn, serializer=SERIALIZER)

    def retry_spent() -> bool:  # the killed run was failed with a retry: retries_left 3 -> 2
        job.refresh()
        return job.retries_left == 2

    wait_for(retry_spent, 10, "rq to schedule the retry of the killed job", stack)

    if stack.worker_args:
        # A fork-per-job worker's scheduler is what enqueues the retry; restart it the way Heroku
        # restarts a dyno: SIGTERM to the old worker (its scheduler releases its lock), then a new one.
        assert stop(worker) == 0
        stack.add_worker()
    else:
        assert worker.poll() is None, "the supervisor must outlive its work process"
    wait_for(lambda: job.get_status() in (JobStatus.FINISHED, JobStatus.FAILED), 60,
             "the retried job to end", stack)

    assert job.get_status() == JobStatus.FINISHED, stack.logs()[-6000:]
    job.refresh()
    rows = renditions_of(org, source)
    assert sorted(r["Offload_Variant__c"] for r in rows) == sorted(VARIANTS), rows
    result = job.return_value()
    assert result["renditionCount"] == 3
    assert sum(1 for r in result["renditions"] if not r.get("existing")) == 3 - step.renditions_at_kill
    assert job.retries_left == 2  # exactly one retry was spent
    succeeded = [e for e in org.state.events
                 if e["fields"]["Job_Id__c"] == job_id and e["fields"]["Status__c"] == "Succeeded"]
    assert len(succeeded) == 1
    assert StartedJobRegistry("resize-image", connection=redis_conn).get_job_ids() == []
