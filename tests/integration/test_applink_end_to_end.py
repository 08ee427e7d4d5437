"""The AppLink door end to end over real sockets: the mesh stand-in (``Procfile.applink``'s
``heroku-applink-service-mesh``) in front of gunicorn on ``APP_PORT``, real Redis, a real worker, the org
emulator over HTTPS and the AppLink API stand-in for the Authorized User."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import requests

from devkit.devstack import LocalStack
from services.processes import PROCESSES
from services.queue import fetch_job
from services.sfids import to_18
from tests.support.images import photo_jpeg
from tests.support.orgtools import create_record, renditions_of, upload_file
from tests.support.pdfs import minimal_pdf
from tests.support.stacktools import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(redis_url: str, redis_conn) -> Iterator[LocalStack]:
    with LocalStack(redis_url=redis_url, workers=1, applink=True) as running:
        yield running


def invoke(stack: LocalStack, process: str, body: dict, *, token: str, request_id: str | None = None
           ) -> requests.Response:
    """What Salesforce's External Service sends to the app's public URL (the mesh), as the invoking user."""
    headers = {"Authorization": f"Bearer {token}", "x-request-id": request_id or str(uuid.uuid4())}
    return requests.post(f"{stack.receiver_url}/applink/{process}", json=body, headers=headers, timeout=10)


def finished(stack: LocalStack, redis_conn, job_id: str) -> dict | None:
    job = fetch_job(redis_conn, job_id)
    status = job.get_status(refresh=True) if job else None
    return {"status": str(getattr(status, "value", status)), "result": job.return_value()} \
        if job and str(getattr(status, "value", status)) in {"finished", "failed"} else None


def test_every_process_lands_its_renditions_exactly_once_through_the_mesh(stack: LocalStack, redis_conn) -> None:
    org = stack.org
    listing = create_record(org, "Account", Name="3 Mesh Lane")
    sources = {"resize-image": upload_file(org, listing, photo_jpeg(1800, 1200, seed=5), "mesh.jpg"),
               "pdf-preview": upload_file(org, listing, minimal_pdf(2), "mesh.pdf")}
    assert set(sources) == set(PROCESSES), "a new process needs a case here"
    expected = {"resize-image": {"large", "medium", "thumb"}, "pdf-preview": {"page-1", "page-2"}}
    user_token = org.issue_token()
    for name, source in sources.items():
        request_id = f"{org.org_id}-{uuid.uuid4().hex}"
        first = invoke(stack, name, {"contentVersionId": source}, token=user_token, request_id=request_id)
        again = invoke(stack, name, {"contentVersionId": source}, token=user_token, request_id=request_id)
        assert first.status_code == 202, first.text
        assert again.status_code == 200 and again.json()["duplicate"] is True, again.text
        assert again.json()["jobId"] == first.json()["jobId"]
        job_id = first.json()["jobId"]
        job = wait_for(lambda: finished(stack, redis_conn, job_id), 60, f"the {name} job to finish", stack)  # noqa: B023
        assert job["status"] == "finished", (job, stack.logs())
        variants = [r["Offload_Variant__c"] for r in renditions_of(org, source)]
        assert sorted(variants) == sorted(expected[name]), variants
    assert stack.applink_api.invocations == 4  # type: ignore[attr-defined]


def test_a_request_that_did_not_come_through_the_mesh_is_refused(stack: LocalStack, redis_conn) -> None:
    org = stack.org
    source = upload_file(org, create_record(org, "Account", Name="4 Side Door"), photo_jpeg(600, 400), "side.jpg")
    forged = {"Authorization": "Bearer not-a-session"}
    refused = requests.post(f"{stack.receiver_url}/applink/resize-image", json={"contentVersionId": source},
                            headers=forged, timeout=10)
    assert refused.status_code == 401  # the mesh: AppLink could not authenticate it
    assert stack.applink_api.invocations == 0  # type: ignore[attr-defined]
    # The app itself is on 127.0.0.1:APP_PORT only; the public port is the mesh's.
    app_port = int(stack.process_env["APP_PORT"])
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.2:{app_port}/healthz", timeout=2)
    # Bypass routes reach the app without AppLink (and keep their own credentials).
    assert requests.get(f"{stack.receiver_url}/healthz", timeout=5).status_code == 200
    assert requests.post(f"{stack.receiver_url}/callouts/resize-image", json={"contentVersionId": source},
                         timeout=5).json()["error"]["code"] == "MISSING_CREDENTIALS"
    assert renditions_of(org, source) == []


def test_an_expired_context_token_falls_back_to_the_authorized_user(redis_url: str, redis_conn) -> None:
    with LocalStack(redis_url=redis_url, workers=0, applink=True) as stack:  # the job waits for its worker
        expired_context_falls_back(stack, redis_conn)


def expired_context_falls_back(stack: LocalStack, redis_conn) -> None:
    org = stack.org
    source = upload_file(org, create_record(org, "Account", Name="5 Late Street"), photo_jpeg(900, 600), "late.jpg")
    answer = invoke(stack, "resize-image", {"contentVersionId": source}, token=org.issue_token())
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["jobId"]
    job = fetch_job(redis_conn, job_id)
    envelope = job.args[0]
    assert envelope["source"] == "applink" and envelope["orgId"] == to_18(org.org_id) and envelope["userId"]
    assert "accessToken" not in str(job.args) and "!AQ8AQ" not in str(job.args), "the token is never in the job"
    org.state.tokens.expire_all()  # every session so far, the context's too: the org answers 401
    stack.add_worker()
    result = wait_for(lambda: finished(stack, redis_conn, job_id), 60, "the job to finish", stack)
    assert result["status"] == "finished", (result, stack.logs())
    assert {r["Offload_Variant__c"] for r in renditions_of(org, source)} == {"large", "medium", "thumb"}
    grants = {t.grant_type for t in org.state.tokens.all() if t.uses}
    assert "applink-authorization" in grants, grants
