"""A job stuck in C past its timeout is ended by the supervisor and fails as a timeout, not a bad image.

rq's job timeout is a SIGALRM whose handler raises ``JobTimeoutException``, and Python runs signal
handlers only between bytecodes: while libjpeg decodes a buffer inside one Pillow call, nothing reaches
the job. The input here is real and really slow: a progressive JPEG whose one small scan is repeated
thousands of times (tests/support/hostile_jpeg.py), accepted only because the test raises
``OFFLOAD_MAX_JPEG_SCANS`` (by default it is refused before decoding). Its decode takes far longer than
``OFFLOAD_JOB_TIMEOUT`` + :data:`~workers.supervisor.HARD_DEADLINE_GRACE_S`; the supervisor kills the work
process at that deadline, the job is retried as a timeout and then fails as one, and a normal photo
queued behind it is resized by the fresh work process.
"""

from __future__ import annotations

import pytest
import redis
from rq.job import Job, JobStatus

from devkit.devstack import LocalStack
from services.ops.jobs import error_code
from services.queue import SERIALIZER
from tests.support.hostile_jpeg import scan_flood_jpeg
from tests.support.images import photo_jpeg
from tests.support.orgtools import create_record, renditions_of, upload_file
from tests.support.stacktools import submit, wait_for

pytestmark = pytest.mark.integration

STUCK_ENV = {"OFFLOAD_JOB_TIMEOUT": "2", "OFFLOAD_JOB_RETRIES": "1", "OFFLOAD_RETRY_BASE_SECONDS": "1",
             "OFFLOAD_MAX_JPEG_SCANS": "100000"}
VARIANTS = ["large", "medium", "thumb"]


def test_a_decode_stuck_past_the_job_timeout_is_killed_and_reported_as_a_timeout(
    redis_url: str, redis_conn: redis.Redis
) -> None:
    # 16 MP with 12,000 extra scans, each a pass over the image. Pillow feeds libjpeg 64 kB (~4,600 of these
    # scans) per C call: 12-20 s per call on a 2-vCPU box, minutes in all, so even on a faster machine one
    # call outlasts the 2 s timeout + 5 s grace. Before the supervisor's deadline the job went on until that
    # call returned, and the photo behind it ran in the same work process afterwards.
    hostile = scan_flood_jpeg(4000, 4000, 12_000)
    with LocalStack(redis_url=redis_url, workers=1, env=STUCK_ENV) as stack:
        org = stack.org
        contact = create_record(org, "Contact", LastName="Stuck")
        stuck_source = upload_file(org, contact, hostile, "scan-flood.jpg")
        normal_source = upload_file(org, contact, photo_jpeg(1000, 750, seed=41), "normal.jpg")
        stuck = Job.fetch(submit(stack, stuck_source), connection=redis_conn, serializer=SERIALIZER)

        def stuck_started() -> bool:
            stuck.refresh()
            return stuck.get_status() == JobStatus.STARTED and bool(stuck.worker_name)

        wait_for(stuck_started, 30, "the stuck job to start", stack)
        stuck_worker = stuck.worker_name
        normal = Job.fetch(submit(stack, normal_source), connection=redis_conn, serializer=SERIALIZER)

        wait_for(lambda: normal.get_status() in (JobStatus.FINISHED, JobStatus.FAILED), 90,
                 "the normal photo queued behind the stuck job to end", stack)
        assert normal.get_status() == JobStatus.FINISHED, stack.logs()[-6000:]
        normal.refresh()
        assert normal.worker_name != stuck_worker, "the photo waited for the stuck decode to finish by itself"
        assert sorted(r["Offload_Variant__c"] for r in renditions_of(org, normal_source)) == VARIANTS

        wait_for(lambda: stuck.get_status() == JobStatus.FAILED, 90, "the stuck job to fail", stack)
        stuck.refresh()
        assert error_code(stuck) == "JobTimeoutException", stack.logs()[-6000:]
        assert stuck.retries_left == 0, "a timeout is transient: its retry must have been spent"
        assert renditions_of(org, stuck_source) == []
        # The last attempt died with its process, so the runner could not say so: the supervisor did.
        wait_for(lambda: any(e["fields"].get("Job_Id__c") == stuck.id for e in org.state.events), 20,
                 "the stuck job's Failed completion event", stack)
        [failed] = [e["fields"] for e in org.state.events if e["fields"].get("Job_Id__c") == stuck.id]
        assert failed["Status__c"] == "Failed" and failed["Error__c"].startswith("JobTimeoutException")

        log = stack.log("worker-0.log")
        assert "IMAGE_REJECTED" not in log
        assert log.count("job still running past its timeout") == 2, log[-6000:]  # the attempt and its retry
        assert log.count("work process killed for a timed-out job") == 2
        assert stuck.id in log
        [worker] = stack.worker_processes
        assert worker.poll() is None, "the supervisor must outlive the work processes it killed"
