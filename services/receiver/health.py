"""Liveness and readiness, for Heroku and any load balancer."""

from __future__ import annotations

import redis
from flask import Blueprint

from services.receiver.runtime import get_runtime

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> tuple[dict[str, str], int]:
    """Alive: the process answers. Says nothing about Redis on purpose (no restart loops)."""
    return {"status": "ok"}, 200


@bp.get("/readyz")
def readyz() -> tuple[dict[str, str], int]:
    """Ready: Redis answers PING, so work can be accepted; 503 otherwise."""
    try:
        get_runtime().redis.ping()
    except redis.RedisError as exc:
        return {"status": "unavailable", "reason": f"Redis is not reachable ({type(exc).__name__})"}, 503
    return {"status": "ok"}, 200
