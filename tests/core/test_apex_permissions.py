"""The permission sets in ``apex/`` grant what the workers write, so a deployed org does not refuse it.

Parsed from the SFDX metadata the org would receive (no org is reachable here): a field the job writes that
a permission set does not grant fails in a real org with INVALID_FIELD_FOR_INSERT_UPDATE, not in the emulator.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import pytest

from services.processes.renditions import RENDITION_KEY_FIELD, RENDITION_MARKER_FIELD, VARIANT_FIELD
from services.receiver.openapi import APPLINK_PERMISSION_SET

METADATA = Path(__file__).resolve().parents[2] / "apex/force-app/main/default"
PERMISSION_SETS = METADATA / "permissionsets"
EVENTS = sorted(p.name for p in (METADATA / "objects").iterdir() if p.name.endswith("__e"))
NS = {"md": "http://soap.sforce.com/2006/04/metadata"}
WRITTEN_FIELDS = {f"ContentVersion.{name}" for name in (RENDITION_KEY_FIELD, RENDITION_MARKER_FIELD, VARIANT_FIELD)}


def _permission_set(name: str) -> ElementTree.Element:
    return ElementTree.parse(PERMISSION_SETS / f"{name}.permissionset-meta.xml").getroot()


def _editable_fields(root: ElementTree.Element) -> set[str]:
    return {fp.findtext("md:field", namespaces=NS) or "" for fp in root.findall("md:fieldPermissions", NS)
            if fp.findtext("md:editable", namespaces=NS) == "true"}


def _creatable_objects(root: ElementTree.Element) -> set[str]:
    return {op.findtext("md:object", namespaces=NS) or "" for op in root.findall("md:objectPermissions", NS)
            if op.findtext("md:allowCreate", namespaces=NS) == "true"}


@pytest.mark.parametrize("name", ["Offload_Integration", APPLINK_PERMISSION_SET])
def test_each_write_back_user_may_write_the_markers_and_publish_the_event(name: str) -> None:
    root = _permission_set(name)
    assert WRITTEN_FIELDS <= _editable_fields(root)
    assert EVENTS == ["Offload_Job_Event__e"], "the completion event apex/ ships (OFFLOAD_COMPLETION_EVENT)"
    assert set(EVENTS) <= _creatable_objects(root)


def test_the_applink_permission_set_is_session_based() -> None:
    """AppLink's user-plus mode activates it for one call's session; always on, it would let the user write
    rendition markers from anywhere (https://devcenter.heroku.com/articles/heroku-applink-user-modes)."""
    assert _permission_set(APPLINK_PERMISSION_SET).findtext("md:hasActivationRequired", namespaces=NS) == "true"
