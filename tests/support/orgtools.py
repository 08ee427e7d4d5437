"""Seeding the emulated org the way a user would: a record, then a photo uploaded to it."""

from __future__ import annotations

from typing import Any

import requests


def admin(org: Any) -> requests.Session:
    session = requests.Session()
    session.verify = org.ca_bundle
    session.trust_env = False
    return session


def create_record(org: Any, sobject: str, **fields: Any) -> str:
    response = admin(org).post(f"{org.base_url}/_emulator/records", json={"sobject": sobject, "fields": fields})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def upload_file(org: Any, record_id: str, data: bytes, filename: str, **fields: Any) -> str:
    import json

    response = admin(org).post(
        f"{org.base_url}/_emulator/files",
        data={"record_id": record_id, "path_on_client": filename, "fields": json.dumps(fields)},
        files={"file": (filename, data, "application/octet-stream")},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def renditions_of(org: Any, source_id: str) -> list[dict[str, Any]]:
    return [r for r in org.state.all_records("ContentVersion") if r.get("Offload_Rendition_Of__c") == source_id]
