"""Writing renditions of a Salesforce file back exactly once: the job side every rendition process shares.

A process that makes renditions (a photo's sizes, a document's page images) composes these steps; only the rendering
between them is its own:

1. :func:`source_file`: the file's metadata and its existing renditions in **one** API call (Composite); a
   file the integration user cannot see is skipped with a reason.
2. :func:`check_source_size`: refuse a file whose ``ContentSize`` is over ``OFFLOAD_MAX_IMAGE_BYTES`` before
   downloading it (the download refuses more bytes than that too, if ``ContentSize`` lied).
3. :func:`rendition_lock`: a per-file lock in Redis, so two jobs on one file do not both render it at the same
   moment (it saves work; it is not what keeps renditions single).
4. :func:`write_renditions`: every missing rendition in **one** all-or-none sObject Collections insert, each
   carrying the marker fields and ``Offload_Rendition_Key__c`` = ``<source>:<variant>``, a unique External ID
   field. That is what makes the effect exactly-once: Salesforce itself refuses a second rendition of a source
   and variant (``DUPLICATE_VALUE``), whether it comes from a retry, a second worker that took over a frozen
   one's job, or an upload that committed after its sender died. The refused upload is "already done": the
   job takes the existing rendition's Id and sends the rest again. Each written Id is marked as Offload's own
   output, so the receiver never starts a job on it (loop guard).

So a file costs four API calls whatever the process: the Composite lookup, the download, the insert and the
completion event.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from services import keys
from services.errors import (
    JobSkipped,
    PermanentJobError,
    SalesforcePermanentError,
    SalesforceTransientError,
    TransientJobError,
)
from services.logs import event
from services.processes.renditions import RENDITION_KEY_FIELD, RENDITION_MARKER_FIELD, VARIANT_FIELD, rendition_key
from services.queue.loopguard import mark_own_output
from services.salesforce.client import TRANSIENT_CODES, SalesforceClient, SaveResult
from services.sfids import key_prefix, to_18
from workers.context import JobContext

logger = logging.getLogger(__name__)

SOURCE_FIELDS = ("Id", "ContentDocumentId", "Title", "PathOnClient", "FileExtension", "ContentSize",
                 "FirstPublishLocationId", RENDITION_MARKER_FIELD)
"""The source ContentVersion's fields every rendition job reads."""

LOCK_PREFIX = keys.RENDITION_LOCK_PREFIX
LOCK_TTL = 300

Existing = dict[str, str]
"""Existing renditions of one source: variant -> ContentVersion Id."""


@dataclass(frozen=True)
class RenditionFile:
    """One encoded rendition, ready to upload. ``variant`` is its ``Offload_Variant__c`` (``thumb``, ``page-2``);
    ``format`` is jpeg, webp or png and ``extension`` the file name's (no dot)."""

    variant: str
    data: bytes
    width: int
    height: int
    format: str
    extension: str


def source_file(sf: SalesforceClient, content_version_id: str) -> tuple[dict[str, Any], Existing]:
    """The named file's metadata and its existing renditions by variant, in one API call (Composite).

    A file the integration user cannot see is skipped, not failed: users, the integration user included,
    "can only query files they have access to" unless they have Query All Files; a file in another user's
    personal library is invisible (404 NOT_FOUND), as is a deleted one
    (https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_contentversion.htm).
    """
    renditions = (f"SELECT Id, {VARIANT_FIELD} FROM ContentVersion "
                  f"WHERE {RENDITION_MARKER_FIELD} = '{to_18(content_version_id)}'")
    try:
        found = sf.composite([
            ("source", f"sobjects/ContentVersion/{quote(content_version_id)}?fields={','.join(SOURCE_FIELDS)}"),
            ("renditions", f"query?q={quote(renditions)}"),
        ])
    except SalesforcePermanentError as exc:
        if exc.code != "NOT_FOUND":
            raise
        raise JobSkipped(
            f"The file {content_version_id} does not exist or the integration user cannot see it (a file in "
            "someone's personal library, not shared with a record). Share it with a record to get renditions; "
            "or give the integration user Query All Files.", code="FILE_NOT_VISIBLE") from exc
    rows = found["renditions"].get("records", [])
    return found["source"], {row[VARIANT_FIELD]: row["Id"] for row in rows if row.get(VARIANT_FIELD)}


def check_source_size(source: Mapping[str, Any], max_bytes: int, rejected: type[PermanentJobError]) -> None:
    """Refuse a file larger than ``max_bytes`` (``OFFLOAD_MAX_IMAGE_BYTES``) before downloading it."""
    size = int(source.get("ContentSize") or 0)
    if size > max_bytes:
        raise rejected(
            f"The file {source.get('PathOnClient')!r} is {size} bytes, above the {max_bytes} "
            "byte limit (OFFLOAD_MAX_IMAGE_BYTES)."
        )


@contextlib.contextmanager
def rendition_lock(ctx: JobContext, source_id: str) -> Iterator[None]:
    """Hold the per-file lock while rendering and writing; another job holding it makes this one retry later."""
    lock = LOCK_PREFIX + source_id
    held = ctx.connection.set(lock, ctx.job_id, nx=True, ex=LOCK_TTL)
    if not held and ctx.connection.get(lock) != ctx.job_id.encode():
        raise TransientJobError(f"Another job is writing renditions of {source_id}; retrying later.",
                                code="RENDITION_LOCKED")
    try:
        yield
    finally:
        if ctx.connection.get(lock) == ctx.job_id.encode():
            ctx.connection.delete(lock)


def existing_results(existing: Existing) -> list[dict[str, Any]]:
    """Result entries for renditions an earlier job wrote."""
    return [{"variant": name, "contentVersionId": cid, "existing": True} for name, cid in existing.items()]


def write_renditions(sf: SalesforceClient, ctx: JobContext, source: Mapping[str, Any], files: list[RenditionFile],
                     target: str) -> list[dict[str, Any]]:
    """Upload ``files`` as renditions of ``source`` published to ``target``, exactly once; their result entries."""
    written: list[dict[str, Any]] = []
    for rendition, new_id, made_now in _upload_all(sf, source, files, target):
        mark_own_output(ctx.connection, [new_id])
        if not made_now:
            written.append({"variant": rendition.variant, "contentVersionId": new_id, "existing": True})
            continue
        event(logger, "rendition written", variant=rendition.variant, content_version_id=new_id,
              width=rendition.width, height=rendition.height, bytes=len(rendition.data))
        written.append({"variant": rendition.variant, "contentVersionId": new_id, "width": rendition.width,
                        "height": rendition.height, "format": rendition.format, "bytes": len(rendition.data)})
    return written


def _upload_all(sf: SalesforceClient, source: Mapping[str, Any], files: list[RenditionFile], target: str
                ) -> list[tuple[RenditionFile, str, bool]]:
    """Upload the renditions in one call, all or none: [(rendition, its Id, made now?)], in order.

    If Salesforce refuses one as DUPLICATE_VALUE (an earlier attempt's upload committed after we looked:
    a killed or frozen worker, a timeout), nothing was written; those renditions are taken as made and
    the rest sent again. A timeout or a lost connection is retried later, and lands here if it committed.
    """
    made: dict[str, tuple[str, bool]] = {}
    pending = list(files)
    while pending:
        results = sf.upload_content_versions(
            [(_fields(source, r, target), r.data, _filename(source, r)) for r in pending])
        if all(result.success for result in results):
            made.update({r.variant: (str(result.id), True) for r, result in zip(pending, results, strict=True)})
            break
        if not any("DUPLICATE_VALUE" in result.error_codes for result in results):
            raise _refusal(results)
        wanted = ",".join(f"'{rendition_key(source['Id'], r.variant)}'" for r in pending)
        rows = sf.query(f"SELECT Id, {VARIANT_FIELD} FROM ContentVersion WHERE {RENDITION_KEY_FIELD} IN ({wanted})")
        earlier = {row[VARIANT_FIELD]: str(row["Id"]) for row in rows if row.get(VARIANT_FIELD)}
        if not earlier:
            raise _refusal(results)  # a unique value held by a record we cannot see: say what Salesforce said
        for variant, content_version_id in earlier.items():
            event(logger, "rendition was already made by an earlier attempt", variant=variant,
                  content_version_id=content_version_id)
            made[variant] = (content_version_id, False)
        pending = [r for r in pending if r.variant not in made]
    return [(r, *made[r.variant]) for r in files]


def _refusal(results: list[SaveResult]) -> Exception:
    """The first real error of a refused collections insert (the others only say they were rolled back)."""
    for result in results:
        codes = [c for c in result.error_codes if c != "ALL_OR_NONE_OPERATION_ROLLED_BACK"]
        if codes:
            error = SalesforceTransientError if codes[0] in TRANSIENT_CODES else SalesforcePermanentError
            return error(f"Salesforce refused the renditions: {codes[0]}: {result.message}", code=codes[0])
    return SalesforcePermanentError("Salesforce refused the renditions and said why for none of them.",
                                    code="ALL_OR_NONE_OPERATION_ROLLED_BACK")


def publish_location(sf: SalesforceClient, source: Mapping[str, Any], record_hint: str | None) -> str:
    """The record the renditions are published to: where the source was published, unless that is a user.

    A file uploaded on the Files tab is published to its uploader's personal library (a User Id), and
    "you can't publish into another user's personal library"
    (https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_contentworkspacedoc.htm),
    so its renditions go to the record it was later shared with (ContentDocumentLink).
    """
    first = source.get("FirstPublishLocationId")
    if first and key_prefix(first) != USER_PREFIX:
        return str(first)
    return record_hint or _linked_record(sf, source)


USER_PREFIX = "005"


def _linked_record(sf: SalesforceClient, source: Mapping[str, Any]) -> str:
    """The record a file is shared to, when it was not published to one directly (users excluded)."""
    rows = sf.query(
        "SELECT LinkedEntityId FROM ContentDocumentLink "
        f"WHERE ContentDocumentId = '{to_18(source['ContentDocumentId'])}'"
    )
    for row in rows:
        if key_prefix(row["LinkedEntityId"]) != USER_PREFIX:
            return str(row["LinkedEntityId"])
    raise JobSkipped(
        f"The file {source.get('PathOnClient')!r} is only in its owner's personal library, not shared with any "
        "record, so its renditions would have nowhere to go. Share it with a record (or upload it on the "
        "record) and send it again.", code="PERSONAL_FILE")


TITLE_MAX = 255
PATH_ON_CLIENT_MAX = 500
"""ContentVersion.Title and PathOnClient lengths: a longer value fails STRING_TOO_LONG on every retry
(https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_contentversion.htm)."""


def _filename(source: Mapping[str, Any], rendition: RenditionFile) -> str:
    stem = PurePosixPath(source.get("PathOnClient") or source.get("Title") or "file").stem
    suffix = f"-{rendition.variant}.{rendition.extension}"
    return stem[: PATH_ON_CLIENT_MAX - len(suffix)] + suffix


def _fields(source: Mapping[str, Any], rendition: RenditionFile, target: str) -> dict[str, Any]:
    title = source.get("Title") or PurePosixPath(source.get("PathOnClient") or "file").stem
    suffix = f" ({rendition.variant}, {rendition.width}x{rendition.height})"
    return {
        "Title": title[: TITLE_MAX - len(suffix)] + suffix,
        "PathOnClient": _filename(source, rendition),
        "FirstPublishLocationId": target,
        RENDITION_MARKER_FIELD: source["Id"],
        VARIANT_FIELD: rendition.variant,
        RENDITION_KEY_FIELD: rendition_key(source["Id"], rendition.variant),
        "Description": f"Rendition of {source['Id']} made by Offload.",
    }
