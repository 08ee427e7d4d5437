"""The rq dashboard at /rq: off without a password, Basic auth, POST-only changes, JSON jobs, no secrets."""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from typing import Any

import pytest
import redis
from rq import Worker
from rq.job import Job, requeue_job

from services.queue import SERIALIZER, fetch_job
from services.receiver import dashboard
from tests.support.ops import ADMIN, PASSWORD, QUEUE, SESSION_REF, basic, envelope


def test_without_a_password_every_dashboard_url_says_it_is_off_and_how_to_turn_it_on(off_client: Any) -> None:
    for path in ("/rq", "/rq/", "/rq/0/data/queues.json", "/rq/static/css/main.css"):
        response = off_client.get(path, headers=ADMIN)
        assert response.status_code == 404, path
        error = response.get_json()["error"]
        assert error["code"] == "DASHBOARD_OFF"
        assert "OFFLOAD_DASHBOARD_PASSWORD" in error["message"]
    assert off_client.post("/rq/requeue/resize-image", headers=ADMIN).status_code == 404


@pytest.mark.parametrize("headers", [
    {},
    basic("admin", "wrong-password"),
    basic("root", PASSWORD),
    basic("admin", PASSWORD + "x"),
    basic("admin", "pässwörd"),  # non-ASCII must not crash compare_digest
    {"Authorization": "Bearer " + PASSWORD},
])
def test_every_dashboard_url_needs_the_admin_password(ops_client: Any, headers: dict[str, str]) -> None:
    for path in ("/rq", "/rq/", "/rq/0/data/queues.json", "/rq/static/css/main.css", "/rq/no-such-page"):
        response = ops_client.get(path, headers=headers)
        assert response.status_code == 401, path
        assert response.headers["WWW-Authenticate"].startswith('Basic realm="Offload operations"')
        assert response.get_json()["error"]["code"] == "UNAUTHENTICATED"
    assert ops_client.post("/rq/requeue/resize-image", headers=headers).status_code == 401


def test_the_right_password_opens_the_dashboard(ops_client: Any) -> None:
    page = ops_client.get("/rq/", headers=ADMIN)
    assert page.status_code == 200
    assert b"RQ dashboard" in page.data
    assert ops_client.get("/rq/static/css/main.css", headers=ADMIN).status_code == 200
    assert ops_client.get("/rq/0/data/queues.json", headers=ADMIN).get_json() == {"queues": []}


def test_user_and_password_are_both_compared_in_constant_time(ops_client: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = dashboard.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(dashboard.hmac, "compare_digest", spy)
    ops_client.get("/rq/", headers=basic("nobody", "x"))  # wrong user: the password is still compared
    assert [type(a) for a, _ in calls] == [bytes, bytes]
    assert calls[1][1] == PASSWORD.encode()
    calls.clear()
    ops_client.get("/rq/")  # no credentials at all: same two comparisons
    assert len(calls) == 2


def test_the_dashboard_uses_the_receivers_redis_client(ops_app: Any, redis_conn: redis.Redis) -> None:
    assert ops_app.redis_conn is redis_conn
    client = ops_app.test_client()
    client.get("/rq/0/data/queues.json", headers=ADMIN)
    assert ops_app.redis_conn is redis_conn  # not replaced by a new client per request
    assert client.get("/rq/1/data/queues.json", headers=ADMIN).status_code == 404


def test_redis_credentials_are_not_shown(ops_app: Any, ops_settings: Any) -> None:
    from services.settings import Settings

    secret_url = "rediss://user:hunter2-redis-password@redis.example.com:6380/0"
    settings = ops_settings.replace(redis_url=secret_url)
    assert isinstance(settings, Settings)
    assert dashboard._display_url(secret_url) == "rediss://redis.example.com:6380/0"


def test_no_dashboard_route_that_changes_jobs_accepts_get(ops_app: Any, ops_client: Any) -> None:
    mutating = [r for r in ops_app.url_map.iter_rules()
                if r.endpoint.startswith("rq_dashboard.") and "POST" in r.methods]
    assert {r.endpoint for r in mutating} >= {
        "rq_dashboard.requeue_all", "rq_dashboard.requeue_job_view", "rq_dashboard.delete_job_view",
        "rq_dashboard.empty_queue", "rq_dashboard.compact_queue"}
    for rule in mutating:
        path = rule.rule.replace("<job_id>", "some-job").replace("<queue_name>", QUEUE) \
                        .replace("<registry_name>", "failed")
        response = ops_client.get(path, headers=ADMIN)
        assert response.status_code == 405, path


def test_requeue_all_by_get_is_refused_but_post_works(ops_client: Any, failed_job: Job,
                                                      redis_conn: redis.Redis) -> None:
    assert ops_client.get(f"/rq/requeue/{QUEUE}", headers=ADMIN).status_code == 405
    assert fetch_job(redis_conn, failed_job.id).get_status() == "failed"
    response = ops_client.post(f"/rq/requeue/{QUEUE}", headers=ADMIN)
    assert response.get_json() == {"status": "OK", "count": 1}
    assert fetch_job(redis_conn, failed_job.id).get_status() == "queued"


def test_cross_site_posts_are_refused(ops_client: Any, failed_job: Job, redis_conn: redis.Redis) -> None:
    url = f"/rq/job/{failed_job.id}/requeue"
    for header, value in (("Origin", "https://evil.example"), ("Referer", "https://evil.example/page")):
        response = ops_client.post(url, headers={**ADMIN, header: value})
        assert response.status_code == 403
    assert fetch_job(redis_conn, failed_job.id).get_status() == "failed"
    same = ops_client.post(url, headers={**ADMIN, "Origin": "http://localhost"})
    assert same.get_json() == {"status": "OK"}


def test_dashboard_requeue_keeps_json_meta_and_restores_retries(ops_client: Any, failed_job: Job,
                                                                redis_conn: redis.Redis) -> None:
    response = ops_client.post(f"/rq/job/{failed_job.id}/requeue", headers=ADMIN)
    assert response.get_json() == {"status": "OK"}
    job = fetch_job(redis_conn, failed_job.id)
    assert job.get_status() == "queued"
    assert job.meta["max_retries"] == 3 and job.meta["requeued"] == 1
    assert job.retries_left == 3
    again = ops_client.post(f"/rq/job/{failed_job.id}/requeue", headers=ADMIN).get_json()
    assert again["status"] == "ERROR" and again["code"] == "JOB_NOT_FAILED"


def test_why_requeue_is_replaced_rq_requeue_job_without_a_serializer_loses_the_meta(
        failed_job: Job, redis_conn: redis.Redis) -> None:
    """rq-dashboard 0.9 calls requeue_job(id, connection): pickle reads and rewrites our JSON meta."""
    requeue_job(failed_job.id, connection=redis_conn)
    job = fetch_job(redis_conn, failed_job.id)
    assert "max_retries" not in job.meta


def test_jobs_are_read_as_json(ops_client: Any, enqueue: Callable[..., Job]) -> None:
    job = enqueue()
    info = ops_client.get(f"/rq/0/data/job/{job.id}.json", headers=ADMIN).get_json()
    assert info["id"] == job.id and info["origin"] == QUEUE and info["status"] == "queued"
    assert json.loads(html.unescape(info["metadata"]))["max_retries"] == 0  # escaped: job.html inserts it raw
    listed = ops_client.get(f"/rq/0/data/jobs/{QUEUE}/queued/8/asc/1.json", headers=ADMIN).get_json()
    assert [j["id"] for j in listed["jobs"]] == [job.id]
    queues = ops_client.get("/rq/0/data/queues.json", headers=ADMIN).get_json()["queues"]
    assert [(q["name"], q["count"]) for q in queues] == [(QUEUE, 1)]


def _everything_the_dashboard_shows(client: Any, job: Job) -> list[str]:
    return [
        client.get(f"/rq/0/data/job/{job.id}.json", headers=ADMIN).get_data(as_text=True),
        client.get(f"/rq/0/data/jobs/{QUEUE}/queued/8/asc/1.json", headers=ADMIN).get_data(as_text=True),
        client.get(f"/rq/0/data/jobs/{QUEUE}/failed/8/asc/1.json", headers=ADMIN).get_data(as_text=True),
        client.get(f"/rq/0/view/job/{job.id}", headers=ADMIN).get_data(as_text=True),
        client.get(f"/rq/0/view/jobs/{QUEUE}/queued/8/asc/1", headers=ADMIN).get_data(as_text=True),
        client.get("/rq/0/data/workers.json", headers=ADMIN).get_data(as_text=True),
    ]


@pytest.mark.parametrize("show_full_args", [False, True])
def test_no_secret_value_reaches_the_dashboard(ops_app: Any, enqueue: Callable[..., Job],
                                               redis_conn: redis.Redis, show_full_args: bool) -> None:
    ops_app.config["RQ_DASHBOARD_SHOW_FULL_ARGS"] = show_full_args  # even if someone turns args on
    job = enqueue(envelope(sessionRef=SESSION_REF, instanceUrl="https://x.my.salesforce.com"))
    worker = Worker([QUEUE], connection=redis_conn, serializer=SERIALIZER, name="busy-worker")
    worker.register_birth()
    worker.set_current_job_id(job.id)
    try:
        client = ops_app.test_client()
        pages = _everything_the_dashboard_shows(client, job)
        for page in pages:
            assert SESSION_REF not in page
        workers = json.loads(pages[-1])["workers"]
        assert workers[0]["current_job"]["job_id"] == job.id
        assert "'sessionRef': '[redacted]'" in html.unescape(workers[0]["current_job"]["call_string"])
        if show_full_args:
            described = html.unescape(json.loads(pages[0])["description"])
            assert "sessionRef" in described and "[redacted]" in described
    finally:
        worker.register_death()


def test_failed_jobs_show_their_error_without_secrets(ops_client: Any, failed_job: Job) -> None:
    info = ops_client.get(f"/rq/0/data/job/{failed_job.id}.json", headers=ADMIN).get_json()
    assert info["status"] == "failed"
    assert "UnknownProcess" in info["exc_info"]
    assert SESSION_REF not in json.dumps(info)


def test_delete_from_the_dashboard_works_on_json_jobs(ops_client: Any, failed_job: Job,
                                                      redis_conn: redis.Redis) -> None:
    response = ops_client.post(f"/rq/job/{failed_job.id}/delete", headers=ADMIN)
    assert response.get_json() == {"status": "OK"}
    assert fetch_job(redis_conn, failed_job.id) is None


def test_with_the_dashboard_off_other_404s_and_their_metrics_are_unchanged(off_client: Any) -> None:
    """The "off" answer comes from the 404 handler now: other paths still get the receiver's own 404."""
    from services.ops import collectors as metrics

    missing = off_client.get("/no-such-page")
    assert missing.status_code == 404
    assert missing.get_json()["error"]["code"] == "NOT_FOUND"
    assert off_client.get("/rqx").get_json()["error"]["code"] == "NOT_FOUND"
    before = metrics.HTTP_REQUESTS.labels(endpoint="unmatched", status="404")._value.get()
    assert off_client.get("/rq/0/data/queues.json").get_json()["error"]["code"] == "DASHBOARD_OFF"
    assert metrics.HTTP_REQUESTS.labels(endpoint="unmatched", status="404")._value.get() == before + 1


@pytest.mark.parametrize("path", ["/rq/0/data/job/{id}.json", "/rq/0/view/job/{id}"])
def test_a_job_that_does_not_exist_is_a_404_not_a_500(ops_client: Any, path: str) -> None:
    response = ops_client.get(path.format(id="no-such-job"), headers=ADMIN)
    assert response.status_code == 404
