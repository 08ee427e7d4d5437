"""Salesforce REST error bodies, exactly as the API sends them.

REST errors are a JSON *array* of ``{"message", "errorCode", "fields"?}`` (REST API guide,
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm).
simple-salesforce reads ``result.json()[0]['errorCode']`` on 401, so the array shape is
load-bearing. Messages of the common cases are copied from the fixtures in
``tests/fixtures/salesforce/rest-error-*.json``.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response


class RestError(Exception):
    """Raised anywhere in request handling; rendered as Salesforce's error array."""

    def __init__(self, status: int, code: str, message: str, fields: list[str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields

    def body(self) -> list[dict[str, Any]]:
        item: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            item["fields"] = self.fields
        return [item]

    def save_error(self) -> dict[str, Any]:
        """The per-record form used in SaveResults (``statusCode``, not ``errorCode``)."""
        return {"statusCode": self.code, "message": self.message, "fields": self.fields or []}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Salesforce answers ``application/json;charset=UTF-8``."""
    return Response(
        json.dumps(body), status=status, headers=headers, content_type="application/json;charset=UTF-8"
    )


def invalid_session() -> RestError:
    return RestError(401, "INVALID_SESSION_ID", "Session expired or invalid")


def request_limit() -> RestError:
    return RestError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")


def content_publication_limit_exceeded() -> RestError:
    """A ContentVersion past the org's daily cap of new files and versions. The message is the one users
    report (https://github.com/douglascayers/sfdc-convert-attachments-to-chatter-files/issues/53); the error
    code is not documented (not confirmed: LIMIT_EXCEEDED, a StatusCode of the SOAP API)."""
    return RestError(400, "LIMIT_EXCEEDED", "ContentPublication Limit exceeded.")


def not_found() -> RestError:
    return RestError(404, "NOT_FOUND", "The requested resource does not exist")


def server_unavailable() -> RestError:
    # Message text not confirmed by Salesforce's documentation (fixture rest-error-503-server-unavailable.json).
    return RestError(503, "SERVER_UNAVAILABLE", "Server is unavailable, please try again later")


def unable_to_lock_row(record_id: str | None) -> RestError:
    target = record_id or ""
    return RestError(
        400,
        "UNABLE_TO_LOCK_ROW",
        f"unable to obtain exclusive access to this record or 1 records: {target}".rstrip(),
        [],
    )


def malformed_id(sobject: str, value: str, field: str = "Id") -> RestError:
    return RestError(400, "MALFORMED_ID", f"{sobject} ID: id value of incorrect type: {value}", [field])


def required_missing(names: list[str]) -> RestError:
    return RestError(
        400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(names)}]", names
    )


def json_parser_error(message: str) -> RestError:
    return RestError(400, "JSON_PARSER_ERROR", message)


def too_large(limit_bytes: int) -> RestError:
    """simple-salesforce#195 quotes exactly this for an oversized base64 ContentVersion insert."""
    return json_parser_error(
        f"Maximum size of request reached. Maximum size of request is {limit_bytes} bytes."
    )


def read_only_field(names: list[str]) -> RestError:
    return RestError(
        400,
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        f"Unable to create/update fields: {', '.join(names)}. Please check the security "
        "settings of this field and verify that it is read/write for your profile or "
        "permission set.",
        names,
    )


def string_too_long(shown: str, value: str, limit: int, field: str | None = None) -> RestError:
    """A text value over the field's length, as Salesforce words it on insert and update: the message names the
    field by its label (``shown``), ``fields`` by its API name."""
    return RestError(
        400, "STRING_TOO_LONG", f"{shown}: data value too large: {value} (max length={limit})", [field or shown]
    )


def invalid_field(sobject: str, name: str) -> RestError:
    return RestError(400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject}")


def invalid_reference(field: str) -> RestError:
    # Wording not confirmed by Salesforce's documentation; the errorCode is the documented one for a lookup to a
    # missing record.
    return RestError(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [field])


#: Fault-injection codes -> the error Salesforce would send (bodies from the fixtures).
FAULT_ERRORS = {
    "SERVER_UNAVAILABLE": lambda rid: server_unavailable(),
    "REQUEST_LIMIT_EXCEEDED": lambda rid: request_limit(),
    "UNABLE_TO_LOCK_ROW": unable_to_lock_row,
    "INVALID_SESSION_ID": lambda rid: invalid_session(),
}
