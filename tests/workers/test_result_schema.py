"""A real job's ``GET /jobs/<id>`` view fits the OpenAPI document with every result schema *closed*.

The document leaves response schemas open (answers may gain fields), so a key the worker returns but the
process's ``result_schema`` does not declare would pass unnoticed, and Flow could not read it. Here the
result schemas are closed (``additionalProperties: false``) and real results, from the worker against the
org emulator, are validated: every key the worker returns is typed.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
from referencing import Registry, Resource

from services.ops.jobview import describe_job
from services.queue import fetch_job
from services.receiver.openapi import RESULT_NAME, build_spec
from tests.support.images import photo_jpeg
from tests.support.orgtools import create_record, upload_file
from tests.workers.test_resize_job import enqueue


def refs(node: Any) -> list[str]:
    """Names of the component schemas ``node`` refers to, at any depth."""
    if isinstance(node, dict):
        own = [node["$ref"].rsplit("/", 1)[1]] if isinstance(node.get("$ref"), str) else []
        return own + [name for value in node.values() for name in refs(value)]
    if isinstance(node, list):
        return [name for value in node for name in refs(value)]
    return []


def closed_job_status() -> jsonschema.Draft4Validator:
    document = copy.deepcopy(build_spec("https://offload.example.com"))
    schemas = document["components"]["schemas"]
    todo, seen = [RESULT_NAME], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        schemas[name]["additionalProperties"] = False
        todo.extend(refs(schemas[name]))
    registry = Registry().with_resource("urn:offload", Resource.opaque(document))
    return jsonschema.Draft4Validator({"$ref": "urn:offload#/components/schemas/JobStatus"}, registry=registry)


def view(redis_conn: Any, job_id: str) -> dict[str, Any]:
    job = fetch_job(redis_conn, job_id)
    assert job.get_status() == "finished", job.latest_result().exc_string if job.latest_result() else None
    return describe_job(job)


def test_every_key_of_real_resize_results_is_documented(org, worker_env, redis_conn, run_jobs) -> None:
    validator = closed_job_status()
    account = create_record(org, "Account", Name="Schema")
    source = upload_file(org, account, photo_jpeg(900, 600), "s.jpg")
    upload_file(org, account, b"\xff\xd8\xff\xe0 not really a jpeg", "broken.jpg")
    written = enqueue(redis_conn, {"contentVersionId": source}, "first")
    run_jobs()
    again = enqueue(redis_conn, {"contentVersionId": source}, "again")  # the renditions exist now
    by_record = enqueue(redis_conn, {"recordId": account}, "record")  # the broken file is refused
    run_jobs()
    views = [view(redis_conn, job_id) for job_id in (written, again, by_record)]
    assert views[0]["result"]["renditions"][0]["width"] > 0
    assert views[1]["result"]["renditions"][0]["existing"] is True
    assert views[2]["result"]["refused"][0]["code"] == "IMAGE_REJECTED"
    for job_view in views:
        validator.validate(job_view)


def test_every_key_of_real_pdf_preview_results_is_documented(org, worker_env, redis_conn, run_jobs) -> None:
    from tests.support.pdfs import minimal_pdf
    from tests.workers.test_pdf_job import enqueue as enqueue_pdf

    validator = closed_job_status()
    account = create_record(org, "Account", Name="Schema PDF")
    source = upload_file(org, account, minimal_pdf(2), "s.pdf")
    written = enqueue_pdf(redis_conn, {"contentVersionId": source}, "pdf-first")
    run_jobs()
    again = enqueue_pdf(redis_conn, {"contentVersionId": source}, "pdf-again")
    run_jobs()
    views = [view(redis_conn, job_id) for job_id in (written, again)]
    assert views[0]["result"]["pages"][0]["widthPt"] == 595 and views[0]["result"]["pageCount"] == 2
    assert views[1]["result"]["renditions"][0]["existing"] is True
    for job_view in views:
        validator.validate(job_view)
