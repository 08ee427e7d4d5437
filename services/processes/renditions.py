"""What every process that writes *renditions* of a Salesforce file shares: the marker fields, the unique
rendition key, the loop guard and the result schemas.

A rendition is a new ContentVersion made from a source ContentVersion and published to the same record.
Which bytes it holds is the process's business (a resized photo, a page image of a PDF); how it is named,
marked, kept unique and reported is the same for all of them, so it is declared once, here. The job side of
the same contract is :mod:`workers.renditions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import fields

from services.processes.base import NotificationFields
from services.processes.schemas import PayloadSchema
from services.sfids import is_valid_id, to_18

RENDITION_MARKER_FIELD = "Offload_Rendition_Of__c"
"""ContentVersion field the worker fills on every rendition: the source ContentVersion Id."""

VARIANT_FIELD = "Offload_Variant__c"
"""ContentVersion field naming the variant (``thumb``, ``page-1``) of a rendition."""

RENDITION_KEY_FIELD = "Offload_Rendition_Key__c"
"""ContentVersion field holding ``<source 18-char Id>:<variant>``: External ID and Unique, so Salesforce refuses a
second rendition of one source and variant with DUPLICATE_VALUE, whichever worker, retry or late commit sends it.
ContentVersion supports upsert(), i.e. external ID fields
(https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_contentversion.htm),
and "the Unique attribute prevents the creation of duplicates"
(https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_upsert_patch.htm)."""

CALLS_PER_FILE = 3
"""Salesforce API calls a rendition job spends on one file besides its completion event: the Composite lookup,
the download and the one insert (``workers/renditions.py``)."""


def rendition_key(source_id: str, variant: str) -> str:
    """The unique key of one rendition: the same for every attempt at it, whoever makes it."""
    return f"{to_18(source_id)}:{variant}"


def skip_rendition(sobject: str | None, fields_: Mapping[str, Any]) -> str | None:
    """Offload's own renditions carry the marker field: never make renditions of a rendition (loop guard)."""
    if sobject == "ContentVersion" and fields_.get(RENDITION_MARKER_FIELD):
        return "this ContentVersion is a rendition Offload wrote"
    return None


def content_version_from_notification(sobject: str, fields_: NotificationFields) -> dict[str, Any]:
    """The payload of a process that takes one file: a ContentVersion notification names it.

    Raises:
        ValueError: the notification is not about a ContentVersion, or has no valid Id.
    """
    record_id = fields_.get("Id")
    if not record_id or not is_valid_id(record_id):
        raise ValueError("the notification has no valid sObject Id")
    if sobject != "ContentVersion":
        raise ValueError(f"this process takes a file: send a ContentVersion notification, not a {sobject} one")
    return {"contentVersionId": to_18(record_id)}


def file_payload(content_version_id: str) -> dict[str, Any]:
    """The payload of a rendition job for one file: the same one a live upload's callout sends, so that the two
    have one delivery key and a file a live upload already queued is not queued again."""
    return {"contentVersionId": to_18(content_version_id)}


class RenditionResult(PayloadSchema):
    """One rendition of a source file: written by this job, or found from an earlier one (``existing``)."""

    variant = fields.String(metadata={"description": "The rendition's Offload_Variant__c, e.g. thumb or page-1."})
    contentVersionId = fields.String(metadata={"description": "The rendition's ContentVersion (068...)."})
    existing = fields.Boolean(metadata={"description": "True when an earlier job had written it."})
    width = fields.Integer(metadata={"description": "Pixels (absent when existing)."})
    height = fields.Integer(metadata={"description": "Pixels (absent when existing)."})
    format = fields.String(metadata={"description": "jpeg, webp or png (absent when existing)."})
    bytes = fields.Integer(metadata={"description": "Size of the written file (absent when existing)."})


class RenditionJobResult(PayloadSchema):
    """What every rendition-writing job reports; a process's result schema extends it with its own keys."""

    sourceContentVersionIds = fields.List(fields.String())
    renditionCount = fields.Integer()
    renditions = fields.List(fields.Nested(RenditionResult))
    apiCalls = fields.Integer(metadata={"description": "Salesforce API calls the job made."})
