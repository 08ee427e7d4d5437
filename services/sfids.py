"""Salesforce record Ids: 15-character (case-sensitive) and 18-character (checksummed) forms.

An 18-character Id is the 15-character Id plus a 3-character suffix that
encodes, for each 5-character chunk, which letters are upper case. This makes
the 18-character form safe for case-insensitive systems (Excel, our Redis
keys). Algorithm: Salesforce Help "What is a Salesforce ID?"
(https://help.salesforce.com/s/articleView?id=000385008); we checked it against ids from real orgs.
"""

from __future__ import annotations

import functools
import re

_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_RE = re.compile(r"^[a-zA-Z0-9]{15}(?:[A-Z0-5]{3})?$")


def checksum(id15: str) -> str:
    """The 3-character suffix that turns a 15-character Id into its 18-character form."""
    suffix = ""
    for start in (0, 5, 10):
        chunk = id15[start : start + 5]
        bits = sum(1 << i for i, ch in enumerate(chunk) if "A" <= ch <= "Z")
        suffix += _SUFFIX_ALPHABET[bits]
    return suffix


def normalize(value: object) -> str | None:
    """The 18-character form of a valid 15- or 18-character Id, or None if ``value`` is not one.

    One regex match and one checksum: what :func:`is_valid_id` followed by :func:`to_18` decide, without
    checksumming twice. The receiver asks about the same id twice per request (schema, then loop guard):
    results are cached for the last few hundred distinct ids, so the second ask costs a dict lookup.
    """
    return _normalize(value) if isinstance(value, str) else None


@functools.lru_cache(maxsize=256)
def _normalize(value: str) -> str | None:
    if not _ID_RE.match(value):
        return None
    if len(value) == 15:
        return value + checksum(value)
    return value if checksum(value[:15]) == value[15:] else None


def is_valid_id(value: str) -> bool:
    """True for a well-formed 15-character Id or an 18-character Id whose checksum is right."""
    if not isinstance(value, str) or not _ID_RE.match(value):
        return False
    return len(value) == 15 or checksum(value[:15]) == value[15:]


def to_18(value: str) -> str:
    """Return the 18-character form of a valid 15- or 18-character Id.

    Raises:
        ValueError: ``value`` is not a valid Id.
    """
    normalized = normalize(value)
    if normalized is None:
        raise ValueError(f"{value!r} is not a valid Salesforce Id (15 or 18 characters, correct checksum)")
    return normalized


def key_prefix(value: str) -> str:
    """The first three characters, which name the object type (``068`` ContentVersion, ``001`` Account)."""
    return value[:3]


STANDARD_PREFIXES: dict[str, str] = {
    "Account": "001",
    "Contact": "003",
    "Opportunity": "006",
    "Lead": "00Q",
    "Case": "500",
    "Task": "00T",
    "Event": "00U",
    "User": "005",
    "Organization": "00D",
    "Attachment": "00P",
    "Document": "015",
    "Note": "002",
    "ContentVersion": "068",
    "ContentDocument": "069",
    "ContentDocumentLink": "06A",
}
"""Key prefixes of standard objects, the same in every org (custom objects' prefixes differ per org).

Widely published (e.g. https://help.salesforce.com/s/articleView?id=000385203&type=1 lists them);
ContentVersion 068 and ContentDocument 069 are also in the object reference's examples.
"""

_SOBJECT_BY_PREFIX = {prefix: name for name, prefix in STANDARD_PREFIXES.items()}


def standard_sobject(value: str) -> str | None:
    """The standard object an Id belongs to, or None (a custom object, or one not in the table)."""
    return _SOBJECT_BY_PREFIX.get(key_prefix(value))
