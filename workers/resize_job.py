"""The ``resize-image`` job: download a photo, render the variants, write them back once.

For each source file (a ContentVersion) the job reads its metadata and existing renditions, skips a
rendition (loop guard), refuses a file over ``OFFLOAD_MAX_IMAGE_BYTES`` before downloading, renders only
the missing variants and writes them back exactly once: the shared steps are in :mod:`workers.renditions`;
this module adds what is the photo's own (a job "by record", the imaging pipeline).
"""

from __future__ import annotations

import logging
from typing import Any

from services.errors import ImageRejected, PermanentJobError
from services.imagetypes import IMAGE_EXTENSIONS
from services.logs import event, log_context
from services.processes.renditions import RENDITION_MARKER_FIELD, VARIANT_FIELD
from services.salesforce.client import SalesforceClient
from services.sfids import to_18
from workers.imaging import Rendition, Variant, render_variants
from workers.renditions import (
    SOURCE_FIELDS,
    Existing,
    RenditionFile,
    check_source_size,
    existing_results,
    publish_location,
    rendition_lock,
    source_file,
    write_renditions,
)
from workers.runner import JobContext

logger = logging.getLogger(__name__)


def run(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Resize the file named by ``contentVersionId``, or every unprocessed image on ``recordId``."""
    variants = ctx.settings.image_variants
    sf = ctx.salesforce()
    if "contentVersionId" in payload:
        source, made = source_file(sf, payload["contentVersionId"])
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
                record_hint: str | None, existing: Existing) -> list[dict[str, Any]]:
    check_source_size(source, ctx.settings.max_image_bytes, ImageRejected)
    target = publish_location(sf, source, record_hint)
    with rendition_lock(ctx, source["Id"]):
        missing = [v for v in variants if v.name not in existing]
        written = existing_results(existing)
        if not missing:
            event(logger, "all renditions already exist", variants=",".join(existing))
            return written
        data = sf.download_version_data(source["Id"], max_bytes=ctx.settings.max_image_bytes)
        info, rendered = render_variants(data, missing, max_pixels=ctx.settings.max_pixels,
                                         max_bytes=ctx.settings.max_image_bytes,
                                         max_jpeg_scans=ctx.settings.max_jpeg_scans)
        del data
        written += write_renditions(sf, ctx, source, [_file(r) for r in rendered], target)
        event(logger, "source resized", format=info.format, width=info.width, height=info.height)
        return written


def _file(rendition: Rendition) -> RenditionFile:
    return RenditionFile(rendition.variant.name, rendition.data, rendition.width, rendition.height,
                         rendition.variant.format, rendition.extension)
