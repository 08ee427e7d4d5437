"""What every operator command (``offload jobs``, ``offload backfill``) shares: its settings and Redis client, opened
once per command, and one way to turn an error into the message and exit status 1 it ends with."""

from __future__ import annotations

import click
import redis

from services.errors import ConfigError, OffloadError
from services.queue import redis_from_url
from services.settings import Settings


def connect(ctx: click.Context) -> tuple[Settings, redis.Redis]:
    """The settings (``Settings.from_env``) and the Redis client, opened on first use and closed when the command
    ends; a missing or malformed variable ends the command with its message."""
    obj = ctx.ensure_object(dict)
    if "redis" not in obj:
        try:
            settings = Settings.from_env()
        except ConfigError as exc:
            raise click.ClickException(exc.message) from None
        client = redis_from_url(settings.redis_url)
        ctx.call_on_close(client.close)
        obj["redis"], obj["settings"] = client, settings
    return obj["settings"], obj["redis"]


def failure(exc: OffloadError | redis.RedisError) -> click.ClickException:
    """``CODE: message`` for an Offload error; for Redis, what to check."""
    if isinstance(exc, OffloadError):
        return click.ClickException(f"{exc.code}: {exc.message}")
    return click.ClickException(f"Redis did not answer ({type(exc).__name__}); check REDIS_URL.")
