"""End to end over real sockets: gunicorn and a worker started from the Procfile, real Redis,
the org emulator over HTTPS, a real Outbound Message and a real signed callout."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from devkit.devstack import LocalStack
from devkit.org.callouts import apex_callout
from services.clock import utc_iso
from services.signing import sign
from tests.support.images import photo_jpeg
from tests.support.orgtools import create_record, renditions_of, upload_file
from tests.support.stacktools import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(redis_url: str, redis_conn) -> Iterator[LocalStack]:
    with LocalStack(redis_url=redis_url, workers=1) as running:
        yield running


def test_a_signed_callout_is_resized_by_a_worker_process(stack: LocalStack) -> None:
    org = stack.org
    account = create_record(org, "Account", Name="1 Quay Street")
    source = upload_file(org, account, photo_jpeg(2400, 1600), "quay.jpg")
    sent_at = utc_iso()
    result = apex_callout(f"{stack.receiver_url}/callouts/resize-image",
                          {"contentVersionId": source, "sentAt": sent_at}, secret=stack.callout_secret)
    assert result.status == 202, result.body
    status_url = __import__("json").loads(result.body)["statusUrl"]
    path = status_url.split(str(stack.port), 1)[1]

    def finished() -> dict | None:
        body = requests.get(status_url, headers={"X-Offload-Signature": sign(path.encode(), stack.callout_secret)},
                            timeout=5).json()
        return body if body["status"] in {"finished", "failed"} else None

    job = wait_for(finished, 60, "the job to finish", stack)
    assert job["status"] == "finished", job
    assert job["result"]["renditionCount"] == 3
    assert {r["Offload_Variant__c"] for r in renditions_of(org, source)} == {"large", "medium", "thumb"}


def test_an_outbound_message_is_acked_and_its_record_resized(stack: LocalStack) -> None:
    org = stack.org
    account = create_record(org, "Account", Name="7 Ridge Road")
    source = upload_file(org, account, photo_jpeg(1800, 1200, seed=3), "ridge.jpg")
    org.state.update(account, {"Name": "7 Ridge Road (listed)"})  # fires the Outbound Message rule
    sender = org.state.outbound

    def delivered() -> bool:
        return any(d["status"] == "delivered" and account in d["record_ids"] for d in sender.deliveries())

    wait_for(delivered, 30, "the Outbound Message to be ACKed", stack)
    wait_for(lambda: len(renditions_of(org, source)) == 3, 60, "three renditions", stack)
    [delivery] = [d for d in sender.deliveries() if account in d["record_ids"]]
    assert delivery["attempts"][-1]["http_status"] == 200 and delivery["attempts"][-1]["ack"] is True
