"""Per-process state of the receiver: settings and the one Redis client.

Stored in ``app.extensions["offload"]`` (Flask's convention for extension
state) rather than patched onto ``app``. The Redis client holds a connection
pool and is created once per gunicorn worker process, never per request.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import Flask, current_app

from services.queue import redis_from_url
from services.settings import Settings


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    redis: redis.Redis


def init_app(app: Flask, settings: Settings, client: redis.Redis | None = None) -> None:
    app.extensions["offload"] = Runtime(settings=settings, redis=client or redis_from_url(settings.redis_url))


def get_runtime() -> Runtime:
    """The current app's runtime (inside a request)."""
    return current_app.extensions["offload"]
