"""services.logs: one structured line per event, the ids that follow a job, and no secrets."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator

import pytest
import redis
from rq.job import Job

from services.logs import JsonFormatter, LogfmtFormatter, event, log_context
from tests.support.ops import SESSION_REF, envelope

logger = logging.getLogger("offload.test.ops")


@pytest.fixture
def lines() -> Iterator[Callable[[], list[str]]]:
    """Capture what a Heroku log drain would get, formatted when logged (as a StreamHandler does)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield lambda: stream.getvalue().splitlines()
    root.removeHandler(handler)
    root.setLevel(old_level)


def _parse_logfmt(line: str) -> dict[str, str]:
    import shlex

    return dict(part.split("=", 1) for part in shlex.split(line))


def test_one_line_per_event_with_the_bound_ids(lines: Callable[[], list[str]]) -> None:
    with log_context(job_id="resize-image-abc", process="resize-image", org_id="00D5g000000Xk2PEAS",
                     record_id="068000000000001AAA", attempt=2):
        event(logger, "job started", source="outbound")
        event(logger, "multi\nline \"message\"", detail="a b")
    first, second = lines()
    fields = _parse_logfmt(first)
    assert fields["msg"] == "job started" and fields["level"] == "info"
    assert fields["job_id"] == "resize-image-abc" and fields["process"] == "resize-image"
    assert fields["org_id"] == "00D5g000000Xk2PEAS" and fields["record_id"] == "068000000000001AAA"
    assert fields["attempt"] == "2" and fields["source"] == "outbound"
    assert "\\n" in second and _parse_logfmt(second)["detail"] == "a b"  # still one line


def test_secret_looking_keys_are_redacted_in_fields_and_context(lines: Callable[[], list[str]]) -> None:
    with log_context(job_id="j1", session_id="00D!AQ0AQH0dMHZfz972Szmpkb58urFRkgeBGsxL"):
        event(logger, "calling salesforce", access_token="00Dxx!secret-token", client_secret="cs",
              Authorization="Bearer abc", sessionRef=SESSION_REF, X_Offload_Signature="sig", password="pw",
              private_key="-----BEGIN", status=200)
    [line] = lines()
    fields = _parse_logfmt(line)
    for key in ("session_id", "access_token", "client_secret", "Authorization", "sessionRef",
                "X_Offload_Signature", "password", "private_key"):
        assert fields[key] == "[redacted]", key
    assert fields["status"] == "200" and fields["job_id"] == "j1"
    for secret in ("AQ0AQH0dMHZ", "secret-token", "Bearer abc", SESSION_REF, "BEGIN"):
        assert secret not in line


def test_context_binds_across_nested_scopes_and_unwinds(lines) -> None:
    def ids() -> dict[str, str]:
        """The ids on the line an event logs right now (what a log drain would get)."""
        event(logger, "probe")
        fields = _parse_logfmt(lines()[-1])
        return {k: v for k, v in fields.items() if k in ("request_id", "job_id", "process", "record_id")}

    with log_context(request_id="req-1", job_id=None):
        assert ids() == {"request_id": "req-1"}  # None never binds
        with log_context(job_id="j1", process="resize-image"):
            with log_context(record_id="068A", process=None):
                assert ids() == {"request_id": "req-1", "job_id": "j1", "process": "resize-image", "record_id": "068A"}
        assert ids() == {"request_id": "req-1"}  # the inner scopes are gone
    assert ids() == {}


def test_json_format_is_one_parseable_object_per_line() -> None:
    record = logging.LogRecord("workers.runner", logging.WARNING, __file__, 1, "job failed permanently", None, None)
    record.fields = {"code": "IMAGE_REJECTED", "token": "t0ken"}
    with log_context(job_id="j9", attempt=1):
        text = JsonFormatter().format(record)
    assert "\n" not in text
    data = json.loads(text)
    assert data["job_id"] == "j9" and data["attempt"] == 1 and data["code"] == "IMAGE_REJECTED"
    assert data["token"] == "[redacted]" and data["level"] == "warning"


def test_an_exception_is_one_field_not_a_traceback(lines: Callable[[], list[str]]) -> None:
    try:
        raise ValueError("bad value")
    except ValueError:
        logger.exception("unexpected error")
    [line] = lines()
    assert _parse_logfmt(line)["error"] == "ValueError: bad value"


def test_a_job_run_logs_its_ids_and_never_its_session_reference(
        lines: Callable[[], list[str]], enqueue: Callable[..., Job], work: Callable[[], None],
        redis_conn: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the real runner: an Outbound Message job whose PartnerUrl is not Salesforce fails permanently."""
    from workers import runner

    monkeypatch.delenv("SALESFORCE_CLIENT_ID", raising=False)  # no credentials: the job uses the session
    runner.worker_settings.cache_clear()
    job = enqueue(envelope(sessionRef=SESSION_REF, instanceUrl="https://not-salesforce.example.com"))
    try:
        work()
    finally:
        runner.worker_settings.cache_clear()
    output = lines()
    job_lines = [_parse_logfmt(line) for line in output if "logger=workers.runner" in line]
    assert [f["msg"] for f in job_lines] == ["job started", "job failed permanently"]
    for fields in job_lines:
        assert fields["job_id"] == job.id and fields["process"] == "resize-image"
        assert fields["org_id"] == "00D5g000000Xk2PEAS" and fields["record_id"] == "068000000000001AAA"
        assert fields["attempt"] == "1" and fields["request_id"] == "req-1"
    assert job_lines[1]["code"] == "UNTRUSTED_INSTANCE"
    assert not any(SESSION_REF in line for line in output)


def test_a_secret_inside_a_message_or_value_is_redacted(lines) -> None:
    """Keys are not the only way in: an error text quoting a token is hidden too."""
    event(logger, "login failed for access_token=00D5g!AQ8secret", error="GET /x?session_id=abc123&y=1")
    line = lines()[-1]
    assert "AQ8secret" not in line and "abc123" not in line
    assert "access_token=[redacted]" in line and "y=1" in line
