"""Typed errors with messages a Salesforce admin can act on.

The whole hierarchy at a glance::

    OffloadError
    ├── ConfigError                 a variable is missing or malformed (start-up)
    ├── CallerRejected        401   missing/stale/mismatched signature or key
    │   └── WrongOrg          403   OrganizationId not in OFFLOAD_ORG_IDS
    ├── InvalidRequest        400   malformed JSON/XML, schema errors (``fields``)
    │   └── IdempotencyKeyReused  422   an Idempotency-Key sent again with a different body
    ├── UnknownProcess        404   no such process in the registry
    ├── JobNotFound           404   no job with that id
    ├── PayloadTooLarge       413   body over the configured cap
    ├── UnsupportedMediaType  415   wrong Content-Type
    ├── EnqueueFailed         503   Redis refused or is down: never ACK
    └── JobFailed                   raised inside a job
        ├── PermanentJobError       retrying cannot help (fail now)
        │   ├── ImageRejected       not an allowed image, a bomb, corrupt, too big
        │   ├── DocumentRejected    not a PDF, password-protected, damaged, too many pages or pixels
        │   ├── MalformedEnvelope   a job that is not an Offload envelope
        │   └── SalesforcePermanentError   NOT_FOUND, INVALID_FIELD, ...
        └── TransientJobError       retry with backoff
            └── SalesforceTransientError   503, UNABLE_TO_LOCK_ROW, REQUEST_LIMIT_EXCEEDED, ...

Each HTTP-facing error carries ``status_code`` and ``code`` (a stable,
SCREAMING_SNAKE identifier, like Salesforce's own ``errorCode``) and renders as
``{"error": {"code", "message", "fields", "fieldErrors"}}`` (:func:`error_body`).

``fields`` (messages per request field) is a map whose keys are field names: External Services turns such
a map into an untyped Apex ``Object`` a flow cannot read. ``fieldErrors`` says the same as a list of
``{"field", "message"}`` objects, a type Flow can loop over. Both are sent: ``fields`` is a published
name that clients parse; flows read ``fieldErrors``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def field_errors(fields: Mapping[Any, Any] | None) -> list[dict[str, str]]:
    """``fields`` flattened to one ``{"field", "message"}`` per message, in the map's order.

    Nested messages (marshmallow gives ``{"options": {"width": [...]}}`` for a nested schema and
    ``{"items": {0: [...]}}`` for a list element) are named by their dotted path: ``options.width``,
    ``items.0``.
    """
    out: list[dict[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, list | tuple):
            for inner in value:
                walk(prefix, inner)
        else:
            out.append({"field": prefix, "message": str(value)})

    walk("", fields or {})
    return out


def error_body(code: str, message: str, fields: Mapping[Any, Any] | None = None) -> dict[str, Any]:
    """The JSON error body every JSON endpoint answers with (one contract for the wire)."""
    return {"error": {"code": code, "message": message, "fields": dict(fields or {}),
                      "fieldErrors": field_errors(fields)}}


class OffloadError(Exception):
    """Base of every error Offload raises on purpose."""

    status_code: int = 500
    code: str = "OFFLOAD_ERROR"

    def __init__(self, message: str, *, code: str | None = None, fields: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.fields = fields or {}

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body shared by every endpoint (:func:`error_body`)."""
        return error_body(self.code, self.message, self.fields)


class ConfigError(OffloadError):
    """A setting is missing or malformed; the message names the variable to set."""

    code = "CONFIG_ERROR"


class CallerRejected(OffloadError):
    """The caller could not prove who it is (signature, API key, freshness)."""

    status_code = 401
    code = "UNAUTHENTICATED"


class WrongOrg(CallerRejected):
    """The message comes from a Salesforce org that is not in OFFLOAD_ORG_IDS."""

    status_code = 403
    code = "ORG_NOT_ALLOWED"


class InvalidRequest(OffloadError):
    """The request is malformed or fails validation; ``fields`` says where."""

    status_code = 400
    code = "INVALID_REQUEST"


class IdempotencyKeyReused(InvalidRequest):
    """An ``Idempotency-Key`` already taken by a request with a different body (IETF
    draft-ietf-httpapi-idempotency-key-header, section 2.7: 422 for a key reused with another payload)."""

    status_code = 422
    code = "IDEMPOTENCY_KEY_REUSED"


class RecordTypeNotAllowed(OffloadError):
    """The job names a record of an sObject type ``OFFLOAD_RECORD_TYPES`` does not allow (User, by default)."""

    status_code = 422
    code = "RECORD_TYPE_NOT_ALLOWED"


class UnknownProcess(OffloadError):
    """No process of that name is registered in ``workers``."""

    status_code = 404
    code = "UNKNOWN_PROCESS"


class JobNotFound(OffloadError):
    """No job with that id (finished jobs are kept for a day)."""

    status_code = 404
    code = "JOB_NOT_FOUND"


class PayloadTooLarge(OffloadError):
    """The body is larger than the receiver accepts."""

    status_code = 413
    code = "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(OffloadError):
    """The Content-Type is not one this endpoint speaks."""

    status_code = 415
    code = "UNSUPPORTED_MEDIA_TYPE"


class EnqueueFailed(OffloadError):
    """The job could not be stored durably; Salesforce must retry."""

    status_code = 503
    code = "ENQUEUE_FAILED"


class JobFailed(OffloadError):
    """Raised inside a job. Subclasses decide whether RQ retries it."""

    code = "JOB_FAILED"


class PermanentJobError(JobFailed):
    """Retrying cannot help: the job fails at once with this message."""

    code = "PERMANENT_ERROR"


class MalformedEnvelope(PermanentJobError):
    """A job whose argument is not an Offload envelope (enqueued by hand, or by another app on this Redis)."""

    code = "MALFORMED_ENVELOPE"


class TransientJobError(JobFailed):
    """Worth retrying later (Salesforce busy, lock contention, timeouts)."""

    code = "TRANSIENT_ERROR"


class JobSkipped(OffloadError):
    """Nothing to do, on purpose: the job finishes without a result, is not retried and is not a failure
    (no Failed event, so no failure bell for the uploader); ``/jobs/<id>`` shows ``skipped`` with the code
    and the reason."""

    code = "SKIPPED"


class JobDeferred(TransientJobError):
    """Not a failure: the job waits ``defer_seconds`` for a condition outside it (the org's API allowance)
    and runs again then, without spending one of its retries."""

    code = "DEFERRED"

    def __init__(self, message: str, *, defer_seconds: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.defer_seconds = defer_seconds


class ApiLimitNear(JobDeferred):
    """The org is at ``API_USAGE_CEILING`` of its daily API requests: jobs pause to leave its other
    integrations room, and resume when a fresh reading of ``/limits`` shows headroom."""

    code = "API_LIMIT_NEAR"


class ContentPublicationLimitNear(JobDeferred):
    """The org is near its daily cap of new files and versions (``ContentPublicationLimit``: 200,000 a rolling
    24 h, 2,500 on Developer Edition and trials): jobs pause rather than take the rest, which the org's users
    need for their own uploads, and resume when a fresh reading of ``/limits`` shows room."""

    code = "CONTENT_PUBLICATION_LIMIT_NEAR"


class CompletionNotPublished(TransientJobError):
    """The job's work is done but Salesforce did not take its completion event: the job runs again (it finds its
    renditions made and only publishes), so a subscriber is told, possibly twice (it dedupes on Job_Id__c)."""

    code = "COMPLETION_NOT_PUBLISHED"


class ImageRejected(PermanentJobError):
    """The file is not an image we accept: wrong format, a decompression bomb, corrupt or too big."""

    code = "IMAGE_REJECTED"


class DocumentRejected(PermanentJobError):
    """The file is not a PDF we preview: not a PDF at all, protected by a password, damaged or cut short, too big,
    too many pages, or a page whose image would pass the pixel limit."""

    code = "DOCUMENT_REJECTED"


class SalesforcePermanentError(PermanentJobError):
    """Salesforce refused the call for a reason retrying won't fix (``code`` is Salesforce's errorCode)."""

    code = "SALESFORCE_ERROR"


class SalesforceTransientError(TransientJobError):
    """Salesforce is busy or briefly unavailable (``code`` is Salesforce's errorCode or HTTP status)."""

    code = "SALESFORCE_UNAVAILABLE"


class BackfillError(OffloadError):
    """An ``offload backfill`` request that cannot be done as asked (the message says what to change)."""

    code = "BACKFILL_ERROR"


class BackfillSelectionInvalid(BackfillError):
    """The backfill's filters are malformed (an object name, a date, a process that takes no files)."""

    code = "BACKFILL_SELECTION_INVALID"


class BackfillAlreadyRunning(BackfillError):
    """The org has an active backfill run; one at a time, so two cursors never feed the same files."""

    code = "BACKFILL_ALREADY_RUNNING"


class NoBackfillRun(BackfillError):
    """There is no backfill run to act on."""

    code = "NO_BACKFILL_RUN"
