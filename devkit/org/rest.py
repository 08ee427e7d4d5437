"""REST resources that are not about one sObject: versions, resource list, limits, SOQL.

* ``GET /services/data/`` lists versions (no auth, not counted; REST API guide,
  https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm and
  https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_api_usage.htm).
* ``GET .../limits`` reports ``DailyApiRequests`` Max/Remaining and a few other limits.
* ``GET .../query?q=`` and ``.../queryAll?q=`` run SOQL through ``devkit/org/soql.py``
  (written separately; imported lazily) and page results ``query_batch_size`` at a time with
  ``nextRecordsUrl``, as the Query resource does (default batch 2000, ``Sforce-Query-Options:
  batchSize=N`` between 200 and 2000).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Blueprint, Response, current_app, request

from services import sfids

from . import sferrors
from .sferrors import RestError, json_response
from .state import OrgState
from .visibility import VisibleRows

logger = logging.getLogger(__name__)

bp = Blueprint("devorg_rest", __name__)

V = "/services/data/v<version>"
_SEASONS = ("Spring", "Summer", "Winter")
_VERSION_RE = re.compile(r"^\d+\.\d+$")


def _state() -> OrgState:
    return current_app.extensions["devorg_state"]


def check_version(version: str) -> str:
    if not _VERSION_RE.match(version):
        raise sferrors.not_found()
    return version


def release_label(version: int) -> str:
    """``62`` -> ``Winter '25`` (v60 = Spring '24; three releases a year)."""
    k = version - 60
    season = _SEASONS[k % 3]
    year = 24 + k // 3 + (1 if k % 3 == 2 else 0)
    return f"{season} '{year:02d}"


@bp.get("/services/data")
def versions() -> Response:
    """Every API version from 31.0 to the org's configured one."""
    top = int(float(_state().config.api_version))
    return json_response(
        [
            {"label": release_label(v), "url": f"/services/data/v{v}.0", "version": f"{v}.0"}
            for v in range(31, top + 1)
        ]
    )


@bp.get(V)
def resources(version: str) -> Response:
    check_version(version)
    base = f"/services/data/v{version}"
    names = ("sobjects", "query", "queryAll", "composite", "limits", "jobs")
    return json_response({name: f"{base}/{name}" for name in names})


@bp.get(f"{V}/limits")
def limits(version: str) -> Response:
    check_version(version)
    state = _state()
    max_calls = state.config.daily_api_limit
    remaining = max(0, max_calls - state.api_calls)
    used_mb = sum(p.stat().st_size for p in state.blob_dir.iterdir()) // (1024 * 1024)
    return json_response(
        {
            "DailyApiRequests": {"Max": max_calls, "Remaining": remaining},
            "DailyAsyncApexExecutions": {"Max": 250000, "Remaining": 250000},
            "DailyStandardVolumePlatformEvents": {"Max": 25000, "Remaining": 25000 - len(state.events)},
            "HourlyPublishedStandardVolumePlatformEvents": {
                "Max": 50000,
                "Remaining": 50000 - len(state.events),
            },
            "ContentPublicationLimit": {
                "Max": state.config.content_publication_limit,
                "Remaining": state.content_publications_remaining(),
            },
            "DailyBulkV2QueryJobs": {
                "Max": state.config.bulk_query_daily_jobs,
                "Remaining": state.bulk_query_jobs_remaining(),
            },
            "DataStorageMB": {"Max": 1024, "Remaining": 1024},
            "FileStorageMB": {"Max": 10240, "Remaining": max(0, 10240 - used_mb)},
        }
    )


class _AllRows:
    """Read view for ``queryAll``: deleted records are visible (IsDeleted = true)."""

    def __init__(self, state: OrgState):
        self._state = state

    def all_records(self, sobject: str) -> list[dict]:
        return self._state.all_records(sobject, include_deleted=True)

    def get_record(self, record_id: str) -> tuple[str, dict] | None:
        return self._state.get_record(record_id)

    def resolve_sobject(self, name: str) -> str | None:
        return self._state.catalog.resolve(name)


@bp.get(f"{V}/query")
def query(version: str) -> Response:
    return _run_query(version, include_deleted=False)


@bp.get(f"{V}/queryAll")
def query_all(version: str) -> Response:
    return _run_query(version, include_deleted=True)


@bp.get(f"{V}/query/<cursor>")
@bp.get(f"{V}/queryAll/<cursor>")
def query_more(version: str, cursor: str) -> Response:
    """The next page of an earlier query (``nextRecordsUrl``)."""
    check_version(version)
    state = _state()
    with state.lock:
        saved = state.query_cursors.pop(cursor, None)
    if saved is None:
        raise RestError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    rows, total, offset = saved
    return json_response(_page(state, version, rows, total, _batch_size(state), offset))


def _batch_size(state: OrgState) -> int:
    options = request.headers.get("Sforce-Query-Options", "")
    match = re.search(r"batchSize=(\d+)", options)
    if match:
        return max(200, min(2000, int(match.group(1))))
    return state.config.query_batch_size


def _run_query(version: str, *, include_deleted: bool) -> Response:
    check_version(version)
    state = _state()
    soql_text = request.args.get("q")
    if not soql_text:
        raise RestError(400, "MALFORMED_QUERY", "A query string must be provided.")
    try:
        from . import soql
    except ImportError as exc:
        raise RestError(
            500, "UNKNOWN_EXCEPTION", "SOQL engine (devkit/org/soql.py) is not installed"
        ) from exc
    source: Any = VisibleRows(_AllRows(state) if include_deleted else state, state)
    try:
        rows = soql.execute(soql_text, source, api_version=version)
    except soql.MalformedQuery as exc:
        code = getattr(exc, "error_code", None) or "MALFORMED_QUERY"
        raise RestError(400, code, str(getattr(exc, "message", None) or exc)) from exc
    rows = [_with_attributes(state, row, version) for row in rows]
    total = len(rows)
    counter = getattr(soql, "count", None)
    if counter is not None and not rows:
        total = counter(soql_text, source) or 0  # SELECT COUNT(): totalSize, no records
    return json_response(_page(state, version, rows, total, _batch_size(state)))


def _with_attributes(state: OrgState, row: dict, version: str) -> dict:
    """Records without ``attributes`` get them (when the engine leaves them out)."""
    if "attributes" in row or not isinstance(row.get("Id"), str):
        return row
    found = state.get_record(row["Id"])
    if found is None:
        return row
    url = f"/services/data/v{version}/sobjects/{found[0]}/{sfids.to_18(row['Id'])}"
    return {"attributes": {"type": found[0], "url": url}, **row}


def _page(
    state: OrgState, version: str, rows: list[dict], total: int, batch: int, offset: int = 0
) -> dict[str, Any]:
    """One page of results; the rest is parked under a query locator ``<01g id>-<offset>``."""
    body: dict[str, Any] = {"totalSize": total, "done": True, "records": rows}
    if len(rows) > batch:
        cursor = state.ids.new_id("01g") + f"-{offset + batch}"
        with state.lock:
            state.query_cursors[cursor] = (rows[batch:], total, offset + batch)
        body.update(
            done=False, records=rows[:batch], nextRecordsUrl=f"/services/data/v{version}/query/{cursor}"
        )
    return body
