"""``pdf-preview``: page images of a PDF uploaded to Salesforce (a floor plan, a brochure), on the same record.

Salesforce's own file previews are small and live behind its UI; a listing portal wants large page images
it can fetch from the record. Payload (from an Apex callout, a Flow HTTP Callout or an Outbound Message on
ContentVersion): ``{"contentVersionId": "068..."}`` plus an optional ``sentAt``. The first
``OFFLOAD_PDF_MAX_PAGES`` pages are rendered at every ``OFFLOAD_PDF_VARIANTS`` entry; page *n* of the variant
``page`` is the rendition ``page-n``. The job lives in :mod:`workers.pdf_job`; this module only declares the
process, so the receiver can import it without loading PDFium.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import fields

from services.processes.base import Process
from services.processes.renditions import (
    CALLS_PER_FILE,
    RenditionJobResult,
    content_version_from_notification,
    file_payload,
    skip_rendition,
)
from services.processes.schemas import PayloadSchema, SalesforceId, SentAt

PDF_EXTENSIONS: tuple[str, ...] = ("pdf",)
"""The uploads this process is for (the Apex trigger routes them here: ``Process.file_types``)."""


class PdfPreviewPayload(PayloadSchema):
    """Which PDF to make page images of: one file, by its ContentVersion Id."""

    contentVersionId = SalesforceId(
        key_prefix="068", required=True,
        metadata={"description": "The ContentVersion (068...) of the uploaded PDF."},
    )
    sentAt = SentAt()


class PageResult(PayloadSchema):
    """One rendered page's size as the document declares it, in whole points (1/72 inch), after its rotation."""

    page = fields.Integer(metadata={"description": "Page number, from 1."})
    widthPt = fields.Integer(metadata={"description": "Width in points (595 for A4 portrait)."})
    heightPt = fields.Integer(metadata={"description": "Height in points (842 for A4 portrait)."})


class PdfPreviewResult(RenditionJobResult):
    """What a finished pdf-preview job reports (``workers.pdf_job.run``'s return value, every key)."""

    pageCount = fields.Integer(metadata={"description": "Pages in the document (only the first "
                                                        "OFFLOAD_PDF_MAX_PAGES get page images)."})
    pages = fields.List(fields.Nested(PageResult), metadata={
        "description": "Size of each page that got page images, in order."})


def record_id(payload: Mapping[str, Any]) -> str | None:
    """The file whose pages are rendered."""
    return payload.get("contentVersionId")


PROCESS = Process(
    name="pdf-preview",
    summary="Render the first pages of an uploaded PDF as page images attached to the same record.",
    schema=PdfPreviewPayload,
    handler="workers.pdf_job.run",
    from_notification=content_version_from_notification,
    skip_reason=skip_rendition,
    record_id=record_id,
    result_schema=PdfPreviewResult,
    timeout=600,
    file_types=PDF_EXTENSIONS,
    file_payload=file_payload,
    calls_per_file=CALLS_PER_FILE,
    renditions_per_file=lambda settings: settings.pdf_max_pages * len(settings.pdf_variants),
)
