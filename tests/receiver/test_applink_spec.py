"""The spec ``heroku salesforce:publish`` sends: valid OpenAPI 3.0, the registry's, committed as generated."""

from __future__ import annotations

from pathlib import Path

import yaml
from openapi_spec_validator import validate

from devkit.applink.spec import SPEC_FILE, render
from services.processes import PROCESSES
from services.receiver.openapi import APPLINK_PERMISSION_SET, build_applink_spec, build_spec

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_spec_is_the_generated_one_and_validates() -> None:
    committed = (ROOT / SPEC_FILE).read_text()
    assert committed == render(), "run `python -m devkit.applink.spec` and commit applink-openapi.yaml"
    document = yaml.safe_load(committed)
    validate(document)
    assert document["openapi"].startswith("3.0.")


def test_it_matches_the_registry_and_openapi_json() -> None:
    document, json_spec = build_applink_spec(), build_spec("https://offload.example")
    assert set(document["paths"]) == {f"/applink/{name}" for name in PROCESSES}
    for process in PROCESSES.values():
        operation = document["paths"][f"/applink/{process.name}"]["post"]
        twin = json_spec["paths"][f"/callouts/{process.name}"]["post"]
        assert operation["operationId"] == twin["operationId"] and operation["requestBody"] == twin["requestBody"]
        name = twin["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        request = {k: v for k, v in document["components"]["schemas"][name].items()}
        request["properties"] = {k: {a: b for a, b in v.items() if a != "x-sfdc"}
                                 for k, v in request["properties"].items()}
        assert request == json_spec["components"]["schemas"][name]
        assert operation["x-sfdc"]["heroku"]["authorization"]["permissionSet"] == APPLINK_PERMISSION_SET
        assert ("agent" in operation["x-sfdc"]) is process.agent_action


def test_agent_actions_carry_the_markers_agentforce_requires() -> None:
    document = build_applink_spec()
    topic = document["x-sfdc"]["agent"]["topic"]
    assert {"name", "classificationDescription", "scope", "instructions"} <= set(topic)
    actions = [p for p in PROCESSES.values() if p.agent_action]
    assert actions, "at least one action once a topic is defined"
    for process in actions:
        operation = document["paths"][f"/applink/{process.name}"]["post"]
        assert operation["x-sfdc"]["agent"]["action"]["publishAsAgentAction"] is True
        name = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        assert all(p["x-sfdc"]["agent"]["action"]["isUserInput"] for p in
                   document["components"]["schemas"][name]["properties"].values())
    assert all(p["x-sfdc"]["agent"]["action"]["isDisplayable"]
               for p in document["components"]["schemas"]["JobAccepted"]["properties"].values())
