"""Errors as JSON: ``{"error": {"code", "message", "fields", "fieldErrors"}}`` for every JSON endpoint
(:func:`services.errors.error_body`: ``fieldErrors`` is the list form of ``fields`` that Flow can read).

The outbound blueprint answers SOAP Faults instead (see ``outbound.py``).
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from services.errors import OffloadError, error_body
from services.logs import event

logger = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "INVALID_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    408: "REQUEST_TIMEOUT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


def error_response(status: int, code: str, message: str, fields: dict | None = None) -> Response:
    response = jsonify(error_body(code, message, fields))
    response.status_code = status
    return response


def http_error_response(exc: HTTPException) -> Response:
    """The JSON answer for a werkzeug HTTP error (404, 405, 413, ...), as every JSON endpoint gives it."""
    status = exc.code or 500
    message = exc.description or exc.name
    if status == 413:
        message = "The request body is larger than the receiver accepts (OFFLOAD_MAX_BODY_BYTES)."
    return error_response(status, _HTTP_CODES.get(status, "HTTP_ERROR"), message)


def init_app(app: Flask) -> None:
    @app.errorhandler(OffloadError)
    def _offload_error(exc: OffloadError) -> Response:
        level = logging.WARNING if exc.status_code < 500 else logging.ERROR
        event(logger, "request refused", level, status=exc.status_code, code=exc.code, reason=exc.message)
        return error_response(exc.status_code, exc.code, exc.message, exc.fields)

    app.register_error_handler(HTTPException, http_error_response)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        logger.exception("unexpected error")
        return error_response(500, "INTERNAL_ERROR", "Offload hit an unexpected error; see the web logs.")
