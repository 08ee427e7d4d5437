"""The ``resize-image`` job: download a photo, render the variants, write them back once.

Steps for each source file (a ContentVersion):

1. Read its metadata; skip it if it is itself a rendition (loop guard); refuse a
   file whose ``ContentSize`` is over ``OFFLOAD_MAX_IMAGE_BYTES`` before downloading.
2. Take a per-file lock in Redis, so a job asked "by record" and another asked
   "by file" can't both upload at the same moment.
3. Ask Salesforce which variants already exist (``Offload_Rendition_Of__c`` =
   the source). This is what makes the effect exactly-once: a job that was
   retried, redelivered, or killed after an upload finds that upload there and
   does not repeat it.
4. Download (streamed), render only the missing variants, and upload each as a
   new ContentVersion published to the same record, carrying the marker fields.
"""

from __future__ import annotations

import logging
from pathlib import PurePosixPath
from typing import Any

from services import keys
from services.errors import ImageRejected, PermanentJobError, SalesforceTransientError, TransientJobError
from services.imagetypes import IMAGE_EXTENSIONS
from services.logs import event, log_context
from services.processes.resize_image import RENDITION_MARKER_FIELD, VARIANT_FIELD
from services.queue.loopguard import mark_own_output
from services.salesforce.client import SalesforceClient
from services.sfids import key_prefix, to_18
from workers.imaging import Rendition, Variant, render_variants
from workers.runner import JobContext

logger = logging.getLogger(__name__)

SOURCE_FIELDS = ("Id", "ContentDocumentId", "Title", "PathOnClient", "FileExtension", "ContentSize",
                 "FirstPublishLocationId", RENDITION_MARKER_FIELD)
LOCK_PREFIX = keys.RENDITION_LOCK_PREFIX
LOCK_TTL = 300
IN_FLIGHT_PREFIX = keys.UPLOAD_IN_FLIGHT_PREFIX
"""Marks an upload whose outcome we never heard (timeout, dropped connection) until Salesforce has settled."""


def run(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Resize the file named by ``contentVersionId``, or every unprocessed image on ``recordId``."""
    variants = ctx.settings.image_variants
    sf = ctx.salesforce()
    if "contentVersionId" in payload:
        sources = [sf.get_record("ContentVersion", payload["contentVersionId"], list(SOURCE_FIELDS))]
    else:
        sources = _without_renditions(sf, _images_on_record(sf, payload["recordId"]), variants)
    cap = ctx.settings.max_files_per_record
    more_files = len(sources) > cap
    if more_files:
        # One notification must not fan out without bound (each file costs API calls): the oldest files
        # that still lack renditions go first, and the next job on the record takes the next ones.
        sources = sources[:cap]
        event(logger, "record has more files to resize than one job takes", logging.WARNING,
              limit=cap, hint="OFFLOAD_MAX_FILES_PER_RECORD")
    renditions: list[dict[str, Any]] = []
    skipped: list[str] = []
    refused: list[dict[str, str]] = []
    for source in sources:
        with log_context(record_id=source["Id"]):
            if source.get(RENDITION_MARKER_FIELD):
                event(logger, "source is a rendition; skipped")
                skipped.append(source["Id"])
                continue
            try:
                renditions.extend(_resize_one(sf, ctx, source, variants, payload.get("recordId")))
            except PermanentJobError as exc:
                if "recordId" not in payload:
                    raise  # one file named by the caller: its refusal is the job's outcome
                # One bad file of a record must not cost the record's other files their renditions.
                event(logger, "source refused; the record's other files go on", logging.WARNING,
                      code=exc.code, error=exc.message)
                refused.append({"contentVersionId": source["Id"], "code": exc.code, "reason": exc.message})
    not_done = set(skipped) | {r["contentVersionId"] for r in refused}
    return {
        "sourceContentVersionIds": [s["Id"] for s in sources if s["Id"] not in not_done],
        "renditionCount": len(renditions),
        "renditions": renditions,
        "refused": refused,
        "moreFiles": more_files if "recordId" in payload else False,
        "apiCalls": sf.calls,
    }


def _images_on_record(sf: SalesforceClient, record_id: str) -> list[dict[str, Any]]:
    """Latest versions of image files linked to the record that are not renditions themselves, oldest first."""
    extensions = ",".join(f"'{ext}'" for ext in IMAGE_EXTENSIONS)
    return sf.query(
        f"SELECT {', '.join(SOURCE_FIELDS)} FROM ContentVersion "
        f"WHERE ContentDocumentId IN (SELECT ContentDocumentId FROM ContentDocumentLink "
        f"WHERE LinkedEntityId = '{to_18(record_id)}') AND IsLatest = true "
        f"AND {RENDITION_MARKER_FIELD} = null AND FileExtension IN ({extensions}) "
        f"ORDER BY CreatedDate, Id"
    )


ID_LIST_CHUNK = 200
"""Ids per ``IN (...)`` list: well inside SOQL's 100,000-character statement limit
(https://developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_soslsoql.htm)."""


def _without_renditions(sf: SalesforceClient, sources: list[dict[str, Any]],
                        variants: tuple[Variant, ...]) -> list[dict[str, Any]]:
    """The sources that still miss a variant, in their order (one query per 200 sources, not one each).

    This only picks the work; each file's variants are asked again under its lock before anything is
    written, which is what keeps a rendition from being made twice.
    """
    wanted = {v.name for v in variants}
    have: dict[str, set[str]] = {}
    ids = [to_18(s["Id"]) for s in sources]
    for start in range(0, len(ids), ID_LIST_CHUNK):
        listed = ",".join(f"'{i}'" for i in ids[start:start + ID_LIST_CHUNK])
        for row in sf.query(f"SELECT {RENDITION_MARKER_FIELD}, {VARIANT_FIELD} FROM ContentVersion "
                            f"WHERE {RENDITION_MARKER_FIELD} IN ({listed})"):
            have.setdefault(to_18(row[RENDITION_MARKER_FIELD]), set()).add(row.get(VARIANT_FIELD) or "")
    return [s for s in sources if not wanted <= have.get(to_18(s["Id"]), set())]


def _resize_one(sf: SalesforceClient, ctx: JobContext, source: dict[str, Any], variants: tuple[Variant, ...],
                record_hint: str | None) -> list[dict[str, Any]]:
    size = int(source.get("ContentSize") or 0)
    if size > ctx.settings.max_image_bytes:
        raise ImageRejected(
            f"The file {source.get('PathOnClient')!r} is {size} bytes, above the {ctx.settings.max_image_bytes} "
            "byte limit (OFFLOAD_MAX_IMAGE_BYTES)."
        )
    target = source.get("FirstPublishLocationId") or record_hint or _linked_record(sf, source)
    lock = LOCK_PREFIX + source["Id"]
    held = ctx.connection.set(lock, ctx.job_id, nx=True, ex=LOCK_TTL)
    if not held and ctx.connection.get(lock) != ctx.job_id.encode():
        raise TransientJobError(f"Another job is writing renditions of {source['Id']}; retrying later.",
                                code="RENDITION_LOCKED")
    try:
        existing = _existing_variants(sf, source["Id"])
        missing = [v for v in variants if v.name not in existing]
        _wait_for_unsettled_uploads(ctx, source["Id"], missing)
        written = [{"variant": name, "contentVersionId": cid, "existing": True} for name, cid in existing.items()]
        if not missing:
            event(logger, "all renditions already exist", variants=",".join(existing))
            return written
        data = sf.download_version_data(source["Id"], max_bytes=ctx.settings.max_image_bytes)
        info, rendered = render_variants(data, missing, max_pixels=ctx.settings.max_pixels,
                                         max_bytes=ctx.settings.max_image_bytes,
                                         max_jpeg_scans=ctx.settings.max_jpeg_scans)
        del data
        for rendition in rendered:
            new_id = _upload(sf, ctx, source, rendition, target)
            mark_own_output(ctx.connection, [new_id])
            event(logger, "rendition written", variant=rendition.variant.name, content_version_id=new_id,
                  width=rendition.width, height=rendition.height, bytes=len(rendition.data))
            written.append({"variant": rendition.variant.name, "contentVersionId": new_id,
                            "width": rendition.width, "height": rendition.height,
                            "format": rendition.variant.format, "bytes": len(rendition.data)})
        event(logger, "source resized", format=info.format, width=info.width, height=info.height)
        return written
    finally:
        if ctx.connection.get(lock) == ctx.job_id.encode():
            ctx.connection.delete(lock)


def _upload(sf: SalesforceClient, ctx: JobContext, source: dict[str, Any], rendition: Rendition, target: str) -> str:
    """Upload one rendition; if we never hear back, remember that Salesforce may still commit it."""
    try:
        return sf.upload_content_version(_fields(source, rendition, target), rendition.data,
                                         _filename(source, rendition))
    except SalesforceTransientError as exc:
        if exc.code in {"TIMEOUT", "CONNECTION_ERROR"}:
            # The request may have reached Salesforce and commit after we gave up. A retry that
            # looked for the rendition before that commit would upload a second copy, so the
            # retry waits until the longest time Salesforce could still be working on it.
            settle = int(2 * ctx.settings.salesforce_timeout) + 2
            ctx.connection.set(f"{IN_FLIGHT_PREFIX}{source['Id']}:{rendition.variant.name}", ctx.job_id, ex=settle)
        raise


def _wait_for_unsettled_uploads(ctx: JobContext, source_id: str, missing: list[Variant]) -> None:
    """Retry later if an upload of a variant still missing timed out recently (one MGET of known keys)."""
    if not missing:
        return
    marks = ctx.connection.mget([f"{IN_FLIGHT_PREFIX}{source_id}:{variant.name}" for variant in missing])
    if any(mark is not None for mark in marks):
        raise TransientJobError(
            f"An earlier upload of a rendition of {source_id} timed out and may still be committed by "
            "Salesforce; retrying once it has settled.", code="UPLOAD_UNSETTLED")


def _existing_variants(sf: SalesforceClient, source_id: str) -> dict[str, str]:
    rows = sf.query(
        f"SELECT Id, {VARIANT_FIELD} FROM ContentVersion WHERE {RENDITION_MARKER_FIELD} = '{to_18(source_id)}'"
    )
    return {row[VARIANT_FIELD]: row["Id"] for row in rows if row.get(VARIANT_FIELD)}


def _linked_record(sf: SalesforceClient, source: dict[str, Any]) -> str:
    """The record a file is shared to, when it was not published to one directly (users excluded)."""
    rows = sf.query(
        "SELECT LinkedEntityId FROM ContentDocumentLink "
        f"WHERE ContentDocumentId = '{to_18(source['ContentDocumentId'])}'"
    )
    for row in rows:
        if key_prefix(row["LinkedEntityId"]) != "005":
            return str(row["LinkedEntityId"])
    raise PermanentJobError(
        f"The file {source.get('PathOnClient')!r} is not shared to any record, so its renditions would have "
        "nowhere to go. Attach it to a record first.", code="NO_RECORD")


TITLE_MAX = 255
PATH_ON_CLIENT_MAX = 500
"""ContentVersion.Title and PathOnClient lengths: a longer value fails STRING_TOO_LONG on every retry
(https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_contentversion.htm)."""


def _filename(source: dict[str, Any], rendition: Rendition) -> str:
    stem = PurePosixPath(source.get("PathOnClient") or source.get("Title") or "photo").stem
    suffix = f"-{rendition.variant.name}.{rendition.extension}"
    return stem[: PATH_ON_CLIENT_MAX - len(suffix)] + suffix


def _fields(source: dict[str, Any], rendition: Rendition, target: str) -> dict[str, Any]:
    title = source.get("Title") or PurePosixPath(source.get("PathOnClient") or "photo").stem
    suffix = f" ({rendition.variant.name}, {rendition.width}x{rendition.height})"
    return {
        "Title": title[: TITLE_MAX - len(suffix)] + suffix,
        "PathOnClient": _filename(source, rendition),
        "FirstPublishLocationId": target,
        RENDITION_MARKER_FIELD: source["Id"],
        VARIANT_FIELD: rendition.variant.name,
        "Description": f"Rendition of {source['Id']} made by Offload.",
    }
