"""Bulk API 2.0 query jobs: ``/services/data/vXX.X/jobs/query``, as the Bulk API 2.0 Developer Guide documents them.

* Create (``POST .../jobs/query``, https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_create_job.htm):
  ``operation`` ``query`` or ``queryAll`` and ``query`` are required; ``contentType`` is only ``CSV``;
  ``columnDelimiter`` BACKQUOTE, CARET, COMMA (default), PIPE, SEMICOLON, TAB; ``lineEnding`` LF (default) or CRLF.
  The answer is 200 with the job info in state ``UploadComplete``. SOQL Bulk API 2.0 refuses: "GROUP BY, OFFSET,
  or TYPEOF clauses", "Aggregate Functions such as COUNT()", "Compound data, such as ... FIELDS()", and
  "Parent-to-child relationship queries" (child-to-parent paths like ``Owner.Name`` are supported). ORDER BY and
  LIMIT are accepted: the current guide no longer lists them, and the Spring '24 one that did said in the same
  note "Don't use ORDER BY or LIMIT, as they disable PKChunking", i.e. they run, only slower
  (https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/queries.htm).
* Job info (``GET .../jobs/query/<id>``, https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_get_one_job.htm):
  states UploadComplete, InProgress, Aborted, JobComplete, Failed; ``numberRecordsProcessed``, ``retries``,
  ``totalProcessingTime``.
* Results (``GET .../jobs/query/<id>/results?locator=&maxRecords=``,
  https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_get_job_results.htm): "The job
  must have the state JobComplete"; CSV with headers ``Sforce-NumberOfRecords`` and ``Sforce-Locator`` (``null``
  when there are no more results); "As long as the associated job exists, the locator string for a set of
  results does not change"; "Use the same API version to get query results that you used to create the query.
  Otherwise, the call returns a 409 error."
* Abort (``PATCH`` ``{"state": "Aborted"}``, only from UploadComplete or InProgress,
  https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_abort_job.htm), delete
  (``DELETE``, 204, only JobComplete, Aborted or Failed, else 400 API_ERROR "Error encountered when deleting the job
  because the job is not terminated",
  https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_delete_job.htm) and the list
  (``GET .../jobs/query``: ``done``, ``records``, ``nextRecordsUrl``, at most 1,000 jobs a page,
  https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_get_all_jobs.htm).

Every call is an API request like any REST call (auth, ``DailyApiRequests``, ``Sforce-Limit-Info`` come from the
app's pipeline): the request allocation applies "to Salesforce Platform SOAP and REST APIs and any other API built on
those frameworks" (https://developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_api.htm),
and Bulk API 2.0 is served under ``/services/data``.

Processing is deterministic, for tests: the query runs (its rows are fixed, a snapshot) on the first job-info poll
after creation; that poll and the next ``OrgConfig.bulk_query_polls_in_progress - 1`` answer InProgress, the one
after answers JobComplete (0, the default: the first poll already answers JobComplete). Rows are those the REST query
returns for the same SOQL, with the same file-visibility rules (``devkit/org/visibility.py``).

Not documented, chosen here (each a refusal a client must survive, so the choice is the strict one):
the errorCodes of refused create bodies (API_ERROR, as the delete page uses), of unsupported SOQL
(FUNCTIONALITY_NOT_ENABLED, the code Bulk API 1.0 reports for "Aggregate Relationship is not supported in Bulk Query"),
of results asked too early (API_ERROR), of a locator from another job or a bad ``maxRecords`` (API_ERROR), of a bad
abort (INVALIDJOBSTATE, after "InvalidJobState: The job state specified in a job update operation is invalid",
https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/bulk_api_2_0_errors.htm), the 409 body;
invalid SOQL answers what the REST query answers (MALFORMED_QUERY, INVALID_FIELD, INVALID_TYPE) at creation; the
default page size (``OrgConfig.bulk_query_default_max_records``); dateTime values written ``...000Z`` as Bulk API
CSV shows them; every value quoted, as the documented example is; a page with no rows is the header line alone.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, current_app, request

from . import sferrors
from .rest import _AllRows, check_version
from .sferrors import RestError, json_response
from .sobjects import read_json
from .state import OrgState, sf_datetime
from .visibility import VisibleRows

logger = logging.getLogger(__name__)

bp = Blueprint("devorg_bulk", __name__)

V = "/services/data/v<version>/jobs/query"

OPERATIONS = ("query", "queryAll")
DELIMITERS = {"BACKQUOTE": "`", "CARET": "^", "COMMA": ",", "PIPE": "|", "SEMICOLON": ";", "TAB": "\t"}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
JOB_PREFIX = "750"
LIST_PAGE = 1000
"""Get Information About All Query Jobs: up to 1,000 jobs a request, then ``nextRecordsUrl``."""

TERMINAL = ("JobComplete", "Aborted", "Failed")
_AGGREGATES = frozenset({"COUNT", "COUNT_DISTINCT", "SUM", "AVG", "MIN", "MAX"})
_SF_DATETIME = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3})\+0000$")


@dataclass
class QueryJob:
    """One Bulk API 2.0 query job; ``rows`` is the snapshot taken when processing started."""

    id: str
    operation: str
    sobject: str
    query: str
    columns: list[tuple[str, tuple[str, ...]]]
    created_by: str
    created: str
    api_version: str
    column_delimiter: str
    line_ending: str
    polls_in_progress: int
    state: str = "UploadComplete"
    modstamp: str = ""
    polls: int = 0
    rows: list[list[Any]] | None = None
    processing_ms: int = 0
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(16))

    def info(self, *, full: bool) -> dict[str, Any]:
        """The job info JSON: the create/abort shape, or (``full``) the Get Information About a Query Job one."""
        body: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.sobject,
            "createdById": self.created_by,
            "createdDate": self.created,
            "systemModstamp": self.modstamp or self.created,
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
        }
        if full:
            body["jobType"] = "V2Query"
        body["lineEnding"] = self.line_ending
        body["columnDelimiter"] = self.column_delimiter
        if full:
            done = self.state == "JobComplete"
            body["numberRecordsProcessed"] = len(self.rows or []) if done else 0
            body["retries"] = 0
            body["totalProcessingTime"] = self.processing_ms if done else 0
        return body

    def locator(self, offset: int) -> str:
        """An opaque locator for the set starting at ``offset``: the same every time, valid for this job only."""
        mac = hmac.new(self.secret, str(offset).encode(), hashlib.sha256).digest()[:6]
        return base64.urlsafe_b64encode(offset.to_bytes(4, "big") + mac).decode().rstrip("=")

    def offset_of(self, locator: str) -> int | None:
        try:
            raw = base64.urlsafe_b64decode(locator + "=" * (-len(locator) % 4))
        except (ValueError, TypeError):
            return None
        if len(raw) != 10:
            return None
        offset = int.from_bytes(raw[:4], "big")
        return offset if hmac.compare_digest(self.locator(offset), locator) else None


def _state() -> OrgState:
    return current_app.extensions["devorg_state"]


def _jobs(state: OrgState) -> dict[str, QueryJob]:
    return state.bulk_query_jobs


def _refuse(message: str, code: str = "API_ERROR", status: int = 400) -> RestError:
    return RestError(status, code, message)


# --------------------------------------------------------------------------- SOQL checks


def unsupported_feature(query: str) -> str | None:
    """What Bulk API 2.0 does not run in this query (documented list, see the module docstring), or None."""
    from .soql_parser import MalformedQuery, tokenize

    try:
        tokens = tokenize(query)
    except MalformedQuery:
        return None
    depth = 0
    in_select_list = False
    for i, tok in enumerate(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else tok
        word = tok.upper()
        if tok.kind == "OP" and tok.text == "(":
            if nxt.upper() == "SELECT" and depth == 0 and in_select_list:
                return "Parent-to-child relationship queries are not supported by Bulk API 2.0"
            depth += 1
        elif tok.kind == "OP" and tok.text == ")":
            depth -= 1
        elif word == "SELECT" and depth == 0:
            in_select_list = True
        elif word == "FROM" and depth == 0:
            in_select_list = False
        if word == "GROUP" and nxt.upper() == "BY":
            return "GROUP BY is not supported by Bulk API 2.0"
        if word == "OFFSET":
            return "OFFSET is not supported by Bulk API 2.0"
        if word == "TYPEOF":
            return "TYPEOF is not supported by Bulk API 2.0"
        if word in _AGGREGATES and nxt.kind == "OP" and nxt.text == "(":
            return f"Aggregate functions such as {word}() are not supported by Bulk API 2.0"
        if word == "FIELDS" and nxt.kind == "OP" and nxt.text == "(":
            return "Selecting compound data, such as FIELDS(), is not supported by Bulk API 2.0"
    return None


def _source(state: OrgState, operation: str) -> Any:
    return VisibleRows(_AllRows(state) if operation == "queryAll" else state, state)


def _run(state: OrgState, job_query: str, operation: str, version: str) -> list[dict]:
    """The SOQL engine's records, or the REST query's error for the same query."""
    from . import soql

    try:
        return soql.execute(job_query, _source(state, operation), api_version=version)
    except soql.MalformedQuery as exc:
        raise RestError(400, exc.error_code, str(exc)) from exc


def _flatten(record: dict, parts: tuple[str, ...]) -> Any:
    """A selected path's value in a rendered record (parents nest under their relationship name)."""
    current: Any = record
    for part in parts:
        if not isinstance(current, dict):
            return None
        key = next((k for k in current if k.lower() == part.lower() and k != "attributes"), None)
        current = current.get(key) if key is not None else None
    return current


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        match = _SF_DATETIME.match(value)
        return f"{match.group(1)}Z" if match else value
    return str(value)


# --------------------------------------------------------------------------- routes


@bp.post(V)
def create_job(version: str) -> Response:
    """Create a query job: the body checked, the SOQL checked against the org, state UploadComplete."""
    check_version(version)
    state = _state()
    body = read_json(state)
    if not isinstance(body, dict):
        raise sferrors.json_parser_error("Cannot deserialize instance of QueryJobRequest from non-object value")
    operation = body.get("operation")
    if operation not in OPERATIONS:
        raise _refuse(f"Invalid operation: {operation!r}. Use one of: query, queryAll.")
    text = body.get("query")
    if not isinstance(text, str) or not text.strip():
        raise _refuse("The query is required: give the SOQL to run in 'query'.")
    content_type = body.get("contentType", "CSV")
    if content_type != "CSV":
        raise _refuse(f"Invalid contentType: {content_type!r}. The only supported value is CSV.")
    delimiter = body.get("columnDelimiter", "COMMA")
    if delimiter not in DELIMITERS:
        raise _refuse(f"Invalid columnDelimiter: {delimiter!r}. Use one of: {', '.join(DELIMITERS)}.")
    line_ending = body.get("lineEnding", "LF")
    if line_ending not in LINE_ENDINGS:
        raise _refuse(f"Invalid lineEnding: {line_ending!r}. Use LF or CRLF.")
    unknown = set(body) - {"operation", "query", "contentType", "columnDelimiter", "lineEnding", "object"}
    if unknown:
        raise _refuse(f"Unrecognized field(s) in the job request: {', '.join(sorted(unknown))}")
    from . import soql_parser

    try:
        parsed = soql_parser.parse(text)
    except soql_parser.MalformedQuery as exc:
        feature = unsupported_feature(text) if not isinstance(exc, soql_parser.InvalidField) else None
        if feature:
            raise _refuse(feature, "FUNCTIONALITY_NOT_ENABLED") from exc
        raise RestError(400, exc.error_code, str(exc)) from exc
    feature = unsupported_feature(text)
    if feature or parsed.count_only:
        raise _refuse(feature or "Aggregate functions such as COUNT() are not supported by Bulk API 2.0",
                      "FUNCTIONALITY_NOT_ENABLED")
    _run(state, text, operation, version)  # INVALID_FIELD / INVALID_TYPE now, as the REST query would answer
    sobject = state.catalog.resolve(parsed.sobject) or parsed.sobject
    named = body.get("object")
    if named is not None and (state.catalog.resolve(str(named)) or named) != sobject:
        # API 47.0's guide lists an optional ``object`` ("If this is not specified, the API determines the object
        # from the query"); later guides dropped it. One that names another object than the query is refused.
        raise _refuse(f"The object {named!r} is not the object the query reads ({sobject}).")
    if state.bulk_query_jobs_remaining() <= 0:
        # "ExceededQuota: The job or batch you tried to create exceeds the allowed number for the past 24-hour
        # period" (bulk_api_2_0_errors.htm); the wire spelling and status are not documented.
        raise _refuse("DailyBulkV2QueryJobs exceeded: no more query jobs in this 24-hour period.", "EXCEEDEDQUOTA")
    job = QueryJob(
        id=state.ids.new_id(JOB_PREFIX), operation=operation, sobject=sobject, query=text,
        columns=[(path.text, path.parts) for path in parsed.fields], created_by=state.user_id,
        created=sf_datetime(), api_version=version, column_delimiter=delimiter, line_ending=line_ending,
        polls_in_progress=max(0, state.config.bulk_query_polls_in_progress),
    )
    with state.lock:
        _jobs(state)[job.id] = job
        state.bulk_query_job_times.append(time.time())
    logger.info("bulk query job %s (%s) on %s", job.id, operation, sobject)
    return json_response(job.info(full=False))


def _job(state: OrgState, job_id: str) -> QueryJob:
    from services import sfids

    try:
        key = sfids.to_18(job_id)
    except (ValueError, TypeError):
        raise sferrors.not_found() from None
    job = _jobs(state).get(key)
    if job is None:
        raise sferrors.not_found()
    return job


@bp.get(f"{V}/<job_id>")
def job_info(version: str, job_id: str) -> Response:
    """Job info; each poll moves an unfinished job on (module docstring: the state progression)."""
    check_version(version)
    state = _state()
    with state.lock:
        job = _job(state, job_id)
        if job.state in ("UploadComplete", "InProgress"):
            job.polls += 1
            if job.rows is None:
                started = time.perf_counter()
                records = _run(state, job.query, job.operation, job.api_version)
                job.rows = [[_flatten(r, parts) for _, parts in job.columns] for r in records]
                job.processing_ms = max(1, int((time.perf_counter() - started) * 1000))
            job.state = "JobComplete" if job.polls > job.polls_in_progress else "InProgress"
            job.modstamp = sf_datetime()
        return json_response(job.info(full=True))


@bp.get(f"{V}/<job_id>/results")
def job_results(version: str, job_id: str) -> Response:
    """One set of results as CSV, ``Sforce-Locator`` naming the next (``null`` after the last)."""
    check_version(version)
    state = _state()
    with state.lock:
        job = _job(state, job_id)
        if job.api_version != version:
            raise _refuse(f"Get the results with the API version that created the job (v{job.api_version}), "
                          f"not v{version}.", status=409)
        if job.state != "JobComplete" or job.rows is None:
            raise _refuse(f"The job {job.id} is {job.state}: results are available once it is JobComplete.")
        rows = job.rows
        offset = 0
        locator = request.args.get("locator")
        if locator is not None:
            found = job.offset_of(locator)
            if found is None or found > len(rows):
                raise _refuse(f"Invalid locator {locator!r} for job {job.id}: use a Sforce-Locator this job gave.")
            offset = found
        size = _max_records(state)
        page = rows[offset: offset + size]
        following = offset + len(page)
        next_locator = job.locator(following) if following < len(rows) else "null"
    out = io.StringIO()
    writer = csv.writer(out, delimiter=DELIMITERS[job.column_delimiter], quoting=csv.QUOTE_ALL,
                        lineterminator=LINE_ENDINGS[job.line_ending])
    writer.writerow([name for name, _ in job.columns])
    writer.writerows([[_csv_value(v) for v in row] for row in page])
    headers = {"Sforce-Locator": next_locator, "Sforce-NumberOfRecords": str(len(page))}
    return Response(out.getvalue(), status=200, headers=headers, content_type="text/csv")


def _max_records(state: OrgState) -> int:
    raw = request.args.get("maxRecords")
    if raw is None:
        return state.config.bulk_query_default_max_records
    if not raw.isdigit() or int(raw) < 1:
        raise _refuse(f"Invalid maxRecords {raw!r}: give a whole number of records above 0.")
    return int(raw)


@bp.patch(f"{V}/<job_id>")
def abort_job(version: str, job_id: str) -> Response:
    """``{"state": "Aborted"}`` on a job still UploadComplete or InProgress."""
    check_version(version)
    state = _state()
    body = read_json(state)
    with state.lock:
        job = _job(state, job_id)
        if body != {"state": "Aborted"}:
            raise _refuse('The request body must be {"state": "Aborted"}.', "INVALIDJOBSTATE")
        if job.state not in ("UploadComplete", "InProgress"):
            raise _refuse(f"Aborting a job in state {job.state} is not allowed: only UploadComplete or "
                          "InProgress jobs can be aborted.", "INVALIDJOBSTATE")
        job.state, job.rows, job.modstamp = "Aborted", None, sf_datetime()
        return json_response(job.info(full=False))


@bp.delete(f"{V}/<job_id>")
def delete_job(version: str, job_id: str) -> Response:
    """Remove a finished job and its results: 204, or the documented 400 for a job not terminated."""
    check_version(version)
    state = _state()
    with state.lock:
        job = _job(state, job_id)
        if job.state not in TERMINAL:
            raise _refuse("Error encountered when deleting the job because the job is not terminated")
        del _jobs(state)[job.id]
    return Response(status=204)


@bp.get(V)
def list_jobs(version: str) -> Response:
    """Get Information About All Query Jobs: this emulator only has Bulk API 2.0 query jobs (jobType V2Query)."""
    check_version(version)
    state = _state()
    job_type = request.args.get("jobType")
    if job_type not in (None, "V2Query", "Classic", "V2Ingest"):
        raise _refuse(f"Invalid jobType {job_type!r}: use Classic, V2Query or V2Ingest.")
    with state.lock:
        jobs = [j.info(full=True) for j in _jobs(state).values()] if job_type in (None, "V2Query") else []
    start = 0
    locator = request.args.get("queryLocator")
    if locator is not None:
        if not locator.isdigit() or int(locator) > len(jobs):
            raise _refuse(f"Invalid queryLocator {locator!r}: use the nextRecordsUrl of the previous page.")
        start = int(locator)
    page = jobs[start: start + LIST_PAGE]
    following = start + len(page)
    body: dict[str, Any] = {"done": following >= len(jobs), "records": page, "nextRecordsUrl": None}
    if following < len(jobs):
        body["nextRecordsUrl"] = f"/services/data/v{version}/jobs/query?queryLocator={following}"
    return json_response(body)
