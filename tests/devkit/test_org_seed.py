"""Seeding thousands of files (devkit/org/seed.py): they must look to the REST and Bulk APIs like uploaded ones."""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import UTC, datetime

import pypdfium2
import pytest
from PIL import Image

from devkit.org import EmulatedOrg, OrgConfig
from devkit.org.seed import seed_files
from tests.support.org import Api
from tests.support.orgtools import upload_file


@pytest.fixture
def org_config() -> OrgConfig:
    return OrgConfig(custom_objects=frozenset({"Property__c"}))


def _query(api: Api, soql: str) -> list[dict]:
    response = api.get("/query", params={"q": soql})
    assert response.status_code == 200, response.text
    body = response.json()
    records = body["records"]
    while not body["done"]:
        body = api.get(body["nextRecordsUrl"]).json()
        records += body["records"]
    return records


def test_seeded_files_look_like_uploaded_ones(org: EmulatedOrg, api: Api) -> None:
    seeded = seed_files(org, records=4, files_per_record=5, sobject="Property__c",
                        created_from="2025-03-01T00:00:00Z", created_until="2025-03-21T00:00:00Z")
    assert len(seeded.record_ids) == 4 and len(seeded.content_version_ids) == 20
    assert {k: len(v) for k, v in seeded.by_kind.items()} == {"jpg": 12, "png": 6, "pdf": 2}
    record = seeded.record_ids[0]
    uploaded = upload_file(org, record, seed_bytes(api, seeded.by_kind["jpg"][0]), "upload.jpg")

    fields = ("Id, Title, PathOnClient, FileExtension, FileType, ContentSize, IsLatest, VersionNumber, "
              "FirstPublishLocationId, ContentDocumentId, OwnerId, Checksum")
    rows = {r["Id"]: r for r in _query(api, f"SELECT {fields} FROM ContentVersion")}
    assert set(rows) == {*seeded.content_version_ids, uploaded}
    upload = rows.pop(uploaded)
    for version_id, row in rows.items():
        assert set(row) == set(upload)
        assert row["IsLatest"] is True and row["VersionNumber"] == "1" and row["OwnerId"] == org.state.user_id
        assert row["FileExtension"] == row["PathOnClient"].rsplit(".", 1)[1]
        assert row["FirstPublishLocationId"] in seeded.record_ids
        data = api.get(f"/sobjects/ContentVersion/{version_id}/VersionData")
        assert data.status_code == 200 and len(data.content) == row["ContentSize"]
        if row["FileExtension"] == "pdf":
            assert len(pypdfium2.PdfDocument(data.content)) == 1
        else:
            assert Image.open(io.BytesIO(data.content)).size == (64, 48)
    assert len({row["Checksum"] for row in rows.values()}) == 20, "every seeded file has its own bytes"
    links = _query(api, "SELECT ContentDocumentId, ShareType FROM ContentDocumentLink "
                        f"WHERE LinkedEntityId = '{record}'")
    documents = {row["ContentDocumentId"] for row in rows.values() if row["FirstPublishLocationId"] == record}
    assert documents <= {link["ContentDocumentId"] for link in links} and len(documents) == 5


def seed_bytes(api: Api, version_id: str) -> bytes:
    return api.get(f"/sobjects/ContentVersion/{version_id}/VersionData").content


def test_created_dates_are_spread_over_the_range(org: EmulatedOrg, api: Api) -> None:
    start, end = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 11, tzinfo=UTC)
    seed_files(org, records=10, files_per_record=10, sobject="Property__c", created_from=start, created_until=end)
    since = _query(api, "SELECT Id FROM ContentVersion WHERE CreatedDate >= 2025-01-06T00:00:00Z")
    until = _query(api, "SELECT Id FROM ContentVersion WHERE CreatedDate < 2025-01-06T00:00:00Z")
    assert (len(since), len(until)) == (50, 50), "file k of n at start + k * (end - start) / n"
    inside = _query(api, "SELECT Id FROM ContentVersion WHERE CreatedDate >= 2025-01-01T00:00:00Z "
                         "AND CreatedDate < 2025-01-11T00:00:00Z")
    assert len(inside) == 100
    [document] = _query(api, "SELECT CreatedDate FROM ContentDocument ORDER BY CreatedDate DESC LIMIT 1")
    assert document["CreatedDate"] < "2025-01-11"


def test_renditions_carry_offloads_marker_fields(org: EmulatedOrg, api: Api) -> None:
    seeded = seed_files(org, records=5, files_per_record=4, sobject="Property__c", rendered_fraction=1.0,
                        mix={"jpg": 1, "pdf": 1})
    assert len(seeded.rendered_source_ids) == 10, "every photo, no PDF"
    renditions = _query(api, "SELECT Offload_Rendition_Of__c, Offload_Variant__c, Offload_Rendition_Key__c, "
                             "FileExtension, FirstPublishLocationId FROM ContentVersion "
                             "WHERE Offload_Rendition_Of__c != null")
    assert len(renditions) == len(seeded.rendition_ids) == 30
    assert Counter(r["Offload_Variant__c"] for r in renditions) == {"large": 10, "medium": 10, "thumb": 10}
    assert Counter(r["FileExtension"] for r in renditions) == {"jpg": 20, "webp": 10}
    for rendition in renditions:
        source, variant = rendition["Offload_Rendition_Key__c"].split(":")
        assert source == rendition["Offload_Rendition_Of__c"] and variant == rendition["Offload_Variant__c"]
    sources = _query(api, "SELECT Id FROM ContentVersion WHERE Offload_Rendition_Of__c = null")
    assert len(sources) == 20


def test_seeding_tells_no_listener(org: EmulatedOrg) -> None:
    heard: list[str] = []
    org.state.add_listener(lambda sobject, record, created: heard.append(sobject))
    seed_files(org, records=2, files_per_record=2)
    assert heard == [], "seeded files were in the org before anyone listened"


def test_seeding_refuses_what_an_org_would_not_hold(org: EmulatedOrg) -> None:
    with pytest.raises(ValueError, match="mix"):
        seed_files(org, records=1, files_per_record=1, mix={"exe": 1})
    with pytest.raises(ValueError, match="created_until"):
        seed_files(org, records=1, files_per_record=1, created_from="2025-02-01", created_until="2025-01-01")


def test_a_separate_process_emulator_is_seeded_over_http(org: EmulatedOrg, api: Api) -> None:
    seeded = seed_files(org.base_url, ca_bundle=org.ca_bundle, records=3, files_per_record=2,
                        created_from="2024-06-01", created_until="2024-06-02")
    assert len(seeded.content_version_ids) == 6
    assert {r["Id"] for r in _query(api, "SELECT Id FROM ContentVersion")} == set(seeded.content_version_ids)
    refused = api.admin("POST", "/seed/files", json={"records": 1, "nope": True})
    assert refused.status_code == 400 and "nope" in refused.json()["error"]


def test_three_thousand_files_through_a_bulk_query(org: EmulatedOrg, api: Api) -> None:
    """The backfill's shape: 3,000 files on 300 records, some rendered, read back with a paged Bulk API 2.0 job."""
    seeded = seed_files(org, records=300, files_per_record=10, sobject="Property__c", rendered_fraction=0.1)
    job = api.post("/jobs/query", json={"operation": "query", "query":
                   "SELECT Id, FileExtension, FirstPublishLocationId FROM ContentVersion "
                   "WHERE Offload_Rendition_Of__c = null AND FileExtension IN ('jpg', 'png')"}).json()
    assert api.get(f"/jobs/query/{job['id']}").json()["state"] == "JobComplete"
    ids: list[str] = []
    params = {"maxRecords": "1000"}
    while True:
        response = api.get(f"/jobs/query/{job['id']}/results", params=params)
        ids += [row["Id"] for row in csv.DictReader(io.StringIO(response.text, newline=""))]
        if response.headers["Sforce-Locator"] == "null":
            break
        params["locator"] = response.headers["Sforce-Locator"]
    assert sorted(ids) == sorted(seeded.by_kind["jpg"] + seeded.by_kind["png"])
