"""The org's schema: standard fields declared in Python, custom objects and fields read from ``apex/force-app``.

A real org knows exactly the fields of its objects, and refuses the rest. The emulator merges two sources:

* standard objects and their standard fields (:mod:`devkit.org.standard_objects`, each object citing its
  Object Reference page): names, describe types, lengths, createable/updateable;
* the custom objects, platform events and custom fields Offload deploys, from the same ``*-meta.xml`` files an
  admin deploys (https://developer.salesforce.com/docs/atlas.en-us.api_meta.meta/api_meta/customfield.htm),
  so a field missing there is missing here.

:func:`check_write` validates an insert or update body against it, with Salesforce's errors:

* ``INVALID_FIELD`` "No such column 'X' on sobject of type Y" for a field the object does not have;
* ``JSON_PARSER_ERROR`` "Cannot deserialize instance of <type> from <token> value ..." for a value of the wrong
  JSON type (the wording of real answers quoted in regican/Salesforce#2 and
  https://salesforce.stackexchange.com/questions/54882; the emulator checks after parsing, so the trailing
  ``at [line:1, column:N]`` Salesforce adds is left out);
* ``MALFORMED_ID`` "<Field label>: id value of incorrect type: <value>" for a reference that is not an Id of the
  type the field points to (fixture rest-error-400-malformed-id.json; the same wording for a lookup in
  https://wiki.myrapidi.com/wiki/e2120_malformed_id);
* ``INVALID_FIELD_FOR_INSERT_UPDATE`` for a field that is not createable (insert) or not updateable (update);
* ``STRING_TOO_LONG`` "<label>: data value too large: <value> (max length=N)";
* ``NUMBER_OUTSIDE_VALID_RANGE`` for a custom Number with more integer digits than precision - scale;
* ``INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST`` "<label>: bad value for restricted picklist field: <value>".

Objects it does not know (Contact, a test's ``Property__c``) stay schema-less. On standard objects whose custom
fields the subscriber org defines (Account, User) a ``__c`` field the metadata does not declare is accepted: the
emulator cannot know an org's own custom fields.

The files are read from the checkout's ``apex/`` or, in an install without it, from the packaged copy
(:mod:`devkit.org.apexsource`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any

from lxml import etree

from services import sfids

from . import sferrors, standard_objects
from .apexsource import source_dir
from .sferrors import RestError
from .standard_objects import Field, ObjectSchema

_NS = {"m": "http://soap.sforce.com/2006/04/metadata"}
TEXT_TYPES = frozenset({"string", "textarea", "url", "email", "phone", "picklist", "multipicklist", "id",
                        "encryptedstring"})
"""Describe types whose values are text (and whose ``length`` is enforced)."""
NUMBER_TYPES = frozenset({"int", "long", "double", "currency", "percent"})

#: Metadata API field types -> describe types (https://developer.salesforce.com/docs/atlas.en-us.api_meta.meta/api_meta/customfield.htm#FieldType).
_METADATA_TYPES = {
    "Text": "string", "TextArea": "textarea", "LongTextArea": "textarea", "Html": "textarea", "Url": "url",
    "Email": "email", "Phone": "phone", "EncryptedText": "encryptedstring", "Checkbox": "boolean",
    "Number": "double", "Currency": "currency", "Percent": "percent", "Date": "date", "DateTime": "datetime",
    "Lookup": "reference", "MasterDetail": "reference", "Picklist": "picklist", "MultiselectPicklist":
    "multipicklist", "AutoNumber": "string", "Formula": "string",
}
_READ_ONLY_METADATA_TYPES = frozenset({"AutoNumber", "Formula", "Summary"})

def _token(value: Any) -> str:
    """The JSON token, as Jackson names it in Salesforce's JSON_PARSER_ERROR messages."""
    if isinstance(value, bool):
        return "VALUE_TRUE" if value else "VALUE_FALSE"
    if isinstance(value, int):
        return "VALUE_NUMBER_INT"
    if isinstance(value, float):
        return "VALUE_NUMBER_FLOAT"
    if isinstance(value, list):
        return "START_ARRAY"
    if isinstance(value, dict):
        return "START_OBJECT"
    return "VALUE_STRING"


_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$")


@dataclass(frozen=True)
class Schema:
    """Every object the emulator knows the fields of, keyed by lower-cased name."""

    objects: dict[str, ObjectSchema]

    def object(self, sobject: str) -> ObjectSchema | None:
        """The object's schema, or None for an object the emulator keeps schema-less."""
        return self.objects.get(sobject.lower())

    def fields_of(self, sobject: str) -> dict[str, Field] | None:
        """The object's custom fields (from the metadata) by lower-cased name, or None if it declares none."""
        found = self.objects.get(sobject.lower())
        if found is None:
            return None
        custom = {k: f for k, f in found.fields.items() if f.custom}
        return custom if custom or found.name.lower().endswith(("__c", "__e")) else None


def _text(node: etree._Element, tag: str) -> str | None:
    found = node.find(f"m:{tag}", _NS)
    return found.text if found is not None else None


def _custom_field(path: Path, parser: etree.XMLParser) -> Field:
    root = etree.parse(str(path), parser).getroot()
    name = _text(root, "fullName") or path.name.removesuffix(".field-meta.xml")
    metadata_type = _text(root, "type") or ""
    length, precision, scale = (_text(root, t) for t in ("length", "precision", "scale"))
    writable = metadata_type not in _READ_ONLY_METADATA_TYPES
    return Field(
        name=name,
        type=_METADATA_TYPES.get(metadata_type, "string"),
        length=int(length) if length else None,
        createable=writable,
        updateable=writable,
        label=_text(root, "label") or name,
        precision=int(precision) if precision else None,
        scale=int(scale) if scale else None,
        unique=_text(root, "unique") == "true",
        external_id=_text(root, "externalId") == "true",
        case_sensitive=_text(root, "caseSensitive") == "true",
        custom=True,
    )


def _custom_object(folder: Path, parser: etree.XMLParser) -> ObjectSchema | None:
    """A custom object or platform event defined in ``<Name>.object-meta.xml``, with its standard fields."""
    name = folder.name
    meta = folder / f"{name}.object-meta.xml"
    if not name.lower().endswith(("__c", "__e")) or not meta.is_file():
        return None
    root = etree.parse(str(meta), parser).getroot()
    if name.lower().endswith("__e"):
        fields = standard_objects.platform_event_fields()
        return ObjectSchema(name=name, doc_url="", fields={f.name.lower(): f for f in fields}, updateable=False,
                            label=_text(root, "label") or name)
    setting = _text(root, "customSettingsType") is not None
    fields = standard_objects.custom_object_fields(custom_setting=setting)
    name_field = root.find("m:nameField", _NS)
    auto_number = name_field is not None and _text(name_field, "type") == "AutoNumber"
    label = (_text(name_field, "label") if name_field is not None else None) or "Name"
    # A custom setting's Name is Text(38); a custom object's Text(80), read-only when it is an Auto Number.
    fields.append(Field("Name", "string", 38 if setting else 80, createable=not auto_number,
                        updateable=not auto_number, label=label))
    return ObjectSchema(name=name, doc_url="", fields={f.name.lower(): f for f in fields},
                        label=_text(root, "label") or name)


def read_metadata(objects_dir: Path) -> Schema:
    """Merge the standard objects with ``objects_dir`` (strictly parsed: a broken file fails here, as a deploy)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    objects = dict(standard_objects.STANDARD)
    for folder in sorted(p for p in objects_dir.iterdir() if p.is_dir()):
        custom = {f.name.lower(): f for f in (_custom_field(p, parser)
                                               for p in sorted(folder.glob("fields/*.field-meta.xml")))}
        base = objects.get(folder.name.lower()) or _custom_object(folder, parser)
        if base is None:
            raise ValueError(
                f"apex/force-app adds fields to the standard object {folder.name}, whose standard fields the "
                "emulator does not know: declare it in devkit/org/standard_objects.py (STANDARD)")
        objects[folder.name.lower()] = replace(base, fields={**base.fields, **custom})
    return Schema(objects)


@cache
def deployed() -> Schema:
    """The schema of the org this emulator plays: standard objects plus the metadata it reads."""
    return read_metadata(source_dir() / "objects")


# --------------------------------------------------------------------------- write checks


def parser_error(kind: str, value: Any) -> RestError:
    """Salesforce's JSON_PARSER_ERROR for a value its deserializer cannot turn into the field's type."""
    token = _token(value)
    if token in ("START_ARRAY", "START_OBJECT"):
        return sferrors.json_parser_error(f"Cannot deserialize instance of {kind} from {token} value "
                                          f"{'[' if token == 'START_ARRAY' else '{'}")
    shown = str(value).lower() if isinstance(value, bool) else value
    return sferrors.json_parser_error(f"Cannot deserialize instance of {kind} from {token} value {shown} "
                                      "or request may be missing a required field")


def _check_value(sobject: ObjectSchema, field: Field, value: Any, catalog: Any) -> Any:
    """The value as stored, or the error Salesforce gives for it on this field."""
    if value is None:
        return None
    if isinstance(value, dict | list):
        raise parser_error(field.type, value)
    kind = field.type
    if kind == "boolean":
        # Not confirmed by Salesforce's documentation: the strings "true"/"false" are taken, as Jackson's
        # lenient boolean coercion does; a number is refused.
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise parser_error(kind, value)
    if kind in NUMBER_TYPES:
        if isinstance(value, bool):
            raise parser_error(kind, value)
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise parser_error(kind, value) from None
        if kind in ("int", "long") and number != number.to_integral_value():
            raise parser_error(kind, value)
        _check_range(field, number, value)
        return value
    if kind in ("date", "datetime"):
        pattern = _DATE_RE if kind == "date" else _DATETIME_RE
        if not isinstance(value, str) or not pattern.match(value):
            raise parser_error(kind, value)
        return value
    if kind == "reference":
        if value == "":
            return None
        text = value if isinstance(value, str) else str(value)
        if not sfids.is_valid_id(text) or not _points_to(field, text, catalog):
            raise RestError(400, "MALFORMED_ID", f"{field.shown}: id value of incorrect type: {text}", [field.name])
        return sfids.to_18(text)
    if kind == "base64":
        if not isinstance(value, str):
            raise parser_error(kind, value)
        return value
    # Text types: Salesforce takes a JSON number or boolean for a text field as its text.
    text = value if isinstance(value, str) else (str(value).lower() if isinstance(value, bool) else str(value))
    if field.restricted_values and text not in field.restricted_values:
        raise RestError(400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                        f"{field.shown}: bad value for restricted picklist field: {text}", [field.name])
    if field.length and len(text) > field.length:
        raise sferrors.string_too_long(field.shown, text, field.length, field.name)
    return value


def _points_to(field: Field, value: str, catalog: Any) -> bool:
    """Whether an Id's key prefix is one of the types the field references (unchecked when unknown)."""
    if not field.reference_to or catalog is None:
        return True
    prefixes = set()
    for target in field.reference_to:
        try:
            prefixes.add(catalog.prefix(target))
        except KeyError:
            return True  # a target the org has no prefix for: nothing to compare with
    return sfids.key_prefix(value) in prefixes


def _check_range(field: Field, number: Decimal, shown: Any) -> None:
    """A custom Number(precision, scale) holds at most precision - scale integer digits."""
    if field.precision is None:
        return
    limit = Decimal(10) ** (field.precision - (field.scale or 0))
    if abs(number) >= limit:
        raise RestError(400, "NUMBER_OUTSIDE_VALID_RANGE",
                        f"{field.shown}: value outside of valid range on numeric field: {shown}", [field.name])


def check_write(sobject: ObjectSchema, body: dict[str, Any], *, creating: bool,
                catalog: Any = None) -> dict[str, Any]:
    """The body's fields under their canonical names, checked as Salesforce checks an insert or update.

    An ``Id`` in an update body is dropped (the URL names the record), as Salesforce ignores it.
    """
    # errorCode and wording for a type without create()/update() are not confirmed by Salesforce's documentation.
    if creating and not sobject.createable:
        raise RestError(400, "INVALID_TYPE_FOR_OPERATION",
                        f"entity type cannot be inserted: {sobject.label or sobject.name}")
    if not creating and not sobject.updateable:
        raise RestError(400, "INVALID_TYPE_FOR_OPERATION",
                        f"entity type cannot be updated: {sobject.label or sobject.name}")
    known: list[tuple[Field | None, str, Any]] = []
    for name, value in body.items():
        field = sobject.field(name)
        if field is None and not (sobject.open_custom_fields and name.lower().endswith("__c")):
            raise sferrors.invalid_field(sobject.name, name)
        known.append((field, name, value))
    blocked = [
        f.name for f, _, _ in known
        if f is not None and not (f.createable if creating else f.updateable)
        and not (not creating and f.name == "Id")
    ]
    if blocked:
        raise sferrors.read_only_field(blocked)
    out: dict[str, Any] = {}
    for field, name, value in known:
        if field is None:
            if isinstance(value, dict | list):
                raise parser_error("string", value)
            out[name] = value  # an org's own custom field on a standard object: not known, not checked
        elif field.name == "Id" and not creating:
            continue
        else:
            out[field.name] = _check_value(sobject, field, value, catalog)
    return out


# --------------------------------------------------------------------------- read checks


def resolve_field(sobject: str, name: str, known: Any = None) -> tuple[str, ...] | bool | None:
    """What SOQL and ``?fields=`` may read: None for a schema-less object (anything), False for a field the
    object does not have, else the types a reference field points to (``()`` for any other field).

    ``known(sobject, name)``: the store's record of fields written so far, consulted for the org's own custom
    fields on a standard object (Account's): the emulator knows those only once a record holds one.
    """
    described = deployed().object(sobject)
    if described is None:
        return None
    field = described.field(name)
    if field is not None:
        return field.reference_to if field.type == "reference" else ()
    if described.open_custom_fields and name.lower().endswith("__c") and known is not None:
        return () if known(sobject, name) else False
    return False


def canonical_name(sobject: str, name: str) -> str | None:
    """The field's name as the schema spells it (``title`` -> ``Title``), or None when it has no schema entry."""
    described = deployed().object(sobject)
    field = described.field(name) if described else None
    return field.name if field else None
