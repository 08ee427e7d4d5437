"""The in-memory org: records, platform events, API usage, tokens, faults and file bytes.

One ``OrgState`` is shared by every request thread of the emulator, so every mutation
happens under ``state.lock`` (re-entrant, so a composite request can hold it across its
subrequests and roll back on failure). Validation lives in ``records.py``; this module only
stores, timestamps and notifies.

Read interface for the SOQL engine (``devkit/org/soql.py``):
``all_records(sobject)`` and ``get_record(record_id)``, both returning copies.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services import sfids

from .config import OrgConfig
from .faults import FaultInjector
from .keyprefixes import IdFactory, SObjectCatalog
from .tokens import TokenStore

logger = logging.getLogger(__name__)

Listener = Callable[[str, dict, bool], None]

#: Fields Salesforce maintains itself; writes to them are refused (INVALID_FIELD_FOR_INSERT_UPDATE).
SYSTEM_FIELDS = (
    "Id",
    "IsDeleted",
    "CreatedDate",
    "CreatedById",
    "LastModifiedDate",
    "LastModifiedById",
    "SystemModstamp",
)


def sf_datetime(moment: datetime | None = None) -> str:
    """REST API dateTime format, e.g. ``2025-11-20T14:05:00.000+0000``."""
    moment = moment or datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


class OrgState:
    """Everything one emulated org remembers between requests."""

    def __init__(self, config: OrgConfig | None = None, *, state_dir: str | Path | None = None):
        self.config = config or OrgConfig()
        if not sfids.is_valid_id(self.config.org_id) or not self.config.org_id.startswith("00D"):
            raise ValueError(f"org_id {self.config.org_id!r} is not a valid 00D Id")
        self.config.org_id = sfids.to_18(self.config.org_id)
        self._owns_dir = state_dir is None
        self.state_dir = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="offload-devorg-"))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.blob_dir = self.state_dir / "blobs"
        self.blob_dir.mkdir(exist_ok=True)
        self.lock = threading.RLock()
        self.catalog = SObjectCatalog(self.config)
        self.ids = IdFactory()
        self.tokens = TokenStore(self.config)
        self.faults = FaultInjector()
        self.listeners: list[Listener] = []
        #: Hook for the Outbound Message sender (set by devkit/org/outbound.py).
        self.outbound: Any = None
        #: Extra Flask blueprints mounted by ``create_org_app`` (e.g. outbound-message admin routes).
        self.admin_blueprints: list[Any] = []
        #: Record Ids whose writes fail with UNABLE_TO_LOCK_ROW (admin: POST /_emulator/locks).
        self.locked_ids: set[str] = set()
        #: (method, path, errorCode) of the last refused REST requests, newest last (tests read it).
        self.refusals: collections.deque[tuple[str, str, str]] = collections.deque(maxlen=1000)
        self.base_url = ""
        self._reset_data()

    # ----- lifecycle -------------------------------------------------------------------
    def _reset_data(self) -> None:
        self._records: dict[str, tuple[str, dict[str, Any]]] = {}
        self._deleted: dict[str, tuple[str, dict[str, Any]]] = {}
        self._fields: dict[str, dict[str, str]] = {}
        self.events: list[dict[str, Any]] = []
        self.api_calls = 0
        #: The client ends (address, port) of the connections requests came in on: one per TCP connection, so a
        #: test can tell a client that keeps its connections from one that opens one per call.
        self.client_connections: set[tuple[str, str]] = set()
        #: When each ContentVersion was published (epoch s), for the rolling 24 h ContentPublicationLimit.
        self.content_publications: collections.deque[float] = collections.deque()
        self.query_cursors: dict[str, tuple[list[dict], int, int]] = {}
        #: Bulk API 2.0 query jobs by Id (``devkit/org/bulk.py``).
        self.bulk_query_jobs: dict[str, Any] = {}
        #: When each Bulk API 2.0 query job was created (epoch s), for the rolling 24 h DailyBulkV2QueryJobs.
        self.bulk_query_job_times: collections.deque[float] = collections.deque()
        self._pending: list[tuple[str, dict, bool]] | None = None
        self._undo: list[tuple[str, tuple[str, dict] | None, tuple[str, dict] | None]] = []
        self.user_id = ""
        for sobject, names in self.config.schema.items():
            for name in names:
                self.canonical_field(sobject, name)
        self.user_id = self.insert(
            "User",
            {"Username": self.config.username, "LastName": "Integration", "IsActive": True},
            notify=False,
        )["Id"]

    def reset(self) -> None:
        """Forget all data (records, events, files, tokens, faults, usage); keep the config."""
        with self.lock:
            shutil.rmtree(self.blob_dir, ignore_errors=True)
            self.blob_dir.mkdir(parents=True, exist_ok=True)
            self.tokens.clear()
            self.faults.clear()
            self.locked_ids.clear()
            self.refusals.clear()
            self._reset_data()

    def close(self) -> None:
        """Remove the state directory if the org created it."""
        if self._owns_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(sobject, record, created)`` after every committed create/update."""
        self.listeners.append(listener)

    # ----- field names -------------------------------------------------------------------
    def canonical_field(self, sobject: str, name: str) -> str:
        """The stored casing of ``name`` on ``sobject``, registering it on first sight."""
        known = self._fields.setdefault(sobject.lower(), {})
        return known.setdefault(name.lower(), name)

    def known_field(self, sobject: str, name: str) -> str | None:
        """The canonical casing if the field is known on this type (system fields always are)."""
        for system in SYSTEM_FIELDS:
            if system.lower() == name.lower():
                return system
        return self._fields.get(sobject.lower(), {}).get(name.lower())

    def field_names(self, sobject: str) -> list[str]:
        return list(self._fields.get(sobject.lower(), {}).values())

    # ----- records ---------------------------------------------------------------------
    def insert(
        self, sobject: str, fields: dict[str, Any], *, record_id: str | None = None, notify: bool = True
    ) -> dict[str, Any]:
        """Store a new record (fields already validated) and return a copy of it."""
        with self.lock:
            now = sf_datetime()
            rid = sfids.to_18(record_id) if record_id else self.ids.new_id(self.catalog.prefix(sobject))
            record: dict[str, Any] = {"Id": rid}
            for name, value in fields.items():
                record[self.canonical_field(sobject, name)] = value
            user = getattr(self, "user_id", None) or rid
            for name, value in (
                ("IsDeleted", False),
                ("CreatedDate", now),
                ("CreatedById", user),
                ("LastModifiedDate", now),
                ("LastModifiedById", user),
                ("SystemModstamp", now),
            ):
                record.setdefault(name, value)
            for name in record:
                self.canonical_field(sobject, name)
            self._remember(rid)
            self._records[rid] = (sobject, record)
            if notify:
                self._notify(sobject, record, True)
            return dict(record)

    def update(self, record_id: str, fields: dict[str, Any], *, notify: bool = True) -> dict[str, Any]:
        """Apply ``fields`` to an existing record, bump its timestamps, return a copy."""
        with self.lock:
            rid = sfids.to_18(record_id)
            sobject, record = self._records[rid]
            self._remember(rid)
            for name, value in fields.items():
                record[self.canonical_field(sobject, name)] = value
            now = sf_datetime()
            record["LastModifiedDate"] = now
            record["SystemModstamp"] = now
            if notify:
                self._notify(sobject, record, False)
            return dict(record)

    def delete(self, record_id: str) -> None:
        """Move a record to the recycle bin (``queryAll`` still sees it, IsDeleted true)."""
        with self.lock:
            rid = sfids.to_18(record_id)
            self._remember(rid)
            sobject, record = self._records.pop(rid)
            record["IsDeleted"] = True
            record["SystemModstamp"] = sf_datetime()
            self._deleted[record["Id"]] = (sobject, record)

    def get_record(self, record_id: str) -> tuple[str, dict] | None:
        """``(sobject, copy of fields)`` for a live record, by 15- or 18-character Id."""
        try:
            rid = sfids.to_18(record_id)
        except (ValueError, TypeError):
            return None
        with self.lock:
            found = self._records.get(rid)
            return (found[0], dict(found[1])) if found else None

    def is_deleted(self, record_id: str) -> bool:
        try:
            return sfids.to_18(record_id) in self._deleted
        except ValueError:
            return False

    def all_records(self, sobject: str, *, include_deleted: bool = False) -> list[dict]:
        """Copies of every live record of ``sobject`` (case-insensitive), in creation order."""
        lowered = sobject.lower()
        with self.lock:
            pools = [self._records, self._deleted] if include_deleted else [self._records]
            return [dict(rec) for pool in pools for typ, rec in pool.values() if typ.lower() == lowered]

    def field_values(self, sobject: str, name: str) -> list[tuple[str, Any]]:
        """``(Id, value)`` of one field on every live record of ``sobject`` (canonical name), without copying the
        records: a uniqueness check reads one field of thousands of records on every insert."""
        with self.lock:
            return [(rec["Id"], rec.get(name)) for typ, rec in self._records.values() if typ == sobject]

    def find(self, sobject: str, **criteria: Any) -> list[dict]:
        """Live records of ``sobject`` whose fields equal ``criteria`` (case-insensitive names)."""
        wanted = {k.lower(): v for k, v in criteria.items()}
        return [
            r
            for r in self.all_records(sobject)
            if all({k.lower(): v for k, v in r.items()}.get(k) == v for k, v in wanted.items())
        ]

    # ----- platform events & usage -------------------------------------------------------
    def publish_event(self, sobject: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Keep a published platform event; returns the stored event (with EventUuid, ReplayId)."""
        with self.lock:
            event = {
                "Id": self.ids.new_id(self.catalog.prefix(sobject)),
                "type": sobject,
                "EventUuid": str(uuid.uuid4()),
                "ReplayId": len(self.events) + 1,
                "CreatedDate": sf_datetime(),
                "CreatedById": self.user_id,
                "fields": dict(fields),
            }
            self.events.append(event)
            return copy.deepcopy(event)

    def count_api_call(self) -> int:
        with self.lock:
            self.api_calls += 1
            return self.api_calls

    def content_publications_remaining(self, now: float | None = None) -> int:
        """New files and versions the org may still publish in the rolling 24 h window."""
        cutoff = (time.time() if now is None else now) - 24 * 3600
        with self.lock:
            while self.content_publications and self.content_publications[0] < cutoff:
                self.content_publications.popleft()
            return max(0, self.config.content_publication_limit - len(self.content_publications))

    def count_content_publication(self) -> None:
        """One ContentVersion published. Not undone by a rollback: an org counts a version that a failed
        transaction took back (observed on real orgs; Salesforce does not document it either way)."""
        with self.lock:
            self.content_publications.append(time.time())

    def bulk_query_jobs_remaining(self, now: float | None = None) -> int:
        """Bulk API 2.0 query jobs the org may still create in the rolling 24 h window (DailyBulkV2QueryJobs)."""
        cutoff = (time.time() if now is None else now) - 24 * 3600
        with self.lock:
            while self.bulk_query_job_times and self.bulk_query_job_times[0] < cutoff:
                self.bulk_query_job_times.popleft()
            return max(0, self.config.bulk_query_daily_jobs - len(self.bulk_query_job_times))

    # ----- transactions ------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All-or-none: on exception restore records/events and drop queued notifications.

        Listeners only run after the outermost transaction commits, as Salesforce fires
        outbound messages and triggers-on-commit only for committed work.
        """
        with self.lock:
            outer = self._pending is None
            # An undo log, not a copy of the whole org: each write inside remembers the record it changes
            # (``_remember``), so a transaction costs what it touches, however many records the org holds.
            undo_from, events_before = len(self._undo), len(self.events)
            if outer:
                self._pending = []
            assert self._pending is not None
            pending_before = len(self._pending)
            try:
                yield
            except BaseException:
                while len(self._undo) > undo_from:
                    rid, live, deleted = self._undo.pop()
                    for table, before in ((self._records, live), (self._deleted, deleted)):
                        if before is None:
                            table.pop(rid, None)
                        else:
                            table[rid] = before
                del self.events[events_before:]
                del self._pending[pending_before:]  # an inner failure takes back its notifications too
                if outer:
                    self._pending = None
                    self._undo.clear()
                raise
            if outer:
                self._undo.clear()
                pending, self._pending = self._pending or [], None
                for item in pending:
                    self._fire(*item)

    def _remember(self, rid: str) -> None:
        """Inside a transaction: keep a copy of record ``rid`` as it is now (live and recycle bin), to undo."""
        if self._pending is not None:
            live, deleted = self._records.get(rid), self._deleted.get(rid)
            self._undo.append((rid, copy.deepcopy(live) if live else None, copy.deepcopy(deleted) if deleted else None))

    def _notify(self, sobject: str, record: dict, created: bool) -> None:
        if self._pending is not None:
            self._pending.append((sobject, dict(record), created))
        else:
            self._fire(sobject, dict(record), created)

    def _fire(self, sobject: str, record: dict, created: bool) -> None:
        for listener in list(self.listeners):
            try:
                listener(sobject, dict(record), created)
            except Exception:
                logger.exception("org listener %r failed on %s %s", listener, sobject, record.get("Id"))

    # ----- files ---------------------------------------------------------------------------
    def blob_path(self, version_id: str) -> Path:
        """Where the bytes of a ContentVersion live on disk."""
        return self.blob_dir / sfids.to_18(version_id)
