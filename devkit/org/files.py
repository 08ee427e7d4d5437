"""Salesforce Files: ContentVersion inserts, the ContentDocument and links they imply, and bytes.

What Salesforce does on a ContentVersion insert (the ContentVersion object reference,
https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_contentversion.htm):

* no ``ContentDocumentId``: a new ContentDocument (069) is created and the version is number
  "1"; ``FirstPublishLocationId`` (insert-only) links the document to that record or user
  through a ContentDocumentLink (06A);
* with ``ContentDocumentId``: the insert becomes version n+1 of that document, the previous
  version's ``IsLatest`` turns false and the document points at the new
  ``LatestPublishedVersionId``;
* ``ContentSize``, ``FileExtension`` and ``FileType`` are computed (FileType from
  PathOnClient), ``Checksum`` is the MD5 hex of the bytes.

Bytes are kept on disk under ``state.blob_dir``, never in the record, so 2 GB multipart
uploads do not sit in memory.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from pathlib import Path, PurePosixPath
from typing import IO, Any

from . import records, sferrors, visibility
from .state import OrgState

logger = logging.getLogger(__name__)

_CHUNK = 1024 * 1024


def file_extension(path_on_client: str) -> str | None:
    """Lower-case extension of ``PathOnClient`` (``photo.JPG`` -> ``jpg``), None without one."""
    suffix = PurePosixPath(path_on_client.replace("\\", "/")).suffix
    return (suffix[1:].lower() or None) if suffix else None


def file_type(state: OrgState, path_on_client: str) -> str:
    """ContentVersion.FileType for a file name; UNKNOWN for extensions Salesforce has no type for."""
    ext = file_extension(path_on_client)
    return state.config.file_types.get(ext or "", "UNKNOWN")


def _store_bytes(target: Path, blob: Any) -> tuple[int, str]:
    """Write ``blob`` (bytes or a readable stream) to ``target``; returns (size, md5 hex)."""
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    stream: IO[bytes] | None = getattr(blob, "stream", None) or (blob if hasattr(blob, "read") else None)
    with target.open("wb") as out:
        if stream is None:
            data = bytes(blob)
            out.write(data)
            return len(data), hashlib.md5(data, usedforsecurity=False).hexdigest()
        while chunk := stream.read(_CHUNK):
            out.write(chunk)
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _decode_base64(state: OrgState, value: Any) -> bytes:
    if not isinstance(value, str):
        raise sferrors.json_parser_error("VersionData must be a base64 string")
    if len(value) > state.config.max_base64_blob_chars:
        raise sferrors.too_large(state.config.max_json_request_bytes)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        # Not confirmed by Salesforce's documentation: the exact message Salesforce gives for bad base64.
        raise sferrors.json_parser_error(f"Illegal base64 data in VersionData: {exc}") from exc


def create_version(state: OrgState, fields: dict[str, Any], blob: Any = None, *,
                   acting_user: str | None = None, stamp: str | None = None, notify: bool = True) -> dict[str, Any]:
    """Insert a ContentVersion from cleaned fields; ``blob`` is the multipart body part, if any.

    ``stamp`` and ``notify`` are for seeding files that were already in the org (``devkit/org/seed.py``): the
    version, its document and links get that CreatedDate/LastModifiedDate/SystemModstamp instead of now, and
    listeners (outbound messages) are not told, as nothing was uploaded now.
    """
    system = _stamped(stamp)
    lowered = {k.lower(): k for k in fields}
    data_key = lowered.get("versiondata")
    if blob is None and data_key is not None and fields[data_key] not in (None, ""):
        blob = _decode_base64(state, fields[data_key])
    if data_key:
        fields.pop(data_key)
    records.check_required(state, "ContentVersion", fields)
    if blob is None and not fields.get(lowered.get("contenturl", ""), None):
        raise sferrors.required_missing(["VersionData"])
    path_on_client = str(fields[lowered["pathonclient"]])
    doc_key = lowered.get("contentdocumentid")
    first_key = lowered.get("firstpublishlocationid")
    if doc_key and first_key and fields.get(first_key):
        raise sferrors.RestError(
            400,
            "FIELD_INTEGRITY_EXCEPTION",
            "FirstPublishLocationId can't be set when inserting a new version",
            [first_key],
        )
    if first_key:
        visibility.check_publish_location(state, fields.get(first_key), acting_user or state.user_id)
    title = fields.get(lowered.get("title", ""), None) or PurePosixPath(path_on_client).stem
    with state.transaction():
        records.check_unique(state, "ContentVersion", fields)
        if state.content_publications_remaining() <= 0:
            raise sferrors.content_publication_limit_exceeded()
        version_id = state.ids.new_id(state.catalog.prefix("ContentVersion"))
        size, md5 = _store_bytes(state.blob_path(version_id), blob if blob is not None else b"")
        computed = {
            "Title": title,
            "ContentSize": size,
            "FileExtension": file_extension(path_on_client),
            "FileType": file_type(state, path_on_client),
            "Checksum": md5,
            "IsLatest": True,
            "VersionData": None,
            "ContentLocation": "S",
            "Origin": "C",
            "SharingOption": "A",
            "SharingPrivacy": "N",
        }
        owner = fields.get(lowered.get("ownerid", ""), None) or state.user_id
        if doc_key and fields.get(doc_key):
            document_id = fields[doc_key]
            number = _retire_latest(state, document_id)
        else:
            number = 1
            document_id = state.insert(
                "ContentDocument",
                {
                    **system,
                    "Title": title,
                    "OwnerId": owner,
                    "LatestPublishedVersionId": version_id,
                    "FileExtension": computed["FileExtension"],
                    "FileType": computed["FileType"],
                    "ContentSize": size,
                    "PublishStatus": "P",
                    "ArchivedDate": None,
                    "IsArchived": False,
                },
                notify=notify,
            )["Id"]
        cleaned = {k: v for k, v in fields.items() if k.lower() not in ("title", "contentdocumentid")}
        record = state.insert(
            "ContentVersion",
            {
                **cleaned,
                **computed,
                **system,
                "OwnerId": owner,
                "ContentDocumentId": document_id,
                "VersionNumber": str(number),
            },
            record_id=version_id,
            notify=notify,
        )
        if number > 1:
            state.update(
                document_id,
                {
                    "LatestPublishedVersionId": version_id,
                    "Title": title,
                    "ContentSize": size,
                    "FileExtension": computed["FileExtension"],
                    "FileType": computed["FileType"],
                },
            )
        else:
            _link_new_document(state, document_id, owner, fields.get(first_key) if first_key else None,
                               system=system, notify=notify)
    state.count_content_publication()
    logger.info("ContentVersion %s v%s of %s (%d bytes)", version_id, number, document_id, size)
    return record


def _retire_latest(state: OrgState, document_id: str) -> int:
    """Flip IsLatest on the current version; returns the next VersionNumber."""
    versions = state.find("ContentVersion", ContentDocumentId=document_id)
    for version in versions:
        if version.get("IsLatest"):
            state.update(version["Id"], {"IsLatest": False})
    return 1 + max((int(v.get("VersionNumber") or 0) for v in versions), default=0)


def _stamped(stamp: str | None) -> dict[str, Any]:
    if stamp is None:
        return {}
    return {"CreatedDate": stamp, "LastModifiedDate": stamp, "SystemModstamp": stamp}


def _link_new_document(state: OrgState, document_id: str, owner: str, first_location: str | None, *,
                       system: dict[str, Any] | None = None, notify: bool = True) -> None:
    """ContentDocumentLinks of a new document: FirstPublishLocationId, plus the owner's own link."""
    system = system or {}
    if first_location:
        user_location = first_location.startswith(state.catalog.prefix("User"))
        state.insert(
            "ContentDocumentLink",
            {
                **system,
                "ContentDocumentId": document_id,
                "LinkedEntityId": first_location,
                "ShareType": "I" if user_location else "V",
                "Visibility": "AllUsers",
            },
            notify=notify,
        )
        if user_location or not state.config.owner_link:
            return
    state.insert(
        "ContentDocumentLink",
        {
            **system,
            "ContentDocumentId": document_id,
            "LinkedEntityId": owner,
            "ShareType": "I",
            "Visibility": "AllUsers",
        },
        notify=notify,
    )


def version_data_path(state: OrgState, version_id: str) -> Path:
    """Where the bytes of an existing ContentVersion are (404 if there is no such version)."""
    record = records.fetch(state, "ContentVersion", version_id)
    return state.blob_path(record["Id"])
