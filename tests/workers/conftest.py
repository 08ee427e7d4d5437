"""Worker fixtures: an emulated org as it looks with apex/ deployed, and worker settings pointing at it."""

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
def worker_env(org: EmulatedOrg, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment a worker dyno would have, applied to this process for in-process workers."""
    env = {**org_env(org), "REDIS_URL": redis_url, "OFFLOAD_CALLOUT_SECRETS": "s3cret",
           "OFFLOAD_SECRET_KEY": "k", "OFFLOAD_JOB_RETRIES": "2"}
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    runner.worker_settings.cache_clear()
    yield env
    runner.worker_settings.cache_clear()


@pytest.fixture
def worker_settings(worker_env: dict[str, str]) -> Settings:
    return Settings.from_env(worker_env)
