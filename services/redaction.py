"""What counts as secret, and how it is hidden: one rule for logs, the dashboard and ``offload jobs``.

A value is secret when its key contains one of :data:`SECRET_MARKERS` (``sessionRef``,
``client_secret``, ``access_token``, ``Authorization``...). Keys are checked in structures, and
``key=value`` / ``key: value`` pairs are found inside free text too (exception messages, reprs,
query strings), so a token that ends up in an error message is hidden as well.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[redacted]"
SECRET_MARKERS = ("secret", "token", "password", "session", "authorization", "private_key", "signature")

_SECRET_KEY = r"[\w\-]*(?:" + "|".join(re.escape(m) for m in SECRET_MARKERS) + r")[\w\-]*"
_SECRET_IN_TEXT = re.compile(
    rf"""(?P<key>{_SECRET_KEY})(?P<kq>['"]?)(?P<sep>\s*[:=]\s*)"""
    rf"""(?:(?P<q>['"])(?P<quoted>.*?)(?<!\\)(?P=q)|(?P<bare>[^\s,;&}}\]'"]+))""",
    re.IGNORECASE,
)


def looks_secret(key: str) -> bool:
    """True for keys whose values are never shown (``sessionRef``, ``client_secret``, ``token``...)."""
    lowered = key.lower()
    return any(marker in lowered for marker in SECRET_MARKERS)


def redact_text(text: str) -> str:
    """Hide ``key: value`` / ``key=value`` pairs with a secret-looking key inside free text.

    Covers what a job turns into as text: Python reprs of the envelope in call strings
    (``{'sessionRef': '...'}``), JSON strings (the dashboard's ``metadata``) and query strings
    in exception messages.
    """

    def hide(match: re.Match[str]) -> str:
        q = match.group("q") or ""
        return f"{match.group('key')}{match.group('kq')}{match.group('sep')}{q}{REDACTED}{q}"

    return _SECRET_IN_TEXT.sub(hide, text)


def redact(value: Any) -> Any:
    """A copy of ``value`` with every secret-looking key's value (at any depth) replaced."""
    if isinstance(value, dict):
        return {k: REDACTED if isinstance(k, str) and looks_secret(k) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value
