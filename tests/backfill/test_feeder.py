"""The feeder step by step, against the org emulator over HTTPS and real Redis, jobs run by an in-process rq worker."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from services.backfill import QUEUE, cursor, feeder, runs
from services.backfill.selection import Selection
from services.errors import BackfillAlreadyRunning, BackfillSelectionInvalid
from services.salesforce.client import integration_client
from services.settings import Settings
from services.variants import DEFAULT_VARIANTS_SPEC, parse_variants
from tests.support.images import photo_jpeg
from tests.support.orgtools import create_record, renditions_of, upload_file


def start(connection: redis.Redis, settings: Settings, selection: Selection, **options: Any) -> runs.Run:
    total = integration_client(settings, connection).count(selection.count_soql())
    run = runs.new_run(selection, mode=cursor.choose_mode(total), total=total, rate=options.get("rate"),
                       max_files=options.get("max_files"))
    runs.start(connection, run)
    return run


def step(connection: redis.Redis, settings: Settings) -> feeder.Step | None:
    return feeder.feed(connection, settings, lambda: integration_client(settings, connection))


def drain(connection: redis.Redis, settings: Settings, run_jobs: Any, run_id: str, steps: int = 50) -> runs.Run:
    """Feed and work until the run ends."""
    for _ in range(steps):
        step(connection, settings)
        run_jobs([QUEUE])
        found = runs.load(connection, run_id)
        assert found is not None
        if not found.active:
            return found
    raise AssertionError(f"run {run_id} did not end in {steps} steps")


@pytest.fixture
def photos(org: Any) -> dict[str, list[str]]:
    tiny = photo_jpeg(64, 48)
    account = create_record(org, "Account", Name="Listing")
    return {"account": [upload_file(org, account, tiny, f"p{n}.jpg") for n in range(30)],
            "user": [upload_file(org, org.state.user_id, tiny, "me.jpg")]}


def test_a_run_renders_every_candidate_once_and_a_second_run_queues_nothing(
        redis_conn: redis.Redis, settings: Settings, run_jobs: Any, org: Any, photos: dict[str, list[str]]) -> None:
    selection = Selection.parse("resize-image", "Account")
    run = start(redis_conn, settings, selection)
    assert run.total == 30 and run.mode == "rest"
    ended = drain(redis_conn, settings, run_jobs, run.id)
    assert ended.state == runs.FINISHED, ended.reason
    assert ended.counts.done == 30 and ended.counts.failed == 0
    for photo in photos["account"]:
        assert sorted(r["Offload_Variant__c"] for r in renditions_of(org, photo)) == ["large", "medium", "thumb"]
    assert not renditions_of(org, photos["user"][0])

    second = start(redis_conn, settings, selection)
    ended = drain(redis_conn, settings, run_jobs, second.id)
    assert ended.state == runs.FINISHED
    assert ended.counts.enqueued == 0 and ended.counts.already_rendered == 30


def test_a_file_a_live_upload_queued_is_not_queued_again(
        redis_conn: redis.Redis, settings: Settings, run_jobs: Any, photos: dict[str, list[str]]) -> None:
    from services.processes import PROCESSES
    from services.queue import Delivery, admit
    from services.queue.dedupe import payload_key

    process = PROCESSES["resize-image"]
    live = photos["account"][0]
    payload = {"contentVersionId": live}
    [queued] = admit(redis_conn, [Delivery(queue=process.queue, dedupe_key=payload_key(None, process.name, payload),
                                           envelope={"process": process.name, "payload": payload, "source": "callout"},
                                           description="live")], dedupe_ttl=600)
    assert queued is not None and not queued.duplicate
    run = start(redis_conn, settings, Selection.parse("resize-image", "Account"))
    step(redis_conn, settings)
    found = runs.load(redis_conn, run.id)
    assert found is not None
    assert found.counts.already_queued == 1
    assert found.counts.enqueued == min(feeder.HIGH_WATER, 30) - 1


def test_rate_and_max_files_bound_what_one_step_queues(
        redis_conn: redis.Redis, settings: Settings, photos: dict[str, list[str]]) -> None:
    run = start(redis_conn, settings, Selection.parse("resize-image"), rate=7, max_files=12)
    step(redis_conn, settings)
    first = runs.load(redis_conn, run.id)
    assert first is not None and first.counts.enqueued == 7, "a minute's worth at most, at once"
    step(redis_conn, settings)
    assert runs.load(redis_conn, run.id).counts.enqueued == 7, "no tokens yet"  # type: ignore[union-attr]
    redis_conn.hset(run.key, "tokens_at", float(redis_conn.hget(run.key, "tokens_at")) - 120)
    step(redis_conn, settings)
    assert runs.load(redis_conn, run.id).counts.enqueued == 12, "--max-files caps it"  # type: ignore[union-attr]


def test_a_step_that_died_before_trimming_its_pending_list_does_not_count_or_queue_twice(
        redis_conn: redis.Redis, settings: Settings, photos: dict[str, list[str]]) -> None:
    run = start(redis_conn, settings, Selection.parse("resize-image", "Account"))
    step(redis_conn, settings)
    taken = _queued_ids(redis_conn)
    assert len(taken) == min(feeder.HIGH_WATER, 30)
    # As if the step had died after queueing and before trimming: its files are back on the pending list, and
    # the workers have taken the jobs off the queue meanwhile (they still exist).
    redis_conn.lpush(runs.pending_key(run.id), *reversed(taken))
    redis_conn.delete(f"rq:queue:{QUEUE}")
    step(redis_conn, settings)
    again = runs.load(redis_conn, run.id)
    assert again is not None
    assert make_count(redis_conn) == 0, "nothing queued twice"
    assert again.counts.enqueued == len(taken) and again.counts.already_queued == 0, again.counts
    step(redis_conn, settings)
    assert runs.load(redis_conn, run.id).counts.enqueued == 30  # type: ignore[union-attr]


def make_count(connection: redis.Redis) -> int:
    return int(connection.llen(f"rq:queue:{QUEUE}"))


def _queued_ids(connection: redis.Redis) -> list[str]:
    from services.envelope import Envelope
    from services.queue import fetch_job

    ids = []
    for job_id in connection.lrange(f"rq:queue:{QUEUE}", 0, -1):
        job = fetch_job(connection, job_id.decode())
        envelope = Envelope.of_job_args(job.args) if job is not None else None
        assert envelope is not None and envelope.record_id
        ids.append(envelope.record_id)
    return ids


def test_feeding_holds_near_the_org_api_allowance_and_carries_on_when_it_frees_up(
        redis_conn: redis.Redis, settings: Settings, org: Any, photos: dict[str, list[str]]) -> None:
    run = start(redis_conn, settings, Selection.parse("resize-image"))
    limit = org.state.config.daily_api_limit
    org.state.api_calls = int(limit * 0.85)  # other integrations used 85 % today
    integration_client(settings, redis_conn).refresh_usage()
    held = step(redis_conn, settings)
    assert held is not None and held.held.startswith("API_MARGIN"), held
    assert make_count(redis_conn) == 0
    org.state.api_calls = 0  # the rolling window freed up
    integration_client(settings, redis_conn).refresh_usage()
    fed = step(redis_conn, settings)
    assert fed is not None and fed.queued > 0 and not fed.held
    assert runs.load(redis_conn, run.id).reason == ""  # type: ignore[union-attr]


def test_one_run_at_a_time_and_cancel_makes_its_queued_jobs_skip(
        redis_conn: redis.Redis, settings: Settings, run_jobs: Any, org: Any, photos: dict[str, list[str]]) -> None:
    selection = Selection.parse("resize-image")
    run = start(redis_conn, settings, selection)
    with pytest.raises(BackfillAlreadyRunning):
        start(redis_conn, settings, selection)
    step(redis_conn, settings)
    assert make_count(redis_conn) > 0
    runs.cancel(redis_conn)
    run_jobs([QUEUE])
    ended = runs.load(redis_conn, run.id)
    assert ended is not None and ended.state == runs.CANCELLED
    assert ended.counts.skipped == ended.counts.enqueued > 0 and ended.counts.done == 0
    assert not any(renditions_of(org, p) for p in photos["account"])
    assert runs.active(redis_conn) is None


@pytest.mark.parametrize(("args", "message"), [
    (("crop-video",), "No process named"),
    (("resize-image", "Account; DELETE"), "not an object API name"),
    (("resize-image", None, "2024-13-01"), "not a date"),
    (("resize-image", None, "2024-05-01", "2024-04-01"), "before --since"),
])
def test_a_malformed_selection_says_what_to_change(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(BackfillSelectionInvalid, match=message):
        Selection.parse(*args)


def test_the_selection_is_the_soql_salesforce_runs() -> None:
    selection = Selection.parse("resize-image", "Listing__c", "2024-01-01", "2024-01-31")
    where = selection.where()
    assert "IsLatest = true" in where and "Offload_Rendition_Of__c = null" in where
    assert "CreatedDate >= 2024-01-01T00:00:00Z" in where and "CreatedDate < 2024-02-01T00:00:00Z" in where
    assert "FirstPublishLocationId IN (SELECT Id FROM Listing__c)" in where
    assert selection.soql(after_id="068000000000001AAA").endswith("AND Id > '068000000000001AAA' ORDER BY Id")


def _seeded(org: Any, **options: Any) -> Any:
    from devkit.org.seed import seed_files

    return seed_files(org, **options)


def _images(seeded: Any) -> set[str]:
    return {i for kind in ("jpg", "jpeg", "png") for i in seeded.by_kind.get(kind, [])}


def read_through(connection: redis.Redis, settings: Settings, run_id: str, steps: int = 100) -> runs.Run:
    """Step until the cursor has read everything and every file is queued; the queue is emptied after each step, as
    busy workers would take the jobs (the jobs themselves are the end-to-end test's business)."""
    for _ in range(steps):
        step(connection, settings)
        connection.delete(f"rq:queue:{QUEUE}")
        found = runs.load(connection, run_id)
        assert found is not None and found.active, found
        if found.cursor.get("done") and found.counts.pending == 0:
            return found
    raise AssertionError(f"run {run_id} did not read through in {steps} steps")


def test_rest_pages_are_followed_by_nextrecordsurl_and_an_expired_locator_reads_on_after_the_last_id(
        redis_conn: redis.Redis, settings: Settings, org: Any) -> None:
    seeded = _seeded(org, records=3, files_per_record=200, rendered_fraction=0.2)
    org.state.config = __import__("dataclasses").replace(org.state.config, query_batch_size=200)
    run = start(redis_conn, settings, Selection.parse("resize-image"))
    step(redis_conn, settings)
    first = runs.load(redis_conn, run.id)
    assert first is not None and first.cursor["next"], "a page of 200, and a nextRecordsUrl for the rest"
    assert first.counts.read == 200
    org.state.query_cursors.clear()  # Salesforce let the locator go (the run was paused too long)
    read = read_through(redis_conn, settings, run.id)
    images = _images(seeded)
    assert read.counts.read == len(images), "every candidate read once, none twice"
    assert read.counts.already_rendered == len(seeded.rendered_source_ids)
    assert read.counts.enqueued == len(images - set(seeded.rendered_source_ids))


def test_a_large_org_is_read_with_a_bulk_query_job_page_by_page(
        redis_conn: redis.Redis, settings: Settings, run_jobs: Any, org: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    seeded = _seeded(org, records=3, files_per_record=40, mix={"jpg": 1}, rendered_fraction=0.25)
    monkeypatch.setattr(cursor, "BULK_PAGE", 50)
    run = runs.new_run(Selection.parse("resize-image", "Account"), mode="bulk", total=120, rate=None, max_files=None)
    runs.start(redis_conn, run)
    step(redis_conn, settings)
    created = runs.load(redis_conn, run.id)
    assert created is not None and created.cursor["job"].startswith("750") and created.counts.read == 0
    read = read_through(redis_conn, settings, run.id)
    assert read.counts.read == 120
    assert read.counts.already_rendered == len(seeded.rendered_source_ids)
    assert read.counts.enqueued == 120 - len(seeded.rendered_source_ids)


def test_since_and_until_are_whole_utc_days_of_createddate(
        redis_conn: redis.Redis, settings: Settings, org: Any) -> None:
    _seeded(org, records=1, files_per_record=100, mix={"jpg": 1}, created_from="2025-01-01T00:00:00Z",
            created_until="2025-04-11T00:00:00Z")  # one file a day
    sf = integration_client(settings, redis_conn)
    assert sf.count(Selection.parse("resize-image", None, "2025-02-01", "2025-02-28").count_soql()) == 28
    assert sf.count(Selection.parse("resize-image", None, "2025-04-01").count_soql()) == 10


def test_feeding_holds_before_the_org_daily_file_cap_but_a_run_with_nothing_to_queue_still_ends(
        redis_conn: redis.Redis, settings: Settings, run_jobs: Any, org: Any, photos: dict[str, list[str]]) -> None:
    import dataclasses

    selection = Selection.parse("resize-image", "Account")
    assert drain(redis_conn, settings, run_jobs, start(redis_conn, settings, selection).id).state == runs.FINISHED
    # 31 uploads and 90 renditions published today. A cap of 200 leaves 79: a step that reserved room for a
    # batch (30 files x 3) would hold under the 25 % reserve, but a run with nothing to queue reads to its end.
    org.state.config = dataclasses.replace(org.state.config, content_publication_limit=200)
    integration_client(settings, redis_conn).refresh_usage()
    nothing_new = start(redis_conn, settings, selection)
    assert drain(redis_conn, settings, run_jobs, nothing_new.id).state == runs.FINISHED
    # 160 leaves 38, under the reserve of 40 even for one new photo.
    org.state.config = dataclasses.replace(org.state.config, content_publication_limit=160)
    integration_client(settings, redis_conn).refresh_usage()
    upload_file(org, create_record(org, "Account", Name="New"), photo_jpeg(64, 48, seed=2), "new.jpg")
    run = start(redis_conn, settings, selection)
    held = step(redis_conn, settings)
    assert held is not None and held.held.startswith("FILE_MARGIN"), held
    assert make_count(redis_conn) == 0
    assert "ContentPublicationLimit 160" in runs.load(redis_conn, run.id).reason  # type: ignore[union-attr]


def test_a_run_whose_jobs_vanished_without_an_outcome_still_ends_and_says_so(
        redis_conn: redis.Redis, settings: Settings, photos: dict[str, list[str]]) -> None:
    run = start(redis_conn, settings, Selection.parse("resize-image", "Account"))
    read = read_through(redis_conn, settings, run.id)  # the queue emptied behind it: jobs no worker will report
    assert read.counts.in_flight == 30
    step(redis_conn, settings)
    ended = runs.load(redis_conn, run.id)
    assert ended is not None and ended.state == runs.FINISHED
    assert "30 jobs ended without reporting an outcome" in ended.reason


def test_a_variant_added_to_the_settings_reaches_the_files_made_before_it(
        redis_conn: redis.Redis, settings: Settings, run_jobs: Any, org: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator adds a size to OFFLOAD_IMAGE_VARIANTS: a backfill gives every old photo that size only."""
    from workers import runner

    seeded = _seeded(org, records=2, files_per_record=6, mix={"jpg": 1}, rendered_fraction=1.0)
    photos = sorted(_images(seeded))
    assert sorted(seeded.rendered_source_ids) == photos
    before = {p: {r["Offload_Variant__c"]: r["Id"] for r in renditions_of(org, p)} for p in photos}

    unchanged = drain(redis_conn, settings, run_jobs, start(redis_conn, settings, Selection.parse("resize-image")).id)
    assert unchanged.counts.enqueued == 0 and unchanged.counts.already_rendered == len(photos)

    spec = f"{DEFAULT_VARIANTS_SPEC},xl:120:jpeg"
    monkeypatch.setenv("OFFLOAD_IMAGE_VARIANTS", spec)
    runner.worker_settings.cache_clear()  # the in-process worker reads its settings once, as a dyno does
    wider = settings.replace(image_variants=parse_variants(spec))
    ended = drain(redis_conn, wider, run_jobs, start(redis_conn, wider, Selection.parse("resize-image")).id)
    assert ended.state == runs.FINISHED, ended.reason
    assert ended.counts.enqueued == len(photos) and ended.counts.done == len(photos), ended.counts
    for photo in photos:
        after = {r["Offload_Variant__c"]: r["Id"] for r in renditions_of(org, photo)}
        assert sorted(after) == ["large", "medium", "thumb", "xl"]
        assert {k: after[k] for k in before[photo]} == before[photo], "the old renditions are the same files"
