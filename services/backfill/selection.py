"""Which files a backfill is for: the operator's filters, and the SOQL that finds them.

A candidate is the **latest version** of a file of one of the process's file types (``Process.file_types``,
the same table the Apex upload trigger routes by) that is **not one of Offload's renditions**
(``Offload_Rendition_Of__c`` empty). ``--object`` keeps files first published to records of that object
(``FirstPublishLocationId``, a reference field, in a semi-join on the object's Ids: "the left operand must
query a single ID (primary key) or reference (foreign key) field",
https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_comparisonoperators.htm).
``--since`` / ``--until`` are calendar days (UTC) of the file's ``CreatedDate``, both included.

Whether a candidate already has renditions cannot be asked in the same query (the marker is a text field, and a
semi-join cannot read the object it filters), so the cursor checks each page (:mod:`services.backfill.cursor`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from services.errors import BackfillSelectionInvalid
from services.processes import PROCESSES
from services.processes.base import Process
from services.processes.renditions import RENDITION_MARKER_FIELD

_SOBJECT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,79}")
"""An API name: letters, digits and underscores, starting with a letter (custom objects end in ``__c``)."""


@dataclass(frozen=True)
class Selection:
    """The files one backfill run is for."""

    process: str
    sobject: str | None = None
    since: date | None = None
    until: date | None = None

    @classmethod
    def parse(cls, process: str, sobject: str | None = None, since: str | None = None,
              until: str | None = None) -> Selection:
        """From the CLI's strings; :class:`BackfillSelectionInvalid` says what is wrong."""
        found = PROCESSES.get(process)
        if found is None:
            raise BackfillSelectionInvalid(
                f"No process named {process!r}; choose one of {', '.join(sorted(PROCESSES))}.")
        if not found.file_types:
            raise BackfillSelectionInvalid(f"{process} is not started by file uploads, so it has no files to backfill.")
        if sobject is not None and not _SOBJECT_NAME.fullmatch(sobject):
            raise BackfillSelectionInvalid(
                f"--object {sobject!r} is not an object API name (e.g. Account, Listing__c).")
        first, last = _day("--since", since), _day("--until", until)
        if first and last and last < first:
            raise BackfillSelectionInvalid(f"--until {last} is before --since {first}.")
        return cls(process=process, sobject=sobject, since=first, until=last)

    @property
    def declaration(self) -> Process:
        return PROCESSES[self.process]

    def where(self) -> str:
        """The SOQL condition every candidate meets."""
        types = ", ".join(f"'{t}'" for t in self.declaration.file_types)
        clauses = ["IsLatest = true", f"{RENDITION_MARKER_FIELD} = null", f"FileExtension IN ({types})"]
        if self.since is not None:
            clauses.append(f"CreatedDate >= {self.since.isoformat()}T00:00:00Z")
        if self.until is not None:
            clauses.append(f"CreatedDate < {(self.until + timedelta(days=1)).isoformat()}T00:00:00Z")
        if self.sobject is not None:
            clauses.append(f"FirstPublishLocationId IN (SELECT Id FROM {self.sobject})")
        return " AND ".join(clauses)

    def count_soql(self) -> str:
        return f"SELECT COUNT() FROM ContentVersion WHERE {self.where()}"

    def soql(self, *, after_id: str | None = None, ordered: bool = True) -> str:
        """The candidates' Ids; ``after_id`` resumes an ordered read after the last Id taken (keyset paging)."""
        where = self.where() + (f" AND Id > '{after_id}'" if after_id else "")
        return f"SELECT Id FROM ContentVersion WHERE {where}" + (" ORDER BY Id" if ordered else "")

    def describe(self) -> str:
        """One line for an operator: ``resize-image files (jpg, png, ...) on Account, created 2024-01-01..``."""
        parts = [f"{self.process}: latest {', '.join(self.declaration.file_types)} files, not renditions"]
        if self.sobject:
            parts.append(f"first published to {self.sobject} records")
        if self.since or self.until:
            parts.append(f"created {self.since or '...'} to {self.until or 'today'} (UTC)")
        return "; ".join(parts)

    def to_json(self) -> str:
        return json.dumps({"process": self.process, "object": self.sobject,
                           "since": self.since.isoformat() if self.since else None,
                           "until": self.until.isoformat() if self.until else None})

    @classmethod
    def from_json(cls, raw: str | bytes) -> Selection:
        data: dict[str, Any] = json.loads(raw)
        return cls.parse(data["process"], data.get("object"), data.get("since"), data.get("until"))


def _day(option: str, raw: str | None) -> date | None:
    if raw is None or raw == "":
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise BackfillSelectionInvalid(f"{option} {raw!r} is not a date; write it as YYYY-MM-DD.") from None
