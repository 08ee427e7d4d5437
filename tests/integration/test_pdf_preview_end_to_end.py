"""``pdf-preview`` end to end through its three doors, over real sockets: gunicorn and a worker started from the
Procfile, real Redis, the org emulator over HTTPS. A signed Apex callout, an Outbound Message (SOAP) on
ContentVersion, and the Flow action External Services builds from ``/openapi.json``."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import pytest
import requests

from devkit.devstack import LocalStack, outbound_endpoint
from devkit.org.callouts import apex_callout, flow_callout, flow_get
from devkit.org.outbound_admin import define
from services.clock import utc_iso
from services.queue import make_queue
from tests.support.orgtools import create_record, renditions_of, upload_file
from tests.support.pdfs import floor_plan_pdf, minimal_pdf
from tests.support.stacktools import wait_for

pytestmark = pytest.mark.integration

API_KEY = secrets.token_hex(16)


@pytest.fixture
def stack(redis_url: str, redis_conn) -> Iterator[LocalStack]:
    with LocalStack(redis_url=redis_url, workers=1, env={"OFFLOAD_API_KEYS": API_KEY}) as running:
        yield running


def job_of(stack: LocalStack, job_id: str) -> dict | None:
    """The job as Flow's getJob action reads it (Offload_ApiKey), once it has finished or failed."""
    result = flow_get(f"{stack.receiver_url}/jobs/{job_id}", api_key=API_KEY)
    assert not result.fault, result.error
    body = json.loads(result.body)
    return body if body["status"] in {"finished", "failed"} else None


def page_variants(org, source: str) -> list[str]:
    return sorted(r["Offload_Variant__c"] for r in renditions_of(org, source))


def test_a_signed_callout_gets_page_images_of_a_floor_plan(stack: LocalStack) -> None:
    org = stack.org
    listing = create_record(org, "Account", Name="3 Plan Parade")
    source = upload_file(org, listing, floor_plan_pdf(2), "plan.pdf")
    answer = apex_callout(f"{stack.receiver_url}/callouts/pdf-preview",
                          {"contentVersionId": source, "sentAt": utc_iso()}, secret=stack.callout_secret)
    assert answer.status == 202, answer.body
    job = wait_for(lambda: job_of(stack, json.loads(answer.body)["jobId"]), 60, "the job to finish", stack)
    assert job["status"] == "finished" and job["process"] == "pdf-preview", job
    assert job["result"]["pageCount"] == 2 and job["result"]["renditionCount"] == 2
    assert page_variants(org, source) == ["page-1", "page-2"]


def test_an_outbound_message_on_contentversion_is_acked_and_its_pdf_previewed(stack: LocalStack, redis_conn) -> None:
    """The message carries Offload_Rendition_Of__c, so the page images' own notifications are skipped (loop
    guard) rather than starting jobs on them."""
    org = stack.org
    define(org.state, name="Offload_Preview_PDFs", sobject="ContentVersion", fields=("Id", "Offload_Rendition_Of__c"),
           endpoint_url=outbound_endpoint(stack.receiver_url, "pdf-preview"))
    listing = create_record(org, "Account", Name="11 Soap Street")
    source = upload_file(org, listing, minimal_pdf(3), "brochure.pdf")  # the insert fires the message
    sender = org.state.outbound

    def delivered() -> bool:
        return any(d["status"] == "delivered" and source in d["record_ids"] for d in sender.deliveries())

    wait_for(delivered, 30, "the Outbound Message to be ACKed", stack)
    wait_for(lambda: len(renditions_of(org, source)) == 3, 60, "three page images", stack)
    renditions = {r["Id"] for r in renditions_of(org, source)}
    wait_for(lambda: all(any(d["status"] == "delivered" and rid in d["record_ids"] for d in sender.deliveries())
                         for rid in renditions), 30, "the page images' own notifications to be ACKed", stack)
    assert page_variants(org, source) == ["page-1", "page-2", "page-3"]
    queue = make_queue("pdf-preview", redis_conn)
    assert queue.finished_job_registry.count == 1 and queue.failed_job_registry.count == 0 and queue.count == 0, \
        "one job, for the PDF: the three page images' notifications started none"
    assert all(r.get("Offload_Rendition_Of__c") != rid for r in org.state.all_records("ContentVersion")
               for rid in renditions), "no page image of a page image"


def test_the_flow_action_from_the_openapi_document_previews_a_pdf(stack: LocalStack) -> None:
    org = stack.org
    document = requests.get(f"{stack.receiver_url}/openapi.json", timeout=5).json()
    [(path, item)] = [(p, i) for p, i in document["paths"].items()
                      if i.get("post", {}).get("operationId") == "pdfPreview"]
    request_schema = document["components"]["schemas"]["PdfPreviewRequest"]
    assert set(request_schema["properties"]) == {"contentVersionId", "sentAt"}
    assert request_schema["required"] == ["contentVersionId"]
    listing = create_record(org, "Account", Name="6 Flow Fields")
    source = upload_file(org, listing, minimal_pdf(1, media_box=(0, 0, 14400, 14400)), "poster.pdf")
    answer = flow_callout(f"{stack.receiver_url}{path}", {"contentVersionId": source, "sentAt": utc_iso()},
                          secret=stack.callout_secret)
    assert not answer.fault and answer.status == 202, (answer.status, answer.error, answer.body)
    job = wait_for(lambda: job_of(stack, json.loads(answer.body)["jobId"]), 60, "the job to finish", stack)
    assert job["status"] == "finished", job
    assert job["result"]["pages"] == [{"page": 1, "widthPt": 14400, "heightPt": 14400}]
    [rendition] = job["result"]["renditions"]
    assert (rendition["variant"], rendition["width"], rendition["height"]) == ("page-1", 1600, 1600)
