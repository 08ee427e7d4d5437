"""Constants and helpers for the operations tests (a unique module name: tests/ has no packages)."""

from __future__ import annotations

import base64
from typing import Any

import redis

from services.envelope import Envelope
from services.receiver import dashboard, metrics
from services.settings import Settings

PASSWORD = "ops-password-0123456789abcdef"
QUEUE = "resize-image"
SESSION_REF = "Zq3xV9kLm2Pw8RtY5sNb4HjD"  # shaped like services.salesforce.sessions.store_session's token_urlsafe(18)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


ADMIN = basic("admin", PASSWORD)


def build_app(settings: Settings, connection: redis.Redis) -> Any:
    from services.receiver import create_app

    app = create_app({"TESTING": True, "OFFLOAD_SETTINGS": settings, "OFFLOAD_REDIS": connection})
    metrics.init_app(app)
    dashboard.init_app(app, settings)
    return app


def envelope(process: str = QUEUE, record_id: str = "068000000000001AAA", **extra: Any) -> dict[str, Any]:
    """A job envelope as the receiver writes it (``extra``: more wire keys, e.g. ``sessionRef``)."""
    built = Envelope(process=process, payload={"contentVersionId": record_id}, source="outbound",
                     record_id=record_id, org_id="00D5g000000Xk2PEAS", request_id="req-1").to_json()
    return {**built, **extra}
