"""Slow clients against the Procfile's web process over real sockets (Offload issue 15).

Heroku's router reads a request's headers before it picks a dyno but streams the body through
(https://devcenter.heroku.com/articles/http-routing#request-buffering), so a client that promises more
``Content-Length`` than it sends reaches the dyno; off Heroku, slow headers do too. Under the old sync
workers three such connections stopped the receiver. These tests hold many slow connections open and
check that /healthz and a signed callout are still answered, and that a stalled body is answered 408
(a SOAP Fault, never an ACK, at the Outbound Message door) and frees what was reading it.

No timed assertions: every socket has a generous timeout only so that a regression fails instead of
hanging.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import redis
import requests

from devkit.embedded_redis import free_port
from devkit.procfile import spawn, stop
from devkit.waiting import wait_until
from services.signing import sign
from tests.support.receiver import OUTBOUND_TOKEN, fixture_bytes, now_iso

SECRET = "slow-client-test-secret-0123456789"
HANG_GUARD = 15.0
"""Seconds before a request that should have been answered is declared hung."""
SLOW = 50


@contextmanager
def web(redis_url: str, **extra: str) -> Iterator[int]:
    """The Procfile's ``web`` line with the product config (3 workers unless ``extra`` says otherwise)."""
    port = free_port()
    process = spawn("web", {
        "REDIS_URL": redis_url, "OFFLOAD_CALLOUT_SECRETS": SECRET, "OFFLOAD_ORG_IDS": "00D5g000000Xk2PEAS",
        "OFFLOAD_OUTBOUND_TOKENS": OUTBOUND_TOKEN, "PORT": str(port), "WEB_CONCURRENCY": "3",
        "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{port}", **extra,
    })
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), 30, "the web process to answer /healthz")
        yield port
    finally:
        stop(process)


def _answers(url: str) -> bool | None:
    try:
        return requests.get(url, timeout=1).ok or None
    except requests.RequestException:
        return None


def _slow_headers(port: int) -> socket.socket:
    """A request line and one header, then nothing: the headers never end (slowloris)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD)
    sock.sendall(f"POST /callouts/resize-image HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Slow: 1\r\n".encode())
    return sock


def _short_body(port: int, path: str = "/callouts/resize-image", content_type: str = "application/json",
                body: bytes = b'{"contentVersionId": "0685g0', promised: int = 1000) -> socket.socket:
    """Complete headers promising ``promised`` bytes of body, then only the start of it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n"
                 f"SOAPAction: \"\"\r\nContent-Length: {promised}\r\n\r\n".encode() + body)
    return sock


def _read_response(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (raises socket.timeout if it never does)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _callout(port: int) -> requests.Response:
    body = json.dumps({"contentVersionId": "0685g00000XyZaBAAV", "sentAt": now_iso()}).encode()
    return requests.post(f"http://127.0.0.1:{port}/callouts/resize-image", data=body, timeout=HANG_GUARD,
                         headers={"Content-Type": "application/json", "X-Offload-Signature": sign(body, SECRET)})


def test_healthz_and_a_callout_are_answered_with_fifty_slow_connections_open(redis_url: str,
                                                                              redis_conn: redis.Redis) -> None:
    with web(redis_url) as port:
        slow = [_slow_headers(port) if i % 2 else _short_body(port) for i in range(SLOW)]
        try:
            for _ in range(3):
                health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=HANG_GUARD)
                assert health.status_code == 200, health.text
                accepted = _callout(port)
                assert accepted.status_code in (200, 202), accepted.text
            for sock in slow:  # every slow connection was still being held, none answered yet
                sock.setblocking(False)
                try:
                    assert sock.recv(1) == b"", "a slow connection was answered before it was complete"
                except BlockingIOError:
                    pass
        finally:
            for sock in slow:
                sock.close()
    assert redis_conn.llen("rq:queue:resize-image") == 1  # the same callout three times: one job


def test_a_body_that_promises_more_than_it_sends_is_408_and_frees_its_thread(redis_url: str,
                                                                            redis_conn: redis.Redis) -> None:
    """One process with one thread, so the stalled body holds all there is until its deadline frees it."""
    with web(redis_url, WEB_CONCURRENCY="1", OFFLOAD_BODY_TIMEOUT="1",
             GUNICORN_CMD_ARGS="--threads 1 --worker-connections 1") as port:
        stalled = _short_body(port)
        try:
            health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=HANG_GUARD)
            assert health.status_code == 200, health.text
            head, _, body = _read_response(stalled).partition(b"\r\n\r\n")
        finally:
            stalled.close()
        assert head.startswith(b"HTTP/1.1 408"), head
        error = json.loads(body)["error"]
        assert error["code"] == "REQUEST_TIMEOUT", error
        assert "OFFLOAD_BODY_TIMEOUT" in error["message"], error
        accepted = _callout(port)
        assert accepted.status_code == 202, accepted.text
    assert redis_conn.llen("rq:queue:resize-image") == 1


def test_an_outbound_message_whose_body_stalls_is_not_acknowledged(redis_url: str,
                                                                   redis_conn: redis.Redis) -> None:
    """Salesforce resends a message it got no ACK for, so a cut-off message must get a Fault, not an ACK."""
    message = fixture_bytes("outbound-account-batch.xml")
    with web(redis_url, OFFLOAD_BODY_TIMEOUT="1") as port:
        stalled = _short_body(port, f"/outbound/resize-image?token={OUTBOUND_TOKEN}", "text/xml; charset=utf-8",
                              message[: len(message) // 2], promised=len(message))
        try:
            head, _, body = _read_response(stalled).partition(b"\r\n\r\n")
        finally:
            stalled.close()
    assert head.startswith(b"HTTP/1.1 500"), head
    assert b"Fault>" in body and b"408" in body and b"OFFLOAD_BODY_TIMEOUT" in body, body
    assert b"<Ack>true</Ack>" not in body
    assert redis_conn.llen("rq:queue:resize-image") == 0
