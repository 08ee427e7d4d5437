"""The org emulator's Apex and Flow callouts, against a real HTTP listener on 127.0.0.1.

Sources: Apex "Callout Limits and Limitations",
https://developer.salesforce.com/docs/atlas.en-us.apexcode.meta/apexcode/apex_callouts_timeouts.htm;
Flow HTTP Callout, https://help.salesforce.com/s/articleView?id=platform.flow_http_callout_considerations.htm
and https://help.salesforce.com/s/articleView?id=platform.external_services_schema_def_limits.htm.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest
from werkzeug.datastructures import Headers
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from devkit.org.callouts import (
    FLOW_TIMEOUT_S,
    SYNC_LIMIT_BYTES,
    CalloutResult,
    apex_callout,
    flow_callout,
)
from services.signing import SIGNATURE_HEADER, signature_matches

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "salesforce"
PAYLOAD = {"recordId": "0015g00000QwErTAAV", "documentType": "INVOICE_PDF", "note": "Müller & Söhne"}


def fixture_headers() -> dict[str, str]:
    """The default headers in apex-callout-request-headers.http, as observed from Apex callouts."""
    lines = (FIXTURES / "apex-callout-request-headers.http").read_text().split("\n\n")[0].splitlines()[1:]
    return dict(line.split(": ", 1) for line in lines)


class Receiver:
    """A tiny JSON listener: records each request and answers what the test scripted."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.answer = "json"
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}/callouts/resize-image"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def _app(self, environ, start_response):
        request = Request(environ)
        with self._lock:
            self.requests.append({"headers": Headers(request.headers), "body": request.get_data()})
        return self._respond(self.answer)(environ, start_response)

    @staticmethod
    def _respond(answer: str) -> Response:
        as_json = "application/json"
        if answer == "slow":
            time.sleep(1.5)
            answer = "json"
        bodies = {
            "json": (202, b'{"jobId":"j-1","status":"queued"}'),
            "created": (201, b"{}"),
            "empty": (200, b""),
            "text": (200, b"OK"),
            "400": (400, b'{"error":{"code":"INVALID_REQUEST"}}'),
            "500": (500, b'{"error":{"code":"ENQUEUE_FAILED"}}'),
            "huge": (200, b'{"pad":"' + b"x" * SYNC_LIMIT_BYTES + b'"}'),
            "deep": (200, json.dumps(nest(16)).encode()),
        }
        if answer == "redirect":
            return Response(b"", status=302, headers={"Location": "/elsewhere"})
        status, body = bodies[answer]
        return Response(body, status=status, content_type=as_json)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def nest(levels: int) -> dict:
    """A JSON object ``levels`` deep."""
    value: dict = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"child": value}
    return value


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_apex_callout_sends_apex_headers_and_signs_the_exact_bytes(receiver):
    """Default Apex headers (as observed), compact JSON, signature over the sent bytes, key and idempotency key."""
    result = apex_callout(
        receiver.url, PAYLOAD, secret="s3cret", api_key="k-123", idempotency_key="0015g00000QwErTAAV:1"
    )
    assert isinstance(result, CalloutResult)
    assert (result.status, result.fault, result.error) == (202, False, None)
    assert json.loads(result.body) == {"jobId": "j-1", "status": "queued"}
    assert result.headers["Content-Type"] == "application/json" and result.elapsed_ms > 0
    [request] = receiver.requests
    body, headers = request["body"], request["headers"]
    assert body == json.dumps(PAYLOAD, separators=(",", ":"), ensure_ascii=False).encode()
    expected = fixture_headers()
    for name in ("User-Agent", "Accept", "Cache-Control", "Pragma", "Content-Type"):
        assert headers[name] == expected[name]
    assert "Accept-Encoding" not in headers and "Expect" not in headers
    assert signature_matches(body, headers[SIGNATURE_HEADER], ["s3cret"])
    assert headers["Authorization"] == "Bearer k-123"
    assert headers["Idempotency-Key"] == "0015g00000QwErTAAV:1"


def test_optional_headers_are_left_out(receiver):
    """No secret, no key, no idempotency key: none of those headers; UA follows the API version."""
    apex_callout(receiver.url, PAYLOAD, api_version="59.0")
    headers = receiver.requests[0]["headers"]
    assert SIGNATURE_HEADER not in headers and "Authorization" not in headers
    assert "Idempotency-Key" not in headers
    assert headers["User-Agent"] == "SFDC-Callout/59.0"


@pytest.mark.parametrize("timeout_s", [0, 0.0009, 120.001, -1])
def test_apex_timeout_outside_1_ms_to_120_s_is_rejected(receiver, timeout_s):
    """"Callout Limits and Limitations" (module docstring): a custom timeout is 1 ms to 120,000 ms."""
    with pytest.raises(ValueError, match="between 1 and 120000 milliseconds"):
        apex_callout(receiver.url, PAYLOAD, timeout_s=timeout_s)
    assert receiver.requests == []


def test_apex_timeout_bounds_are_accepted(receiver):
    """Exactly 120 s is allowed (and a fast listener answers well within it)."""
    assert apex_callout(receiver.url, PAYLOAD, timeout_s=120).status == 202


def test_slow_listener_is_a_callout_exception(receiver):
    """A reply slower than the timeout is what Apex sees as CalloutException: Read timed out."""
    receiver.answer = "slow"
    result = apex_callout(receiver.url, PAYLOAD, timeout_s=0.3)
    assert (result.status, result.fault, result.error, result.body) == (0, True, "Read timed out", b"")
    assert result.elapsed_ms < 1400


def test_refused_connection_is_a_callout_exception():
    """Nothing listening: status 0, fault, and a connection-refused message."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/callouts/x"
    result = apex_callout(url, PAYLOAD, timeout_s=2)
    assert result.status == 0 and result.fault and "Connection refused" in result.error


@pytest.mark.parametrize(("answer", "status"), [("400", 400), ("500", 500), ("redirect", 302)])
def test_apex_sees_error_statuses_without_an_exception(receiver, answer, status):
    """Apex returns 4xx/5xx as a response, and does not follow redirects."""
    receiver.answer = answer
    result = apex_callout(receiver.url, PAYLOAD)
    assert (result.status, result.fault, result.error) == (status, False, None)
    assert len(receiver.requests) == 1


def test_request_size_limits_are_6_mb_sync_and_12_mb_async(receiver):
    """Apex governor limits: callout request at most 6 MB in synchronous Apex, 12 MB in asynchronous."""
    seven_mb = {"pad": "x" * 7_000_000}
    with pytest.raises(ValueError, match="6 MB"):
        apex_callout(receiver.url, seven_mb)
    assert apex_callout(receiver.url, seven_mb, asynchronous=True).status == 202
    with pytest.raises(ValueError, match="12 MB"):
        apex_callout(receiver.url, {"pad": "x" * 12_000_000}, asynchronous=True)
    assert len(receiver.requests) == 1


def test_response_over_the_size_limit_is_a_callout_exception(receiver):
    """A reply over 6 MB cannot be read into synchronous Apex."""
    receiver.answer = "huge"
    result = apex_callout(receiver.url, PAYLOAD)
    assert result.status == 0 and result.fault and "Exceeded max size limit of 6000000" in result.error


@pytest.mark.parametrize(
    ("answer", "status", "fault"),
    [
        ("json", 202, False),
        ("created", 201, False),
        ("400", 400, True),
        ("500", 500, True),
        ("redirect", 302, True),
        ("empty", 200, True),
        ("text", 200, True),
        ("deep", 200, True),
    ],
)
def test_flow_fault_path(receiver, answer, status, fault):
    """Reference C: status >= 300 faults; a 2xx body must be JSON ({} for empty) at most 15 deep."""
    receiver.answer = answer
    result = flow_callout(receiver.url, PAYLOAD, secret="s3cret", api_key="k-1")
    assert (result.status, result.fault) == (status, fault)
    assert (result.error is not None) is fault
    headers = receiver.requests[0]["headers"]
    assert headers["User-Agent"].startswith("SFDC-Callout/") and headers["Authorization"] == "Bearer k-1"
    assert signature_matches(receiver.requests[0]["body"], headers[SIGNATURE_HEADER], ["s3cret"])


def test_flow_payload_shape_rules(receiver):
    """Flow types cannot nest past 15 levels or mix types in a list (Flow HTTP Callout considerations); 120 s
    timeout is fixed."""
    assert flow_callout(receiver.url, nest(15)).status == 202
    with pytest.raises(ValueError, match="15 levels"):
        flow_callout(receiver.url, nest(16))
    with pytest.raises(ValueError, match="one type"):
        flow_callout(receiver.url, {"values": ["one", 2]})
    assert flow_callout(receiver.url, {"values": [1, 2.5, None]}).status == 202
    assert FLOW_TIMEOUT_S == 120
