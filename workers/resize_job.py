"""The ``resize-image`` job: download a photo, render the variants, write them back once.

Steps for each source file (a ContentVersion):

1. Read its metadata; skip it if it is itself a rendition (loop guard); refuse a
   file whose ``ContentSize`` is over ``OFFLOAD_MAX_IMAGE_BYTES`` before downloading.
2. Take a per-file lock in Redis, so a job asked "by record" and another asked
   "by file" don't both render the same file at the same moment (it saves work;
   it is not what keeps renditions single).
3. Ask Salesforce which variants already exist (``Offload_Rendition_Of__c`` =
   the source), and render only the missing ones.
4. Upload each as a new ContentVersion published to the same record, carrying the
   marker fields and ``Offload_Rendition_Key__c`` = ``<source>:<variant>``, a unique
   External ID field. That is what makes the effect exactly-once: Salesforce itself
   refuses a second rendition of a source and variant (``DUPLICATE_VALUE``), whether
   it comes from a retry, a second worker that took over a frozen one's job, or an
   upload that committed after its sender died. The refused upload is "already
   done": the job takes the existing rendition's Id and goes on.
"""

from __future__ import annotations

import logging
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from services import keys
from services.errors import (
    ImageRejected,
    JobSkipped,
    PermanentJobError,
    SalesforcePermanentError,
    SalesforceTransientError,
    TransientJobError,
)
from services.imagetypes import IMAGE_EXTENSIONS
from services.logs import event, log_context
from services.processes.resize_image import RENDITION_KEY_FIELD, RENDITION_MARKER_FIELD, VARIANT_FIELD, rendition_key
from services.queue.loopguard import mark_own_output
from services.salesforce.client import TRANSIENT_CODES, SalesforceClient, SaveResult
from services.sfids import key_prefix, to_18
from workers.imaging import Rendition, Variant, render_variants
from workers.runner import JobContext

logger = logging.getLogger(__name__)

SOURCE_FIELDS = ("Id", "ContentDocumentId", "Title", "PathOnClient", "FileExtension", "ContentSize",
                 "FirstPublishLocationId", RENDITION_MARKER_FIELD)
LOCK_PREFIX = keys.RENDITION_LOCK_PREFIX
LOCK_TTL = 300


def run(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Resize the file named by ``contentVersionId``, or every unprocessed image on ``recordId``."""
    variants = ctx.settings.image_variants
    sf = ctx.salesforce()
    if "contentVersionId" in payload:
        source, made = _source_file(sf, payload["contentVersionId"])
        sources, existing = [source], {to_18(source["Id"]): made}
    else:
        sources, existing = _without_renditions(sf, _images_on_record(sf, payload["recordId"]), variants)
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
                renditions.extend(_resize_one(sf, ctx, source, variants, payload.get("recordId"),
                                              existing.get(to_18(source["Id"]), {})))
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


def _source_file(sf: SalesforceClient, content_version_id: str) -> tuple[dict[str, Any], dict[str, str]]:
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


def _without_renditions(sf: SalesforceClient, sources: list[dict[str, Any]], variants: tuple[Variant, ...]
                        ) -> tuple[list[dict[str, Any]], dict[str, dict[str, str]]]:
    """The sources that still miss a variant, in their order, and every source's existing renditions by
    variant (one query per 200 sources, not one each). A rendition made after this query is refused by
    Salesforce when we upload its twin (the unique rendition key), so nothing is asked again per file."""
    wanted = {v.name for v in variants}
    have: dict[str, dict[str, str]] = {}
    ids = [to_18(s["Id"]) for s in sources]
    for start in range(0, len(ids), ID_LIST_CHUNK):
        listed = ",".join(f"'{i}'" for i in ids[start:start + ID_LIST_CHUNK])
        for row in sf.query(f"SELECT Id, {RENDITION_MARKER_FIELD}, {VARIANT_FIELD} FROM ContentVersion "
                            f"WHERE {RENDITION_MARKER_FIELD} IN ({listed})"):
            if row.get(VARIANT_FIELD):
                have.setdefault(to_18(row[RENDITION_MARKER_FIELD]), {})[row[VARIANT_FIELD]] = row["Id"]
    return [s for s in sources if not wanted <= set(have.get(to_18(s["Id"]), {}))], have


def _resize_one(sf: SalesforceClient, ctx: JobContext, source: dict[str, Any], variants: tuple[Variant, ...],
                record_hint: str | None, existing: dict[str, str]) -> list[dict[str, Any]]:
    size = int(source.get("ContentSize") or 0)
    if size > ctx.settings.max_image_bytes:
        raise ImageRejected(
            f"The file {source.get('PathOnClient')!r} is {size} bytes, above the {ctx.settings.max_image_bytes} "
            "byte limit (OFFLOAD_MAX_IMAGE_BYTES)."
        )
    target = _publish_location(sf, source, record_hint)
    lock = LOCK_PREFIX + source["Id"]
    held = ctx.connection.set(lock, ctx.job_id, nx=True, ex=LOCK_TTL)
    if not held and ctx.connection.get(lock) != ctx.job_id.encode():
        raise TransientJobError(f"Another job is writing renditions of {source['Id']}; retrying later.",
                                code="RENDITION_LOCKED")
    try:
        missing = [v for v in variants if v.name not in existing]
        written = [{"variant": name, "contentVersionId": cid, "existing": True} for name, cid in existing.items()]
        if not missing:
            event(logger, "all renditions already exist", variants=",".join(existing))
            return written
        data = sf.download_version_data(source["Id"], max_bytes=ctx.settings.max_image_bytes)
        info, rendered = render_variants(data, missing, max_pixels=ctx.settings.max_pixels,
                                         max_bytes=ctx.settings.max_image_bytes,
                                         max_jpeg_scans=ctx.settings.max_jpeg_scans)
        del data
        for rendition, new_id, made_now in _upload_all(sf, source, rendered, target):
            mark_own_output(ctx.connection, [new_id])
            if not made_now:
                written.append({"variant": rendition.variant.name, "contentVersionId": new_id, "existing": True})
                continue
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


def _upload_all(sf: SalesforceClient, source: dict[str, Any], rendered: list[Rendition], target: str
                ) -> list[tuple[Rendition, str, bool]]:
    """Upload the renditions in one call, all or none: [(rendition, its Id, made now?)], in order.

    If Salesforce refuses one as DUPLICATE_VALUE (an earlier attempt's upload committed after we looked:
    a killed or frozen worker, a timeout), nothing was written; those renditions are taken as made and
    the rest sent again. A timeout or a lost connection is retried later, and lands here if it committed.
    """
    made: dict[str, tuple[str, bool]] = {}
    pending = list(rendered)
    while pending:
        results = sf.upload_content_versions(
            [(_fields(source, r, target), r.data, _filename(source, r)) for r in pending])
        if all(result.success for result in results):
            made.update({r.variant.name: (str(result.id), True) for r, result in zip(pending, results, strict=True)})
            break
        if not any("DUPLICATE_VALUE" in result.error_codes for result in results):
            raise _refusal(results)
        keys = ",".join(f"'{rendition_key(source['Id'], r.variant.name)}'" for r in pending)
        rows = sf.query(f"SELECT Id, {VARIANT_FIELD} FROM ContentVersion WHERE {RENDITION_KEY_FIELD} IN ({keys})")
        earlier = {row[VARIANT_FIELD]: str(row["Id"]) for row in rows if row.get(VARIANT_FIELD)}
        if not earlier:
            raise _refusal(results)  # a unique value held by a record we cannot see: say what Salesforce said
        for variant, content_version_id in earlier.items():
            event(logger, "rendition was already made by an earlier attempt", variant=variant,
                  content_version_id=content_version_id)
            made[variant] = (content_version_id, False)
        pending = [r for r in pending if r.variant.name not in made]
    return [(r, *made[r.variant.name]) for r in rendered]


def _refusal(results: list[SaveResult]) -> Exception:
    """The first real error of a refused collections insert (the others only say they were rolled back)."""
    for result in results:
        codes = [c for c in result.error_codes if c != "ALL_OR_NONE_OPERATION_ROLLED_BACK"]
        if codes:
            error = SalesforceTransientError if codes[0] in TRANSIENT_CODES else SalesforcePermanentError
            return error(f"Salesforce refused the renditions: {codes[0]}: {result.message}", code=codes[0])
    return SalesforcePermanentError("Salesforce refused the renditions and said why for none of them.",
                                    code="ALL_OR_NONE_OPERATION_ROLLED_BACK")


def _publish_location(sf: SalesforceClient, source: dict[str, Any], record_hint: str | None) -> str:
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


def _linked_record(sf: SalesforceClient, source: dict[str, Any]) -> str:
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
        RENDITION_KEY_FIELD: rendition_key(source["Id"], rendition.variant.name),
        "Description": f"Rendition of {source['Id']} made by Offload.",
    }
