"""Marshmallow building blocks shared by process schemas.

Field types are limited to what Salesforce External Services can import
(https://help.salesforce.com/s/articleView?id=platform.external_services_schema_def_limits.htm and
https://help.salesforce.com/s/articleView?id=platform.flow_http_callout_considerations.htm):
strings, booleans and 32-bit integers, flat objects, no ``float``/``long``. Ids are
validated with their checksum so a typo fails in the receiver with a message, not hours
later in a worker.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields

from services.sfids import normalize


class SalesforceId(fields.String):
    """A 15- or 18-character record Id, normalized to 18 characters.

    Args:
        key_prefix: When set (``"068"``), the Id must be of that object type.
    """

    def __init__(self, *, key_prefix: str | None = None, **kwargs: Any) -> None:
        metadata = {"description": "Salesforce record Id (15 or 18 characters).", **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)
        self.key_prefix = key_prefix

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        normalized = normalize(text)  # validity and the 18-character form from one checksum
        if normalized is None:
            raise ValidationError("Not a valid Salesforce Id (15 or 18 characters, correct checksum).")
        if self.key_prefix and not text.startswith(self.key_prefix):
            raise ValidationError(f"Must be an Id starting with {self.key_prefix}.")
        return normalized


class SentAt(fields.String):
    """ISO 8601 timestamp of when Salesforce sent the request (for freshness checks)."""

    def __init__(self, **kwargs: Any) -> None:
        metadata = {
            "description": "When the caller sent the request, ISO 8601 UTC (e.g. 2026-11-26T10:00:00Z). "
            "Signed requests older than 5 minutes are refused.",
            **kwargs.pop("metadata", {}),
        }
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        parse_sent_at(text)
        return text


def parse_sent_at(text: str) -> datetime:
    """Parse an ISO 8601 timestamp that includes a time zone (Apex's ``Datetime.now()`` JSON form does)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError("Not an ISO 8601 date-time (e.g. 2026-11-26T10:00:00Z).") from None
    if moment.tzinfo is None:
        raise ValidationError("Give a time zone (a trailing Z for UTC).")
    return moment


class PayloadSchema(Schema):
    """Base for process payload schemas: unknown fields are an error, so typos surface."""

    class Meta:
        ordered = True
