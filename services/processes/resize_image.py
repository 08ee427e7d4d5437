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

from services.processes.base import NotificationFields, Process
from services.processes.schemas import PayloadSchema, SalesforceId, SentAt
from services.sfids import is_valid_id, to_18

RENDITION_MARKER_FIELD = "Offload_Rendition_Of__c"
"""ContentVersion field the worker fills on every rendition: the source ContentVersion Id."""

VARIANT_FIELD = "Offload_Variant__c"
"""ContentVersion field naming the variant (``thumb``) of a rendition."""

RENDITION_KEY_FIELD = "Offload_Rendition_Key__c"
"""ContentVersion field holding ``<source 18-char Id>:<variant>``: External ID and Unique, so Salesforce refuses a
second rendition of one source and variant with DUPLICATE_VALUE, whichever worker, retry or late commit sends it.
ContentVersion supports upsert(), i.e. external ID fields
(https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_contentversion.htm),
and "the Unique attribute prevents the creation of duplicates"
(https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_upsert_patch.htm)."""


def rendition_key(source_id: str, variant: str) -> str:
    """The unique key of one rendition: the same for every attempt at it, whoever makes it."""
    return f"{to_18(source_id)}:{variant}"


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


class RenditionResult(PayloadSchema):
    """One rendition of a source file: written by this job, or found from an earlier one (``existing``)."""

    variant = fields.String(metadata={"description": "Variant name from OFFLOAD_IMAGE_VARIANTS, e.g. thumb."})
    contentVersionId = fields.String(metadata={"description": "The rendition's ContentVersion (068...)."})
    existing = fields.Boolean(metadata={"description": "True when an earlier job had written it."})
    width = fields.Integer(metadata={"description": "Pixels (absent when existing)."})
    height = fields.Integer(metadata={"description": "Pixels (absent when existing)."})
    format = fields.String(metadata={"description": "jpeg, webp or png (absent when existing)."})
    bytes = fields.Integer(metadata={"description": "Size of the written file (absent when existing)."})


class ResizeImageResult(PayloadSchema):
    """What a finished resize-image job reports (``workers.resize_job.run``'s return value, every key)."""

    sourceContentVersionIds = fields.List(fields.String())
    renditionCount = fields.Integer()
    renditions = fields.List(fields.Nested(RenditionResult))
    apiCalls = fields.Integer(metadata={"description": "Salesforce API calls the job made."})
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


def skip_reason(sobject: str | None, fields_: Mapping[str, Any]) -> str | None:
    """Offload's own renditions carry the marker field: never resize a rendition (loop guard)."""
    if sobject == "ContentVersion" and fields_.get(RENDITION_MARKER_FIELD):
        return "this ContentVersion is a rendition Offload wrote"
    return None


PROCESS = Process(
    name="resize-image",
    summary="Resize an uploaded photo into web renditions attached to the same record.",
    schema=ResizeImagePayload,
    handler="workers.resize_job.run",
    from_notification=from_notification,
    skip_reason=skip_reason,
    record_id=record_id,
    result_schema=ResizeImageResult,
    timeout=600,
)
