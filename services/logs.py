"""Structured logs: one line per event, in logfmt (Heroku's style) or JSON.

Every line carries the ids that let an operator follow one piece of work
through the receiver, Redis and a worker: ``request_id``, ``job_id``,
``process``, ``org_id``, ``record_id`` and ``attempt``. They are bound once
with :func:`log_context` (a ``contextvars`` scope, so concurrent requests
don't mix) and added to every line logged inside it.

Secrets never reach a log line: values of keys that look like secrets, and
``key=value`` pairs with such keys inside messages, are replaced by
``[redacted]`` (:mod:`services.redaction`) whatever the caller passes.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
from typing import Any

from services.redaction import REDACTED, looks_secret, redact_text

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("offload_log_context", default=None)


class _Bound:
    """The ``with`` block of :func:`log_context`: a plain context manager, not a generator.

    ``contextlib.contextmanager`` builds a generator and a wrapper per use; the receiver opens one or
    two of these per request, so the cheaper form matters there.
    """

    __slots__ = ("_token", "_values")

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values
        self._token: contextvars.Token[dict[str, Any] | None] | None = None

    def __enter__(self) -> None:
        self._token = _context.set({**(_context.get() or {}), **self._values})

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _context.reset(self._token)


def log_context(**values: Any) -> contextlib.AbstractContextManager[None]:
    """Bind ids (``job_id=...``, ``record_id=...``) to every log line inside the ``with`` block."""
    return _Bound({k: v for k, v in values.items() if v is not None})


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    fields.update(_context.get() or {})
    extra = getattr(record, "fields", None)
    if isinstance(extra, dict):
        fields.update(extra)
    if record.exc_info and record.exc_info[0] is not None:
        fields["error"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
    return {k: (REDACTED if looks_secret(k) else redact_text(v) if isinstance(v, str) else v)
            for k, v in fields.items()}


def _logfmt_value(value: Any) -> str:
    text = str(value)
    if text == "" or any(ch in text for ch in ' ="\\\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class LogfmtFormatter(logging.Formatter):
    """``at=... level=info logger=... msg="..." job_id=... record_id=...``"""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in _fields(record).items())


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log drains that parse JSON."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), default=str, ensure_ascii=False)


def configure_logging(log_format: str = "logfmt", level: str = "INFO") -> None:
    """Send every logger to stdout in one format. Call once per entry point (web, worker, CLI)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if log_format == "json" else LogfmtFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_offload", False):
            root.removeHandler(existing)
    handler._offload = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())


def event(logger: logging.Logger, msg: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event with extra key=value fields (``event(log, "job enqueued", queue="resize-image")``)."""
    logger.log(level, msg, extra={"fields": fields})
