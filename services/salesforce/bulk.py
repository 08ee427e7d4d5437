"""Bulk API 2.0 query jobs: the backfill's cursor for orgs with many files.

A query job runs the SOQL on Salesforce's side, asynchronously, and keeps the whole result set for the
client to read page by page (``Sforce-Locator``); "Bulk query jobs ... are designed to handle queries that
return large amounts of data (10,000 records or more)"
(https://developer.salesforce.com/docs/atlas.en-us.224.0.api_bulk_v2.meta/api_bulk_v2/queries.htm). Every
request here is one API call against the org's daily allowance, like any REST call.

Calls, all under ``/services/data/vXX.X/jobs/query``
(https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_create_job.htm,
.../query_get_one_job.htm, .../query_get_job_results.htm, .../query_abort_job.htm): create (POST), poll (GET
``/{id}``), read results (GET ``/{id}/results?locator=&maxRecords=``: CSV with a header row, the next locator in
``Sforce-Locator``, the string ``null`` after the last page), abort (PATCH ``{"state": "Aborted"}``).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from services.errors import SalesforcePermanentError
from services.salesforce.client import SalesforceClient

JOBS = "jobs/query"
FINISHED_STATES = frozenset({"JobComplete", "Failed", "Aborted"})


@dataclass(frozen=True)
class QueryJob:
    """A query job's id and state (``UploadComplete``, ``InProgress``, ``JobComplete``, ``Failed``, ``Aborted``)."""

    id: str
    state: str
    records_processed: int = 0
    error_message: str | None = None

    @classmethod
    def of(cls, body: dict[str, Any]) -> QueryJob:
        return cls(id=str(body["id"]), state=str(body.get("state") or ""),
                   records_processed=int(body.get("numberRecordsProcessed") or 0),
                   error_message=body.get("errorMessage"))

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES


@dataclass(frozen=True)
class ResultsPage:
    """Rows of one results page (column -> value; an empty string is a null), and the next page's locator."""

    rows: list[dict[str, str]]
    locator: str | None


def create_query_job(sf: SalesforceClient, soql: str, *, query_all: bool = False) -> QueryJob:
    body = {"operation": "queryAll" if query_all else "query", "query": soql, "contentType": "CSV",
            "columnDelimiter": "COMMA", "lineEnding": "LF"}
    return QueryJob.of(sf.send("POST", JOBS, json=body).json())


def query_job(sf: SalesforceClient, job_id: str) -> QueryJob:
    return QueryJob.of(sf.send("GET", f"{JOBS}/{job_id}").json())


def results_page(sf: SalesforceClient, job_id: str, *, locator: str | None, max_records: int) -> ResultsPage:
    """One page of a completed job's results, ``max_records`` rows at most."""
    params: dict[str, Any] = {"maxRecords": max_records}
    if locator:
        params["locator"] = locator
    response = sf.send("GET", f"{JOBS}/{job_id}/results", params=params, headers={"Accept": "text/csv"})
    text = response.content.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    next_locator = response.headers.get("Sforce-Locator")
    if next_locator is None:
        raise SalesforcePermanentError("A Bulk API 2.0 results page came without its Sforce-Locator header.",
                                       code="BULK_RESULTS_MALFORMED")
    return ResultsPage(rows=rows, locator=None if next_locator in ("", "null") else next_locator)
