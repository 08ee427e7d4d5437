"""The custom fields Offload deploys, read from ``apex/force-app``: what the emulator enforces on write.

A real org knows exactly the fields its metadata defines, so the emulator takes them from the same
``*.field-meta.xml`` files an admin deploys (https://developer.salesforce.com/docs/atlas.en-us.api_meta.meta/api_meta/customfield.htm):
on an object defined there, a custom field that is missing is ``INVALID_FIELD``, a text value over its
``length`` is ``STRING_TOO_LONG``, and a second record with the value of a ``unique`` field is
``DUPLICATE_VALUE`` (case-insensitive unless ``caseSensitive``). Objects the metadata does not mention
(an ``Account``, a test's ``Property__c``) stay schema-less.

The files are read from the checkout's ``apex/`` or, in an install without it, from the packaged copy
(:mod:`devkit.org.apexsource`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from lxml import etree

from devkit.org.apexsource import source_dir

_NS = {"m": "http://soap.sforce.com/2006/04/metadata"}
TEXT_TYPES = frozenset({"Text", "TextArea", "LongTextArea", "Html", "Url", "Email", "Phone", "EncryptedText"})


@dataclass(frozen=True)
class CustomField:
    """One deployed custom field, as much of it as the emulator enforces."""

    name: str
    type: str
    length: int | None = None
    unique: bool = False
    external_id: bool = False
    case_sensitive: bool = False


@dataclass(frozen=True)
class Schema:
    """The deployed custom fields, by object (both keyed case-insensitively, as Salesforce names are)."""

    objects: dict[str, dict[str, CustomField]]

    def fields_of(self, sobject: str) -> dict[str, CustomField] | None:
        """The object's custom fields by lower-cased name, or None for an object the metadata does not define."""
        return self.objects.get(sobject.lower())


def _text(node: etree._Element, tag: str) -> str | None:
    found = node.find(f"m:{tag}", _NS)
    return found.text if found is not None else None


def read_metadata(objects_dir: Path) -> Schema:
    """Parse every ``<object>/fields/*.field-meta.xml`` (strictly: a broken file fails here, as a deploy would)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    objects: dict[str, dict[str, CustomField]] = {}
    for path in sorted(objects_dir.glob("*/fields/*.field-meta.xml")):
        root = etree.parse(str(path), parser).getroot()
        name = _text(root, "fullName") or path.name.removesuffix(".field-meta.xml")
        length = _text(root, "length")
        field = CustomField(
            name=name,
            type=_text(root, "type") or "",
            length=int(length) if length else None,
            unique=_text(root, "unique") == "true",
            external_id=_text(root, "externalId") == "true",
            case_sensitive=_text(root, "caseSensitive") == "true",
        )
        objects.setdefault(path.parent.parent.name.lower(), {})[name.lower()] = field
    return Schema(objects)


@cache
def deployed() -> Schema:
    """The custom fields of the metadata this emulator reads (checkout or packaged copy)."""
    return read_metadata(source_dir() / "objects")
