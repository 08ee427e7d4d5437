"""SOQL engine of the local org emulator: runs the subset Offload sends against an in-memory store.

Public interface (the emulator's REST layer calls these)::

    execute(query, source, *, api_version="62.0") -> list[dict]   # the "records" array
    count(query, source) -> int | None                             # totalSize of SELECT COUNT()
    query_response(query, source, *, api_version="62.0") -> dict   # {"totalSize", "done", "records"}
    MalformedQuery (errorCode MALFORMED_QUERY), InvalidType(MalformedQuery) (errorCode INVALID_TYPE)

COUNT(): Salesforce answers ``SELECT COUNT() FROM X ...`` with ``totalSize`` = the number of
matching rows and an empty ``records`` array (SOQL reference, "COUNT() and COUNT(fieldName)").
So ``execute`` returns ``[]`` for such a query, ``count`` returns the number, and
``query_response`` builds the whole body either way; ``count`` returns None for a normal query.

Semantics, each from the SOQL and SOSL Reference unless noted:

* "Comparison Operators": string comparisons are case-insensitive (except unique
  case-sensitive fields: we treat Ids that way, comparing 15- and 18-character forms as
  equal via :mod:`services.sfids`); LIKE is case-insensitive, ``%`` is zero or more
  characters, ``_`` exactly one.
* "WHERE": a filter on a parent field is evaluated with the parent as null when the lookup
  is empty (``Contact.LastName = null`` matches records without a contact, API 13.0+).
* ``!=``/``NOT IN`` are true for a null field (SOQL does not use SQL's three-valued logic);
  ``<``/``>``/LIKE are false for null.
* "ORDER BY": default ASC, nulls first by default (the reference states this without
  distinguishing DESC, so DESC keeps nulls first too unless NULLS LAST is given); sorting is
  case-insensitive.
* Date and dateTime literals (``2024-01-01``, ``2024-01-01T00:00:00Z``) are compared with the
  stored ISO-8601 strings as instants, whatever offset format the store uses.

Emulator limits, stated so nobody mistakes them for Salesforce behaviour:

* Fields are checked (INVALID_FIELD, :class:`InvalidField`) when the source knows the object's schema:
  an optional ``resolve_field(sobject, name)`` method returns None (schema-less object: anything goes),
  False (no such field) or the tuple of types a reference points to (empty for a non-reference). A path
  through a polymorphic relationship (``Owner.Name``, ``LinkedEntity.Name``) is checked up to the
  relationship. Without the hook an unknown field reads as null. Id-typed fields are recognised by name
  (``Id``, ``...Id``, ``__c`` lookups).
* An unknown object becomes :class:`InvalidType` when the source says so: an optional
  ``resolve_sobject(name) -> canonical | None`` method, else ``source.catalog.resolve`` (the
  emulator's ``SObjectCatalog``), else ``all_records`` raising :class:`KeyError`. A source
  with none of these answers an unknown type with no rows.
* Not supported (MALFORMED_QUERY): GROUP BY/HAVING, aggregates other than a lone COUNT(),
  TYPEOF, child sub-queries in SELECT, functions (date, FORMAT, toLabel, convertCurrency),
  date literals (TODAY, LAST_N_DAYS:n), INCLUDES/EXCLUDES, WITH, FOR UPDATE/VIEW/REFERENCE,
  USING SCOPE, object aliases, binds, nested semi-joins, ORDER BY/LIMIT in a sub-select.
* OFFSET above 2,000 (NUMBER_OUTSIDE_VALID_RANGE in a real org) is not enforced.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime
from typing import Any, Protocol

from devkit.org.soql_parser import (
    BoolOp,
    Compare,
    FieldPath,
    InList,
    InvalidField,
    InvalidType,
    Like,
    Literal,
    MalformedQuery,
    Not,
    OrderItem,
    Query,
    SemiJoin,
    parse,
)
from services.sfids import is_valid_id, to_18

__all__ = ["InvalidField", "InvalidType", "MalformedQuery", "RecordSource", "count", "execute", "query_response"]


class RecordSource(Protocol):
    """What the engine needs from the emulator's store."""

    def all_records(self, sobject: str) -> list[dict]:
        """Every record of that type (type name case-insensitive); raise KeyError for an unknown type."""
        ...

    def get_record(self, record_id: str) -> tuple[str, dict] | None:
        """(canonical sObject type, record) for a 15- or 18-character Id, or None."""
        ...


_MISSING = object()


def execute(query: str, source: RecordSource, *, api_version: str = "62.0") -> list[dict]:
    """Run a SOQL query; return the records as the REST API's query endpoint returns them.

    Each record is ``{"attributes": {"type", "url"}, <selected fields in SELECT order>}``;
    parent fields nest under the relationship name (``"Owner": {"attributes": ..., "Name": ...}``
    or ``"Owner": None``). A ``SELECT COUNT()`` query returns ``[]`` (see :func:`count`).
    """
    return query_response(query, source, api_version=api_version)["records"]


def count(query: str, source: RecordSource) -> int | None:
    """``totalSize`` for ``SELECT COUNT() FROM ...``; None when the query selects fields."""
    parsed = parse(query)
    if not parsed.count_only:
        return None
    return len(_Engine(parsed, source, "62.0").matching())


def query_response(query: str, source: RecordSource, *, api_version: str = "62.0") -> dict:
    """The whole REST query body for a result that fits in one batch (no ``nextRecordsUrl``)."""
    parsed = parse(query)
    engine = _Engine(parsed, source, api_version)
    rows = engine.matching()
    if parsed.count_only:
        return {"totalSize": len(rows), "done": True, "records": []}
    records = [engine.render(r) for r in rows]
    return {"totalSize": len(records), "done": True, "records": records}


# --------------------------------------------------------------------------- field access


def _get(record: dict, name: str) -> tuple[str, Any]:
    """(canonical key, value) for a case-insensitive field name; value is _MISSING if absent."""
    if name in record:
        return name, record[name]
    lowered = name.lower()
    for key, value in record.items():
        if key.lower() == lowered and key != "attributes":
            return key, value
    return name, _MISSING


def _lookup_field(relationship: str) -> str:
    """``Owner`` -> ``OwnerId``; ``Offload_Rendition_Of__r`` -> ``Offload_Rendition_Of__c``."""
    if relationship.lower().endswith("__r"):
        return relationship[:-3] + "__c"
    return relationship + "Id"


def _relationship_name(lookup_key: str, as_written: str) -> str:
    """Canonical relationship name from the record's lookup key.

    ``ContentDocumentId`` -> ``ContentDocument``, ``Offload_Rendition_Of__c`` -> ``Offload_Rendition_Of__r``.
    """
    if lookup_key.lower().endswith("__c"):
        return lookup_key[:-3] + "__r"
    if lookup_key.lower().endswith("id") and lookup_key.lower() == as_written.lower() + "id":
        return lookup_key[:-2]
    return as_written


def _is_id_key(key: str, value: Any) -> bool:
    """Whether equality on this field uses Id semantics (15 == 18 characters, case-sensitive)."""
    if key == "Id" or key.endswith("Id"):
        return True
    return key.lower().endswith("__c") and isinstance(value, str) and len(value) == 18 and is_valid_id(value)


# --------------------------------------------------------------------------- values


def _as_instant(value: Any) -> datetime | date | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            if len(value) == 10:
                return date.fromisoformat(value)
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _coerce(record_value: Any, literal: Literal) -> tuple[Any, Any] | None:
    """Bring a stored value and a literal to comparable Python values, or None if they can't be."""
    kind, lit = literal.kind, literal.value
    if kind == "bool":
        if isinstance(record_value, bool):
            return record_value, lit
        if isinstance(record_value, str) and record_value.lower() in ("true", "false"):
            return record_value.lower() == "true", lit
        return None
    if kind == "number":
        if isinstance(record_value, bool):
            return None
        if isinstance(record_value, int | float):
            return record_value, lit
        try:
            return float(record_value), lit
        except (TypeError, ValueError):
            return None
    if kind in ("date", "datetime"):
        left, right = _as_instant(record_value), _as_instant(lit)
        if left is None or right is None:
            return None
        if isinstance(right, datetime) != isinstance(left, datetime):  # date vs dateTime: compare days
            left = left.date() if isinstance(left, datetime) else left
            right = right.date() if isinstance(right, datetime) else right
        return left, right
    if isinstance(record_value, str):
        return record_value.casefold(), lit.casefold()
    if isinstance(record_value, int | float) and not isinstance(record_value, bool):
        try:
            return record_value, float(lit)
        except ValueError:
            return None
    return None


def _equals(key: str, record_value: Any, literal: Literal) -> bool:
    if record_value is None or literal.kind == "null":
        return record_value is None and literal.kind == "null"
    if literal.kind == "string" and isinstance(record_value, str) and _is_id_key(key, record_value):
        if is_valid_id(record_value) and is_valid_id(literal.value):
            return to_18(record_value) == to_18(literal.value)
    pair = _coerce(record_value, literal)
    return pair is not None and pair[0] == pair[1]


def _order(record_value: Any, literal: Literal, op: str) -> bool:
    if record_value is None or literal.kind == "null":
        return False
    pair = _coerce(record_value, literal)
    if pair is None:
        return False
    left, right = pair
    try:
        return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
    except TypeError:
        return False


def _id_key(value: Any) -> Any:
    """Normalise a value collected by a semi-join sub-select so 15/18-char forms meet."""
    if isinstance(value, str) and is_valid_id(value):
        return to_18(value)
    return value


def _sort_key(value: Any) -> tuple[int, Any]:
    """Total order across the types a store may hold; strings case-insensitively."""
    if isinstance(value, bool):
        return (0, value)
    if isinstance(value, int | float):
        return (1, value)
    if isinstance(value, datetime | date):
        return (2, _as_instant(value).isoformat())  # type: ignore[union-attr]
    return (3, str(value).casefold())


# --------------------------------------------------------------------------- engine


def _condition_fields(node: Any) -> list[FieldPath]:
    """Every field a WHERE clause reads (sub-selects excluded: they are checked against their own object)."""
    if node is None:
        return []
    if isinstance(node, BoolOp):
        return [f for item in node.items for f in _condition_fields(item)]
    if isinstance(node, Not):
        return _condition_fields(node.item)
    return [node.field]


def _semi_joins(node: Any) -> list[SemiJoin]:
    if isinstance(node, BoolOp):
        return [s for item in node.items for s in _semi_joins(item)]
    if isinstance(node, Not):
        return _semi_joins(node.item)
    return [node] if isinstance(node, SemiJoin) else []


class _Engine:
    """Evaluates one parsed query; caches parent lookups and sub-select results for its lifetime."""

    def __init__(self, query: Query, source: RecordSource, api_version: str):
        self.query = query
        self.source = source
        self.api_version = api_version
        self._parents: dict[str, tuple[str, dict] | None] = {}
        self._semi: dict[int, set[Any]] = {}
        self._in_ids: dict[int, set[str]] = {}
        self._in_all_ids: dict[int, bool] = {}
        self._type: str | None = None

    def resolve_type(self, query: Query) -> str | None:
        """Canonical type name if the source can tell; raise InvalidType if it says the type doesn't exist.

        Optional hooks, tried in order: ``source.resolve_sobject(name)`` or
        ``source.catalog.resolve(name)`` (the emulator's :class:`SObjectCatalog`), each returning
        the canonical name or None for an unknown type.
        """
        resolver = getattr(self.source, "resolve_sobject", None)
        if not callable(resolver):
            resolver = getattr(getattr(self.source, "catalog", None), "resolve", None)
        if not callable(resolver):
            return None
        canonical = resolver(query.sobject)
        if not canonical:
            raise InvalidType(query.sobject, query.text, query.sobject_pos)
        return str(canonical)

    def load(self, query: Query) -> list[dict]:
        canonical = self.resolve_type(query)
        try:
            return list(self.source.all_records(canonical or query.sobject))
        except LookupError:
            raise InvalidType(query.sobject, query.text, query.sobject_pos) from None

    def check_fields(self, query: Query, sobject: str) -> None:
        """INVALID_FIELD for a selected, filtered or sorted field the object does not have (source permitting)."""
        resolver = getattr(self.source, "resolve_field", None)
        if not callable(resolver):
            return
        paths = [*query.fields, *(item.field for item in query.order_by)]
        paths += list(_condition_fields(query.where))
        for path in paths:
            self.check_path(resolver, query, sobject, path)
        for node in _semi_joins(query.where):
            inner = self.resolve_type(node.query)
            if inner:
                self.check_fields(node.query, inner)

    @staticmethod
    def check_path(resolver: Any, query: Query, sobject: str, path: FieldPath) -> None:
        current: str | None = sobject
        for index, part in enumerate(path.parts):
            if current is None:
                return
            last = index == len(path.parts) - 1
            found = resolver(current, part if last else _lookup_field(part))
            if found is None:
                return  # a schema-less object: nothing to check against
            if found is False:
                raise InvalidField(current, part, query.text, path.pos, relationship=not last)
            current = found[0] if len(found) == 1 else None

    def matching(self) -> list[dict]:
        self._type = self.resolve_type(self.query)
        if self._type:
            self.check_fields(self.query, self._type)
        rows = self.load(self.query)
        if rows and self._type is None:
            self._type = self.canonical_type(rows[0])
        rows = [r for r in rows if self.test(r, self.query.where)]
        if self.query.order_by:
            rows.sort(key=functools.cmp_to_key(self.compare_rows))
        start = self.query.offset or 0
        end = None if self.query.limit is None else start + self.query.limit
        return rows[start:end]

    def canonical_type(self, record: dict) -> str:
        """The type as the store spells it (the query may say ``contentversion``)."""
        attrs = record.get("attributes")
        if isinstance(attrs, dict) and attrs.get("type"):
            return str(attrs["type"])
        record_id = record.get("Id")
        found = self.parent(record_id) if isinstance(record_id, str) else None
        return found[0] if found else self.query.sobject

    def parent(self, record_id: Any) -> tuple[str, dict] | None:
        if not isinstance(record_id, str) or not record_id:
            return None
        if record_id not in self._parents:
            self._parents[record_id] = self.source.get_record(record_id)
        return self._parents[record_id]

    def resolve(self, record: dict, path: FieldPath) -> tuple[str, Any]:
        """(canonical leaf key, value) following parent relationships; a broken chain reads as null."""
        current = record
        for rel in path.parts[:-1]:
            _, lookup = _get(current, _lookup_field(rel))
            found = self.parent(lookup) if lookup is not _MISSING else None
            if found is None:
                return path.parts[-1], None
            current = found[1]
        key, value = _get(current, path.parts[-1])
        return key, None if value is _MISSING else value

    # -- WHERE
    def test(self, record: dict, node: Any) -> bool:
        if node is None:
            return True
        if isinstance(node, BoolOp):
            results = (self.test(record, item) for item in node.items)
            return all(results) if node.op == "AND" else any(results)
        if isinstance(node, Not):
            return not self.test(record, node.item)
        key, value = self.resolve(record, node.field)
        if isinstance(node, Compare):
            if node.op == "=":
                return _equals(key, value, node.value)
            if node.op == "!=":
                return not _equals(key, value, node.value)
            return _order(value, node.value, node.op)
        if isinstance(node, Like):
            return isinstance(value, str) and node.pattern.fullmatch(value) is not None
        if isinstance(node, InList):
            return self._in_list(key, value, node) != node.negated
        if isinstance(node, SemiJoin):
            hit = value is not None and _id_key(value) in self.semi_join_values(node)
            return hit != node.negated
        raise TypeError(f"unknown condition node {node!r}")  # pragma: no cover - parser bug

    def _in_list(self, key: str, value: Any, node: InList) -> bool:
        """``any(_equals(key, value, literal))``, without comparing each row with every literal where the answer is
        known: a null matches only a null literal, and an Id against a list of Ids is a set lookup (a query
        ``... IN (200 Ids)`` over thousands of rows)."""
        if value is None:
            return any(lit.kind == "null" for lit in node.values)
        if isinstance(value, str) and _is_id_key(key, value) and is_valid_id(value):
            ids = self._in_ids.get(id(node))
            if ids is None:
                every = all(lit.kind == "string" and is_valid_id(lit.value) for lit in node.values)
                ids = self._in_ids[id(node)] = {to_18(lit.value) for lit in node.values} if every else set()
                self._in_all_ids[id(node)] = every
            if self._in_all_ids[id(node)]:
                return to_18(value) in ids
        return any(_equals(key, value, lit) for lit in node.values)

    def semi_join_values(self, node: SemiJoin) -> set[Any]:
        cached = self._semi.get(id(node))
        if cached is None:
            inner, path = node.query, node.query.fields[0]
            cached = set()
            for row in self.load(inner):
                if self.test(row, inner.where):
                    _, value = self.resolve(row, path)
                    if value is not None:
                        cached.add(_id_key(value))
            self._semi[id(node)] = cached
        return cached

    # -- ORDER BY
    def compare_rows(self, a: dict, b: dict) -> int:
        for item in self.query.order_by:
            result = self.compare_values(self.resolve(a, item.field)[1], self.resolve(b, item.field)[1], item)
            if result:
                return result
        return 0

    @staticmethod
    def compare_values(x: Any, y: Any, item: OrderItem) -> int:
        if x is None or y is None:
            if x is None and y is None:
                return 0
            return (-1 if x is None else 1) * (1 if item.nulls_first else -1)
        kx, ky = _sort_key(x), _sort_key(y)
        result = (kx > ky) - (kx < ky)
        return -result if item.descending else result

    # -- output
    def attributes(self, sobject: str, record: dict) -> dict:
        url = f"/services/data/v{self.api_version}/sobjects/{sobject}/{record.get('Id')}"
        return {"type": sobject, "url": url}

    def render(self, record: dict) -> dict:
        out: dict[str, Any] = {"attributes": self.attributes(self._type or self.query.sobject, record)}
        for path in self.query.fields:
            self.place(out, record, path.parts)
        return out

    def place(self, out: dict, record: dict, parts: tuple[str, ...]) -> None:
        """Write one selected path into ``out``, nesting parents the way Salesforce does."""
        if len(parts) == 1:
            key, value = _get(record, parts[0])
            out[key] = None if value is _MISSING else value
            return
        lookup_key, lookup = _get(record, _lookup_field(parts[0]))
        rel_name = _relationship_name(lookup_key, parts[0])
        found = self.parent(lookup) if lookup is not _MISSING else None
        existing_key = next((k for k in out if k.lower() == rel_name.lower()), None)
        if found is None:
            if existing_key is None:
                out[rel_name] = None
            return
        if existing_key is None or out[existing_key] is None:
            out[existing_key or rel_name] = {"attributes": self.attributes(found[0], found[1])}
        self.place(out[existing_key or rel_name], found[1], parts[1:])
