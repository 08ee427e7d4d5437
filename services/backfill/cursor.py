"""The backfill's one cursor over the candidate files, kept in the run's hash so any process can carry it on.

Two ways to read, chosen once per run from Salesforce's count at the start (:func:`choose_mode`):

* **REST query** (``rest``), under :data:`BULK_THRESHOLD` candidates: ``SELECT Id ... ORDER BY Id``, a page of up
  to 2,000 a call, the next one by its ``nextRecordsUrl``
  (https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_query.htm). A locator is not
  kept by Salesforce for ever (a paused run may come back after it is gone: ``INVALID_QUERY_LOCATOR``), so the
  cursor also keeps the last Id it took and then reads on with ``Id > last`` in the same order.
* **Bulk API 2.0 query job** (``bulk``), from :data:`BULK_THRESHOLD` candidates: Salesforce runs the query once,
  asynchronously, and keeps its results for the client to read :data:`BULK_PAGE` rows a call by
  ``Sforce-Locator`` (:mod:`services.salesforce.bulk`). Salesforce's own line is that bulk queries are "designed
  to handle queries that return large amounts of data (10,000 records or more)"
  (https://developer.salesforce.com/docs/atlas.en-us.224.0.api_bulk_v2.meta/api_bulk_v2/queries.htm), and
  5 calls read 50,000 Ids where REST takes 25.

Each page is then checked for files that already have their renditions (:func:`without_renditions`); those are
skipped and counted, never queued.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.backfill.selection import Selection
from services.errors import BackfillError, SalesforcePermanentError
from services.processes.renditions import RENDITION_MARKER_FIELD, VARIANT_FIELD
from services.salesforce import bulk
from services.salesforce.client import SalesforceClient
from services.sfids import to_18

BULK_THRESHOLD = 10_000
"""Candidates from which a run reads with a Bulk API 2.0 query job instead of REST query pages."""
BULK_PAGE = 10_000
"""Rows per Bulk API 2.0 results call (``maxRecords``)."""
RENDITION_CHECK_CHUNK = 200
"""Ids per "which of these have renditions" query: 200 quoted Ids keep the query URL near 5 KB."""


def choose_mode(total: int) -> str:
    return "bulk" if total >= BULK_THRESHOLD else "rest"


@dataclass(frozen=True)
class Page:
    """Candidate Ids read by one step of the cursor, and the cursor after it (``done``: nothing more to read)."""

    ids: list[str]
    cursor: dict[str, Any]

    @property
    def done(self) -> bool:
        return bool(self.cursor.get("done"))


def next_page(sf: SalesforceClient, selection: Selection, mode: str, cursor: dict[str, Any]) -> Page:
    """Read the next page of candidates. A bulk job still running gives an empty page and the same cursor."""
    if cursor.get("done"):
        return Page([], cursor)
    return _bulk_page(sf, selection, cursor) if mode == "bulk" else _rest_page(sf, selection, cursor)


def _rest_page(sf: SalesforceClient, selection: Selection, cursor: dict[str, Any]) -> Page:
    last = cursor.get("last")
    try:
        if cursor.get("next"):
            page = sf.query_page(next_records_url=cursor["next"])
        else:
            page = sf.query_page(selection.soql(after_id=last))
    except SalesforcePermanentError as exc:
        if exc.code != "INVALID_QUERY_LOCATOR":
            raise
        page = sf.query_page(selection.soql(after_id=last))  # the locator is gone: read on after the last Id
    ids = [to_18(str(record["Id"])) for record in page.records]
    return Page(ids, {"next": page.next_records_url, "last": ids[-1] if ids else last,
                      "done": page.next_records_url is None})


def _bulk_page(sf: SalesforceClient, selection: Selection, cursor: dict[str, Any]) -> Page:
    job_id = cursor.get("job")
    if not job_id:
        job = bulk.create_query_job(sf, selection.soql(ordered=False))
        return Page([], {"job": job.id})
    if not cursor.get("complete"):
        job = bulk.query_job(sf, job_id)
        if job.state in ("Failed", "Aborted"):
            raise BackfillError(f"Salesforce's Bulk API query job {job_id} ended {job.state}"
                                f"{': ' + job.error_message if job.error_message else ''}.",
                                code="BACKFILL_QUERY_FAILED")
        if job.state != "JobComplete":
            return Page([], cursor)
        cursor = {**cursor, "complete": True}
    results = bulk.results_page(sf, job_id, locator=cursor.get("locator"), max_records=BULK_PAGE)
    ids = [to_18(row["Id"]) for row in results.rows if row.get("Id")]
    return Page(ids, {**cursor, "locator": results.locator, "done": results.locator is None})


def without_renditions(sf: SalesforceClient, ids: list[str], wanted: frozenset[str] | None = None
                       ) -> tuple[list[str], int]:
    """The Ids still to render (in order), and how many are done.

    A file is done when it has every rendition in ``wanted`` (variant names), or any rendition when ``wanted``
    is None. The job renders only what is missing, so a file with some renditions costs only those.
    """
    have: dict[str, set[str]] = {}
    for start in range(0, len(ids), RENDITION_CHECK_CHUNK):
        chunk = ids[start:start + RENDITION_CHECK_CHUNK]
        quoted = ", ".join(f"'{i}'" for i in chunk)
        rows = sf.query(f"SELECT {RENDITION_MARKER_FIELD}, {VARIANT_FIELD} FROM ContentVersion "
                        f"WHERE {RENDITION_MARKER_FIELD} IN ({quoted})")
        for row in rows:
            if row.get(RENDITION_MARKER_FIELD):
                have.setdefault(to_18(str(row[RENDITION_MARKER_FIELD])), set()).add(str(row.get(VARIANT_FIELD) or ""))
    keep = [i for i in ids if i not in have or (wanted is not None and not wanted <= have[i])]
    return keep, len(ids) - len(keep)
