"""The ``pdf-preview`` job: download a PDF, render its first pages, write the page images back once.

The same promises as photos, from the same code (:mod:`workers.renditions`): metadata and existing
renditions in one Composite call, the byte cap before downloading, the per-file lock, every page image in one
all-or-none insert keyed ``<source>:page-<n>`` (so retries, kills and late commits leave one of each), and
the written Ids marked as Offload's own output. Four API calls for a PDF whatever its page count: Composite,
download, insert, completion event.

The rendering is :mod:`workers.pdf`. Which page images a document needs depends on its page count, which is
only known from its bytes, so a job that runs again after its page images were written (a completion event
Salesforce would not take) downloads the file again, renders nothing and reports what exists.
"""

from __future__ import annotations

import logging
from typing import Any

from services.errors import DocumentRejected
from services.logs import event, log_context
from services.processes.renditions import RENDITION_MARKER_FIELD
from workers.context import JobContext
from workers.pdf import PageRendition, page_variant, render_pages
from workers.renditions import (
    RenditionFile,
    check_source_size,
    existing_results,
    publish_location,
    rendition_lock,
    source_file,
    write_renditions,
)

logger = logging.getLogger(__name__)


def run(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Render the first ``OFFLOAD_PDF_MAX_PAGES`` pages of the PDF named by ``contentVersionId``."""
    settings = ctx.settings
    sf = ctx.salesforce()
    source, existing = source_file(sf, payload["contentVersionId"])
    with log_context(record_id=source["Id"]):
        if source.get(RENDITION_MARKER_FIELD):
            event(logger, "source is a rendition; skipped")
            return _result([], [], None, sf.calls)
        check_source_size(source, settings.max_image_bytes, DocumentRejected)
        target = publish_location(sf, source, None)
        with rendition_lock(ctx, source["Id"]):
            data = sf.download_version_data(source["Id"], max_bytes=settings.max_image_bytes)
            info, rendered = render_pages(data, settings.pdf_variants, max_pages=settings.pdf_max_pages,
                                          max_page_count=settings.pdf_max_page_count,
                                          max_pixels=settings.max_pixels, max_bytes=settings.max_image_bytes,
                                          skip=frozenset(existing))
            del data
            written = existing_results(existing)
            if rendered:
                written += write_renditions(sf, ctx, source, [_file(r) for r in rendered], target)
            else:
                event(logger, "all page images already exist", variants=",".join(existing))
        order = [page_variant(v, p.number) for p in info.pages for v in settings.pdf_variants]
        written.sort(key=lambda r: order.index(r["variant"]) if r["variant"] in order else len(order))
        event(logger, "pdf rendered", page_count=info.page_count, pages=len(info.pages))
        pages = [{"page": p.number, "widthPt": round(p.width_pt), "heightPt": round(p.height_pt)}
                 for p in info.pages]
        return _result([source["Id"]], written, (info.page_count, pages), sf.calls)


def _result(sources: list[str], renditions: list[dict[str, Any]],
            document: tuple[int, list[dict[str, int]]] | None, api_calls: int) -> dict[str, Any]:
    page_count, pages = document if document is not None else (0, [])
    return {"sourceContentVersionIds": sources, "renditionCount": len(renditions), "renditions": renditions,
            "pageCount": page_count, "pages": pages, "apiCalls": api_calls}


def _file(rendition: PageRendition) -> RenditionFile:
    return RenditionFile(rendition.variant, rendition.data, rendition.width, rendition.height, rendition.format,
                         rendition.extension)
