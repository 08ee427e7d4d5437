"""/metrics: protected like the dashboard, shared counters in Redis, request metrics across gunicorn workers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from rq.job import Job

from services.ops import collectors, counters
from services.queue import Delivery, admit, redis_from_url
from services.queue.loopguard import mark_own_output, own_output_key
from tests.support.ops import ADMIN, QUEUE, basic

ROOT = Path(__file__).resolve().parents[2]


def scrape(client: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` from an authenticated /metrics."""
    response = client.get("/metrics", headers=ADMIN)
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def test_metrics_is_off_without_the_dashboard_password(off_client: Any) -> None:
    response = off_client.get("/metrics", headers=ADMIN)
    assert response.status_code == 404
    assert "OFFLOAD_DASHBOARD_PASSWORD" in response.get_json()["error"]["message"]


@pytest.mark.parametrize("headers", [{}, basic("admin", "nope"), basic("prometheus", "x")])
def test_metrics_needs_the_admin_password(ops_client: Any, headers: dict[str, str]) -> None:
    response = ops_client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_requests_are_counted_by_endpoint_and_status(ops_client: Any) -> None:
    key_ok = ("offload_http_requests_total", (("endpoint", "health.healthz"), ("status", "200")))
    key_404 = ("offload_http_requests_total", (("endpoint", "unmatched"), ("status", "404")))
    before = scrape(ops_client)
    ops_client.get("/healthz")
    ops_client.get("/healthz")
    ops_client.get("/no-such-url")
    after = scrape(ops_client)
    assert after[key_ok] - before.get(key_ok, 0) == 2
    assert after[key_404] - before.get(key_404, 0) == 1
    count = ("offload_http_request_duration_seconds_count", (("endpoint", "health.healthz"),))
    assert after[count] - before.get(count, 0) == 2


def test_intake_and_job_counters_are_shared_through_redis(ops_client: Any, redis_url: str) -> None:
    web, worker = redis_from_url(redis_url), redis_from_url(redis_url)  # two processes' clients
    # The enqueue script counts intake itself: 3 new, the first again (duplicate), one guarded (skipped).
    deliveries = [_delivery(f"metrics-{i}") for i in range(3)]
    admit(web, deliveries, dedupe_ttl=60)
    admit(web, deliveries[:1], dedupe_ttl=60)
    mark_own_output(web, ["0685g00000AbCdEAAV"])
    admit(web, [_delivery("metrics-guarded")], dedupe_ttl=60, guard_keys=[own_output_key("0685g00000AbCdEAAV")])
    counters.job_finished(worker, "resize-image", "succeeded", 0.3, 1.5)
    counters.job_finished(worker, "resize-image", "succeeded", 4.0, 0.05)
    counters.job_finished(worker, "resize-image", "retried", 700.0, None)
    counters.job_finished(worker, "resize-image", "failed", 2.0, 20.0)
    counters.salesforce_calls(worker, 5)
    s = scrape(ops_client)
    proc = (("process", "resize-image"),)
    assert s[("offload_deliveries_enqueued_total", proc)] == 3
    assert s[("offload_deliveries_duplicates_total", proc)] == 1
    assert s[("offload_deliveries_skipped_total", proc)] == 1
    for outcome, n in (("succeeded", 2), ("retried", 1), ("failed", 1)):
        assert s[("offload_job_attempts_total", (("outcome", outcome), ("process", "resize-image")))] == n
    assert s[("offload_salesforce_api_calls_total", ())] == 5

    def bucket(name: str, le: str) -> float:
        return s[(f"{name}_bucket", (("le", le), ("process", "resize-image")))]

    duration = "offload_job_duration_seconds"
    assert bucket(duration, "0.25") == 0
    assert bucket(duration, "0.5") == 1
    assert bucket(duration, "2.5") == 2
    assert bucket(duration, "5.0") == 3
    assert bucket(duration, "600.0") == 3
    assert bucket(duration, "+Inf") == 4  # the 700 s attempt
    assert s[(f"{duration}_count", proc)] == 4
    assert s[(f"{duration}_sum", proc)] == pytest.approx(706.3)
    wait = "offload_job_queue_wait_seconds"
    assert bucket(wait, "0.1") == 1 and bucket(wait, "5.0") == 2 and bucket(wait, "+Inf") == 3
    assert s[(f"{wait}_count", proc)] == 3  # the attempt without a queue wait is not observed


def test_queue_depth_workers_and_registries(ops_client: Any, enqueue: Callable[..., Job],
                                            failed_job: Job) -> None:
    enqueue()
    enqueue()
    s = scrape(ops_client)
    assert s[("offload_queue_depth", (("queue", QUEUE),))] == 2
    assert s[("offload_queue_registry_jobs", (("queue", QUEUE), ("registry", "failed")))] == 1
    assert s[("offload_queue_registry_jobs", (("queue", QUEUE), ("registry", "started")))] == 0
    assert s[("offload_workers", ())] == 0
    assert s[("offload_workers_paused", ())] == 0
    assert s[("offload_redis_up", ())] == 1


def test_a_pause_of_the_workers_shows(ops_client: Any, redis_conn: redis.Redis) -> None:
    from rq.suspension import suspend

    suspend(redis_conn, ttl=60)
    assert scrape(ops_client)[("offload_workers_paused", ())] == 1


def test_salesforce_daily_limit_from_what_the_workers_store(ops_client: Any, redis_conn: redis.Redis) -> None:
    from services.salesforce.client import ApiUsage, record_usage

    assert ("offload_salesforce_daily_api_remaining", ()) not in scrape(ops_client)  # nothing stored yet
    record_usage(redis_conn, ApiUsage(used=1200, limit=15000))
    s = scrape(ops_client)
    assert s[("offload_salesforce_daily_api_used", ())] == 1200
    assert s[("offload_salesforce_daily_api_limit", ())] == 15000
    assert s[("offload_salesforce_daily_api_remaining", ())] == 13800


def test_a_redis_outage_never_fails_a_job_or_a_scrape() -> None:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    down = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    counters.job_finished(down, "resize-image", "succeeded", 1.0, 1.0)  # logs a warning, no exception
    counters.salesforce_calls(down)
    text = collectors.render(down).decode()
    assert "offload_redis_up 0.0" in text


def test_job_finished_refuses_an_unknown_outcome(redis_conn: redis.Redis) -> None:
    with pytest.raises(ValueError, match="succeeded, failed, retried"):
        counters.job_finished(redis_conn, "resize-image", "crashed", 1.0)


def test_queue_wait_is_start_minus_enqueue(enqueue: Callable[..., Job]) -> None:
    from datetime import timedelta

    job = enqueue()
    assert counters.queue_wait_seconds(job) is None  # not started yet
    job.started_at = job.enqueued_at + timedelta(seconds=42)
    assert counters.queue_wait_seconds(job) == pytest.approx(42)


def test_request_metrics_add_up_across_forked_gunicorn_workers(tmp_path: Path, redis_url: str) -> None:
    """Multiprocess mode, as gunicorn with preload_app forks workers from one imported app."""
    script = textwrap.dedent(f"""
        import os
        from services.ops import collectors
        pids = []
        for _ in range(3):
            pid = os.fork()
            if pid == 0:
                collectors.request_finished("callouts.submit_callout", 202, 0.02)
                os._exit(0)
            pids.append(pid)
        for pid in pids:
            os.waitpid(pid, 0)
        from services.queue import redis_from_url
        print(collectors.render(redis_from_url({redis_url!r})).decode())
    """)
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(out) for s in f.samples}
    key = ("offload_http_requests_total", (("endpoint", "callouts.submit_callout"), ("status", "202")))
    assert samples[key] == 3
    assert samples[("offload_redis_up", ())] == 1
    assert len(list(tmp_path.glob("*.db"))) >= 3  # one file per process


def test_metric_families_have_help_and_stable_names(ops_client: Any) -> None:
    text = ops_client.get("/metrics", headers=ADMIN).get_data(as_text=True)
    for name in ("offload_deliveries_enqueued_total", "offload_job_attempts_total",
                 "offload_job_duration_seconds", "offload_job_queue_wait_seconds",
                 "offload_queue_depth", "offload_salesforce_api_calls_total", "offload_workers"):
        assert f"# HELP {name}" in text, name


def test_the_receivers_own_intake_is_counted(ops_client: Any, redis_conn: redis.Redis) -> None:
    """The enqueue script counts what it did: a new callout, its repeat, and a loop-guard skip."""
    import json as json_

    from services.queue.loopguard import mark_own_output
    from services.signing import sign
    from tests.support.receiver import now_iso

    def post(payload: dict[str, str]) -> int:
        body = json_.dumps({**payload, "sentAt": now_iso()}).encode()
        return ops_client.post("/callouts/resize-image", data=body, content_type="application/json",
                               headers={"X-Offload-Signature": sign(body, "test-secret-0123456789abcdef")}).status_code

    assert post({"recordId": "0015g00000QwErTAAV"}) == 202
    assert post({"recordId": "0015g00000QwErTAAV"}) == 200
    mark_own_output(redis_conn, ["0685g00000XyZaBAAV"])
    assert post({"contentVersionId": "0685g00000XyZaBAAV"}) == 200
    s = scrape(ops_client)
    proc = (("process", "resize-image"),)
    assert s[("offload_deliveries_enqueued_total", proc)] == 1
    assert s[("offload_deliveries_duplicates_total", proc)] == 1
    assert s[("offload_deliveries_skipped_total", proc)] == 1


def _delivery(key: str) -> Delivery:
    return Delivery(queue="resize-image", dedupe_key=key, envelope={"process": "resize-image", "payload": {}},
                    description="metrics test", retries=0)
