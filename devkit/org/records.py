"""Record operations with Salesforce's validation: the one path every write takes.

REST sObject routes, composite subrequests, sObject collections and the admin API all call
these functions, so a rule (read-only fields, required fields, id checks, locked rows) holds
everywhere. Errors are raised as ``RestError`` with Salesforce's errorCodes.

Objects with a schema (``schema.py``: the standard objects Offload touches, with their standard fields,
and what ``apex/force-app`` defines) are checked against it: an unknown field, a value of the wrong type,
a field that is not createable or updateable, a text too long, a malformed reference, a duplicate of a
unique value are refused as a real org refuses them. Other objects are schema-less: any well-formed
field name is accepted on write and becomes known for its type from then on.
"""

from __future__ import annotations

import re
from typing import Any

from services import sfids

from . import schema, sferrors
from .keyprefixes import is_platform_event
from .sferrors import RestError
from .state import SYSTEM_FIELDS, OrgState
from .visibility import visible

_FIELD_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

#: Lookup fields checked on schema-less objects (objects with a schema check every reference field they have).
REFERENCE_FIELDS = (
    "OwnerId",
    "ParentId",
    "AccountId",
    "FirstPublishLocationId",
    "ContentDocumentId",
    "LinkedEntityId",
    "WhatId",
    "WhoId",
)


def resolve_type(state: OrgState, name: str) -> str:
    """Canonical sObject name, or 404 NOT_FOUND as Salesforce answers for an unknown type."""
    canonical = state.catalog.resolve(name)
    if canonical is None:
        raise sferrors.not_found()
    return canonical


def parse_id(state: OrgState, sobject: str, value: str, *, field: str = "Id") -> str:
    """The 18-character Id of ``value`` for a URL or Id field of ``sobject``.

    Not an Id at all: Salesforce tries it as an external id and answers 404 "Provided
    external ID field does not exist or is not accessible". An Id of another type: 400
    MALFORMED_ID (fixture rest-error-400-malformed-id.json).
    """
    if not sfids.is_valid_id(value):
        raise RestError(
            404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {value}"
        )
    if sfids.key_prefix(value) != state.catalog.prefix(sobject):
        raise sferrors.malformed_id(sobject, value, field)
    return sfids.to_18(value)


def fetch(state: OrgState, sobject: str, value: str) -> dict[str, Any]:
    """A live record of ``sobject`` by Id, or the documented 404 (also for a file the run-as user cannot see)."""
    rid = parse_id(state, sobject, value)
    found = state.get_record(rid)
    if found is None or not visible(state, found[0], found[1]):
        raise sferrors.not_found()
    return found[1]


def clean_fields(
    state: OrgState, sobject: str, body: Any, *, creating: bool, admin: bool = False
) -> dict[str, Any]:
    """Validate a write body against the object's schema (:mod:`devkit.org.schema`), or, for an object the
    emulator keeps schema-less, the generic rules: well-formed names, scalar values, system fields read-only."""
    if not isinstance(body, dict):
        raise sferrors.json_parser_error("Cannot deserialize instance of sObject from non-object value")
    fields = {k: v for k, v in body.items() if k != "attributes"}
    for name in fields:
        if not _FIELD_RE.match(name):
            raise sferrors.invalid_field(sobject, name)
    if admin:
        for value in fields.values():
            if isinstance(value, dict | list):
                raise schema.parser_error("string", value)
        return fields
    described = schema.deployed().object(sobject)
    if described is not None:
        fields = schema.check_write(described, fields, creating=creating, catalog=state.catalog)
        references = [f.name for f in described.fields.values() if f.type == "reference"]
    else:
        fields = _schema_less(sobject, fields, creating=creating)
        references = list(REFERENCE_FIELDS)
    lowered = {k.lower(): k for k in fields}
    for ref in references:
        name = lowered.get(ref.lower())
        if name and fields[name] not in (None, ""):
            fields[name] = _check_reference(state, ref, fields[name])
    return fields


def _schema_less(sobject: str, fields: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """An object without a schema: any well-formed field, but no system field, and scalar values only."""
    for value in fields.values():
        if isinstance(value, dict | list):
            raise schema.parser_error("string", value)
    lowered = {k.lower(): k for k in fields}
    blocked = [lowered[f.lower()] for f in SYSTEM_FIELDS if f.lower() in lowered]
    if not creating:
        blocked = [b for b in blocked if b.lower() != "id"]  # an Id in a PATCH body is ignored
        fields.pop(lowered.get("id", "\0"), None)
    if blocked:
        raise sferrors.read_only_field(blocked)
    return fields


def check_unique(state: OrgState, sobject: str, fields: dict[str, Any], *, record_id: str | None = None) -> None:
    """DUPLICATE_VALUE for a value a unique field already holds on another live record (call under state.lock).

    DUPLICATE_VALUE: "You can't supply a duplicate value for a field that must be unique" (StatusCode,
    https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_concepts_core_data_objects.htm).
    The message is worded as real orgs word it in public integration logs ("duplicate value found: <field>
    duplicates value on record with id: <15-character id>"); not confirmed by the docs.
    """
    deployed = schema.deployed().fields_of(sobject) or {}
    for name, value in fields.items():
        field = deployed.get(name.lower())
        if field is None or not field.unique or value in (None, ""):
            continue
        stored = state.known_field(sobject, field.name)
        if stored is None:
            continue  # no record holds the field yet
        wanted = str(value) if field.case_sensitive else str(value).lower()
        for other_id, held in state.field_values(sobject, stored):
            if held is None or other_id == record_id:
                continue
            if (str(held) if field.case_sensitive else str(held).lower()) == wanted:
                raise RestError(
                    400, "DUPLICATE_VALUE",
                    f"duplicate value found: {field.name} duplicates value on record with id: {other_id[:15]}",
                    [],
                )


def _check_reference(state: OrgState, field: str, value: Any) -> str:
    """A lookup: a well-formed Id (MALFORMED_ID) of a record that exists (INVALID_CROSS_REFERENCE_KEY)."""
    if not isinstance(value, str) or not sfids.is_valid_id(value):
        raise RestError(400, "MALFORMED_ID", f"{field}: id value of incorrect type: {value}", [field])
    if state.config.require_existing_references and state.get_record(value) is None:
        raise sferrors.invalid_reference(field)
    return sfids.to_18(value)


def check_required(state: OrgState, sobject: str, fields: dict[str, Any]) -> None:
    present = {k.lower() for k, v in fields.items() if v not in (None, "")}
    missing = [f for f in state.config.required_fields.get(sobject, ()) if f.lower() not in present]
    if missing:
        raise sferrors.required_missing(missing)


def check_lock(state: OrgState, record_id: str) -> None:
    if record_id in state.locked_ids:
        raise sferrors.unable_to_lock_row(record_id)


def create(
    state: OrgState, sobject: str, body: Any, *, blob: Any = None, admin: bool = False,
    acting_user: str | None = None,
) -> dict[str, Any]:
    """Insert one record (or publish one event) and return it. ``blob``: multipart file bytes;
    ``acting_user``: who inserts it (default the run-as user; the admin API acts as a file's uploader)."""
    fields = clean_fields(state, sobject, body, creating=True, admin=admin)
    if is_platform_event(sobject):
        return state.publish_event(sobject, fields)
    if sobject == "ContentVersion":
        from . import files

        return files.create_version(state, fields, blob, acting_user=acting_user)
    record_id = None
    if admin and "Id" in fields:
        record_id = fields.pop("Id")
        if not sfids.is_valid_id(record_id) or state.get_record(record_id):
            raise RestError(400, "DUPLICATE_VALUE", f"invalid or duplicate Id: {record_id}", ["Id"])
    check_required(state, sobject, fields)
    if sobject == "ContentDocumentLink":
        fields.setdefault("ShareType", "V")
        fields.setdefault("Visibility", "AllUsers")
    if sobject not in ("User", "ContentDocumentLink"):
        fields.setdefault("OwnerId", state.user_id)
    with state.lock:
        check_unique(state, sobject, fields)
        return state.insert(sobject, fields, record_id=record_id)


def update(
    state: OrgState, sobject: str, record_id: str, body: Any, *, admin: bool = False
) -> dict[str, Any]:
    """PATCH semantics: only the given fields change."""
    fetch(state, sobject, record_id)
    rid = sfids.to_18(record_id)
    check_lock(state, rid)
    fields = clean_fields(state, sobject, body, creating=False, admin=admin)
    with state.lock:
        check_unique(state, sobject, fields, record_id=rid)
        return state.update(rid, fields)


def delete(state: OrgState, sobject: str, record_id: str) -> None:
    """Delete a record; deleting a ContentDocument takes its versions and links with it."""
    fetch(state, sobject, record_id)
    rid = sfids.to_18(record_id)
    check_lock(state, rid)
    with state.lock:
        if sobject == "ContentDocument":
            for child in ("ContentVersion", "ContentDocumentLink"):
                for rec in state.find(child, ContentDocumentId=rid):
                    state.delete(rec["Id"])
        state.delete(rid)


def shape(
    state: OrgState, sobject: str, record: dict[str, Any], version: str, fields: list[str] | None = None
) -> dict[str, Any]:
    """A record as REST returns it: ``attributes`` first, then fields (all known, or ``fields``)."""
    url = f"/services/data/v{version}/sobjects/{sobject}/{record['Id']}"
    out: dict[str, Any] = {"attributes": {"type": sobject, "url": url}}
    by_lower = {k.lower(): k for k in record}
    if fields is None:
        names = [n for n in state.field_names(sobject) or list(record)
                 if schema.resolve_field(sobject, n, state.known_field) is not False]
    else:
        names = []
        for requested in fields:
            readable = schema.resolve_field(sobject, requested, state.known_field)
            if readable is False:
                raise sferrors.invalid_field(sobject, requested)
            canonical = (schema.canonical_name(sobject, requested) or state.known_field(sobject, requested)
                         or by_lower.get(requested.lower()))
            if canonical is None:
                if state.config.strict_read_fields and readable is None:
                    raise sferrors.invalid_field(sobject, requested)
                canonical = requested
            names.append(canonical)
        if "Id" not in names:
            names.append("Id")
    names = ["Id", *[n for n in names if n != "Id"]]
    for name in names:
        value = record.get(by_lower.get(name.lower(), name))
        if sobject == "ContentVersion" and name == "VersionData":
            value = f"{url}/VersionData"
        out[name] = value
    return out
