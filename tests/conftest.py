"""Fixtures every test builds on: a real Redis, settings, the app, a client, an in-process worker.

Redis: ``OFFLOAD_TEST_REDIS_URL`` if set, else the local server at
127.0.0.1:6379 if one answers, else an embedded one started for the session
(so the suite passes on a laptop with nothing installed). Like rq's own test
suite, we pick a database that nothing else uses (an empty one, from 15
down), refuse to touch one that holds keys, and flush it before and after
every test. fakeredis appears only in fast unit tests that ask for it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from devkit.embedded_redis import EmbeddedRedis
from services.queue import SERIALIZER, make_queue, redis_from_url
from services.settings import Settings
from services.sfids import to_18
from tests.support.receiver import OUTBOUND_TOKEN
from tests.support.rqworker import InProcessTestWorker

TEST_ORG_ID = "00D5g000000Xk2PEAS"
TEST_SECRET = "test-secret-0123456789abcdef"
TEST_API_KEY = "test-api-key-0123456789"


def _empty_database(base_url: str) -> str | None:
    """The URL of an empty database on that server, or None if it doesn't answer."""
    root = base_url.rsplit("/", 1)[0] if base_url.count("/") > 2 else base_url
    for db in range(15, 0, -1):
        url = f"{root}/{db}"
        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        try:
            if client.dbsize() == 0:
                return url
        except redis.RedisError:
            return None
        finally:
            client.close()
    pytest.exit(f"every database 1-15 on {root} holds keys; give the tests an empty one (OFFLOAD_TEST_REDIS_URL)")
    return None


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a Redis database reserved for this test session."""
    explicit = os.environ.get("OFFLOAD_TEST_REDIS_URL")
    url = _empty_database(explicit or "redis://127.0.0.1:6379/0")
    if url is not None:
        yield url
        return
    if explicit:
        pytest.exit(f"OFFLOAD_TEST_REDIS_URL={explicit} does not answer")
    with EmbeddedRedis() as server:
        yield server.url


@pytest.fixture
def redis_conn(redis_url: str) -> Iterator[redis.Redis]:
    """A client on the test database, flushed before and after the test (we like our hygiene)."""
    client = redis_from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def settings(redis_url: str) -> Settings:
    """Settings as a test deployment would have them (no Salesforce credentials)."""
    return Settings.from_env({
        "REDIS_URL": redis_url,
        "OFFLOAD_ORG_IDS": TEST_ORG_ID[:15],
        "OFFLOAD_CALLOUT_SECRETS": f"old-secret-being-rotated,{TEST_SECRET}",
        "OFFLOAD_API_KEYS": TEST_API_KEY,
        "OFFLOAD_OUTBOUND_TOKENS": f"old-outbound-token-being-rotated,{OUTBOUND_TOKEN}",
        "OFFLOAD_SECRET_KEY": "test-encryption-key",
    })


@pytest.fixture
def app(settings: Settings, redis_conn: redis.Redis):  # a Flask app
    """The receiver wired to the test database."""
    from services.receiver import create_app

    return create_app({"TESTING": True, "OFFLOAD_SETTINGS": settings, "OFFLOAD_REDIS": redis_conn})


@pytest.fixture
def client(app):  # Flask test client
    return app.test_client()


@pytest.fixture
def run_jobs(redis_conn: redis.Redis):
    """Run every queued job in this process (burst; the worker: tests/support/rqworker.py); returns how many ran."""
    from services.processes import PROCESSES

    def run(queues: list[str] | None = None) -> None:
        names = queues or [p.queue for p in PROCESSES.values()]
        worker = InProcessTestWorker([make_queue(n, redis_conn) for n in names], connection=redis_conn,
                              serializer=SERIALIZER)
        worker.work(burst=True, with_scheduler=False)

    return run


@pytest.fixture
def org_id18() -> str:
    return to_18(TEST_ORG_ID)
