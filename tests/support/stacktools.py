"""Driving a LocalStack from tests: wait for things, send callouts like Apex does."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from devkit.devstack import LocalStack
from devkit.org.callouts import apex_callout
from devkit.waiting import WaitTimeout, wait_until
from services.clock import utc_iso


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, stack: LocalStack | None = None,
             *, interval: float = 0.05) -> Any:
    """``wait_until``, failing the test with the stack's logs when it times out."""
    try:
        return wait_until(predicate, timeout, what, interval=interval)
    except WaitTimeout as exc:
        logs = stack.logs()[-8000:] if stack is not None else ""
        pytest.fail(f"{exc}\n{logs}")


def callout(stack: LocalStack, content_version_id: str, idempotency_key: str | None = None,
            timeout_s: float = 10.0) -> tuple[int, str | None]:
    """A signed resize-image callout: (HTTP status, or 0 for a connection failure; job id if answered 2xx)."""
    sent_at = utc_iso()
    result = apex_callout(f"{stack.receiver_url}/callouts/resize-image",
                          {"contentVersionId": content_version_id, "sentAt": sent_at},
                          secret=stack.callout_secret, idempotency_key=idempotency_key, timeout_s=timeout_s)
    if 200 <= result.status < 300:
        return result.status, str(json.loads(result.body)["jobId"])
    return result.status, None


def submit(stack: LocalStack, content_version_id: str) -> str:
    """A callout that must be queued (202); returns the job id."""
    status, job_id = callout(stack, content_version_id)
    assert status == 202 and job_id, status
    return job_id
