"""The Procfile's web process over real sockets (gunicorn): behind Heroku's router, and bodies
gunicorn itself decodes.

Heroku's router terminates TLS and sends ``X-Forwarded-Proto: https``
(https://devcenter.heroku.com/articles/http-routing#heroku-headers); the URLs the receiver hands
back (``statusUrl``, the OpenAPI ``servers`` entry) must say https, and must not take their host
from whatever ``Host`` header a caller sends once ``OFFLOAD_PUBLIC_URL`` is set.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from devkit.embedded_redis import free_port
from devkit.procfile import spawn, stop
from devkit.waiting import wait_until
from services.signing import sign
from tests.support.receiver import OUTBOUND_TOKEN, now_iso

SECRET = "router-test-secret-0123456789"


def _web(redis_url: str, **extra: str) -> Iterator[str]:
    port = free_port()
    process = spawn("web", {
        "REDIS_URL": redis_url, "OFFLOAD_CALLOUT_SECRETS": SECRET, "OFFLOAD_ORG_IDS": "00D5g000000Xk2PEAS",
        "OFFLOAD_OUTBOUND_TOKENS": OUTBOUND_TOKEN, "PORT": str(port), "WEB_CONCURRENCY": "1", **extra,
    })
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(f"{base}/healthz"), 30, "the web process to answer /healthz")
        yield base
    finally:
        stop(process)


def _answers(url: str) -> bool | None:
    try:
        return requests.get(url, timeout=1).ok or None
    except requests.ConnectionError:
        return None


def _callout(base: str, headers: dict[str, str]) -> dict:
    body = json.dumps({"contentVersionId": "0685g00000XyZaBAAV", "sentAt": now_iso()}).encode()
    response = requests.post(f"{base}/callouts/resize-image", data=body, timeout=5, headers={
        "Content-Type": "application/json", "X-Offload-Signature": sign(body, SECRET), **headers})
    assert response.status_code in (200, 202), response.text
    return response.json()


@pytest.fixture
def on_heroku(redis_url: str, redis_conn) -> Iterator[str]:
    yield from _web(redis_url, DYNO="web.1")


@pytest.fixture
def with_public_url(redis_url: str, redis_conn) -> Iterator[str]:
    yield from _web(redis_url, DYNO="web.1", OFFLOAD_PUBLIC_URL="https://offload-acme.herokuapp.com")


def _assert_public_urls(base: str, headers: dict[str, str]) -> None:
    """statusUrl and the OpenAPI servers entry both name the app's https URL."""
    status_url = _callout(base, headers)["statusUrl"]
    assert status_url.startswith("https://offload-acme.herokuapp.com/jobs/"), status_url
    spec = requests.get(f"{base}/openapi.json", headers=headers, timeout=5).json()
    assert spec["servers"] == [{"url": "https://offload-acme.herokuapp.com"}]


def test_urls_say_https_when_the_router_says_the_request_came_over_tls(on_heroku: str) -> None:
    _assert_public_urls(on_heroku, {"X-Forwarded-Proto": "https", "Host": "offload-acme.herokuapp.com"})


def test_the_public_url_wins_over_a_callers_host_header(with_public_url: str) -> None:
    _assert_public_urls(with_public_url, {"X-Forwarded-Proto": "http", "Host": "evil.example"})


def test_a_chunked_body_over_the_cap_is_413_not_a_misleading_401(redis_url: str, redis_conn) -> None:
    """Without Content-Length the cap used to cut the body silently, and the signature check then failed."""
    body = json.dumps({"contentVersionId": "0685g00000XyZaBAAV", "sentAt": now_iso(), "pad": "x" * 5000}).encode()
    for base in _web(redis_url, OFFLOAD_MAX_BODY_BYTES="4000"):
        headers = {"Content-Type": "application/json", "X-Offload-Signature": sign(body, SECRET)}
        response = requests.post(f"{base}/callouts/resize-image", data=iter([body[:3000], body[3000:]]),
                                 headers=headers, timeout=5)
        assert response.request.headers.get("Transfer-Encoding") == "chunked"
        assert response.status_code == 413, response.text
        assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
        small = json.dumps({"contentVersionId": "0685g00000XyZaBAAV", "sentAt": now_iso()}).encode()
        headers = {"Content-Type": "application/json", "X-Offload-Signature": sign(small, SECRET)}
        accepted = requests.post(f"{base}/callouts/resize-image", data=iter([small[:10], small[10:]]),
                                 headers=headers, timeout=5)
        assert accepted.status_code == 202, accepted.text
    assert redis_conn.llen("rq:queue:resize-image") == 1
