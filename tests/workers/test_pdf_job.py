"""The pdf-preview job against the org emulator over HTTPS, with real Redis and an in-process RQ worker."""

from __future__ import annotations

import io
import json
import threading

import pytest
import redis
from PIL import Image

from devkit.org.faults import FaultRule
from devkit.waiting import wait_until
from services.envelope import Envelope
from services.processes import PROCESSES
from services.queue import Delivery, admit, fetch_job, make_queue
from services.sfids import to_18
from tests.support.images import photo_jpeg
from tests.support.orgtools import create_record, renditions_of, upload_file
from tests.support.pdfs import floor_plan_pdf, minimal_pdf


def enqueue(conn: redis.Redis, payload: dict, key: str) -> str:
    """Enqueue a pdf-preview job as the receiver does (its envelope, through the intake script)."""
    process = PROCESSES["pdf-preview"]
    envelope = Envelope(process=process.name, payload=payload, source="callout",
                        record_id=process.record_id(payload)).to_json()
    [outcome] = admit(conn, [Delivery(queue=process.queue, dedupe_key=key, envelope=envelope,
                                      description="test", retries=2)], dedupe_ttl=600)
    return outcome.job_id


def finished(conn: redis.Redis, job_id: str) -> dict:
    job = fetch_job(conn, job_id)
    assert job.get_status() == "finished", job.latest_result().exc_string if job.latest_result() else None
    return job.return_value()


def events_of(org, job_id: str) -> list[dict]:
    return [e["fields"] for e in org.state.events
            if e["type"] == "Offload_Job_Event__e" and e["fields"]["Job_Id__c"] == job_id]


def test_a_floor_plan_gets_one_page_image_per_page_on_its_record(org, worker_env, redis_conn, run_jobs) -> None:
    listing = create_record(org, "Account", Name="5 Plan Street")
    source = upload_file(org, listing, floor_plan_pdf(2), "floor-plan.pdf")
    job_id = enqueue(redis_conn, {"contentVersionId": source}, "plan")
    run_jobs()
    result = finished(redis_conn, job_id)
    assert result["pageCount"] == 2 and result["renditionCount"] == 2
    assert result["pages"] == [{"page": 1, "widthPt": 595, "heightPt": 842},
                               {"page": 2, "widthPt": 595, "heightPt": 842}]
    made = sorted(renditions_of(org, source), key=lambda r: r["Offload_Variant__c"])
    assert [r["Offload_Variant__c"] for r in made] == ["page-1", "page-2"]
    for rendition in made:
        assert rendition["FirstPublishLocationId"] == listing
        assert rendition["Offload_Rendition_Key__c"] == f"{to_18(source)}:{rendition['Offload_Variant__c']}"
        assert rendition["PathOnClient"] == f"floor-plan-{rendition['Offload_Variant__c']}.jpg"
        image = Image.open(io.BytesIO(org.state.blob_path(rendition["Id"]).read_bytes()))
        assert image.format == "JPEG" and image.size == (1131, 1600)
    [event] = events_of(org, job_id)
    assert event["Status__c"] == "Succeeded" and json.loads(event["Result__c"])["pageCount"] == 2


def test_only_the_first_offload_pdf_max_pages_pages_are_rendered(org, worker_env, redis_conn, run_jobs,
                                                                 monkeypatch) -> None:
    from workers import runner

    monkeypatch.setenv("OFFLOAD_PDF_MAX_PAGES", "3")
    monkeypatch.setenv("OFFLOAD_PDF_VARIANTS", "page:800:jpeg,thumb:200:webp")
    runner.worker_settings.cache_clear()
    listing = create_record(org, "Account", Name="9 Brochure Lane")
    source = upload_file(org, listing, minimal_pdf(12), "brochure.pdf")
    result = finished(redis_conn, (enqueue(redis_conn, {"contentVersionId": source}, "brochure"), run_jobs())[0])
    assert result["pageCount"] == 12 and len(result["pages"]) == 3
    assert [r["variant"] for r in result["renditions"]] == ["page-1", "thumb-1", "page-2", "thumb-2",
                                                            "page-3", "thumb-3"]
    assert len(renditions_of(org, source)) == 6


def test_a_pdf_costs_the_org_four_api_calls(org, worker_env, redis_conn, run_jobs) -> None:
    """Composite (metadata + existing renditions), the download, every page image in one collections insert,
    the completion event: four, however many pages, as for a photo."""
    listing = create_record(org, "Account", Name="4 Calls Close")
    warm = enqueue(redis_conn, {"contentVersionId": upload_file(org, listing, minimal_pdf(1), "warm.pdf")}, "warm")
    run_jobs()  # warms the shared token (a login is not an API call, but keep it out of the count anyway)
    source = upload_file(org, listing, minimal_pdf(5), "five.pdf")
    job_id = enqueue(redis_conn, {"contentVersionId": source}, "four-calls")
    before = org.state.api_calls
    run_jobs()
    finished(redis_conn, warm)
    assert finished(redis_conn, job_id)["renditionCount"] == 5 and len(events_of(org, job_id)) == 1
    assert org.state.api_calls - before == 4


def test_running_it_twice_leaves_one_set(org, worker_env, redis_conn, run_jobs) -> None:
    listing = create_record(org, "Account", Name="2 Twice Terrace")
    source = upload_file(org, listing, minimal_pdf(2), "twice.pdf")
    enqueue(redis_conn, {"contentVersionId": source}, "once")
    run_jobs()
    first = {r["Offload_Variant__c"]: r["Id"] for r in renditions_of(org, source)}
    again = enqueue(redis_conn, {"contentVersionId": source}, "again")
    run_jobs()
    result = finished(redis_conn, again)
    assert {r["variant"]: r["contentVersionId"] for r in result["renditions"]} == first
    assert all(r["existing"] for r in result["renditions"]) and result["pageCount"] == 2
    assert len(renditions_of(org, source)) == 2


def test_page_images_another_attempt_commits_meanwhile_are_taken_not_made_again(org, worker_env, redis_conn,
                                                                                 run_jobs) -> None:
    """A killed or frozen attempt's upload commits after this attempt looked: Salesforce refuses the second
    copy (DUPLICATE_VALUE on the unique rendition key) and the job takes the one that is there."""
    listing = create_record(org, "Account", Name="8 Late Lane")
    source = upload_file(org, listing, minimal_pdf(2), "late.pdf")
    held = org.state.faults.add(FaultRule(pattern="*/composite/sobjects", method="POST", delay=1.5, count=1))
    earlier: list[str] = []

    def an_earlier_attempt_commits() -> None:
        wait_until(lambda: held.fired, 20, "the first upload to reach the org")
        for page in ("page-1", "page-2"):
            earlier.append(upload_file(org, listing, photo_jpeg(200, 280), f"earlier-{page}.jpg",
                                       Offload_Rendition_Of__c=source, Offload_Variant__c=page,
                                       Offload_Rendition_Key__c=f"{to_18(source)}:{page}"))

    committer = threading.Thread(target=an_earlier_attempt_commits)
    committer.start()
    job_id = enqueue(redis_conn, {"contentVersionId": source}, "late")
    run_jobs()
    committer.join()
    result = finished(redis_conn, job_id)
    assert [r["contentVersionId"] for r in result["renditions"]] == earlier
    assert all(r["existing"] for r in result["renditions"])
    assert sorted(r["Id"] for r in renditions_of(org, source)) == sorted(earlier)


def test_a_completion_event_salesforce_keeps_refusing_runs_the_job_again_without_new_page_images(
        org, worker_env, redis_conn, run_jobs) -> None:
    listing = create_record(org, "Account", Name="3 Retry Row")
    source = upload_file(org, listing, minimal_pdf(2), "retry.pdf")
    org.state.faults.add(FaultRule(pattern="*/sobjects/Offload_Job_Event__e", method="POST",
                                   error="SERVER_UNAVAILABLE", count=3))
    job_id = enqueue(redis_conn, {"contentVersionId": source}, "retry")
    run_jobs()
    job = fetch_job(redis_conn, job_id)
    assert job.get_status() == "scheduled" and job.meta["error_code"] == "COMPLETION_NOT_PUBLISHED"
    made = sorted(r["Id"] for r in renditions_of(org, source))
    queue = make_queue("pdf-preview", redis_conn)
    queue.scheduled_job_registry.remove(job)
    queue.enqueue_job(job)  # the retry, now rather than after its backoff
    run_jobs()
    assert finished(redis_conn, job_id)["renditionCount"] == 2
    assert sorted(r["Id"] for r in renditions_of(org, source)) == made
    assert [f["Status__c"] for f in events_of(org, job_id)] == ["Succeeded"]


@pytest.mark.parametrize(("name", "data", "reason"), [
    ("locked.pdf", lambda: minimal_pdf(1, user_password="open-sesame"), "protected by a password"),
    ("cut.pdf", lambda: minimal_pdf(3)[:500], "incomplete"),
    ("archive.pdf", lambda: minimal_pdf(10_000), "10000 pages"),
    ("photo.pdf", lambda: photo_jpeg(600, 400), "not a PDF: it looks like a JPEG image"),
])
def test_a_hostile_pdf_fails_once_as_document_rejected_and_the_next_file_is_done(
        org, worker_env, redis_conn, run_jobs, name, data, reason) -> None:
    listing = create_record(org, "Account", Name="1 Hostile Hill")
    bad = upload_file(org, listing, data(), name)
    good = upload_file(org, listing, minimal_pdf(1), "good.pdf")
    bad_job = enqueue(redis_conn, {"contentVersionId": bad}, f"bad-{name}")
    good_job = enqueue(redis_conn, {"contentVersionId": good}, f"good-{name}")
    run_jobs()
    job = fetch_job(redis_conn, bad_job)
    assert job.get_status() == "failed" and job.retries_left == 0 and job.meta["error_code"] == "DOCUMENT_REJECTED"
    [event] = events_of(org, bad_job)
    assert event["Status__c"] == "Failed" and event["Error__c"].startswith("DOCUMENT_REJECTED: ")
    assert reason in event["Error__c"]
    assert renditions_of(org, bad) == []
    assert finished(redis_conn, good_job)["renditionCount"] == 1, "nothing else is disturbed"


def test_a_pdf_over_the_byte_cap_is_refused_before_it_is_downloaded(org, worker_env, redis_conn, run_jobs,
                                                                    monkeypatch) -> None:
    from workers import runner

    monkeypatch.setenv("OFFLOAD_MAX_IMAGE_BYTES", "500")
    runner.worker_settings.cache_clear()
    listing = create_record(org, "Account", Name="6 Heavy Heights")
    source = upload_file(org, listing, minimal_pdf(2), "heavy.pdf")
    job_id = enqueue(redis_conn, {"contentVersionId": source}, "heavy")
    downloads = org.state.faults.add(FaultRule(pattern="re:/sobjects/ContentVersion/[^/]+/VersionData$",
                                               method="GET", delay=0.001, count=100))
    run_jobs()
    job = fetch_job(redis_conn, job_id)
    assert job.get_status() == "failed" and job.meta["error_code"] == "DOCUMENT_REJECTED"
    assert "OFFLOAD_MAX_IMAGE_BYTES" in job.latest_result().exc_string
    assert not downloads.fired, "refused on ContentSize, before the download"


def test_a_page_image_is_never_made_of_a_rendition(org, worker_env, redis_conn, run_jobs) -> None:
    listing = create_record(org, "Account", Name="7 Loop Lane")
    source = upload_file(org, listing, minimal_pdf(1), "loop.pdf", Offload_Rendition_Of__c="0685g00000XyZaBAAV",
                         Offload_Variant__c="page-1")
    result = finished(redis_conn, (enqueue(redis_conn, {"contentVersionId": source}, "loop"), run_jobs())[0])
    assert result["renditionCount"] == 0 and result["sourceContentVersionIds"] == []
    assert renditions_of(org, source) == []
