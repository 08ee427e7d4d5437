"""Shared fixtures: a real HTTPS org emulator per test, clients that trust its CA, fixture files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from simple_salesforce import Salesforce

from devkit.org import EmulatedOrg, OrgConfig
from tests.support import keys
from tests.support.org import API, Api


@pytest.fixture
def org_config() -> OrgConfig:
    """Override in a test module to start the org with other settings."""
    return OrgConfig()


@pytest.fixture
def org(org_config: OrgConfig, tmp_path: Path) -> Iterator[EmulatedOrg]:
    with EmulatedOrg(org_config, state_dir=tmp_path / "org") as running:
        yield running


@pytest.fixture
def api(org: EmulatedOrg) -> Api:
    return Api(org, org.issue_token())


@pytest.fixture
def sf(org: EmulatedOrg, api: Api) -> Salesforce:
    """simple-salesforce, unchanged, pointed at the emulator through a CA-trusting session."""
    return Salesforce(instance_url=org.base_url, session_id=api.token, session=org.session(), version=API)


@pytest.fixture
def account(api: Api) -> str:
    response = api.post("/sobjects/Account", json={"Name": "Acme"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture(scope="session")
def jwt_keypair() -> tuple[bytes, str]:
    """(private key PEM, self-signed certificate PEM) as a connected app would hold."""
    return keys.jwt_keypair()
