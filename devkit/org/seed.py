"""Seeding an emulated org with thousands of files already linked to records, in seconds.

Tests and benches of the backfill need an org that looks like one that has been in use: a few hundred records,
thousands of photos and documents published to them over months, some of them already with Offload's
renditions. Uploading them through the REST API would take minutes; :func:`seed_files` writes them through the
same path an upload takes (``records.clean_fields`` and ``files.create_version``: ContentDocument, version "1",
``IsLatest``, ``FileExtension``, ``FileType``, ``ContentSize``, ``Checksum``, ``FirstPublishLocationId`` and the
ContentDocumentLinks), so the REST and Bulk APIs cannot tell a seeded file from an uploaded one, except that:

* ``CreatedDate`` (and LastModifiedDate, SystemModstamp) is spread over the caller's range: file *k* of *n* is
  created at ``created_from + k * (created_until - created_from) / n``, so ``--since``/``--until`` filters can be
  tested with exact counts; its record is created at ``created_from``, a rendition a minute after its source;
* listeners (Outbound Messages) are not told: these files were in the org before anyone listened.

Bodies are tiny but real: a 64x48 JPEG and PNG made with Pillow, and a one-page PDF written by hand (ISO 32000-1
section 7.5), each made unique per file with a comment (JPEG COM segment, PNG tEXt chunk, PDF comment line), so
every file has its own ``Checksum``. Renditions (``rendered_fraction`` of the photos) carry what
``workers/renditions.py`` writes: ``Offload_Rendition_Of__c``, ``Offload_Variant__c``, ``Offload_Rendition_Key__c``,
for the default variants (``services.variants.DEFAULT_VARIANTS_SPEC``).

A separate-process emulator is seeded over HTTP with the same arguments: ``POST /_emulator/seed/files``
(:func:`seed_files` with a base URL does that).
"""

from __future__ import annotations

import functools
import io
import random
import struct
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from devkit.pdfwrite import assemble
from services.processes.renditions import RENDITION_KEY_FIELD, RENDITION_MARKER_FIELD, VARIANT_FIELD, rendition_key
from services.variants import DEFAULT_VARIANTS_SPEC, parse_variants

from . import files, schema
from . import records as record_ops
from .state import OrgState, sf_datetime

DEFAULT_MIX: Mapping[str, int] = {"jpg": 6, "png": 3, "pdf": 1}
"""Of every ten files: six JPEG photos, three PNG, one PDF."""

KINDS = ("jpg", "jpeg", "png", "pdf")
IMAGE_KINDS = ("jpg", "jpeg", "png")
MAX_FILES = 200_000
"""The default ContentPublicationLimit: an org cannot publish more in 24 h, so a seed cannot either."""


@dataclass
class SeededFiles:
    """What :func:`seed_files` made: record Ids, source ContentVersion Ids (by kind) and rendition Ids."""

    record_ids: list[str] = field(default_factory=list)
    content_version_ids: list[str] = field(default_factory=list)
    by_kind: dict[str, list[str]] = field(default_factory=dict)
    rendition_ids: list[str] = field(default_factory=list)
    rendered_source_ids: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def seed_files(target: Any, *, records: int = 300, files_per_record: int = 10, sobject: str = "Account",
               mix: Mapping[str, int] | None = None, rendered_fraction: float = 0.0,
               created_from: datetime | str = "2025-01-01T00:00:00Z",
               created_until: datetime | str = "2025-12-31T00:00:00Z", owner_id: str | None = None,
               seed: int = 0, ca_bundle: str | None = None, timeout: float = 300.0) -> SeededFiles:
    """Create ``records`` records of ``sobject``, each with ``files_per_record`` files.

    Args:
        target: an :class:`OrgState`, anything with ``.state`` (an ``EmulatedOrg``), or the base URL of a running
            emulator (``https://127.0.0.1:8443``, with ``ca_bundle``), seeded through ``POST /_emulator/seed/files``.
        sobject: the records' type; a custom object (``Property__c``) must exist in the org
            (``OrgConfig(custom_objects=...)``).
        mix: extension -> weight (``jpg``, ``jpeg``, ``png``, ``pdf``), assigned round-robin in proportion.
        rendered_fraction: the share of photos (jpg/png) that already have Offload's renditions.
        created_from, created_until: the range the files' CreatedDate is spread over (datetime or ISO string).
        owner_id: the files' and records' owner (default the integration user).
        seed: makes which photos have renditions reproducible.

    Raises:
        ValueError: an argument a caller can fix (unknown kind, empty range, too many files).
    """
    if isinstance(target, str):
        return _seed_over_http(target, ca_bundle, timeout, records=records, files_per_record=files_per_record,
                               sobject=sobject, mix=dict(mix or DEFAULT_MIX), rendered_fraction=rendered_fraction,
                               created_from=_iso(created_from), created_until=_iso(created_until),
                               owner_id=owner_id, seed=seed)
    state: OrgState = target if isinstance(target, OrgState) else target.state
    return _seed(state, records, files_per_record, sobject, dict(mix or DEFAULT_MIX), rendered_fraction,
                 _moment(created_from), _moment(created_until), owner_id, seed)


def seed_from_json(state: OrgState, body: Mapping[str, Any]) -> SeededFiles:
    """The admin endpoint's body (the keyword arguments of :func:`seed_files`, ``records`` for the count)."""
    allowed = {"records", "files_per_record", "sobject", "mix", "rendered_fraction", "created_from",
               "created_until", "owner_id", "seed"}
    unknown = set(body) - allowed
    if unknown:
        raise ValueError(f"unknown seed option(s) {sorted(unknown)}; allowed {sorted(allowed)}")
    return _seed(state, int(body.get("records", 300)), int(body.get("files_per_record", 10)),
                 str(body.get("sobject", "Account")), dict(body.get("mix") or DEFAULT_MIX),
                 float(body.get("rendered_fraction", 0.0)), _moment(body.get("created_from", "2025-01-01T00:00:00Z")),
                 _moment(body.get("created_until", "2025-12-31T00:00:00Z")), body.get("owner_id"),
                 int(body.get("seed", 0)))


# --------------------------------------------------------------------------- the work


def _seed(state: OrgState, count: int, per_record: int, sobject: str, mix: dict[str, int], rendered: float,
          start: datetime, end: datetime, owner: str | None, seed: int) -> SeededFiles:
    bad = sorted(set(mix) - set(KINDS))
    if bad or not mix or any(int(w) < 0 for w in mix.values()) or sum(int(w) for w in mix.values()) <= 0:
        raise ValueError(f"mix must weigh some of {list(KINDS)} with whole numbers; got {mix}")
    if count < 0 or per_record < 0 or count * per_record > MAX_FILES:
        raise ValueError(f"records and files_per_record must be >= 0 and make at most {MAX_FILES} files")
    if not 0.0 <= rendered <= 1.0:
        raise ValueError(f"rendered_fraction must be between 0 and 1, not {rendered}")
    if end <= start:
        raise ValueError(f"created_until ({end.isoformat()}) must be after created_from ({start.isoformat()})")
    canonical = record_ops.resolve_type(state, sobject)
    owner = owner or state.user_id
    cycle = [kind for kind, weight in mix.items() for _ in range(int(weight))]
    chooser = random.Random(seed)
    variants = parse_variants(DEFAULT_VARIANTS_SPEC)
    total = count * per_record
    step = (end - start) / max(1, total)
    out = SeededFiles()
    record_stamp = sf_datetime(start)
    with state.lock:
        for r in range(count):
            fields: dict[str, Any] = {"OwnerId": owner}
            if _name_createable(canonical):
                fields["Name"] = f"Seeded {canonical} {r + 1:04d}"
            out.record_ids.append(state.insert(canonical, {**fields, **_system(record_stamp)}, notify=False)["Id"])
        for k in range(total):
            record_id = out.record_ids[k // per_record]
            kind = cycle[k % len(cycle)]
            created = start + step * k
            path = f"{'floorplan' if kind == 'pdf' else 'IMG'}_{k + 1:05d}.{kind}"
            version = _insert(state, {"PathOnClient": path, "FirstPublishLocationId": record_id, "OwnerId": owner},
                              _body(kind, k), created)
            out.content_version_ids.append(version["Id"])
            out.by_kind.setdefault(kind, []).append(version["Id"])
            if kind in IMAGE_KINDS and rendered > 0 and chooser.random() < rendered:
                out.rendered_source_ids.append(version["Id"])
                for variant in variants:
                    rendition = _insert(state, _rendition_fields(version, variant.name, variant.format, record_id),
                                        _rendition_body(variant.format, k), created + timedelta(minutes=1))
                    out.rendition_ids.append(rendition["Id"])
    return out


def _insert(state: OrgState, body: dict[str, Any], blob: bytes, created: datetime) -> dict[str, Any]:
    """One file through the upload path: the schema's checks, then ``files.create_version`` with the old date."""
    cleaned = record_ops.clean_fields(state, "ContentVersion", body, creating=True)
    return files.create_version(state, cleaned, blob, acting_user=cleaned.get("OwnerId"),
                                stamp=sf_datetime(created), notify=False)


def _rendition_fields(source: Mapping[str, Any], variant: str, fmt: str, record_id: str) -> dict[str, Any]:
    """The fields ``workers/renditions.py`` writes on a rendition (its ``_fields``)."""
    extension = "jpg" if fmt == "jpeg" else fmt
    stem = str(source["PathOnClient"]).rsplit(".", 1)[0]
    return {
        "Title": f"{source['Title']} ({variant}, 32x24)",
        "PathOnClient": f"{stem}-{variant}.{extension}",
        "FirstPublishLocationId": record_id,
        RENDITION_MARKER_FIELD: source["Id"],
        VARIANT_FIELD: variant,
        RENDITION_KEY_FIELD: rendition_key(source["Id"], variant),
        "Description": f"Rendition of {source['Id']} made by Offload.",
        "OwnerId": source["OwnerId"],
    }


def _name_createable(sobject: str) -> bool:
    described = schema.deployed().fields_of(sobject)
    if described is None:
        return True
    name = described.get("name")
    return name is not None and name.createable


def _system(stamp: str) -> dict[str, str]:
    return {"CreatedDate": stamp, "LastModifiedDate": stamp, "SystemModstamp": stamp}


def _moment(value: datetime | str | Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).replace("Z", "+00:00")
    if text.endswith("+0000"):
        text = text[:-5] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"not an ISO-8601 date or dateTime: {value!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(value: datetime | str) -> str:
    return _moment(value).isoformat()


# --------------------------------------------------------------------------- bodies


@functools.cache
def _image(fmt: str, size: tuple[int, int] = (64, 48)) -> bytes:
    """A small real image (a gradient, so encoders have something to do), made once per format."""
    from PIL import Image

    image = Image.new("RGB", size)
    image.putdata([(x * 4 % 256, y * 5 % 256, 128) for y in range(size[1]) for x in range(size[0])])
    buffer = io.BytesIO()
    image.save(buffer, {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}[fmt])
    return buffer.getvalue()


def _pdf(tag: bytes = b"") -> bytes:
    """A one-page PDF 1.4 (catalog, page tree, page, one content stream); ``tag`` goes in a comment line after the
    header."""
    content = b"0.8 0.9 1 rg 40 40 200 120 re f 0 0 0 RG 40 40 200 120 re S"
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 280 200] /Contents 4 0 R /Resources << >> >>",
               b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream"]
    return assemble(objects, comment=tag)


def _body(kind: str, n: int) -> bytes:
    """The kind's bytes, made unique with a comment that every reader ignores."""
    tag = f"offload seed {n}".encode()
    if kind in ("jpg", "jpeg"):
        jpeg = _image("jpeg")
        return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(tag) + 2) + tag + jpeg[2:]  # COM segment after SOI
    if kind == "png":
        png = _image("png")
        chunk = b"tEXt" + b"Comment\x00" + tag
        text = struct.pack(">I", len(chunk) - 4) + chunk + struct.pack(">I", zlib.crc32(chunk))
        return png[:33] + text + png[33:]  # after the 8-byte signature and the 25-byte IHDR chunk
    return _pdf(tag)


def _rendition_body(fmt: str, n: int) -> bytes:
    """A 32x24 rendition in the variant's format (jpeg, webp or png)."""
    return _image(fmt, (32, 24))


# --------------------------------------------------------------------------- over HTTP


def _seed_over_http(base_url: str, ca_bundle: str | None, timeout: float, **body: Any) -> SeededFiles:
    import requests

    session = requests.Session()
    session.trust_env = False
    session.verify = ca_bundle if ca_bundle else True
    response = session.post(f"{base_url.rstrip('/')}/_emulator/seed/files", json=body, timeout=timeout)
    if response.status_code != 201:
        raise ValueError(f"seeding {base_url} failed: {response.status_code} {response.text[:500]}")
    return SeededFiles(**response.json())
