"""The org emulator over HTTPS and a worker dyno's environment, as the worker tests have them."""

from __future__ import annotations

import pytest

from services.settings import Settings
from tests.workers.conftest import org, worker_env

__all__ = ["org", "settings", "worker_env"]


@pytest.fixture
def settings(worker_env: dict[str, str]) -> Settings:
    return Settings.from_env(worker_env)
