"""``offload org`` subcommands against a running emulator's admin API, and the state helpers."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from devkit.org import EmulatedOrg, OrgConfig, OrgState
from devkit.org.cli import org as org_cli
from services import sfids
from tests.support.org import Api


def _run(org: EmulatedOrg, *args: str) -> object:
    env = {"OFFLOAD_ORG_URL": org.base_url, "OFFLOAD_ORG_CA_BUNDLE": org.ca_bundle}
    result = CliRunner().invoke(org_cli, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_cli_admin_commands(org: EmulatedOrg, api: Api, tmp_path: Path) -> None:
    created = _run(org, "records", "create", "Account", "Name=Acme", "NumberOfEmployees:=42")
    assert created["record"]["NumberOfEmployees"] == 42
    listed = _run(org, "records", "list", "Account")
    assert [r["Id"] for r in listed] == [created["id"]]

    photo = tmp_path / "photo.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n")
    uploaded = _run(org, "files", "upload", created["id"], str(photo))
    assert _run(org, "files", "list")[0]["Id"] == uploaded["id"]

    api.post("/sobjects/Offload_Job_Event__e", json={"Job_Id__c": "1"})
    assert len(_run(org, "events", "list")) == 1

    rule = _run(org, "faults", "add", "*/limits", "--error", "SERVER_UNAVAILABLE", "--count", "1")
    assert rule["remaining"] == 1
    assert api.get("/limits").status_code == 503
    _run(org, "faults", "add", "*/limits", "--error", "SERVER_UNAVAILABLE")
    _run(org, "faults", "clear")
    assert api.get("/limits").status_code == 200

    assert _run(org, "tokens", "expire")["expired"] >= 1
    assert api.get("/limits").status_code == 401


def test_ids_and_prefixes(tmp_path: Path) -> None:
    config = OrgConfig(custom_objects=frozenset({"My_Object__c"}))
    state = OrgState(config, state_dir=tmp_path)
    ids = {name: state.insert(name, {}, notify=False)["Id"] for name in ("Account", "Contact", "ContentVersion")}
    assert {k: v[:3] for k, v in ids.items()} == {"Account": "001", "Contact": "003", "ContentVersion": "068"}
    assert all(sfids.is_valid_id(v) and len(v) == 18 for v in ids.values())
    assert state.get_record(ids["Account"][:15])[0] == "Account"
    custom = state.catalog.resolve("My_Object__c")
    assert custom == "My_Object__c" and OrgState(config, state_dir=tmp_path / "b").catalog.resolve("my_object__c")
    assert state.catalog.prefix(custom) == OrgState(config, state_dir=tmp_path / "c").catalog.prefix("MY_OBJECT__C")
    assert OrgState(state_dir=tmp_path / "d").catalog.resolve("My_Object__c") is None, "not deployed, not declared"
    assert state.catalog.resolve("Nonsense") is None
    assert state.user_id.startswith("005")
