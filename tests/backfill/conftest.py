"""The org emulator over HTTPS and the worker's environment, for feeder-level backfill tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devkit.devstack import offload_org_config, org_env
from devkit.org import EmulatedOrg
from services.settings import Settings
from workers import runner


@pytest.fixture
def org(tmp_path: Path) -> Iterator[EmulatedOrg]:
    with EmulatedOrg(offload_org_config(), state_dir=tmp_path / "org") as running:
        yield running


@pytest.fixture
def worker_env(org: EmulatedOrg, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    env = {**org_env(org), "REDIS_URL": redis_url, "OFFLOAD_SECRET_KEY": "k", "OFFLOAD_JOB_RETRIES": "2"}
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    runner.worker_settings.cache_clear()
    yield env
    runner.worker_settings.cache_clear()


@pytest.fixture
def settings(worker_env: dict[str, str]) -> Settings:
    return Settings.from_env(worker_env)
