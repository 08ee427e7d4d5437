"""``resize-image``: turn a photo uploaded to Salesforce into web renditions on the same record.

Payload (from an Apex callout, a Flow HTTP Callout or an Outbound Message):
``{"contentVersionId": "068..."}`` for one file, or ``{"recordId": "..."}`` for
every image file linked to that record that has no renditions yet, plus an
optional ``sentAt``. The job itself lives in :mod:`workers.resize_job`; this
module only declares the process, so the receiver can import it without
loading Pillow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError, fields, validates_schema

from services.imagetypes import IMAGE_EXTENSIONS
from services.processes.base import NotificationFields, Process
from services.processes.renditions import CALLS_PER_FILE, RenditionJobResult, file_payload, skip_rendition
from services.processes.schemas import PayloadSchema, SalesforceId, SentAt
from services.sfids import is_valid_id, to_18


class ResizeImagePayload(PayloadSchema):
    """Which photo(s) to resize: one file (contentVersionId) or every image file on a record that has no
    renditions yet (recordId). Give exactly one of contentVersionId or recordId."""

    contentVersionId = SalesforceId(
        key_prefix="068", metadata={"description": "The ContentVersion (068...) of the uploaded photo."}
    )
    recordId = SalesforceId(
        metadata={"description": "A record whose image files without renditions should be resized."}
    )
    sentAt = SentAt()

    @validates_schema
    def _exactly_one_target(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("contentVersionId" in data) == ("recordId" in data):
            raise ValidationError("Give exactly one of contentVersionId or recordId.", "_schema")


class RefusedFile(PayloadSchema):
    """A file a ``recordId`` job could not resize, and why (an admin can act on the reason)."""

    contentVersionId = fields.String()
    code = fields.String(metadata={"description": "e.g. IMAGE_REJECTED"})
    reason = fields.String()


class ResizeImageResult(RenditionJobResult):
    """What a finished resize-image job reports (``workers.resize_job.run``'s return value, every key)."""

    refused = fields.List(fields.Nested(RefusedFile), metadata={
        "description": "Files of a recordId job that cannot be resized (each file's outcome is its own)."})
    moreFiles = fields.Boolean(metadata={
        "description": "The record has more image files than OFFLOAD_MAX_FILES_PER_RECORD: send it again."})


def from_notification(sobject: str, fields_: NotificationFields) -> dict[str, Any]:
    """A ContentVersion notification names the file; any other object names the record."""
    record_id = fields_.get("Id")
    if not record_id or not is_valid_id(record_id):
        raise ValueError("the notification has no valid sObject Id")
    if sobject == "ContentVersion":
        return {"contentVersionId": to_18(record_id)}
    return {"recordId": to_18(record_id)}


def record_id(payload: Mapping[str, Any]) -> str | None:
    """The file, or the record whose files are resized."""
    return payload.get("contentVersionId") or payload.get("recordId")


PROCESS = Process(
    name="resize-image",
    summary="Resize an uploaded photo into web renditions attached to the same record.",
    schema=ResizeImagePayload,
    handler="workers.resize_job.run",
    from_notification=from_notification,
    skip_reason=skip_rendition,
    record_id=record_id,
    result_schema=ResizeImageResult,
    timeout=600,
    file_types=IMAGE_EXTENSIONS,
    file_payload=file_payload,
    calls_per_file=CALLS_PER_FILE,
    renditions_per_file=lambda settings: len(settings.image_variants),
    rendition_names=lambda settings: frozenset(v.name for v in settings.image_variants),
    agent_action=True,
)
