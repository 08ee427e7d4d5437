"""Which files the run-as (integration) user can see: Salesforce's special access rules for Files.

"By default, users (including users with the View All Data permission) can only query files they have
access to": files they own, files shared with them, files in libraries they belong to; a file linked to a
record is seen by whoever sees the record; "Query All Files" lifts the rule
(https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_contentversion.htm).
"You can't publish into another user's personal library. Personal libraries are not visible via the API"
(https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_contentworkspacedoc.htm).

The emulator has no sharing model, so every record is visible to the run-as user; a file is visible when
the run-as user owns it, or it is linked to the run-as user or to any record. A file that lives only in
another user's personal library (linked to that user alone) is not: reads answer 404 NOT_FOUND and
queries leave it out, as a real org does. ``OrgConfig.query_all_files`` grants "Query All Files".
"""

from __future__ import annotations

import functools
from typing import Any

from services import sfids

from . import schema, sferrors
from .state import OrgState

FILE_OBJECTS = ("ContentVersion", "ContentDocument")


def _document_of(sobject: str, record: dict[str, Any]) -> str | None:
    if sobject == "ContentDocument":
        return str(record["Id"])
    if sobject == "ContentVersion":
        return record.get("ContentDocumentId")
    return None


def document_visible(state: OrgState, document_id: str) -> bool:
    """Whether the run-as user can see this ContentDocument (and its versions)."""
    if state.config.query_all_files:
        return True
    found = state.get_record(document_id)
    if found is not None and found[1].get("OwnerId") == state.user_id:
        return True
    user_prefix = state.catalog.prefix("User")
    for link in state.find("ContentDocumentLink", ContentDocumentId=document_id):
        entity = str(link.get("LinkedEntityId") or "")
        if entity == state.user_id or not entity.startswith(user_prefix):
            return True
    return False


def visible(state: OrgState, sobject: str, record: dict[str, Any]) -> bool:
    """Whether a record of ``sobject`` is visible to the run-as user (non-file records always are)."""
    document_id = _document_of(sobject, record)
    return document_id is None or document_visible(state, document_id)


def check_publish_location(state: OrgState, first_location: str | None, acting_user: str) -> None:
    """Refuse publishing into another user's personal library (FirstPublishLocationId = their User Id).

    The errorCode is not documented for this case; INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY is what
    Salesforce answers for a lookup to a record the caller may not use (StatusCode list,
    https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_concepts_core_data_objects.htm).
    """
    if not first_location or not first_location.startswith(state.catalog.prefix("User")):
        return
    if sfids.to_18(first_location) != sfids.to_18(acting_user):
        raise sferrors.RestError(
            400, "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
            f"insufficient access rights on cross-reference id: {first_location}. You can't publish into "
            "another user's personal library.", ["FirstPublishLocationId"])


def visible_documents(state: OrgState) -> set[str] | None:
    """Every ContentDocument Id the run-as user can see, in one pass over the documents and links (None: all).

    The same rule as :func:`document_visible`, computed once for a whole query instead of once per row, so a
    query over thousands of files reads the links once.
    """
    if state.config.query_all_files:
        return None
    user_prefix = state.catalog.prefix("User")
    seen = {_id18(d["Id"]) for d in state.all_records("ContentDocument") if d.get("OwnerId") == state.user_id}
    for link in state.all_records("ContentDocumentLink"):
        entity = str(link.get("LinkedEntityId") or "")
        if entity == state.user_id or not entity.startswith(user_prefix):
            document = _id18(link.get("ContentDocumentId"))
            if document is not None:
                seen.add(document)
    seen.discard(None)  # type: ignore[arg-type]
    return seen  # type: ignore[return-value]


@functools.lru_cache(maxsize=1 << 17)
def _id18(value: object) -> str | None:
    """``sfids.normalize`` remembered for the org's ids: a query over thousands of files checks each id once, not
    once per query (``sfids``' own cache is sized for the receiver, a few hundred ids)."""
    return sfids.normalize(value)


class VisibleRows:
    """A SOQL record source that leaves out files the run-as user cannot see (one instance per query: the
    visible documents are computed once, when the query first reads a file)."""

    def __init__(self, source: Any, state: OrgState) -> None:
        self._source = source
        self._state = state
        self._documents: set[str] | None = None
        self._computed = False

    def _visible(self, sobject: str, record: dict[str, Any]) -> bool:
        document_id = _document_of(sobject, record)
        if document_id is None:
            return True
        if not self._computed:
            self._documents, self._computed = visible_documents(self._state), True
        if self._documents is None:
            return True
        return _id18(document_id) in self._documents

    def all_records(self, sobject: str) -> list[dict]:
        rows = self._source.all_records(sobject)
        if sobject not in FILE_OBJECTS:
            return list(rows)
        return [r for r in rows if self._visible(sobject, r)]

    def get_record(self, record_id: str) -> tuple[str, dict] | None:
        found = self._source.get_record(record_id)
        if found is not None and not self._visible(found[0], found[1]):
            return None
        return found

    def resolve_sobject(self, name: str) -> str | None:
        return self._state.catalog.resolve(name)

    def resolve_field(self, sobject: str, name: str) -> tuple[str, ...] | bool | None:
        """The SOQL engine's field check: the org's schema (:func:`devkit.org.schema.resolve_field`)."""
        return schema.resolve_field(sobject, name, self._state.known_field)
