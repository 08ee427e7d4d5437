"""The app factory and the health endpoints."""

from __future__ import annotations

import pytest
import redis

from services.errors import ConfigError
from services.receiver import create_app
from services.settings import Settings


def test_factory_validates_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a way to authenticate callers, the receiver refuses to start and says what to set."""
    for name in ("OFFLOAD_CALLOUT_SECRETS", "OFFLOAD_API_KEYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OFFLOAD_ORG_IDS", "00D5g000000Xk2P")
    with pytest.raises(ConfigError, match="OFFLOAD_CALLOUT_SECRETS"):
        create_app()


def test_healthz_is_alive(client) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_checks_redis(client) -> None:
    assert client.get("/readyz").status_code == 200


def test_readyz_is_503_when_redis_is_down(settings: Settings) -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    app = create_app({"OFFLOAD_SETTINGS": settings, "OFFLOAD_REDIS": dead})
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert "Redis" in response.get_json()["reason"]


def test_unknown_routes_answer_json(client) -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "NOT_FOUND"
