"""Small helpers for receiver tests: sign and post like Salesforce does."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from services.clock import utc_iso
from services.signing import sign

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "salesforce"


OUTBOUND_TOKEN = "test-outbound-token-0123456789"
"""The ``?token=`` the test receiver's Outbound Message endpoint wants (``OFFLOAD_OUTBOUND_TOKENS``)."""


def now_iso(offset_s: float = 0) -> str:
    return utc_iso(datetime.now(UTC) + timedelta(seconds=offset_s))


def signed_post(client: Any, path: str, payload: Any, secret: str, headers: dict[str, str] | None = None) -> Any:
    """POST ``payload`` signed with ``secret``; a dict without ``sentAt`` gets the current time, as Apex sends."""
    if isinstance(payload, dict) and "sentAt" not in payload:
        payload = {**payload, "sentAt": now_iso()}
    body = json.dumps(payload, separators=(",", ":")).encode()
    return client.post(path, data=body, content_type="application/json",
                       headers={"X-Offload-Signature": sign(body, secret), **(headers or {})})


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()
