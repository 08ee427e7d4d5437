"""The resize-image job against the org emulator over HTTPS, with real Redis and an in-process RQ worker."""

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
from services.ops.jobview import describe_job
from services.processes import PROCESSES
from services.queue import Delivery, admit, fetch_job, make_queue
from services.sfids import to_18
from tests.support.images import photo_jpeg
from tests.support.orgtools import create_record, renditions_of, upload_file


def enqueue(conn: redis.Redis, payload: dict, key: str, **extra: object) -> str:
    """Enqueue a resize-image job as the receiver does (its envelope, through the intake script)."""
    process = PROCESSES["resize-image"]
    envelope = {**Envelope(process=process.name, payload=payload, source="callout",
                           record_id=process.record_id(payload)).to_json(), **extra}
    [outcome] = admit(conn, [Delivery(queue="resize-image", dedupe_key=key, envelope=envelope,
                                                   description="test", retries=2)], dedupe_ttl=600)
    return outcome.job_id


def test_a_photo_gets_three_renditions_on_its_record(org, worker_env, redis_conn, run_jobs) -> None:
    account = create_record(org, "Account", Name="12 Harbour View")
    source = upload_file(org, account, photo_jpeg(3000, 2000, orientation=6), "harbour.jpg")
    job_id = enqueue(redis_conn, {"contentVersionId": source}, "k1")
    run_jobs()
    job = fetch_job(redis_conn, job_id)
    assert job.get_status() == "finished", job.latest_result().exc_string if job.latest_result() else None
    result = job.return_value()
    assert result["renditionCount"] == 3
    made = renditions_of(org, source)
    assert sorted(r["Offload_Variant__c"] for r in made) == ["large", "medium", "thumb"]
    for rendition in made:
        assert rendition["FirstPublishLocationId"] == account
        data = org.state.blob_path(rendition["Id"]).read_bytes()
        image = Image.open(io.BytesIO(data))
        assert max(image.size) == {"large": 1600, "medium": 800, "thumb": 200}[rendition["Offload_Variant__c"]]
        assert image.size[1] > image.size[0], "EXIF orientation 6 makes a landscape file a portrait photo"
        assert "exif" not in image.info
    links = [link for link in org.state.all_records("ContentDocumentLink") if link["LinkedEntityId"] == account]
    assert len(links) == 4, "the source and its three renditions all show on the record"


def test_a_work_process_keeps_its_salesforce_connection_across_jobs(org, worker_env, redis_conn, run_jobs) -> None:
    """Each call on a new connection costs a TCP and a TLS handshake (round trips to Salesforce, CPU on both
    ends); one work process's jobs share one session and its kept-alive connection."""
    account = create_record(org, "Account", Name="3 Quay Street")
    photos = [upload_file(org, account, photo_jpeg(400, 300), f"quay-{i}.jpg") for i in range(3)]
    for i, source in enumerate(photos):
        enqueue(redis_conn, {"contentVersionId": source}, f"keep-{i}")
    seen, calls = set(org.state.client_connections), org.state.api_calls
    run_jobs()
    opened = {(host, port) for host, port in org.state.client_connections - seen if port}  # not in-process calls
    calls = org.state.api_calls - calls
    assert all(len(renditions_of(org, source)) == 3 for source in photos)
    assert calls >= 12, "four calls per photo at least"
    assert len(opened) == 1, f"{calls} calls of three jobs came on {len(opened)} connections, not one"


def test_the_completion_event_is_published(org, worker_env, redis_conn, run_jobs) -> None:
    account = create_record(org, "Account", Name="Event")
    source = upload_file(org, account, photo_jpeg(900, 600), "e.jpg")
    job_id = enqueue(redis_conn, {"contentVersionId": source}, "k-event")
    run_jobs()
    [event] = [e for e in org.state.events if e["type"] == "Offload_Job_Event__e"]
    fields = event["fields"]
    assert fields["Job_Id__c"] == job_id and fields["Status__c"] == "Succeeded"
    assert fields["Record_Id__c"] == source and json.loads(fields["Result__c"])["renditionCount"] == 3


def _events_of(org, job_id: str) -> list[dict]:
    return [e["fields"] for e in org.state.events
            if e["type"] == "Offload_Job_Event__e" and e["fields"]["Job_Id__c"] == job_id]


def test_one_503_on_the_completion_event_does_not_lose_it(org, worker_env, redis_conn, run_jobs) -> None:
    account = create_record(org, "Account", Name="Busy Event")
    source = upload_file(org, account, photo_jpeg(900, 600), "busy.jpg")
    org.state.faults.add(FaultRule(pattern="*/sobjects/Offload_Job_Event__e", method="POST",
                                   error="SERVER_UNAVAILABLE", count=1))
    job_id = enqueue(redis_conn, {"contentVersionId": source}, "k-busy-event")
    run_jobs()
    assert fetch_job(redis_conn, job_id).get_status() == "finished"
    assert [f["Status__c"] for f in _events_of(org, job_id)] == ["Succeeded"]


def test_a_completion_event_salesforce_keeps_refusing_makes_the_job_run_again(org, worker_env, redis_conn,
                                                                              run_jobs) -> None:
    """The work is done but nobody was told: the attempt fails COMPLETION_NOT_PUBLISHED and is retried, and
    the retry finds its renditions made (nothing uploaded twice) and publishes."""
    account = create_record(org, "Account", Name="Busier Event")
    source = upload_file(org, account, photo_jpeg(900, 600), "busier.jpg")
    org.state.faults.add(FaultRule(pattern="*/sobjects/Offload_Job_Event__e", method="POST",
                                   error="SERVER_UNAVAILABLE", count=3))
    job_id = enqueue(redis_conn, {"contentVersionId": source}, "k-busier-event")
    run_jobs()
    job = fetch_job(redis_conn, job_id)
    assert job.get_status() == "scheduled" and job.meta["error_code"] == "COMPLETION_NOT_PUBLISHED"
    assert _events_of(org, job_id) == [] and len(renditions_of(org, source)) == 3
    queue = make_queue("resize-image", redis_conn)
    queue.scheduled_job_registry.remove(job)
    queue.enqueue_job(job)  # the retry, now rather than after its backoff
    run_jobs()
    assert fetch_job(redis_conn, job_id).get_status() == "finished"
    assert [f["Status__c"] for f in _events_of(org, job_id)] == ["Succeeded"]
    assert len(renditions_of(org, source)) == 3


def test_running_the_same_request_twice_leaves_one_set(org, worker_env, redis_conn, run_jobs) -> None:
    """Asked by file and then by record: the second job finds the renditions and writes nothing."""
    account = create_record(org, "Account", Name="Twice")
    source = upload_file(org, account, photo_jpeg(1200, 900), "twice.jpg")
    enqueue(redis_conn, {"contentVersionId": source}, "by-file")
    run_jobs()
    second = enqueue(redis_conn, {"recordId": account}, "by-record")
    run_jobs()
    assert len(renditions_of(org, source)) == 3
    result = fetch_job(redis_conn, second).return_value()
    # The record job sees that its one file has every variant and does not even download it.
    assert result["sourceContentVersionIds"] == [] and result["renditionCount"] == 0 and not result["moreFiles"]


def test_a_small_photo_is_never_upscaled(org, worker_env, redis_conn, run_jobs) -> None:
    account = create_record(org, "Account", Name="Small")
    source = upload_file(org, account, photo_jpeg(640, 480), "small.jpg")
    enqueue(redis_conn, {"contentVersionId": source}, "small")
    run_jobs()
    sizes = {r["Offload_Variant__c"]: Image.open(org.state.blob_path(r["Id"])).size for r in renditions_of(org, source)}
    assert sizes == {"large": (640, 480), "medium": (640, 480), "thumb": (200, 150)}


def test_a_non_image_fails_permanently_without_retries(org, worker_env, redis_conn, run_jobs) -> None:
    account = create_record(org, "Account", Name="Pdf")
    source = upload_file(org, account, b"%PDF-1.7\n%fake\n", "contract.jpg")
    job_id = enqueue(redis_conn, {"contentVersionId": source}, "pdf")
    run_jobs()
    job = fetch_job(redis_conn, job_id)
    assert job.get_status() == "failed"
    assert job.retries_left == 0, "a permanent error must not be retried"
    assert "ImageRejected" in job.latest_result().exc_string
    assert renditions_of(org, source) == []
    [event] = [e for e in org.state.events if e["type"] == "Offload_Job_Event__e"]
    assert event["fields"]["Status__c"] == "Failed" and "IMAGE_REJECTED" in event["fields"]["Error__c"]
    assert describe_job(job)["attempts"] == 1, "it ran once; the retries it will never get are not attempts"


def test_an_unknown_file_is_skipped_with_a_reason_not_retried(org, worker_env, redis_conn, run_jobs) -> None:
    """Salesforce answers 404 NOT_FOUND alike for a deleted file and for one the integration user may not
    see (issue 14.5): either way nothing can be done, so the job ends skipped, without a retry or a bell."""
    job_id = enqueue(redis_conn, {"contentVersionId": "0685g00000ZZZZZAAA"[:15]}, "missing")
    run_jobs()
    job = fetch_job(redis_conn, job_id)
    assert job.get_status() == "finished" and job.retries_left == 2
    assert describe_job(job)["skipped"]["code"] == "FILE_NOT_VISIBLE"
    assert [e["Status__c"] for e in _events_of(org, job_id)] == ["Skipped"]


def test_a_busy_org_is_retried_later_not_failed(org, worker_env, redis_conn, run_jobs) -> None:
    """503 SERVER_UNAVAILABLE is transient: the job is scheduled for a retry with backoff."""
    account = create_record(org, "Account", Name="Busy")
    source = upload_file(org, account, photo_jpeg(800, 600), "busy.jpg")
    org.state.faults.add(FaultRule(pattern="*/sobjects/ContentVersion/*", error="SERVER_UNAVAILABLE", count=1))
    job_id = enqueue(redis_conn, {"contentVersionId": source}, "busy")
    run_jobs()
    job = fetch_job(redis_conn, job_id)
    assert job.get_status() == "scheduled"
    assert job.retries_left == 1
    assert renditions_of(org, source) == []


def test_an_expired_token_is_replaced_once(org, worker_env, redis_conn, run_jobs) -> None:
    account = create_record(org, "Account", Name="Expired")
    source = upload_file(org, account, photo_jpeg(800, 600), "exp.jpg")
    enqueue(redis_conn, {"contentVersionId": source}, "warm")
    run_jobs()
    org.state.tokens.expire_all()
    other = upload_file(org, account, photo_jpeg(800, 600, seed=2), "exp2.jpg")
    job_id = enqueue(redis_conn, {"contentVersionId": other}, "after-expiry")
    run_jobs()
    assert fetch_job(redis_conn, job_id).get_status() == "finished"
    assert len(renditions_of(org, other)) == 3


@pytest.mark.parametrize("bad", ["rendition"])
def test_a_rendition_is_never_resized(org, worker_env, redis_conn, run_jobs, bad) -> None:
    account = create_record(org, "Account", Name="Loop")
    source = upload_file(org, account, photo_jpeg(800, 600), "loop.jpg")
    fake = upload_file(org, account, photo_jpeg(400, 300), "loop-thumb.jpg",
                       Offload_Rendition_Of__c=source, Offload_Variant__c="thumb")
    job_id = enqueue(redis_conn, {"contentVersionId": fake}, "loop")
    run_jobs()
    assert fetch_job(redis_conn, job_id).return_value()["renditionCount"] == 0
    assert renditions_of(org, fake) == []


def test_the_orgs_api_usage_is_recorded_and_respected(org, worker_env, redis_conn, run_jobs) -> None:
    """Sforce-Limit-Info from real responses is kept; near the daily limit, jobs wait instead of calling."""
    from services.salesforce.client import ApiUsage, latest_usage, record_usage

    account = create_record(org, "Account", Name="Limits")
    source = upload_file(org, account, photo_jpeg(800, 600), "limits.jpg")
    enqueue(redis_conn, {"contentVersionId": source}, "limits-1")
    run_jobs()
    usage = latest_usage(redis_conn)
    assert usage is not None and usage.limit == org.state.config.daily_api_limit
    assert 0 < usage.used <= org.state.api_calls
    record_usage(redis_conn, ApiUsage(used=97, limit=100))
    calls_before = org.state.api_calls
    other = upload_file(org, account, photo_jpeg(800, 600, seed=5), "limits2.jpg")
    job_id = enqueue(redis_conn, {"contentVersionId": other}, "limits-2")
    run_jobs()
    job = fetch_job(redis_conn, job_id)
    assert job.get_status() == "scheduled", "a transient wait, retried later"
    assert "API_LIMIT_NEAR" in job.meta.get("error_code", "")
    assert org.state.api_calls == calls_before, "no Salesforce call is spent while the org is near its limit"


def test_a_pause_at_the_api_ceiling_spends_no_retry_and_suspends_the_workers(org, worker_env, redis_conn,
                                                                             run_jobs) -> None:
    """An org at 95 % used to fail every job within its retries (up to an hour); a pause is not a failure."""
    from rq.suspension import is_suspended, resume

    from services.salesforce.client import ApiUsage, record_usage

    account = create_record(org, "Account", Name="Paused")
    source = upload_file(org, account, photo_jpeg(800, 600), "paused.jpg")
    job_id = enqueue(redis_conn, {"contentVersionId": source}, "paused")
    queue = make_queue("resize-image", redis_conn)
    for _ in range(4):  # more pauses than the job has retries (2)
        record_usage(redis_conn, ApiUsage(used=97, limit=100))
        resume(redis_conn)
        run_jobs()
        job = fetch_job(redis_conn, job_id)
        assert job.get_status() == "scheduled" and job.retries_left == 2, "a pause spends no retry"
        assert job.meta["error_code"] == "API_LIMIT_NEAR"
        assert is_suspended(redis_conn), "queued jobs wait in the queue instead of each asking Salesforce"
        queue.scheduled_job_registry.remove(job)
        queue.enqueue_job(job)  # its next turn, now rather than after the pause
    assert renditions_of(org, source) == []


def test_a_stale_figure_at_the_ceiling_is_read_again_and_work_resumes(org, worker_env, redis_conn,
                                                                       run_jobs) -> None:
    """The allowance is a rolling 24 h window: a figure nobody refreshed (no calls while paused) is read again
    from /limits, once, and the jobs go on when the org has room."""
    import time

    from services.salesforce.client import ApiUsage, latest_usage, record_usage

    account = create_record(org, "Account", Name="Resumed")
    source = upload_file(org, account, photo_jpeg(800, 600), "resumed.jpg")
    record_usage(redis_conn, ApiUsage(used=97, limit=100, read_at=time.time() - 120))
    job_id = enqueue(redis_conn, {"contentVersionId": source}, "resumed")
    run_jobs()
    assert fetch_job(redis_conn, job_id).get_status() == "finished"
    usage = latest_usage(redis_conn)
    assert usage is not None and usage.limit == org.state.config.daily_api_limit and usage.fraction < 0.95


def test_a_stale_figure_still_at_the_ceiling_costs_one_limits_call_then_pauses(org, worker_env, redis_conn,
                                                                                run_jobs) -> None:
    import time

    from rq.suspension import resume

    from services.salesforce.client import ApiUsage, record_usage

    account = create_record(org, "Account", Name="Still Busy")
    sources = [upload_file(org, account, photo_jpeg(400, 300, seed=i), f"busy-{i}.jpg") for i in range(2)]
    org.state.api_calls = int(org.state.config.daily_api_limit * 0.99)  # the org's other integrations used it
    record_usage(redis_conn, ApiUsage(used=97, limit=100, read_at=time.time() - 120))
    calls_before = org.state.api_calls
    first = enqueue(redis_conn, {"contentVersionId": sources[0]}, "busy-0")
    run_jobs()
    assert org.state.api_calls == calls_before + 1, "one /limits call, no work"
    assert fetch_job(redis_conn, first).meta["error_code"] == "API_LIMIT_NEAR"
    resume(redis_conn)
    second = enqueue(redis_conn, {"contentVersionId": sources[1]}, "busy-1")
    run_jobs()
    assert fetch_job(redis_conn, second).meta["error_code"] == "API_LIMIT_NEAR"
    assert org.state.api_calls == calls_before + 1, "the fresh reading serves every process"


def test_a_fresh_token_refused_too_is_retried_not_failed(org, worker_env, redis_conn, run_jobs) -> None:
    """Two INVALID_SESSION_ID in a row (the cached token and a new one) used to fail the job for good."""
    account = create_record(org, "Account", Name="Sessions")
    source = upload_file(org, account, photo_jpeg(800, 600), "sessions.jpg")
    org.state.faults.add(FaultRule(pattern="*/composite", method="POST", error="INVALID_SESSION_ID",
                                   count=2))
    job_id = enqueue(redis_conn, {"contentVersionId": source}, "sessions")
    run_jobs()
    job = fetch_job(redis_conn, job_id)
    assert job.get_status() == "scheduled" and job.meta["error_code"] == "INVALID_SESSION_ID"


def test_without_credentials_the_outbound_messages_session_is_used(org, worker_env, redis_conn, run_jobs,
                                                                     monkeypatch) -> None:
    """No Connected App configured: the job calls back with the message's (encrypted, referenced) session."""
    from services.salesforce.sessions import store_session
    from workers import runner

    for name in ("SALESFORCE_CLIENT_ID", "SALESFORCE_CLIENT_SECRET"):
        monkeypatch.delenv(name)
    runner.worker_settings.cache_clear()
    account = create_record(org, "Account", Name="Session")
    source = upload_file(org, account, photo_jpeg(800, 600), "session.jpg")
    ref = store_session(redis_conn, worker_env["OFFLOAD_SECRET_KEY"], org.issue_token())
    partner_url = f"{org.base_url}/services/Soap/u/66.0/{org.org_id[:15]}"
    job_id = enqueue(redis_conn, {"recordId": account}, "session", sessionRef=ref, instanceUrl=partner_url)
    run_jobs()
    assert fetch_job(redis_conn, job_id).get_status() == "finished"
    assert len(renditions_of(org, source)) == 3
    untrusted = enqueue(redis_conn, {"recordId": account}, "session-elsewhere", sessionRef=ref,
                        instanceUrl="https://attacker.example.com/services/Soap/u/66.0/x")
    run_jobs()
    job = fetch_job(redis_conn, untrusted)
    assert job.get_status() == "failed" and job.meta["error_code"] == "UNTRUSTED_INSTANCE"


def test_a_decompression_bomb_fails_once_with_a_clear_message(org, worker_env, redis_conn, run_jobs) -> None:
    from tests.support.imagegen import png_bomb

    account = create_record(org, "Account", Name="Bomb")
    source = upload_file(org, account, png_bomb(30000, 30000), "innocent.png")
    job_id = enqueue(redis_conn, {"contentVersionId": source}, "bomb")
    run_jobs()
    job = fetch_job(redis_conn, job_id)
    assert job.get_status() == "failed" and job.retries_left == 0
    assert job.meta["error_code"] == "IMAGE_REJECTED"
    assert "OFFLOAD_MAX_PIXELS" in job.latest_result().exc_string
    assert renditions_of(org, source) == []


def test_a_job_reads_known_keys_and_never_scans_the_keyspace(org, worker_env, redis_conn, run_jobs) -> None:
    """A whole-keyspace SCAN per source file cost 0.8 s with 300k keys in Redis; known keys cost one MGET."""
    account = create_record(org, "Account", Name="3 Scan Street")
    source = upload_file(org, account, photo_jpeg(800, 600), "scan.jpg")
    job_id = enqueue(redis_conn, {"contentVersionId": source}, "no-scan")
    redis_conn.config_resetstat()
    run_jobs()
    assert fetch_job(redis_conn, job_id).get_status() == "finished"
    commands = redis_conn.info("commandstats")
    assert "cmdstat_scan" not in commands and "cmdstat_keys" not in commands


def test_renditions_another_attempt_commits_while_this_one_renders_are_taken_not_made_again(
        org, worker_env, redis_conn, run_jobs) -> None:
    """The case no Redis mark can see: a killed or frozen attempt's uploads commit after this attempt asked
    "which variants exist?". Salesforce refuses the second copy (DUPLICATE_VALUE on the unique rendition
    key) and the job takes the one that is there."""
    account = create_record(org, "Account", Name="4 Settle Lane")
    source = upload_file(org, account, photo_jpeg(800, 600), "settle.jpg")
    held = org.state.faults.add(FaultRule(pattern="*/composite/sobjects", method="POST", delay=1.5, count=1))
    earlier: list[str] = []

    def an_earlier_attempt_commits() -> None:
        wait_until(lambda: held.fired, 20, "the first upload to reach the org")
        for variant in ("large", "medium", "thumb"):
            earlier.append(upload_file(org, account, photo_jpeg(200, 150), f"earlier-{variant}.jpg",
                                       Offload_Rendition_Of__c=source, Offload_Variant__c=variant,
                                       Offload_Rendition_Key__c=f"{to_18(source)}:{variant}"))

    committer = threading.Thread(target=an_earlier_attempt_commits)
    committer.start()
    job_id = enqueue(redis_conn, {"contentVersionId": source}, "late")
    run_jobs()
    committer.join()
    job = fetch_job(redis_conn, job_id)
    assert job.get_status() == "finished", job.latest_result().exc_string if job.latest_result() else None
    result = job.return_value()
    assert [r["contentVersionId"] for r in result["renditions"]] == earlier
    assert all(r["existing"] for r in result["renditions"])
    assert sorted(r["Id"] for r in renditions_of(org, source)) == sorted(earlier)


def test_one_corrupt_file_does_not_stop_a_record_job(org, worker_env, redis_conn, run_jobs) -> None:
    """The record's other files get their renditions; the result names the refused one and why."""
    listing = create_record(org, "Account", Name="9 Mixed Bag")
    first = upload_file(org, listing, photo_jpeg(900, 600), "front.jpg")
    broken = upload_file(org, listing, b"\xff\xd8\xff\xe0 not really a jpeg", "broken.jpg")
    last = upload_file(org, listing, photo_jpeg(600, 900), "back.jpg")
    job_id = enqueue(redis_conn, {"recordId": listing}, "mixed")
    run_jobs()
    job = fetch_job(redis_conn, job_id)
    assert job.get_status() == "finished", job.latest_result().exc_string if job.latest_result() else None
    result = job.return_value()
    assert len(renditions_of(org, first)) == 3 and len(renditions_of(org, last)) == 3
    assert renditions_of(org, broken) == []
    assert [(r["contentVersionId"], r["code"]) for r in result["refused"]] == [(broken, "IMAGE_REJECTED")]
    assert sorted(result["sourceContentVersionIds"]) == sorted([first, last])


def test_a_long_title_and_file_name_are_trimmed_to_the_field_lengths(org, worker_env, redis_conn, run_jobs) -> None:
    """Title + " (large, 1600x1067)" over 255 characters failed STRING_TOO_LONG on every retry."""
    listing = create_record(org, "Account", Name="1 Long Name Road")
    name = "a" * 250 + ".jpg"
    source = upload_file(org, listing, photo_jpeg(900, 600), name, Title="t" * 255)
    job_id = enqueue(redis_conn, {"contentVersionId": source}, "long-title")
    run_jobs()
    job = fetch_job(redis_conn, job_id)
    assert job.get_status() == "finished", job.latest_result().exc_string if job.latest_result() else None
    made = renditions_of(org, source)
    assert len(made) == 3
    for rendition in made:
        assert len(rendition["Title"]) <= 255 and rendition["Title"].endswith(")")
        assert rendition["PathOnClient"].endswith((".jpg", ".webp"))


def test_a_record_job_takes_at_most_offload_max_files_per_record(org, worker_env, redis_conn, run_jobs,
                                                                  monkeypatch) -> None:
    """One notification must not fan out without bound: the oldest files first, the rest on the next job."""
    from workers import runner

    monkeypatch.setenv("OFFLOAD_MAX_FILES_PER_RECORD", "2")
    runner.worker_settings.cache_clear()
    listing = create_record(org, "Account", Name="3 Many Photos Lane")
    files = [upload_file(org, listing, photo_jpeg(600, 400), f"photo-{n}.jpg") for n in range(3)]
    first = enqueue(redis_conn, {"recordId": listing}, "capped-1")
    run_jobs()
    result = fetch_job(redis_conn, first).return_value()
    assert result["moreFiles"] is True and result["sourceContentVersionIds"] == files[:2]
    assert [len(renditions_of(org, f)) for f in files] == [3, 3, 0]
    second = enqueue(redis_conn, {"recordId": listing}, "capped-2")
    run_jobs()
    result = fetch_job(redis_conn, second).return_value()
    assert [len(renditions_of(org, f)) for f in files] == [3, 3, 3]
    assert result["moreFiles"] is False


def _agent(org) -> str:
    return org.state.insert("User", {"Username": "agent@example.com", "LastName": "Agent", "IsActive": True})["Id"]


def test_a_file_from_a_personal_library_shared_with_a_record_gets_its_renditions_on_the_record(
        org, worker_env, redis_conn, run_jobs) -> None:
    """Uploaded on the Files tab (published to the agent's library), then shared with the listing: the
    renditions go to the listing; publishing them into the agent's library is refused by Salesforce."""
    agent = _agent(org)
    listing = create_record(org, "Account", Name="7 Shared Lane")
    source = upload_file(org, agent, photo_jpeg(900, 600), "shared.jpg", OwnerId=agent)
    document = org.state.get_record(source)[1]["ContentDocumentId"]
    org.state.insert("ContentDocumentLink", {"ContentDocumentId": document, "LinkedEntityId": listing,
                                             "ShareType": "V", "Visibility": "AllUsers"})
    job_id = enqueue(redis_conn, {"contentVersionId": source}, "shared")
    run_jobs()
    job = fetch_job(redis_conn, job_id)
    assert job.get_status() == "finished", job.latest_result().exc_string if job.latest_result() else None
    made = renditions_of(org, source)
    assert len(made) == 3 and {r["FirstPublishLocationId"] for r in made} == {listing}


@pytest.mark.parametrize("owner", ["agent", "integration user"])
def test_a_file_in_a_personal_library_only_is_skipped_not_failed(owner, org, worker_env, redis_conn,
                                                                 run_jobs) -> None:
    """No failure bell for the uploader: the job finishes with a skip reason and a Skipped event. Another
    user's file is invisible to the integration user (FILE_NOT_VISIBLE); its own has no record (PERSONAL_FILE)."""
    user = _agent(org) if owner == "agent" else org.state.user_id
    source = upload_file(org, user, photo_jpeg(900, 600), "mine.jpg", OwnerId=user)
    job_id = enqueue(redis_conn, {"contentVersionId": source}, f"personal-{owner}")
    run_jobs()
    job = fetch_job(redis_conn, job_id)
    assert job.get_status() == "finished" and renditions_of(org, source) == []
    expected = "FILE_NOT_VISIBLE" if owner == "agent" else "PERSONAL_FILE"
    view = describe_job(job)
    assert view["skipped"]["code"] == expected and "Share it with a record" in view["skipped"]["reason"]
    [event] = _events_of(org, job_id)
    assert event["Status__c"] == "Skipped" and event["Error__c"].startswith(expected)


def test_a_photo_costs_the_org_four_api_calls(org, worker_env, redis_conn, run_jobs) -> None:
    """Issue 16: metadata + existing renditions (one Composite), the download, the three renditions (one
    collections insert) and the completion event. Counted by the org, as its daily allowance counts them."""
    account = create_record(org, "Account", Name="4 Calls Court")
    source = upload_file(org, account, photo_jpeg(1200, 800), "four.jpg")
    job_id = enqueue(redis_conn, {"contentVersionId": source}, "four-calls")
    run_jobs()  # warms the shared token: a login is not an API call, but keep it out of the count anyway
    other = upload_file(org, account, photo_jpeg(1200, 800, seed=3), "four-b.jpg")
    second = enqueue(redis_conn, {"contentVersionId": other}, "four-calls-b")
    before = org.state.api_calls
    run_jobs()
    assert fetch_job(redis_conn, job_id).get_status() == "finished"
    assert fetch_job(redis_conn, second).get_status() == "finished"
    assert len(renditions_of(org, other)) == 3 and len(_events_of(org, second)) == 1
    assert org.state.api_calls - before == 4


def test_near_the_orgs_daily_file_cap_jobs_pause_instead_of_taking_the_rest(org, worker_env, redis_conn,
                                                                            run_jobs) -> None:
    """Issue 16: ContentPublicationLimit (2,500 a day on Developer Edition) counts renditions. With the org's
    users having used most of it, a job reads /limits once, pauses without uploading or spending a retry,
    and tells the operator why; when the window has rolled on, the next reading lets it through."""
    import time

    from rq.suspension import is_suspended, resume

    from services import keys
    from services.ops.jobs import pause_status

    org.state.config.content_publication_limit = 100
    account = create_record(org, "Account", Name="Cap Court")
    source = upload_file(org, account, photo_jpeg(800, 600), "cap.jpg")
    for _ in range(92):  # the org's users' uploads today: 7 left, the reserve is 5, a photo needs 3
        org.state.count_content_publication()
    job_id = enqueue(redis_conn, {"contentVersionId": source}, "cap-1")
    run_jobs()
    job = fetch_job(redis_conn, job_id)
    assert job.get_status() == "scheduled" and job.retries_left == 2, "a pause spends no retry"
    assert job.meta["error_code"] == "CONTENT_PUBLICATION_LIMIT_NEAR"
    assert renditions_of(org, source) == [] and org.state.content_publications_remaining() == 7
    assert is_suspended(redis_conn)
    pause = pause_status(redis_conn)
    assert pause is not None and "CONTENT_PUBLICATION_LIMIT_NEAR" in pause.reason and "ContentPublicationLimit 100" \
        in pause.reason

    org.state.content_publications.clear()  # 24 h later: the window has rolled on
    redis_conn.hset(keys.CONTENT_PUBLICATIONS, "at", time.time() - 3600)  # and the reading is that old
    resume(redis_conn)
    queue = make_queue("resize-image", redis_conn)
    queue.scheduled_job_registry.remove(job)
    queue.enqueue_job(job)
    run_jobs()
    assert fetch_job(redis_conn, job_id).get_status() == "finished"
    assert len(renditions_of(org, source)) == 3


def test_a_cap_reached_mid_day_by_the_orgs_users_pauses_the_job_it_refuses(org, worker_env, redis_conn,
                                                                           run_jobs) -> None:
    """The estimate is an hour old and the org's users took the rest meanwhile: Salesforce refuses the
    renditions for the cap. The job pauses (not fails), the estimate drops to zero for every worker, and
    nothing half-made is left behind (the insert was all or none)."""
    from rq.suspension import is_suspended

    from services.salesforce import allowance

    org.state.config.content_publication_limit = 100
    account = create_record(org, "Account", Name="Mid Day")
    first = upload_file(org, account, photo_jpeg(800, 600), "mid-1.jpg")
    enqueue(redis_conn, {"contentVersionId": first}, "mid-1")
    run_jobs()
    assert len(renditions_of(org, first)) == 3
    estimate = allowance.estimate(redis_conn)
    # The reading (taken after the source's upload) less what the job published.
    assert estimate is not None and estimate.remaining == 100 - 1 - 3

    second = upload_file(org, account, photo_jpeg(800, 600, seed=9), "mid-2.jpg")
    while org.state.content_publications_remaining() > 1:
        org.state.count_content_publication()  # the users' afternoon
    calls_before = org.state.api_calls
    job_id = enqueue(redis_conn, {"contentVersionId": second}, "mid-2")
    run_jobs()
    job = fetch_job(redis_conn, job_id)
    assert job.get_status() == "scheduled" and job.retries_left == 2
    assert job.meta["error_code"] == "CONTENT_PUBLICATION_LIMIT_NEAR"
    assert renditions_of(org, second) == []
    assert is_suspended(redis_conn)
    estimate = allowance.estimate(redis_conn)
    assert estimate is not None and estimate.remaining == 0
    assert org.state.api_calls - calls_before == 3, "lookup, download and the refused insert; no event, no retry"
